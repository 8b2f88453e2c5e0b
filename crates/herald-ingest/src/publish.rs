//! Putting events on the bus: the publishes of a request are pipelined, and
//! the caller answers only once it has every acknowledgement.
//!
//! A request's events are published in one producer span, a child of the
//! request's, and carry that span's trace context to fanout.

use herald_bus::{Bus, headers};
use herald_core::event::Event;
use tracing::Instrument;

/// What JetStream said about one publish.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Acked {
    pub duplicate: bool,
    /// The stream sequence; for a duplicate, the original message's.
    pub sequence: u64,
}

/// Publishes every event, pipelined (see [`Bus::publish_all`]), and awaits
/// every acknowledgement. Results are in the order of `events`; an error is
/// the bus's, as text for the log.
pub(crate) async fn publish_all(bus: &Bus, events: &[Event]) -> Vec<Result<Acked, String>> {
    let span = publish_span(bus, events);
    async {
        let messages = events
            .iter()
            .map(|event| bus.topology().event_message(event))
            .collect();
        let acked: Vec<Result<Acked, String>> = bus
            .publish_all(messages)
            .await
            .into_iter()
            .map(|ack| {
                ack.map(|ack| Acked {
                    duplicate: ack.duplicate,
                    sequence: ack.sequence,
                })
                .map_err(|error| error.to_string())
            })
            .collect();
        let span = tracing::Span::current();
        let duplicates = acked
            .iter()
            .filter(|acked| acked.as_ref().is_ok_and(|acked| acked.duplicate))
            .count();
        span.record("herald.duplicates", duplicates);
        if acked.iter().any(Result::is_err) {
            span.record("otel.status_code", "ERROR");
        }
        acked
    }
    .instrument(span)
    .await
}

/// The producer span of a request's events, from their publish to
/// JetStream's last acknowledgement. One per request, not per event: a
/// Publish call may carry thousands.
fn publish_span(bus: &Bus, events: &[Event]) -> tracing::Span {
    let stream = bus.topology().events_stream();
    // A single event (the usual webhook) is named on the span.
    let single = match events {
        [event] => Some(event),
        _ => None,
    };
    tracing::info_span!(
        "publish",
        otel.name = %format!("send {stream}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "nats",
        messaging.operation.type = "send",
        messaging.destination.name = %stream,
        messaging.batch.message_count = events.len(),
        herald.event.id = single.map(|event| event.id.to_string()),
        herald.event.type = single.map(|event| event.event_type.as_str()),
        herald.duplicates = tracing::field::Empty,
    )
}

/// The id of the event stored at `sequence`, read from its header: what a
/// duplicate publish answers with, so a retry learns the id of the event it
/// already created.
pub(crate) async fn stored_event_id(bus: &Bus, sequence: u64) -> Result<String, String> {
    let stream = bus
        .jetstream()
        .get_stream_no_info(bus.topology().events_stream())
        .await
        .map_err(|error| error.to_string())?;
    let message = stream
        .direct_get(sequence)
        .await
        .map_err(|error| error.to_string())?;
    message
        .headers
        .get(headers::EVENT_ID)
        .map(|value| value.as_str().to_owned())
        .ok_or_else(|| format!("message {sequence} has no {} header", headers::EVENT_ID))
}
