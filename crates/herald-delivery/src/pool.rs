//! Pulls the shared pool with flow control: only as many jobs as this
//! replica has room to work on. A job takes an intake permit before it is
//! pulled and gives it back when it settles (or moves to its held lane), so
//! the pool consumer's unacknowledged set never holds more than the
//! replicas can work on soon, and every other job stays in the stream where
//! any replica can take it.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use herald_bus::{
    Bus, ConsumerRole,
    async_nats::jetstream::{Message, consumer::PullConsumer},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Jobs pulled per request at most.
const PULL_BATCH: usize = 150;
/// How long one pull request waits for jobs before a new one is made.
const PULL_EXPIRY: Duration = Duration::from_secs(5);
/// How long to wait after a failed pull request.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// A pulled job and its place in the intake.
pub(crate) type Pulled = (Message, OwnedSemaphorePermit);

/// Starts pulling `consumer` into the returned channel, at most `capacity`
/// jobs unsettled at a time, until `stop` or until the receiver is dropped.
pub(crate) fn pull(
    bus: Bus,
    consumer: PullConsumer,
    capacity: usize,
    stop: CancellationToken,
) -> mpsc::Receiver<Result<Pulled, String>> {
    let (sender, receiver) = mpsc::channel(1);
    let intake = Arc::new(Semaphore::new(capacity));
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = pull_loop(&bus, consumer, intake, sender) => {}
        }
        bus.report_pulling(ConsumerRole::Delivery, false);
    });
    receiver
}

async fn pull_loop(
    bus: &Bus,
    consumer: PullConsumer,
    intake: Arc<Semaphore>,
    sender: mpsc::Sender<Result<Pulled, String>>,
) {
    loop {
        // Room for one job first; the request asks for what is free then,
        // which nobody else takes meanwhile (permits only come back).
        let Ok(first) = intake.clone().acquire_owned().await else {
            return;
        };
        let wanted = intake.available_permits().saturating_add(1).min(PULL_BATCH);
        let batch = consumer
            .batch()
            .max_messages(wanted)
            .expires(PULL_EXPIRY)
            .messages()
            .await;
        // Readiness: this replica takes pool jobs once a request stands.
        bus.report_pulling(ConsumerRole::Delivery, batch.is_ok());
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                drop(first);
                if sender.send(Err(error.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        let mut permit = Some(first);
        let mut failed = false;
        while let Some(message) = batch.next().await {
            let item = match message {
                Ok(message) => {
                    let permit = match permit.take() {
                        Some(permit) => permit,
                        None => match intake.clone().acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    };
                    Ok((message, permit))
                }
                Err(error) => {
                    failed = true;
                    Err(error.to_string())
                }
            };
            if sender.send(item).await.is_err() {
                return;
            }
        }
        // A failing request (no responders while a leader is elected) is
        // not repeated at once.
        if failed {
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}
