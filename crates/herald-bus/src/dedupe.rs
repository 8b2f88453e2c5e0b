//! Channel deduplication beyond the events stream's duplicate window.
//!
//! Channels retry a webhook for longer than the stream remembers message ids
//! (Meta for up to 7 days; the window is 1 hour by default, since the
//! server keeps every id of the window in memory). So every channel event
//! also claims its idempotency key in the `HERALD_DEDUPE` bucket, with a
//! per-key TTL of its channel's retry horizon, and the claim names the event
//! that holds the key. The bucket keeps only the claims, on disk, replicated
//! like the streams.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind};
use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::BusError;

/// What claiming an idempotency key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody held the key: it is now held for the given event.
    New,
    /// An earlier event holds the key: this is its id, as stored.
    Held(String),
}

/// The claims of channel idempotency keys (see the module docs).
#[derive(Clone, Debug)]
pub struct DedupeKeys {
    pub(crate) store: kv::Store,
    pub(crate) bucket: String,
}

/// Claims race with the key's expiry; a claim that lost to an expiry twice
/// in a row is a bucket misbehaving, not a race.
const CLAIM_TRIES: usize = 3;

impl DedupeKeys {
    /// Claims `idempotency_key` for `event_id` for `horizon` (whole seconds,
    /// at least one), or says which event holds it already.
    pub async fn claim(
        &self,
        idempotency_key: &str,
        event_id: &str,
        horizon: Duration,
    ) -> Result<Claim, BusError> {
        let key = bucket_key(idempotency_key);
        let ttl = Duration::from_secs(horizon.as_secs().max(1));
        let failed = |reason: String| BusError::KeyValue {
            bucket: self.bucket.clone(),
            key: key.clone(),
            reason,
        };
        for _ in 0..CLAIM_TRIES {
            match self
                .store
                .create_with_ttl(&key, Bytes::copy_from_slice(event_id.as_bytes()), ttl)
                .await
            {
                Ok(_) => return Ok(Claim::New),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                    match self
                        .store
                        .get(&key)
                        .await
                        .map_err(|error| failed(error.to_string()))?
                    {
                        Some(holder) => {
                            return Ok(Claim::Held(String::from_utf8_lossy(&holder).into_owned()));
                        }
                        // Expired between the two calls: claim it again.
                        None => continue,
                    }
                }
                Err(error) => return Err(failed(error.to_string())),
            }
        }
        Err(failed(
            "the key kept expiring while it was being claimed".to_owned(),
        ))
    }
}

/// Idempotency keys hold characters a bucket key may not (`:`, `+`, `=`)
/// and can be long: the bucket key is their SHA-256, in URL-safe base64.
fn bucket_key(idempotency_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(idempotency_key))
}

#[cfg(test)]
mod tests {
    use super::bucket_key;

    #[test]
    fn bucket_keys_are_valid_and_distinct() {
        let keys = [
            "waba:dev_1:wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNjJFMDc0RTQ1QkY3QjFBNkUA:received",
            "waba:dev_1:wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNjJFMDc0RTQ1QkY3QjFBNkUA:status:read",
            "telegram:dev_2:123456789",
            "",
        ];
        let encoded: std::collections::BTreeSet<String> =
            keys.iter().map(|key| bucket_key(key)).collect();
        assert_eq!(encoded.len(), keys.len());
        for key in &encoded {
            assert_eq!(key.len(), 43);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{key}"
            );
        }
    }
}
