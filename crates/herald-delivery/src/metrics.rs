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
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Retrying => "retrying",
            Outcome::Failed => "failed",
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
}

impl DeliveryMetrics {
    pub fn register(registry: &mut Registry) -> DeliveryMetrics {
        let metrics = DeliveryMetrics {
            deliveries: Family::default(),
            // 5 ms to about 41 s; the longest request timeout (60 s) lands in +Inf.
            attempt_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            in_flight: Gauge::default(),
        };
        registry.register(
            "herald_deliveries",
            "Delivery attempts recorded, by outcome (succeeded, retrying, failed, skipped)",
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
        metrics
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
