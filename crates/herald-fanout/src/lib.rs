//! The fanout service: consumes events, matches each against the
//! subscription index, and publishes one delivery job per matching endpoint.
//!
//! Jobs are published with `Nats-Msg-Id = <event id>:<endpoint id>` and the
//! event is acknowledged only after every one of its jobs is, so a crash in
//! between re-runs the fanout of that event without duplicating a job.
//! Nothing is consumed before the first complete configuration arrived: an
//! event matched against an empty index would be acknowledged and lost.

mod backlog;
mod ordered;
mod spans;
mod subscriptions;

use std::time::Duration;

use futures::StreamExt;
use herald_bus::{
    Bus, ConfigRevision, ConsumerRole, JobLane, JobPublish, Outgoing,
    async_nats::jetstream::AckKind, headers,
};
use herald_core::{event::Event, id::DeliveryId};
use herald_proto::{
    timestamp_to_wire,
    v1::{self as pb, DeliveryTrigger},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use prost::Message;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backlog::Backlog;
pub use crate::subscriptions::{Match, SubscriptionHandler, Subscriptions};

/// Events pulled and fanned out together; their job publishes are pipelined.
const BATCH_SIZE: usize = 200;
/// How long a failed batch waits before JetStream redelivers it.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a batch waits for the Watch stream to apply a configuration
/// change that was answered before the batch was pulled; past this the
/// batch is handed back rather than matched against a stale index.
const CONFIG_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
    #[error("cannot consume events: {0}")]
    Consume(String),
}

/// Why a batch is not matched now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StaleIndex {
    #[error("cannot read the configuration revision: {0}")]
    Unknown(#[source] herald_bus::BusError),
    #[error("the subscription index is at revision {applied}, the configuration at {needed}")]
    Behind { applied: u64, needed: u64 },
    #[error("stopping")]
    Stopping,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// What fanout counts.
#[derive(Clone, Debug, Default)]
pub struct FanoutMetrics {
    events: Family<OutcomeLabels, Counter>,
    jobs: Counter,
}

impl FanoutMetrics {
    pub fn register(registry: &mut Registry) -> FanoutMetrics {
        let metrics = FanoutMetrics::default();
        registry.register(
            "herald_fanout_events",
            "Events fanned out, by outcome (matched, unmatched, invalid)",
            metrics.events.clone(),
        );
        registry.register(
            "herald_fanout_jobs",
            "Delivery jobs published",
            metrics.jobs.clone(),
        );
        metrics
    }

    fn event(&self, outcome: &'static str) {
        self.events.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// Fans out events until `shutdown`, once `synced` says the subscription
/// index holds a complete configuration.
pub async fn run(
    bus: Bus,
    subscriptions: Subscriptions,
    mut synced: watch::Receiver<bool>,
    metrics: FanoutMetrics,
    shutdown: CancellationToken,
) -> Result<(), FanoutError> {
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        result = synced.wait_for(|synced| *synced) => {
            if result.is_err() {
                return Ok(());
            }
        }
    }
    tracing::info!(
        endpoints = subscriptions.len(),
        "subscription index loaded; fanning out"
    );
    let backlog = Backlog::default();
    tokio::spawn(backlog.clone().follow(bus.clone(), shutdown.clone()));
    tokio::try_join!(
        fan_out_pool(&bus, &subscriptions, &backlog, &metrics, &shutdown),
        ordered::run(
            bus.clone(),
            subscriptions.clone(),
            metrics.clone(),
            shutdown.clone()
        ),
    )
    .map(|_| ())
}

/// The pool's fanout: every replica takes batches, their jobs published
/// pipelined.
async fn fan_out_pool(
    bus: &Bus,
    subscriptions: &Subscriptions,
    backlog: &Backlog,
    metrics: &FanoutMetrics,
    shutdown: &CancellationToken,
) -> Result<(), FanoutError> {
    let config_revision = bus.config_revision().await?;
    let consumer = bus.consumer(ConsumerRole::Fanout).await?;
    let mut batches = bus.pull(consumer, BATCH_SIZE).ready_chunks(BATCH_SIZE);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            batch = batches.next() => batch,
        };
        let Some(messages) = batch else {
            return Err(FanoutError::Consume("the consumer stream ended".to_owned()));
        };
        if let Err(reason) = await_current_index(&config_revision, subscriptions, shutdown).await {
            tracing::warn!(%reason, events = messages.len(), "handing a batch of events back");
            hand_back(messages).await;
            continue;
        }
        fan_out_batch(bus, subscriptions, backlog, metrics, messages).await;
    }
}

/// Waits until the subscription index reflects every configuration change
/// that was answered before this moment. The config service raises the
/// revision before it answers a change that stops an endpoint from matching,
/// and the batch was pulled before this read, so an event accepted after
/// such an answer is matched against an index that has applied it.
pub(crate) async fn await_current_index(
    config_revision: &ConfigRevision,
    subscriptions: &Subscriptions,
    shutdown: &CancellationToken,
) -> Result<(), StaleIndex> {
    let needed = config_revision
        .current()
        .await
        .map_err(StaleIndex::Unknown)?;
    let mut applied = subscriptions.applied_revision();
    if *applied.borrow_and_update() >= needed {
        return Ok(());
    }
    let caught_up = tokio::select! {
        _ = shutdown.cancelled() => return Err(StaleIndex::Stopping),
        result = tokio::time::timeout(CONFIG_WAIT, applied.wait_for(|applied| *applied >= needed)) => {
            matches!(result, Ok(Ok(_)))
        }
    };
    if caught_up {
        Ok(())
    } else {
        Err(StaleIndex::Behind {
            applied: *applied.borrow(),
            needed,
        })
    }
}

/// Hands every event of the batch back for a later try.
async fn hand_back(messages: Vec<herald_bus::async_nats::jetstream::Message>) {
    for message in messages {
        if let Err(error) = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await {
            tracing::warn!(%error, "cannot hand an event back; it returns after the ack wait");
        }
    }
}

/// Publishes every job of the batch (pipelined, see [`Bus::publish_all`]),
/// then settles each event by whether all of its jobs were acknowledged.
async fn fan_out_batch(
    bus: &Bus,
    subscriptions: &Subscriptions,
    backlog: &Backlog,
    metrics: &FanoutMetrics,
    messages: Vec<herald_bus::async_nats::jetstream::Message>,
) {
    // Each event with how many of the batch's jobs are its own, in order.
    let mut events = Vec::with_capacity(messages.len());
    let mut jobs = Vec::new();
    for message in messages {
        let span = spans::process_event(&message, ConsumerRole::Fanout);
        let wire = match pb::Event::decode(message.payload.as_ref()) {
            Ok(wire) => wire,
            Err(error) => {
                terminate_invalid(&message, &error.to_string(), metrics).await;
                continue;
            }
        };
        let event = match Event::try_from(wire.clone()) {
            Ok(event) => event,
            Err(error) => {
                terminate_invalid(&message, &error.to_string(), metrics).await;
                continue;
            }
        };
        let matches = subscriptions.matches(&event);
        // FIFO lanes get their jobs from the ordered fanout (see `ordered`).
        let (matches, ordered): (Vec<Match>, Vec<Match>) = matches
            .into_iter()
            .partition(|matched| matched.lane == JobLane::Pool);
        metrics.event(if matches.is_empty() && ordered.is_empty() {
            "unmatched"
        } else {
            "matched"
        });
        span.record("herald.matches", matches.len() + ordered.len());
        let count = matches.len();
        for mut matched in matches {
            // A backlogged endpoint's jobs would only queue in the shared
            // pool ahead of everyone else's, then move to its held lane.
            if matched.lane == JobLane::Pool && backlog.contains(&matched.endpoint_id) {
                matched.lane = JobLane::Held;
            }
            // The job continues the trace of this event's span.
            jobs.push(span.in_scope(|| job_message(bus, &event, &wire, matched)));
        }
        events.push((message, count, span));
    }
    let mut acks = bus.publish_all(jobs).await.into_iter();
    for (message, count, span) in events {
        let mut published = 0_u64;
        let mut failed = false;
        for ack in acks.by_ref().take(count) {
            match ack {
                Ok(_) => published += 1,
                Err(error) => {
                    tracing::warn!(%error, "a delivery job was not acknowledged; the event will be fanned out again");
                    failed = true;
                }
            }
        }
        metrics.jobs.inc_by(published);
        let settled = if failed {
            message
                .ack_with(AckKind::Nak(Some(RETRY_DELAY)))
                .instrument(span)
                .await
        } else {
            message.ack().instrument(span).await
        };
        if let Err(error) = settled {
            // Unacknowledged, the event comes back after the ack wait and its
            // jobs deduplicate: nothing is lost or doubled.
            tracing::warn!(%error, "cannot settle an event");
        }
    }
}

pub(crate) fn job_message(bus: &Bus, event: &Event, wire: &pb::Event, matched: Match) -> Outgoing {
    let delivery_id = DeliveryId::for_event_endpoint(&event.id, &matched.endpoint_id);
    let job = pb::DeliveryJob {
        delivery_id: delivery_id.to_string(),
        event: Some(wire.clone()),
        endpoint_id: matched.endpoint_id.to_string(),
        endpoint_revision: matched.revision,
        trigger: DeliveryTrigger::Live.into(),
        attempts_made: 0,
        test: false,
        enqueued_at: Some(timestamp_to_wire(OffsetDateTime::now_utc())),
        recovery_job_id: String::new(),
        schedule_position: 0,
        not_before: None,
    };
    let mut message =
        bus.topology()
            .job_message(&job, &matched.endpoint_id, matched.lane, JobPublish::Live);
    // Built in the event's span, published later with others.
    headers::inject_current_trace(&mut message.headers);
    message
}

/// An event that can never be fanned out must not block the stream.
async fn terminate_invalid(
    message: &herald_bus::async_nats::jetstream::Message,
    reason: &str,
    metrics: &FanoutMetrics,
) {
    tracing::error!(subject = %message.subject, %reason, "dropping an invalid event");
    metrics.event("invalid");
    if let Err(error) = message.ack_with(AckKind::Term).await {
        tracing::warn!(%error, "cannot terminate an invalid event");
    }
}
