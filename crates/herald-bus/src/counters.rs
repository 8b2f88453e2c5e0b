//! Small numbers shared by every replica, read linearizably.
//!
//! async-nats reads a key-value bucket with a direct get whenever the bucket
//! allows it (every bucket it creates does), and a direct get may be answered
//! by any replica of the stream, possibly one that has not applied the newest
//! write yet. These counters are read with the stream's message-get API
//! instead, which only the stream leader answers, so a read that starts after
//! a write was acknowledged sees that write. Writes are compare-and-set.

use async_nats::jetstream::{
    kv::{self, CreateErrorKind, UpdateErrorKind},
    stream::LastRawMessageErrorKind,
};
use bytes::Bytes;

use crate::BusError;

/// Compare-and-set rounds lost to concurrent writers before giving up.
const MAX_ROUNDS: usize = 16;

/// Unsigned counters in one key-value bucket.
#[derive(Clone, Debug)]
struct Counters {
    store: kv::Store,
}

impl Counters {
    fn error(&self, reason: impl ToString) -> BusError {
        BusError::Bucket {
            bucket: self.store.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// The key's value and its revision (for a compare-and-set), read from
    /// the stream leader; `None` when it was never written or was removed.
    async fn read(&self, key: &str) -> Result<Option<(u64, u64)>, BusError> {
        let subject = format!("{}{key}", self.store.prefix);
        let message = match self
            .store
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => message,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None);
            }
            Err(error) => return Err(self.error(error)),
        };
        // A purge leaves a marker with an operation header and no payload.
        if message.headers.get("KV-Operation").is_some() {
            return Ok(None);
        }
        let value = std::str::from_utf8(&message.payload)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| self.error(format!("key {key} does not hold a number")))?;
        Ok(Some((value, message.sequence)))
    }

    /// Replaces the value by `next(current)` with compare-and-set; `None`
    /// from `next` leaves it as it is. Returns the value now held.
    async fn modify(
        &self,
        key: &str,
        next: impl Fn(Option<u64>) -> Option<u64>,
    ) -> Result<u64, BusError> {
        for _ in 0..MAX_ROUNDS {
            let current = self.read(key).await?;
            let Some(value) = next(current.map(|(value, _)| value)) else {
                return Ok(current.map(|(value, _)| value).unwrap_or_default());
            };
            let payload = Bytes::from(value.to_string());
            let written = match current {
                Some((_, revision)) => match self.store.update(key, payload, revision).await {
                    Ok(_) => true,
                    Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Err(error) => return Err(self.error(error)),
                },
                None => match self.store.create(key, payload).await {
                    Ok(_) => true,
                    Err(error) if error.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(error) => return Err(self.error(error)),
                },
            };
            if written {
                return Ok(value);
            }
        }
        Err(self.error(format!(
            "key {key} changed under {MAX_ROUNDS} compare-and-set rounds in a row"
        )))
    }
}

/// The newest configuration revision that stopped an endpoint from matching
/// (a pause, a delete, a narrower subscription): the config service raises it
/// before such a change is answered, and fanout matches nothing until its
/// Watch stream applied it.
#[derive(Clone, Debug)]
pub struct ConfigRevision {
    counters: Counters,
}

const CONFIG_REVISION_KEY: &str = "revision";

impl ConfigRevision {
    pub(crate) fn new(store: kv::Store) -> ConfigRevision {
        ConfigRevision {
            counters: Counters { store },
        }
    }

    /// The revision held now (0 before the first change).
    pub async fn current(&self) -> Result<u64, BusError> {
        Ok(self
            .counters
            .read(CONFIG_REVISION_KEY)
            .await?
            .map(|(value, _)| value)
            .unwrap_or_default())
    }

    /// Raises the revision to at least `revision`; it never goes down.
    pub async fn raise(&self, revision: u64) -> Result<(), BusError> {
        self.counters
            .modify(CONFIG_REVISION_KEY, |current| {
                (current.unwrap_or_default() < revision).then_some(revision)
            })
            .await
            .map(drop)
    }

    /// Lowers the revision from `seen` to `newest`, if it still is `seen`
    /// and `seen` is ahead: the database was restored or replaced, and
    /// waiting for a revision it will not reach soon would stop every fanout.
    /// Read `seen` before `newest`, so a raise in between is not undone.
    pub async fn lower(&self, seen: u64, newest: u64) -> Result<(), BusError> {
        self.counters
            .modify(CONFIG_REVISION_KEY, |current| {
                (current == Some(seen) && seen > newest).then_some(newest)
            })
            .await
            .map(drop)
    }
}

/// How often each delivery job (by its stream sequence) was handed back
/// without an attempt, so attempt numbers do not count those deliveries.
#[derive(Clone, Debug)]
pub struct Handbacks {
    counters: Counters,
}

impl Handbacks {
    pub(crate) fn new(store: kv::Store) -> Handbacks {
        Handbacks {
            counters: Counters { store },
        }
    }

    /// How often the job at `sequence` was handed back.
    pub async fn count(&self, sequence: u64) -> Result<u64, BusError> {
        Ok(self
            .counters
            .read(&sequence.to_string())
            .await?
            .map(|(value, _)| value)
            .unwrap_or_default())
    }

    /// Counts one more hand-back of the job at `sequence`.
    pub async fn add(&self, sequence: u64) -> Result<u64, BusError> {
        self.counters
            .modify(&sequence.to_string(), |current| {
                Some(current.unwrap_or_default().saturating_add(1))
            })
            .await
    }

    /// Forgets the job at `sequence` once it is settled for good.
    pub async fn forget(&self, sequence: u64) -> Result<(), BusError> {
        self.counters
            .store
            .purge(sequence.to_string())
            .await
            .map_err(|error| self.counters.error(error))
    }
}
