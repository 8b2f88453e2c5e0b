//! Enforces endpoints' rate limits across every delivery replica.
//!
//! The limit's state (one GCRA timestamp per endpoint) lives in a JetStream
//! key-value bucket and is advanced with compare-and-set, so two replicas
//! together never exceed the rate. Each replica reserves a small chunk of
//! start times at once and hands them out locally, which keeps fast limits
//! from costing one shared update per delivery.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use herald_bus::async_nats::jetstream::kv;
use herald_core::rate::{Micros, RateLimit};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How long to wait before retrying when the bucket cannot be reached.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct RateLimiter {
    bucket: kv::Store,
    /// Start times this replica reserved and has not used, per endpoint.
    reserved: Mutex<HashMap<String, Arc<tokio::sync::Mutex<VecDeque<Micros>>>>>,
}

impl RateLimiter {
    pub(crate) fn new(bucket: kv::Store) -> RateLimiter {
        RateLimiter {
            bucket,
            reserved: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until this delivery's turn under `limit`. False when `stop`
    /// was cancelled meanwhile.
    pub(crate) async fn wait_turn(
        &self,
        endpoint: &str,
        limit: RateLimit,
        stop: &CancellationToken,
    ) -> bool {
        let queue = self
            .reserved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(endpoint.to_owned())
            .or_default()
            .clone();
        let start = {
            // One reservation at a time per endpoint in this replica, so its
            // own deliveries never race each other on the shared state.
            let mut queue = queue.lock().await;
            loop {
                if let Some(start) = queue.pop_front() {
                    break start;
                }
                match self.reserve(endpoint, limit).await {
                    Ok(starts) => queue.extend(starts),
                    Err(error) => {
                        tracing::warn!(endpoint, %error, "cannot reach the rate limit state; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return false,
                            _ = tokio::time::sleep(UNAVAILABLE_BACKOFF) => {}
                        }
                    }
                }
            }
        };
        let wait = Duration::from_micros(u64::try_from(start - now_micros()).unwrap_or(0));
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// Advances the shared state by one chunk and returns its start times.
    async fn reserve(&self, endpoint: &str, limit: RateLimit) -> Result<Vec<Micros>, String> {
        loop {
            let entry = self
                .bucket
                .entry(endpoint)
                .await
                .map_err(|error| error.to_string())?;
            let (tat, revision) = match &entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    (decode(&entry.value), Some(entry.revision))
                }
                Some(entry) => (0, Some(entry.revision)),
                None => (0, None),
            };
            let reservation = limit.reserve(tat, now_micros(), limit.chunk());
            let value = Bytes::copy_from_slice(&reservation.tat.to_be_bytes());
            let written = match revision {
                Some(revision) => self
                    .bucket
                    .update(endpoint, value, revision)
                    .await
                    .map(drop)
                    .map_err(|error| {
                        (
                            error.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            error.to_string(),
                        )
                    }),
                None => self
                    .bucket
                    .create(endpoint, value)
                    .await
                    .map(drop)
                    .map_err(|error| {
                        (
                            error.kind() == kv::CreateErrorKind::AlreadyExists,
                            error.to_string(),
                        )
                    }),
            };
            match written {
                Ok(()) => return Ok(reservation.starts),
                // Another replica moved first: read again.
                Err((true, _)) => continue,
                Err((false, error)) => return Err(error),
            }
        }
    }
}

fn decode(value: &[u8]) -> Micros {
    value
        .try_into()
        .map(Micros::from_be_bytes)
        .unwrap_or_default()
}

fn now_micros() -> Micros {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    Micros::try_from(now).unwrap_or(Micros::MAX)
}
