//! Endpoints delivery marked as backlogged: their new jobs go straight to
//! their held lane, so they never queue in the shared pool ahead of other
//! tenants' jobs.
//!
//! Delivery refreshes a mark while the backlog lasts; the bucket forgets a
//! mark nobody refreshed after [`BACKLOG_MARK_TTL`]. The server does not tell
//! watchers about such an expiry, so a mark is trusted for that long after
//! it was seen here, never longer.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use futures::StreamExt;
use herald_bus::{BACKLOG_MARK_TTL, Bus, async_nats::jetstream::kv};
use herald_core::id::EndpointId;
use tokio_util::sync::CancellationToken;

const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The marks seen, and when.
#[derive(Clone, Debug, Default)]
pub(crate) struct Backlog {
    marks: Arc<RwLock<HashMap<EndpointId, Instant>>>,
}

impl Backlog {
    pub(crate) fn contains(&self, endpoint: &EndpointId) -> bool {
        self.marks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(endpoint)
            .is_some_and(|seen| seen.elapsed() < BACKLOG_MARK_TTL)
    }

    fn apply(&self, entry: &kv::Entry) {
        let Ok(endpoint) = EndpointId::parse(&entry.key) else {
            return;
        };
        let mut marks = self
            .marks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match entry.operation {
            kv::Operation::Put => {
                // A mark stored before the watch started is as old as the
                // bucket says.
                let age = Duration::try_from(time::OffsetDateTime::now_utc() - entry.created)
                    .unwrap_or_default();
                if let Some(seen) = Instant::now().checked_sub(age) {
                    marks.insert(endpoint, seen);
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                marks.remove(&endpoint);
            }
        }
        marks.retain(|_, seen| seen.elapsed() < BACKLOG_MARK_TTL);
    }

    /// Follows the bucket until `shutdown`, watching again after an error.
    /// Without it every job goes to the pool, as before held lanes.
    pub(crate) async fn follow(self, bus: Bus, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.watch(&bus, &shutdown).await {
                tracing::warn!(%error, "cannot watch the backlog marks; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RETRY_DELAY) => {}
            }
        }
    }

    async fn watch(&self, bus: &Bus, shutdown: &CancellationToken) -> Result<(), String> {
        let bucket = bus.backlog().await.map_err(|error| error.to_string())?;
        // The current marks first, then every change.
        let mut entries = bucket
            .watch_with_history(">")
            .await
            .map_err(|error| error.to_string())?;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                entry = entries.next() => match entry {
                    Some(Ok(entry)) => self.apply(&entry),
                    Some(Err(error)) => return Err(error.to_string()),
                    None => return Err("the watch ended".to_owned()),
                },
            }
        }
    }
}
