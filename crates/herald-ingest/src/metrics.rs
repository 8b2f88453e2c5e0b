//! What the ingest service counts. Labels are bounded: a custom event type
//! counts as `custom`, and routes are the three channels and two RPCs.

use herald_core::{catalog::EventType, channel::Channel};
use herald_telemetry::server::RequestMetrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    channel: &'static str,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: String,
}

/// The ingest service's metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    events: Family<EventLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    requests_by_channel: Family<RequestLabels, Counter>,
    /// The process's HTTP and gRPC request metrics, which the listener's
    /// layers keep.
    pub(crate) requests: RequestMetrics,
}

impl IngestMetrics {
    /// Registers the ingest service's own metrics; `requests` are the
    /// process's, registered once (see [`RequestMetrics::register`]).
    pub fn register(registry: &mut Registry, requests: RequestMetrics) -> IngestMetrics {
        let metrics = IngestMetrics {
            events: Family::default(),
            refused: Family::default(),
            requests_by_channel: Family::default(),
            requests,
        };
        registry.register(
            "herald_ingest_events",
            "Events accepted onto the bus (duplicates excluded), by channel and type (catalog name, or custom)",
            metrics.events.clone(),
        );
        registry.register(
            "herald_ingest_events_refused",
            "Published events refused for their content, by reason (schema: the data violates \
             its type's schema) and type (catalog name, or custom)",
            metrics.refused.clone(),
        );
        registry.register(
            "herald_ingest_requests",
            "Webhook and Publish requests answered, by route and status",
            metrics.requests_by_channel.clone(),
        );
        metrics
    }

    pub(crate) fn event_accepted(&self, channel: Channel, event_type: &EventType) {
        let r#type = type_label(event_type);
        self.events
            .get_or_create(&EventLabels {
                channel: channel.as_str(),
                r#type,
            })
            .inc();
    }

    pub(crate) fn event_refused(&self, reason: &'static str, event_type: &EventType) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason,
                r#type: type_label(event_type),
            })
            .inc();
    }

    pub(crate) fn request(&self, route: &'static str, status: &str) {
        self.requests_by_channel
            .get_or_create(&RequestLabels {
                route,
                status: status.to_owned(),
            })
            .inc();
    }
}

/// A catalog type's name, or `custom`: tenants' own names would make the
/// label set unbounded.
fn type_label(event_type: &EventType) -> String {
    match event_type.catalog_entry() {
        Some(entry) => entry.name.to_owned(),
        None => "custom".to_owned(),
    }
}
