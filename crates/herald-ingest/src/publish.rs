//! Putting events on the bus: the publishes of a request are pipelined, and
//! the caller answers only once it has every acknowledgement.

use bytes::Bytes;
use herald_bus::{Bus, Outgoing, async_nats::HeaderMap, headers};
use herald_core::event::Event;
use prost::Message;

/// W3C trace context carried from the request onto each message.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Keeps a header only when it is plausible trace context: visible ASCII
    /// of reasonable length, so a hostile header cannot bloat every message.
    pub(crate) fn from_values(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Self {
        let keep = |value: Option<&[u8]>| {
            value
                .filter(|value| {
                    !value.is_empty()
                        && value.len() <= 512
                        && value.iter().all(|byte| (0x20..0x7f).contains(byte))
                })
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(str::to_owned)
        };
        TraceContext {
            traceparent: keep(traceparent),
            tracestate: keep(tracestate),
        }
    }
}

/// What JetStream said about one publish.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Acked {
    pub duplicate: bool,
    /// The stream sequence; for a duplicate, the original message's.
    pub sequence: u64,
}

/// Publishes every event, pipelined, and awaits every acknowledgement.
/// Results are in the order of `events`; an error is the bus's, as text for
/// the log.
pub(crate) async fn publish_all(
    bus: &Bus,
    events: &[Event],
    trace: &TraceContext,
) -> Vec<Result<Acked, String>> {
    let messages = events
        .iter()
        .map(|event| {
            let mut message_headers = HeaderMap::new();
            message_headers.insert(headers::TENANT, event.tenant_id.as_str());
            message_headers.insert(headers::EVENT_ID, event.id.as_str());
            message_headers.insert(headers::EVENT_TYPE, event.event_type.as_str());
            message_headers.insert(headers::MESSAGE_TYPE, "herald.v1.Event");
            if let Some(traceparent) = &trace.traceparent {
                message_headers.insert(headers::TRACEPARENT, traceparent.as_str());
            }
            if let Some(tracestate) = &trace.tracestate {
                message_headers.insert(headers::TRACESTATE, tracestate.as_str());
            }
            Outgoing {
                subject: bus.topology().event_subject(event),
                message_id: event.idempotency_key.clone(),
                headers: message_headers,
                payload: Bytes::from(herald_proto::v1::Event::from(event).encode_to_vec()),
            }
        })
        .collect();
    bus.publish_all(messages)
        .await
        .into_iter()
        .map(|ack| {
            ack.map(|ack| Acked {
                duplicate: ack.duplicate,
                sequence: ack.sequence,
            })
            .map_err(|error| error.to_string())
        })
        .collect()
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
