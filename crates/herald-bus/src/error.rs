use async_nats::jetstream::context::{CreateStreamError, GetStreamError, PublishError};
use async_nats::jetstream::stream::ConsumerError;

/// Everything that can go wrong talking to NATS, each with the name of the
/// server, stream, consumer or subject involved.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("invalid --nats-url / NATS_URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "NATS server at {url} is version {version:?}; Herald needs 2.11 or newer (run `make nats` for a local one)"
    )]
    ServerTooOld { url: String, version: String },
    #[error("invalid bus namespace {namespace:?}: {reason}")]
    Namespace {
        namespace: String,
        reason: &'static str,
    },
    #[error("cannot create or update JetStream stream {stream}: {source}")]
    Stream {
        stream: String,
        #[source]
        source: CreateStreamError,
    },
    #[error("cannot find JetStream stream {stream}: {source}")]
    GetStream {
        stream: String,
        #[source]
        source: GetStreamError,
    },
    #[error("cannot create or update consumer {consumer} on stream {stream}: {source}")]
    Consumer {
        stream: String,
        consumer: String,
        #[source]
        source: ConsumerError,
    },
    #[error("cannot publish to {subject}: {source}")]
    Publish {
        subject: String,
        #[source]
        source: PublishError,
    },
    #[error("cannot create or update key-value bucket {bucket}: {reason}")]
    Bucket { bucket: String, reason: String },
    #[error("cannot read or write key {key} of bucket {bucket}: {reason}")]
    KeyValue {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("cannot read stream {stream}: {reason}")]
    Read { stream: String, reason: String },
    #[error("cannot purge {subject} from stream {stream}: {reason}")]
    Purge {
        stream: String,
        subject: String,
        reason: String,
    },
    #[error("NATS is unavailable: {0}")]
    Unavailable(String),
}
