//! Log output and trace export, installed together because both are layers
//! of the one global `tracing` subscriber.
//!
//! Logs go to stderr: human-readable for people, JSON lines for collectors,
//! each JSON record carrying the `trace_id` and `span_id` of the span it was
//! written in. Spans of Herald's own code become OpenTelemetry spans, which
//! are exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Without an exporter spans
//! still exist, so trace context is continued from hop to hop and onto the
//! POSTs receivers get; nothing is recorded.
//!
//! The log level (`RUST_LOG`) filters logs only: traces keep Herald's spans
//! at `info` whatever the log level, so turning logs down never breaks a
//! trace.

use std::time::Duration;

use opentelemetry::{
    KeyValue,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    resource::{EnvResourceDetector, TelemetryResourceDetector},
    trace::SdkTracerProvider,
};
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::Targets,
    fmt::{
        self, FmtContext, FormatEvent, FormatFields,
        format::{Format, Json, JsonFields, Writer},
    },
    prelude::*,
    registry::LookupSpan,
};

/// How log records are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with the trace and span ids: what log
    /// collectors parse.
    Json,
    /// Coloured, aligned text for a terminal.
    Pretty,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(String),
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// How long a stopping process waits for its last spans to be exported: an
/// unreachable collector must not hold it past Kubernetes' grace period.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The trace pipeline; [`Telemetry::shutdown`] exports what is still queued.
#[derive(Debug)]
#[must_use = "dropping it without shutdown() loses the spans still queued"]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports every span still queued and stops the exporter. Blocks for at
    /// most [`SHUTDOWN_TIMEOUT`], so call it outside async code, while the
    /// runtime the exporter was built in still runs (tonic needs it).
    pub fn shutdown(self) {
        if !self.exporting {
            return;
        }
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("warning: cannot export the last spans: {error}");
        }
    }
}

/// Installs the global subscriber: logs in `format`, filtered by `RUST_LOG`
/// (default `info`), and spans as `service` (unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` name another).
///
/// Must run inside a Tokio runtime: the gRPC exporter's channel lives there.
pub fn init(format: LogFormat, service: &str) -> Result<Telemetry, TelemetryError> {
    let (provider, exporting) = tracer_provider(service)?;
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("herald"))
        .with_threads(false)
        .with_filter(Targets::new().with_target("herald", Level::INFO));
    let logs = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(spans);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .event_format(WithTraceIds::json())
                    .fmt_fields(JsonFields::new())
                    .with_writer(std::io::stderr)
                    .with_filter(logs()),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_writer(std::io::stderr)
                    .with_filter(logs()),
            )
            .try_init(),
    };
    result.map_err(|error| TelemetryError::Subscriber(error.to_string()))?;
    Ok(Telemetry {
        provider,
        exporting,
    })
}

/// Whether the standard variables ask for OTLP export of traces.
fn export_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|value| value.trim() == "true")
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|value| value.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn tracer_provider(service: &str) -> Result<(SdkTracerProvider, bool), TelemetryError> {
    let builder = SdkTracerProvider::builder().with_resource(resource(service));
    if !export_requested() {
        return Ok((builder.build(), false));
    }
    // The protocol (`grpc` or `http/protobuf`, the default), endpoint,
    // headers, timeout and compression come from the OTEL_EXPORTER_OTLP_*
    // variables; the batch settings from OTEL_BSP_*, the sampler from
    // OTEL_TRACES_SAMPLER.
    let exporter = opentelemetry_otlp::SpanExporter::builder().build()?;
    Ok((builder.with_batch_exporter(exporter).build(), true))
}

/// `service.name` and `service.version`, overridden by what the standard
/// variables say.
fn resource(service: &str) -> Resource {
    // Later sources override earlier ones.
    let mut builder = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", service.to_owned()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.namespace", "herald"),
        ])
        .with_detectors(&[
            Box::new(TelemetryResourceDetector),
            Box::new(EnvResourceDetector::new()),
        ]);
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

/// The JSON record of tracing-subscriber with the current trace and span
/// ids added, so a log line leads to its trace.
struct WithTraceIds(Format<Json>);

impl WithTraceIds {
    /// The event's own fields at the top level, and no span fields: the
    /// ids lead to the trace, which has them.
    fn json() -> WithTraceIds {
        WithTraceIds(
            fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        )
    }
}

impl<S, N> FormatEvent<S, N> for WithTraceIds
where
    S: tracing::Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut record = String::new();
        self.0
            .format_event(context, Writer::new(&mut record), event)?;
        let current = opentelemetry::Context::current();
        let span = current.span();
        let span_context = span.span_context();
        let trimmed = record.trim_end();
        match trimmed.strip_suffix('}') {
            Some(fields) if span_context.is_valid() => writeln!(
                writer,
                r#"{fields},"trace_id":"{}","span_id":"{}"}}"#,
                span_context.trace_id(),
                span_context.span_id()
            ),
            _ => writer.write_str(&record),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_records_carry_the_trace_and_span_ids_of_their_span() {
        let captured = Captured::default();
        let writer = captured.clone();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                fmt::layer()
                    .event_format(WithTraceIds::json())
                    .fmt_fields(JsonFields::new())
                    .with_writer(move || writer.clone()),
            );
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!(outside = true, "before any span");
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!(inside = true, "in the span");
            let context = opentelemetry::Context::current();
            let span = context.span();
            let ids = span.span_context();
            (ids.trace_id().to_string(), ids.span_id().to_string())
        });
        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let records: Vec<serde_json::Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{output}");
        assert_eq!(records[0]["message"], "before any span");
        assert!(records[0].get("trace_id").is_none());
        assert_eq!(records[1]["message"], "in the span");
        assert_eq!(records[1]["inside"], true);
        assert_eq!(records[1]["trace_id"], trace_id.as_str());
        assert_eq!(records[1]["span_id"], span_id.as_str());
        assert!(records[1].get("spans").is_none(), "{output}");
        assert_eq!(trace_id.len(), 32);
    }
}
