//! What the ingest service counts. Labels are bounded: a custom event type
//! counts as `custom`, and routes are the three channels and two RPCs.

use herald_core::{catalog::EventType, channel::Channel};
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
struct RequestLabels {
    route: &'static str,
    status: String,
}

/// The ingest service's metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    events: Family<EventLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry) -> IngestMetrics {
        let metrics = IngestMetrics {
            events: Family::default(),
            requests: Family::default(),
        };
        registry.register(
            "herald_ingest_events",
            "Events accepted onto the bus (duplicates excluded), by channel and type (catalog name, or custom)",
            metrics.events.clone(),
        );
        registry.register(
            "herald_ingest_requests",
            "Webhook and Publish requests answered, by route and status",
            metrics.requests.clone(),
        );
        metrics
    }

    pub(crate) fn event_accepted(&self, channel: Channel, event_type: &EventType) {
        let r#type = match event_type.catalog_entry() {
            Some(entry) => entry.name.to_owned(),
            None => "custom".to_owned(),
        };
        self.events
            .get_or_create(&EventLabels {
                channel: channel.as_str(),
                r#type,
            })
            .inc();
    }

    pub(crate) fn request(&self, route: &'static str, status: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status: status.to_owned(),
            })
            .inc();
    }
}
