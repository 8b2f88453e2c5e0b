//! The ordered fanout: the jobs of FIFO lanes, in the order ingest accepted
//! their events, whatever the number of fanout replicas.
//!
//! The pool's fanout hands batches to every replica at once, and a failed
//! publish is retried a second later, so jobs reach a lane out of order. The
//! lanes therefore get their jobs from a consumer of their own,
//! `fanout-fifo`, which the server hands to one replica at a time (the
//! pinned client of a priority group) and never more than one batch ahead.
//! That replica goes through the batch in stream order and publishes each
//! lane's jobs one after another, each awaiting its acknowledgement and
//! retried in place until it is stored: a later job never overtakes an
//! earlier one. Lanes of different endpoints proceed independently.
//!
//! When the pinned replica dies, the pin moves after
//! [`FIFO_FANOUT_PIN_TIMEOUT`](herald_bus::FIFO_FANOUT_PIN_TIMEOUT) and its unacknowledged batch is
//! handed out again, first and in order, after the ack wait; jobs it had
//! published already are deduplicated by their message ids.
//!
//! Events can still arrive out of stream order: a pull abandoned during a
//! leader election (or held by a replica that lost the pin) keeps the events
//! the server sent to it until their ack wait, while a newer pull already
//! receives later ones. So events are taken in stream-sequence order only:
//! one past the consumer's acknowledged floor is next, later ones wait
//! (unacknowledged, so they come back anyway) until the gap is filled, for
//! at most [`GAP_WAIT`]: a gap that old is a message the stream no longer
//! has.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::{StreamExt, future::join_all};
use herald_bus::{
    Bus, ConfigRevision, ConsumerRole, FIFO_FANOUT_ACK_WAIT, FIFO_FANOUT_BATCH, JobLane, Outgoing,
    async_nats::jetstream::{AckKind, Message, consumer::PullConsumer},
};
use herald_core::{event::Event, id::EndpointId};
use herald_proto::v1 as pb;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{
    FanoutError, FanoutMetrics, StaleIndex, Subscriptions, await_current_index, job_message, spans,
};

/// The first wait before a failed lane publish is tried again; it doubles
/// up to [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// How long later events wait for an earlier one: its ack wait (after which
/// the server sends it again) and a pull's round trip.
const GAP_WAIT: Duration = FIFO_FANOUT_ACK_WAIT.saturating_add(Duration::from_secs(3));
/// How often the wait for a gap looks again.
const GAP_CHECK: Duration = Duration::from_millis(250);

/// Publishes FIFO lanes' jobs until `shutdown`.
pub(crate) async fn run(
    bus: Bus,
    subscriptions: Subscriptions,
    metrics: FanoutMetrics,
    shutdown: CancellationToken,
) -> Result<(), FanoutError> {
    let config_revision = bus.config_revision().await?;
    let consumer = bus.consumer(ConsumerRole::FanoutFifo).await?;
    let mut batches = bus
        .pull(consumer.clone(), FIFO_FANOUT_BATCH)
        .ready_chunks(FIFO_FANOUT_BATCH);
    let mut order = StreamOrder::default();
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            batch = batches.next() => Some(batch),
            _ = tokio::time::sleep(GAP_CHECK), if order.is_waiting() => None,
        };
        if let Some(batch) = batch {
            let Some(messages) = batch else {
                return Err(FanoutError::Consume(
                    "the ordered consumer stream ended".to_owned(),
                ));
            };
            order.receive(messages);
        }
        let messages = order.next_in_order(&consumer).await;
        if messages.is_empty() {
            continue;
        }
        let published = with_progress(&messages, async {
            current_index(&config_revision, &subscriptions, &shutdown).await
                && publish_batch(&bus, &subscriptions, &metrics, &messages, &shutdown).await
        })
        .await;
        if !published {
            // Stopped midway: the unacknowledged events are handed out
            // again, in order, to whichever replica holds the pin next.
            return Ok(());
        }
        for message in &messages {
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "cannot acknowledge an ordered event; it comes back and its jobs deduplicate");
            }
        }
    }
}

/// The events received, released in stream-sequence order.
#[derive(Default)]
struct StreamOrder {
    /// The stream sequence of the next event to release, once known.
    next: Option<u64>,
    /// Events received ahead of `next`, by stream sequence.
    waiting: BTreeMap<u64, Message>,
    /// Events to release at once: behind `next` (sent again after an
    /// acknowledgement was lost; their jobs deduplicate) or without
    /// sequence.
    late: Vec<Message>,
    /// Since when the first waiting event has waited for a gap.
    gap_since: Option<Instant>,
}

impl StreamOrder {
    fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    fn receive(&mut self, messages: Vec<Message>) {
        for message in messages {
            match message.info().map(|info| info.stream_sequence) {
                Ok(sequence) if self.next.is_none_or(|next| sequence >= next) => {
                    // A message sent again replaces its earlier copy.
                    self.waiting.insert(sequence, message);
                }
                _ => self.late.push(message),
            }
        }
    }

    /// The events that may be published now, in order.
    async fn next_in_order(&mut self, consumer: &PullConsumer) -> Vec<Message> {
        let mut ready = std::mem::take(&mut self.late);
        let Some(&first) = self.waiting.keys().next() else {
            return ready;
        };
        if self.next.is_none_or(|next| first > next) {
            // Events up to the acknowledged floor are done (by this or an
            // earlier pinned replica); anything between it and `first` is
            // still out with some pull.
            match consumer.get_info().await {
                Ok(info) => {
                    let floor = info.ack_floor.stream_sequence.saturating_add(1);
                    self.next = Some(self.next.map_or(floor, |next| next.max(floor)));
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot read the ordered consumer's acknowledged floor");
                }
            }
        }
        if let Some(next) = self.next {
            let ahead = self.waiting.split_off(&next);
            ready.extend(std::mem::replace(&mut self.waiting, ahead).into_values());
        }
        let Some(&first) = self.waiting.keys().next() else {
            return ready;
        };
        let mut next = self.next.unwrap_or(first);
        if first > next {
            let since = *self.gap_since.get_or_insert_with(Instant::now);
            if since.elapsed() < GAP_WAIT {
                return ready;
            }
            tracing::warn!(
                missing_from = next,
                missing_to = first.saturating_sub(1),
                "ordered events never came back; going on without them"
            );
            next = first;
        }
        self.gap_since = None;
        while let Some(message) = self.waiting.remove(&next) {
            ready.push(message);
            next = next.saturating_add(1);
        }
        self.next = Some(next);
        ready
    }
}

/// Waits until the index reflects every configuration change answered
/// before these events were accepted (see [`await_current_index`]): in
/// place, since handing a batch back would let nothing else through either.
/// False when stopped.
async fn current_index(
    config_revision: &ConfigRevision,
    subscriptions: &Subscriptions,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        match await_current_index(config_revision, subscriptions, shutdown).await {
            Ok(()) => return true,
            Err(StaleIndex::Stopping) => return false,
            Err(reason) => {
                tracing::warn!(%reason, "the ordered fanout waits for the configuration to catch up");
            }
        }
    }
}

/// Publishes the batch's FIFO jobs, each lane in stream order. False when
/// `shutdown` came first.
async fn publish_batch(
    bus: &Bus,
    subscriptions: &Subscriptions,
    metrics: &FanoutMetrics,
    messages: &[Message],
    shutdown: &CancellationToken,
) -> bool {
    if !subscriptions.has_fifo() {
        return true;
    }
    let mut lanes: BTreeMap<EndpointId, Vec<Outgoing>> = BTreeMap::new();
    for message in messages {
        let span = spans::process_event(message, ConsumerRole::FanoutFifo);
        let Some((event, wire)) = decode(message) else {
            continue;
        };
        for matched in subscriptions
            .matches(&event)
            .into_iter()
            .filter(|matched| matched.lane == JobLane::Fifo)
        {
            lanes
                .entry(matched.endpoint_id)
                .or_default()
                .push(span.in_scope(|| job_message(bus, &event, &wire, matched)));
        }
    }
    join_all(
        lanes
            .into_values()
            .map(|jobs| publish_lane(bus, metrics, jobs, shutdown)),
    )
    .await
    .into_iter()
    .all(|done| done)
}

/// One lane's jobs, one at a time: the next is sent once the previous one is
/// stored, so the lane holds them in this order. False when stopped.
async fn publish_lane(
    bus: &Bus,
    metrics: &FanoutMetrics,
    jobs: Vec<Outgoing>,
    shutdown: &CancellationToken,
) -> bool {
    for job in jobs {
        let mut delay = RETRY_DELAY;
        loop {
            let stored = bus.publish_all(vec![job.clone()]).await;
            match stored.into_iter().next() {
                Some(Ok(_)) => {
                    metrics.jobs.inc();
                    break;
                }
                Some(Err(error)) => {
                    tracing::warn!(subject = %job.subject, %error, ?delay, "a FIFO job was not stored; trying again before anything after it");
                }
                None => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = delay.saturating_mul(2).min(MAX_RETRY_DELAY);
        }
    }
    true
}

/// Keeps the batch's events from being handed out again while its lanes
/// wait for a publish to be stored.
async fn with_progress<F: Future>(messages: &[Message], work: F) -> F::Output {
    let every = FIFO_FANOUT_ACK_WAIT / 3;
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticks.tick() => {
                for message in messages {
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(%error, "cannot extend an ordered event's ack wait");
                    }
                }
            }
        }
    }
}

/// The event of a message; an invalid one is left to the pool's fanout,
/// which terminates it, and skipped here.
fn decode(message: &Message) -> Option<(Event, pb::Event)> {
    let wire = pb::Event::decode(message.payload.as_ref()).ok()?;
    let event = Event::try_from(wire.clone()).ok()?;
    Some((event, wire))
}
