//! The spans of a delivery: one per attempt, a child of fanout's span (the
//! job's headers carry its trace context, and a retry is a redelivery of the
//! same message, so every attempt of a delivery is a sibling in one trace),
//! and inside it the HTTP client span whose context the receiver gets in
//! `traceparent`.
//!
//! Nothing secret goes in: no body, no header values, and the URL without
//! credentials or query values.

use herald_bus::{ConsumerRole, async_nats::jetstream::Message, headers};
use herald_proto::v1::{Attempt, AttemptStatus};
use reqwest::Url;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::client::Response;

/// The span of one attempt at a job.
pub(crate) fn attempt(message: &Message) -> tracing::Span {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default()
    };
    let span = tracing::info_span!(
        "delivery.attempt",
        otel.name = "deliver",
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = ConsumerRole::Delivery.durable_name(),
        herald.event.id = %header(headers::EVENT_ID),
        herald.event.type = %header(headers::EVENT_TYPE),
        herald.tenant.id = %header(headers::TENANT),
        herald.endpoint.id = %header(headers::ENDPOINT),
        herald.delivery.id = Empty,
        herald.attempt = Empty,
        herald.attempt.status = Empty,
        herald.test = Empty,
    );
    // Fails only for a disabled span (no subscriber): nothing to continue.
    let _ = span.set_parent(headers::trace_context(message.headers.as_ref()));
    span
}

/// Notes on the current attempt span how the attempt ended.
pub(crate) fn recorded(attempt: &Attempt) {
    let span = tracing::Span::current();
    let status = attempt.status();
    span.record(
        "herald.attempt.status",
        status.as_str_name().trim_start_matches("ATTEMPT_STATUS_"),
    );
    if matches!(status, AttemptStatus::Retrying | AttemptStatus::Failed) {
        span.record("otel.status_code", "ERROR");
    }
}

/// The client span of one POST.
pub(crate) fn http_client(url: &Url) -> tracing::Span {
    tracing::info_span!(
        "http.client",
        otel.name = "POST",
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = "POST",
        url.full = %shown_url(url),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Notes the answer (or its absence) on the client span.
pub(crate) fn answered(span: &tracing::Span, response: &Response) {
    match response {
        Response::Answered { status, .. } => {
            span.record("http.response.status_code", status);
            if *status >= 400 {
                span.record("error.type", status.to_string());
                span.record("otel.status_code", "ERROR");
            }
        }
        // The client noted why (`error.type`) where it knew.
        Response::NoAnswer { .. } => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The URL as a trace shows it: without user name and password, and with
/// every query value replaced, since endpoints put API keys there.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have credentials at all.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(key, _)| key.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|key| (key.as_str(), "REDACTED")));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_show_no_credentials_or_query_values() {
        let shown = |raw: &str| shown_url(&Url::parse(raw).unwrap());
        assert_eq!(
            shown("https://user:pw@example.com/hook?token=s3cret&x=1#frag"),
            "https://example.com/hook?token=REDACTED&x=REDACTED"
        );
        assert_eq!(
            shown("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/hook"
        );
    }
}
