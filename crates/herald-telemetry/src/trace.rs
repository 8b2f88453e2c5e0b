//! W3C trace context (`traceparent`, `tracestate`) in HTTP headers and gRPC
//! metadata, which are the same thing on the wire.
//!
//! A span continues a trace by taking the extracted context as its parent
//! before it is first entered; what a span sends onwards is its own context.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The context the caller sent, or an empty one (a new trace starts).
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the caller's span when the headers carry one.
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = extract(headers);
    if parent.span().span_context().is_valid() {
        // Fails only for a span already started or disabled, which then
        // simply keeps its own trace.
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` (and `tracestate`) headers that make a receiver's span
/// a child of `span`; empty when the span has no valid context.
pub fn headers_for(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut injected = HeaderPairs(Vec::new());
    TraceContextPropagator::new().inject_context(&context, &mut injected);
    injected.0
}

/// The trace id of `span` as 32 hex digits, for logs and tests.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderPairs(Vec<(&'static str, String)>);

impl Injector for HeaderPairs {
    fn set(&mut self, key: &str, value: String) {
        // The propagator only ever sets these two.
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_extracted_and_garbage_is_not() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let context = extract(&headers);
        let span = context.span();
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(span.span_context().is_remote());

        for garbage in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", http::HeaderValue::from_static(garbage));
            assert!(
                !extract(&headers).span().span_context().is_valid(),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_span_without_a_subscriber_sends_no_headers() {
        assert!(headers_for(&tracing::Span::none()).is_empty());
        assert_eq!(trace_id(&tracing::Span::none()), None);
    }
}
