//! Pulls the shared pool with flow control: only as many jobs as this
//! replica has room to work on. A job takes an intake permit before it is
//! taken from the pull and gives it back when it settles (or moves to its
//! held lane), so the pool consumer's unacknowledged set never holds more
//! than the replicas can work on soon, and every other job stays in the
//! stream where any replica can take it.
//!
//! The pull itself is [`Bus::pull`]'s (idle heartbeats, a lost request
//! replaced within seconds): it asks for more only as it is read, so it
//! holds at most one and a half pull batches beyond the permits.

use std::sync::Arc;

use futures::StreamExt;
use herald_bus::{
    Bus,
    async_nats::jetstream::{Message, consumer::PullConsumer},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Jobs asked for per pull request: small, as jobs pulled but not yet
/// taken wait without extending their ack wait.
const PULL_BATCH: usize = 64;

/// A pulled job and its place in the intake.
pub(crate) type Pulled = (Message, OwnedSemaphorePermit);

/// Starts pulling `consumer` into the returned channel, at most `capacity`
/// jobs unsettled at a time, until `stop` or until the receiver is dropped.
pub(crate) fn pull(
    bus: &Bus,
    consumer: PullConsumer,
    capacity: usize,
    stop: CancellationToken,
) -> mpsc::Receiver<Pulled> {
    let (sender, receiver) = mpsc::channel(1);
    let intake = Arc::new(Semaphore::new(capacity));
    let mut messages = bus.pull(consumer, PULL_BATCH);
    tokio::spawn(async move {
        loop {
            // Room first: an unread pull asks for nothing more.
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                permit = intake.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                message = messages.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            if sender.send((message, permit)).await.is_err() {
                return;
            }
        }
    });
    receiver
}
