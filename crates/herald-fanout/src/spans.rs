//! The span of one event's fanout: a child of the span that published the
//! event (its trace context travels in the message headers), and the parent
//! of every job published for it, so deliveries continue the same trace.

use herald_bus::{ConsumerRole, async_nats::jetstream::Message, headers};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub(crate) fn process_event(message: &Message, role: ConsumerRole) -> tracing::Span {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default()
    };
    let span = tracing::info_span!(
        "fanout",
        otel.name = "process events",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = role.durable_name(),
        herald.event.id = %header(headers::EVENT_ID),
        herald.event.type = %header(headers::EVENT_TYPE),
        herald.tenant.id = %header(headers::TENANT),
        herald.matches = tracing::field::Empty,
    );
    // Fails only for a span that is disabled (no subscriber), which then
    // has no trace to continue.
    let _ = span.set_parent(headers::trace_context(message.headers.as_ref()));
    span
}
