//! Counts what each device's channel sent (calls, accepted events,
//! verification failures) and merges it into the shared health record every
//! [`FLUSH_EVERY`], so a webhook costs a map update, not a bucket write.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use herald_bus::DeviceHealthBook;
use herald_core::device_health::DeviceHealth;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How often the counts are merged into the shared record: the delay before
/// the devices API shows a call.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How long the flush at shutdown may take.
const LAST_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// What this replica saw since its last flush, by device id.
#[derive(Debug, Default)]
pub(crate) struct HealthRecorder {
    pending: Mutex<HashMap<String, DeviceHealth>>,
}

impl HealthRecorder {
    /// A call reached a known device's route.
    pub(crate) fn webhook(&self, device_id: &str, at: OffsetDateTime) {
        self.with(device_id, |health| health.webhook(at));
    }

    pub(crate) fn accepted(&self, device_id: &str, at: OffsetDateTime, events: usize) {
        let events = u64::try_from(events).unwrap_or(u64::MAX);
        self.with(device_id, |health| health.accepted(at, events));
    }

    /// A call failed the channel's verification, for `reason`.
    pub(crate) fn refused(&self, device_id: &str, at: OffsetDateTime, reason: &str) {
        self.with(device_id, |health| health.refused(at, reason));
    }

    fn with(&self, device_id: &str, record: impl FnOnce(&mut DeviceHealth)) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(device_id) {
            Some(health) => record(health),
            None => {
                let mut health = DeviceHealth::default();
                record(&mut health);
                pending.insert(device_id.to_owned(), health);
            }
        }
    }

    fn take(&self) -> HashMap<String, DeviceHealth> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back a delta the bucket did not take, for the next flush.
    fn keep(&self, device_id: String, delta: &DeviceHealth) {
        self.with(&device_id, |health| health.merge(delta));
    }

    /// Merges every pending delta into the shared records; a delta the bus
    /// refuses waits for the next flush.
    async fn flush(&self, book: &DeviceHealthBook) {
        for (device_id, delta) in self.take() {
            if let Err(error) = book.add(&device_id, &delta).await {
                tracing::warn!(device = %device_id, %error, "cannot update a device's health record; keeping it for the next flush");
                self.keep(device_id, &delta);
            }
        }
    }
}

/// Flushes every [`FLUSH_EVERY`] until `shutdown`, then once more.
pub(crate) async fn run(
    recorder: Arc<HealthRecorder>,
    book: DeviceHealthBook,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(FLUSH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => recorder.flush(&book).await,
        }
    }
    // A bus that is gone must not hold the shutdown: the counts are
    // information, not accepted data.
    if tokio::time::timeout(LAST_FLUSH_LIMIT, recorder.flush(&book))
        .await
        .is_err()
    {
        tracing::warn!("the last device health counts were not flushed in time");
    }
}
