//! What the delivery service counts. Labels are bounded on purpose: no
//! endpoint or tenant ids, which would make one series per customer.

use std::time::Duration;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
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
            "Endpoints whose circuit is open or half-open in this replica",
            metrics.circuits_open.clone(),
        );
        metrics
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_letters.inc();
    }

    pub(crate) fn circuit_opened(&self) {
        self.circuits_open.inc();
    }

    pub(crate) fn circuit_closed(&self) {
        self.circuits_open.dec();
    }

    pub(crate) fn recorded(&self, outcome: Outcome) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
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

pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
