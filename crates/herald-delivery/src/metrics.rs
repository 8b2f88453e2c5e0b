//! What the delivery service counts. Labels are bounded on purpose: no
//! endpoint or tenant ids, which would make one series per customer.

use std::{sync::atomic::AtomicU64, time::Duration};

use herald_proto::{
    timestamp_from_wire,
    v1::{Attempt, DeliveryTrigger},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use time::OffsetDateTime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// How an attempt ended, as counted in `herald_deliveries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Retrying,
    Failed,
    /// Final failure, moved to the dead letters.
    Dead,
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Retrying => "retrying",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The delivery service's metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    deliveries: Family<OutcomeLabels, Counter>,
    attempt_duration: Histogram,
    in_flight: Gauge,
    dead_letters: Counter,
    circuits_open: Gauge,
    end_to_end: Histogram,
    attempts_per_delivery: Histogram,
    retries_scheduled: Counter,
    fifo_lanes_backlogged: Gauge,
    fifo_jobs_waiting: Gauge,
    fifo_oldest_job_age: Gauge<f64, AtomicU64>,
    held: Family<ReasonLabels, Counter>,
}

impl DeliveryMetrics {
    pub fn register(registry: &mut Registry) -> DeliveryMetrics {
        let metrics = DeliveryMetrics {
            deliveries: Family::default(),
            // 5 ms to about 41 s; the longest request timeout (60 s) lands in +Inf.
            attempt_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            in_flight: Gauge::default(),
            dead_letters: Counter::default(),
            circuits_open: Gauge::default(),
            // 5 ms to about 3 hours: retries stretch a delivery over hours.
            end_to_end: Histogram::new(exponential_buckets(0.005, 2.0, 22)),
            attempts_per_delivery: Histogram::new([
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
            ]),
            retries_scheduled: Counter::default(),
            fifo_lanes_backlogged: Gauge::default(),
            fifo_jobs_waiting: Gauge::default(),
            fifo_oldest_job_age: Gauge::default(),
            held: Family::default(),
        };
        registry.register(
            "herald_deliveries",
            "Delivery attempts recorded, by outcome (succeeded, retrying, failed, dead, skipped)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "herald_delivery_attempt_duration_seconds",
            "How long each HTTP attempt took, from sending to the end of the read response excerpt",
            metrics.attempt_duration.clone(),
        );
        registry.register(
            "herald_deliveries_in_flight",
            "HTTP requests to endpoints in progress",
            metrics.in_flight.clone(),
        );
        registry.register(
            "herald_dead_letters",
            "Deliveries moved to the dead letters",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "herald_endpoint_circuit_open",
            "Endpoints whose circuit is open or half-open (shared by every replica)",
            metrics.circuits_open.clone(),
        );
        registry.register(
            "herald_delivery_latency_seconds",
            "End to end, from ingest accepting the event to the endpoint's 2xx, of live deliveries that succeeded (retries included)",
            metrics.end_to_end.clone(),
        );
        registry.register(
            "herald_delivery_attempts",
            "Attempts a delivery took, counted when it succeeded or finally failed",
            metrics.attempts_per_delivery.clone(),
        );
        registry.register(
            "herald_delivery_retries_scheduled",
            "Failed attempts scheduled for another try",
            metrics.retries_scheduled.clone(),
        );
        // FIFO lanes have a consumer each, so the consumer lag gauges (one
        // series per fixed consumer) cannot show them; these aggregate every
        // lane, with no endpoint label.
        registry.register(
            "herald_fifo_lanes_backlogged",
            "FIFO lanes with jobs waiting",
            metrics.fifo_lanes_backlogged.clone(),
        );
        registry.register(
            "herald_fifo_lane_jobs",
            "Jobs waiting in all FIFO lanes together, the one in progress of each lane included",
            metrics.fifo_jobs_waiting.clone(),
        );
        registry.register(
            "herald_fifo_lane_oldest_job_age_seconds",
            "Age of the oldest job waiting in any FIFO lane (0 when every lane is empty)",
            metrics.fifo_oldest_job_age.clone(),
        );
        registry.register(
            "herald_delivery_jobs_held",
            "Jobs moved out of the shared pool to their endpoint's held lane, by reason (circuit_open, slots_full, rate_spent, retry)",
            metrics.held.clone(),
        );
        metrics
    }

    pub(crate) fn circuits_open(&self, count: usize) {
        self.circuits_open
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn held(&self, reason: &'static str) {
        self.held.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn fifo_backlog(&self, lanes: u64, jobs: u64, oldest_job_age: Duration) {
        self.fifo_lanes_backlogged
            .set(i64::try_from(lanes).unwrap_or(i64::MAX));
        self.fifo_jobs_waiting
            .set(i64::try_from(jobs).unwrap_or(i64::MAX));
        self.fifo_oldest_job_age.set(oldest_job_age.as_secs_f64());
    }

    /// Counts an attempt once its record is stored. `received_at` is when
    /// ingest accepted the event.
    pub(crate) fn recorded(
        &self,
        outcome: Outcome,
        attempt: &Attempt,
        received_at: OffsetDateTime,
    ) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        match outcome {
            Outcome::Retrying => {
                self.retries_scheduled.inc();
            }
            Outcome::Succeeded | Outcome::Failed => {
                self.attempts_per_delivery
                    .observe(f64::from(attempt.attempt));
            }
            Outcome::Dead => {
                self.attempts_per_delivery
                    .observe(f64::from(attempt.attempt));
                self.dead_letters.inc();
            }
            Outcome::Skipped => {}
        }
        if outcome == Outcome::Succeeded
            && !attempt.test
            && attempt.trigger == i32::from(DeliveryTrigger::Live)
            && let Some(answered_at) = answered_at(attempt)
        {
            let latency = (answered_at - received_at).as_seconds_f64();
            // A clock step between ingest and delivery can make it negative.
            self.end_to_end.observe(latency.max(0.0));
        }
    }

    pub(crate) fn attempt_took(&self, duration: Duration) {
        self.attempt_duration.observe(duration.as_secs_f64());
    }

    /// Counts a request as in flight until the guard is dropped, so every
    /// exit path (including a cancelled future) decrements.
    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }
}

/// When the endpoint answered: the attempt's start plus its duration.
fn answered_at(attempt: &Attempt) -> Option<OffsetDateTime> {
    let started = timestamp_from_wire("attempted_at", attempt.attempted_at).ok()?;
    let took = attempt
        .duration
        .and_then(|duration| Duration::try_from(duration).ok())
        .unwrap_or_default();
    started.checked_add(time::Duration::try_from(took).ok()?)
}

pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
