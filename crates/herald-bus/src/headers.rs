//! NATS message header names used across Herald's streams.

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
