//! The shared record of each device's inbound health (see
//! [`herald_core::device_health`]): ingest replicas merge their deltas into
//! it with compare-and-set, the config service reads it for the API.

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use bytes::Bytes;
use herald_core::device_health::DeviceHealth;

use crate::BusError;

/// Compare-and-set rounds lost to other replicas before a delta is kept for
/// the next flush instead.
const MAX_ROUNDS: usize = 8;

/// Device health records, one key per device id.
#[derive(Clone, Debug)]
pub struct DeviceHealthBook {
    pub(crate) store: kv::Store,
}

impl DeviceHealthBook {
    fn error(&self, reason: impl ToString) -> BusError {
        BusError::Bucket {
            bucket: self.store.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// The device's record; `None` when its channel never called (or not
    /// within the bucket's retention).
    pub async fn get(&self, device_id: &str) -> Result<Option<DeviceHealth>, BusError> {
        Ok(self.entry(device_id).await?.map(|(health, _)| health))
    }

    /// Merges `delta` into the device's record.
    pub async fn add(&self, device_id: &str, delta: &DeviceHealth) -> Result<(), BusError> {
        for _ in 0..MAX_ROUNDS {
            let current = self.entry(device_id).await?;
            let written = match current {
                Some((mut health, revision)) => {
                    health.merge(delta);
                    match self
                        .store
                        .update(device_id, self.encode(&health)?, revision)
                        .await
                    {
                        Ok(_) => true,
                        Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => false,
                        Err(error) => return Err(self.error(error)),
                    }
                }
                None => match self.store.create(device_id, self.encode(delta)?).await {
                    Ok(_) => true,
                    Err(error) if error.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(error) => return Err(self.error(error)),
                },
            };
            if written {
                return Ok(());
            }
        }
        Err(self.error(format!(
            "device {device_id} changed under {MAX_ROUNDS} compare-and-set rounds in a row"
        )))
    }

    async fn entry(&self, device_id: &str) -> Result<Option<(DeviceHealth, u64)>, BusError> {
        let Some(entry) = self
            .store
            .entry(device_id)
            .await
            .map_err(|error| self.error(error))?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        // A record this version cannot read starts over rather than
        // blocking every later flush of the device.
        let health = serde_json::from_slice(&entry.value).unwrap_or_else(|error| {
            tracing::warn!(device = device_id, %error, "replacing an unreadable device health record");
            DeviceHealth::default()
        });
        Ok(Some((health, entry.revision)))
    }

    fn encode(&self, health: &DeviceHealth) -> Result<Bytes, BusError> {
        serde_json::to_vec(health)
            .map(Bytes::from)
            .map_err(|error| self.error(error))
    }
}
