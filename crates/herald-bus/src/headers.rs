//! NATS message header names used across Herald's streams, and the W3C
//! trace context they carry.

use async_nats::HeaderMap;
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// JetStream's deduplication key: a second publish with the same id inside
/// the stream's duplicate window is acknowledged but not stored.
pub const MESSAGE_ID: &str = "Nats-Msg-Id";
/// W3C trace context, carried from hop to hop.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// The tenant a message belongs to, readable without decoding the payload.
pub const TENANT: &str = "Herald-Tenant";
pub const EVENT_ID: &str = "Herald-Event-Id";
pub const EVENT_TYPE: &str = "Herald-Event-Type";
pub const ENDPOINT: &str = "Herald-Endpoint";
/// The protobuf message type of the payload, e.g. `herald.v1.Event`.
pub const MESSAGE_TYPE: &str = "Herald-Message-Type";

/// The trace context a message carries: the parent of the span that
/// processes it. Empty (a new trace) when it carries none.
pub fn trace_context(headers: Option<&HeaderMap>) -> Context {
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&NatsHeaders(headers)),
        None => Context::new(),
    }
}

/// Copies the trace context of one message to another, so work re-done
/// later (a redrive, a replay) continues the original trace.
pub fn copy_trace_context(from: Option<&HeaderMap>, to: &mut HeaderMap) {
    let Some(from) = from else {
        return;
    };
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = from.get(name) {
            to.insert(name, value.as_str());
        }
    }
}

/// Writes the current span's trace context into `headers`, unless they
/// carry one already.
pub fn inject_current_trace(headers: &mut HeaderMap) {
    if headers.get(TRACEPARENT).is_some() {
        return;
    }
    let current = Context::current();
    if current.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&current, &mut NatsHeadersMut(headers));
    }
}

struct NatsHeaders<'a>(&'a HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct NatsHeadersMut<'a>(&'a mut HeaderMap);

impl Injector for NatsHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_round_trips_through_message_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let context = trace_context(Some(&headers));
        let span = context.span();
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            span.span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );

        let guard = context.clone().attach();
        let mut onward = HeaderMap::new();
        inject_current_trace(&mut onward);
        drop(guard);
        assert_eq!(
            onward.get(TRACEPARENT).map(|value| value.as_str()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );

        let mut untraced = HeaderMap::new();
        inject_current_trace(&mut untraced);
        assert!(untraced.get(TRACEPARENT).is_none());
        assert!(!trace_context(None).span().span_context().is_valid());
    }
}
