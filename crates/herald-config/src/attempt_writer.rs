//! Moves attempt records from the bus into the attempt log.
//!
//! Records are written in batches and acknowledged only after the batch is
//! committed; a record delivered twice (a redelivery, or delivery publishing
//! it again) hits the primary key and is skipped, so it never makes a
//! second row.

use std::time::Duration;

use futures::{Stream, StreamExt};
use herald_bus::{
    ConsumerRole,
    async_nats::jetstream::{AckKind, Message},
    headers,
};
use herald_proto::v1::Attempt;
use opentelemetry::trace::TraceContextExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{convert, state::ConfigState};

/// A pull batch of this size amortises the database round trip without
/// holding records long.
const BATCH_SIZE: usize = 200;
/// How long a batch waits for more records after its first one: a
/// transaction (and, on SQLite, its write lock and commit) costs about the
/// same for one row as for a hundred, so under a steady trickle the writer
/// collects records for a moment instead of committing each alone. While a
/// batch is written the next one fills, so a busy writer never waits.
const BATCH_LINGER: Duration = Duration::from_millis(10);
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
    let mut pulled = state.bus.pull(consumer, BATCH_SIZE).fuse();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = pulled.next() => message,
        };
        let Some(first) = first else {
            return Err(AttemptWriterError::Consume(
                "the consumer stream ended".to_owned(),
            ));
        };
        let batch = fill_batch(first, &mut pulled).await;
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

/// `first` and whatever else arrives within [`BATCH_LINGER`], up to
/// [`BATCH_SIZE`] records.
async fn fill_batch(
    first: Message,
    pulled: &mut (impl Stream<Item = Message> + Unpin),
) -> Vec<Message> {
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    batch.push(first);
    let deadline = tokio::time::Instant::now() + BATCH_LINGER;
    while batch.len() < BATCH_SIZE {
        match tokio::time::timeout_at(deadline, pulled.next()).await {
            Ok(Some(message)) => batch.push(message),
            // The end of the stream is reported by the next batch's read.
            Ok(None) | Err(_) => break,
        }
    }
    batch
}

/// One span per batch, linked to the attempt span of every record in it: a
/// batch serves many traces, so it is a child of none.
fn batch_span(messages: &[Message]) -> tracing::Span {
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
