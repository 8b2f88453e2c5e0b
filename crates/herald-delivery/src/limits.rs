//! Per-endpoint (and per-tenant) concurrency limits, created on first use
//! and forgotten when idle, so the map holds only keys with jobs right now.
//! A key's size may change while it is in use (a tenant's quota): growing
//! adds permits at once, shrinking forgets free permits as they come back.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit};

#[derive(Debug)]
pub(crate) struct EndpointLimits {
    per_endpoint: usize,
    semaphores: Mutex<HashMap<String, KeyLimit>>,
}

/// A key's semaphore and the permits it is meant to have.
#[derive(Debug)]
struct KeyLimit {
    semaphore: Arc<Semaphore>,
    /// Permits issued and not forgotten: above the wanted size while a
    /// shrink waits for permits to come back.
    size: usize,
}

impl EndpointLimits {
    pub(crate) fn new(per_endpoint: usize) -> EndpointLimits {
        EndpointLimits {
            per_endpoint,
            semaphores: Mutex::new(HashMap::new()),
        }
    }

    /// A claim on the endpoint's semaphore; permits are taken from it.
    pub(crate) fn slot(self: &Arc<Self>, endpoint: &str) -> EndpointSlot {
        self.slot_sized(endpoint, self.per_endpoint)
    }

    /// A claim on the key's semaphore, resized to `size` permits first.
    pub(crate) fn slot_sized(self: &Arc<Self>, key: &str, size: usize) -> EndpointSlot {
        let semaphore = {
            let mut semaphores = self.lock();
            let entry = semaphores
                .entry(key.to_owned())
                .or_insert_with(|| KeyLimit {
                    semaphore: Arc::new(Semaphore::new(size)),
                    size,
                });
            if size > entry.size {
                entry.semaphore.add_permits(size - entry.size);
                entry.size = size;
            } else if size < entry.size {
                let forgotten = entry.semaphore.forget_permits(entry.size - size);
                entry.size = entry.size.saturating_sub(forgotten);
            }
            entry.semaphore.clone()
        };
        EndpointSlot {
            limits: self.clone(),
            endpoint: key.to_owned(),
            semaphore,
        }
    }

    /// Jobs holding or waiting for one of the endpoint's slots now.
    pub(crate) fn queued(&self, endpoint: &str) -> usize {
        // Every EndpointSlot holds one clone; the map holds the other.
        self.lock().get(endpoint).map_or(0, |entry| {
            Arc::strong_count(&entry.semaphore).saturating_sub(1)
        })
    }

    pub(crate) fn per_endpoint(&self) -> usize {
        self.per_endpoint
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, KeyLimit>> {
        // The map stays consistent even if a holder panicked: every change
        // is a single insert or remove.
        self.semaphores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

/// Holds the endpoint's semaphore while a job waits for or uses a permit.
#[derive(Debug)]
pub(crate) struct EndpointSlot {
    limits: Arc<EndpointLimits>,
    endpoint: String,
    semaphore: Arc<Semaphore>,
}

impl EndpointSlot {
    pub(crate) async fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.semaphore.acquire().await
    }

    /// A permit that keeps its claim alive, for a claim made while waiting.
    pub(crate) async fn acquire_owned(self) -> Result<OwnedSlotPermit, AcquireError> {
        let permit = self.semaphore.clone().acquire_owned().await?;
        Ok(OwnedSlotPermit {
            _permit: permit,
            _slot: self,
        })
    }
}

/// A permit and the claim it was taken on; the permit is returned first.
#[derive(Debug)]
pub(crate) struct OwnedSlotPermit {
    _permit: OwnedSemaphorePermit,
    _slot: EndpointSlot,
}

impl Drop for EndpointSlot {
    fn drop(&mut self) {
        let mut semaphores = self.limits.lock();
        // Clones are only made under this lock, so a count of two (the map's
        // and ours) means no other job waits on or holds this endpoint.
        if Arc::strong_count(&self.semaphore) == 2 {
            semaphores.remove(&self.endpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endpoint_is_limited_and_forgotten_when_idle() {
        let limits = Arc::new(EndpointLimits::new(2));
        let first = limits.slot("ep_a");
        let second = limits.slot("ep_a");
        let one = first.acquire().await.unwrap();
        let two = second.acquire().await.unwrap();
        {
            let third = limits.slot("ep_a");
            let waited =
                tokio::time::timeout(std::time::Duration::from_millis(50), third.acquire()).await;
            assert!(
                waited.is_err(),
                "a third request to the same endpoint waits"
            );
        }
        {
            let other = limits.slot("ep_b");
            let _elsewhere = other.acquire().await.unwrap();
            assert_eq!(limits.tracked(), 2);
            assert_eq!(limits.queued("ep_a"), 2);
            assert_eq!(limits.queued("ep_b"), 1);
        }
        assert_eq!(limits.tracked(), 1, "an idle endpoint is forgotten");
        drop(two);
        drop(second);
        assert_eq!(limits.tracked(), 1, "still in use");
        drop(one);
        drop(first);
        assert_eq!(limits.tracked(), 0);
    }

    #[tokio::test]
    async fn a_keys_size_changes_while_it_is_in_use() {
        let limits = Arc::new(EndpointLimits::new(8));
        let first = limits.slot_sized("ten_a", 1);
        let held = first.acquire().await.unwrap();
        let waiting = |size| {
            let slot = limits.slot_sized("ten_a", size);
            async move {
                tokio::time::timeout(std::time::Duration::from_millis(50), slot.acquire())
                    .await
                    .is_err()
            }
        };
        assert!(waiting(1).await, "one permit, taken");
        assert!(!waiting(2).await, "grown to two: one is free");
        assert!(waiting(1).await, "shrunk back to one, taken");
        drop(held);
        assert!(!waiting(1).await);
    }
}
