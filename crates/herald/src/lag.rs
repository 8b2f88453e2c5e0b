//! JetStream consumer lag as gauges: how many messages wait for each durable
//! consumer this process reads from, and how many it holds unacknowledged,
//! sampled from JetStream's consumer info.
//!
//! Every replica of a service reports the same durable consumer, so
//! dashboards take the maximum per consumer, not the sum.

use std::time::Duration;

use herald_bus::{Bus, ConsumerRole};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio_util::sync::CancellationToken;

/// Often enough for alerting on a growing backlog, cheap for JetStream.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    stream: String,
    consumer: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct ConsumerLagMetrics {
    pending: Family<ConsumerLabels, Gauge>,
    ack_pending: Family<ConsumerLabels, Gauge>,
}

impl ConsumerLagMetrics {
    pub fn register(registry: &mut Registry) -> ConsumerLagMetrics {
        let metrics = ConsumerLagMetrics::default();
        registry.register(
            "herald_jetstream_consumer_pending",
            "Messages on the stream not yet delivered to the durable consumer",
            metrics.pending.clone(),
        );
        registry.register(
            "herald_jetstream_consumer_ack_pending",
            "Messages delivered to the durable consumer and not yet acknowledged (in progress or waiting to be retried)",
            metrics.ack_pending.clone(),
        );
        metrics
    }
}

/// Samples the lag of `roles` until `shutdown`. A consumer that does not
/// exist yet (its service has not started consuming) is skipped.
pub async fn sample(
    bus: Bus,
    roles: Vec<ConsumerRole>,
    metrics: ConsumerLagMetrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for role in &roles {
            match bus.consumer_lag(*role).await {
                Ok(Some(lag)) => {
                    let labels = ConsumerLabels {
                        stream: lag.stream,
                        consumer: role.durable_name(),
                    };
                    metrics
                        .pending
                        .get_or_create(&labels)
                        .set(i64::try_from(lag.pending).unwrap_or(i64::MAX));
                    metrics
                        .ack_pending
                        .get_or_create(&labels)
                        .set(i64::try_from(lag.ack_pending).unwrap_or(i64::MAX));
                }
                Ok(None) => {}
                // Readiness reports NATS trouble; the gauges keep their
                // last value meanwhile.
                Err(error) => {
                    tracing::debug!(consumer = role.durable_name(), %error, "cannot sample consumer lag")
                }
            }
        }
    }
}
