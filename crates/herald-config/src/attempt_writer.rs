//! Moves attempt records from the bus into the attempt log.
//!
//! Records are written in batches and acknowledged only after the batch is
//! committed; a record delivered twice (a redelivery, or delivery publishing
//! it again) hits the primary key and is skipped, so it never makes a
//! second row.

use std::time::Duration;

use futures::StreamExt;
use herald_bus::{ConsumerRole, async_nats::jetstream::AckKind, headers};
use herald_proto::v1::Attempt;
use opentelemetry::trace::TraceContextExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{convert, state::ConfigState};

/// A pull batch of this size amortises the database round trip without
/// holding records long.
const BATCH_SIZE: usize = 200;
/// How long to wait before retrying after the database refused a batch.
const RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AttemptWriterError {
    #[error("cannot consume attempt records: {0}")]
    Consume(String),
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
}

pub async fn run(
    state: ConfigState,
    shutdown: CancellationToken,
) -> Result<(), AttemptWriterError> {
    let consumer = state.bus.consumer(ConsumerRole::AttemptWriter).await?;
    let mut batches = state
        .bus
        .pull(consumer, BATCH_SIZE)
        .ready_chunks(BATCH_SIZE);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else {
            return Err(AttemptWriterError::Consume(
                "the consumer stream ended".to_owned(),
            ));
        };
        let mut records = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        for message in batch {
            match Attempt::decode(message.payload.as_ref())
                .map_err(|error| error.to_string())
                .and_then(convert::attempt_record)
            {
                Ok(record) => {
                    records.push(record);
                    messages.push(message);
                }
                Err(error) => {
                    // A record that can never be stored must not block the rest.
                    tracing::error!(subject = %message.subject, %error, "dropping an invalid attempt record");
                    if let Err(error) = message.ack_with(AckKind::Term).await {
                        tracing::warn!(%error, "cannot terminate an invalid attempt record");
                    }
                }
            }
        }
        if records.is_empty() {
            continue;
        }
        let span = batch_span(&messages);
        match state.store.insert_attempts(&records).instrument(span).await {
            Ok(inserted) => {
                tracing::debug!(
                    received = records.len(),
                    inserted,
                    "attempt records written"
                );
                for message in messages {
                    if let Err(error) = message.ack().await {
                        tracing::warn!(%error, "cannot acknowledge an attempt record; it will be redelivered and skipped");
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, records = records.len(), "cannot write attempt records; retrying");
                for message in messages {
                    let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                }
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

/// One span per batch, linked to the attempt span of every record in it: a
/// batch serves many traces, so it is a child of none.
fn batch_span(messages: &[herald_bus::async_nats::jetstream::Message]) -> tracing::Span {
    let span = tracing::info_span!(
        "attempt_writer",
        otel.name = "process attempts",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.consumer.group.name = ConsumerRole::AttemptWriter.durable_name(),
        messaging.batch.message_count = messages.len(),
    );
    for message in messages {
        let context = headers::trace_context(message.headers.as_ref());
        span.add_link(context.span().span_context().clone());
    }
    span
}
