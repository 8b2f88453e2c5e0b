//! WhatsApp device gateway (WAHA-style) events, normalised. One event per
//! POST, one Herald event.
//!
//! | gateway event | Herald event type |
//! |---|---|
//! | `message` | `message.received` |
//! | `message.ack`, ack -1 (ERROR) | `message.failed` |
//! | `message.ack`, ack 1 (SERVER) | `message.sent` |
//! | `message.ack`, ack 2 (DEVICE) | `message.delivered` |
//! | `message.ack`, ack 3 (READ) or 4 (PLAYED) | `message.read` |
//! | `message.ack`, ack 0 (PENDING) or unknown | `whatsapp.message.ack` |
//! | any other event (`session.status`, `message.reaction`, `group.v2.join`, …) | `whatsapp.<event>` |
//!
//! The ack level comes from `ack`, or from `ackName` when `ack` is missing.
//! Timestamps: payloads use seconds (reactions fractional seconds), the
//! envelope milliseconds; [`unix_time`] tells them apart by magnitude. Older
//! gateways send no envelope `id` or `timestamp`, so neither is required.
//! Keys ([`source_key`]): `<message id>:received`,
//! `<message id>:<participant>:ack:<level>` (each participant of a group
//! acknowledges separately); any other event with a `payload.id` is keyed by
//! that id and a digest of the payload, since a gateway re-sends an event in a
//! new envelope (new envelope `id`) with the same payload, while some events
//! (`presence.update`, `chat.archive`) name a chat in `payload.id` that many
//! distinct events share; without a `payload.id`, the envelope's `id`, else
//! the SHA-256 of the body (a retry sends the same).

use serde_json::{Value, value::RawValue};

use crate::normalise::{
    Data, NormalisedEvent, ParseError, catalog, channel_type, sha256_hex, source_ref, text,
    unix_time,
};

const EXPECTED: &str = "a WhatsApp gateway event";

/// Normalises one gateway webhook body (the raw bytes, already verified).
pub fn parse(body: &[u8]) -> Result<NormalisedEvent, ParseError> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|error| ParseError::from_serde(EXPECTED, &error))?;
    let envelope: Value = serde_json::from_str(raw.get())
        .map_err(|error| ParseError::from_serde(EXPECTED, &error))?;
    let Some(event) = envelope.get("event").and_then(Value::as_str) else {
        return Err(ParseError::Missing {
            expected: EXPECTED,
            reason: "it has no \"event\" name",
        });
    };
    let payload = envelope.get("payload").unwrap_or(&Value::Null);
    let message_id = text(payload, "/id");
    let participant = text(payload, "/participant");
    let mut data = Data {
        message_id: message_id.clone(),
        from: participant.clone().or_else(|| text(payload, "/from")),
        to: text(payload, "/to"),
        original: Some(raw),
        ..Data::default()
    };
    let (event_type, suffix) = match event {
        "message" => {
            data.text = text(payload, "/body");
            (catalog("message.received"), Some("received".to_owned()))
        }
        "message.ack" => {
            let level = ack_level(payload);
            data.status = text(payload, "/ackName");
            let event_type = match level {
                Some(-1) => catalog("message.failed"),
                Some(1) => catalog("message.sent"),
                Some(2) => catalog("message.delivered"),
                Some(3 | 4) => catalog("message.read"),
                _ => channel_type("whatsapp", event),
            };
            let level = level.map_or_else(|| "unknown".to_owned(), |level| level.to_string());
            let who = participant.as_deref().unwrap_or("-");
            (event_type, Some(format!("{who}:ack:{level}")))
        }
        other => (channel_type("whatsapp", other), None),
    };
    let source_key = source_key(event, &envelope, payload, suffix, raw.get());
    let occurred_at =
        unix_time(payload.get("timestamp")).or_else(|| unix_time(envelope.get("timestamp")));
    Ok(NormalisedEvent {
        event_type,
        occurred_at,
        source_ref: source_ref(message_id),
        source_key,
        data: data.encode()?,
    })
}

/// The event's source key: the message id and what happened to it for
/// messages and acks, else the payload's id (with a digest of the payload),
/// else the envelope's id, else a digest of the body.
pub(crate) fn source_key(
    event: &str,
    envelope: &Value,
    payload: &Value,
    suffix: Option<String>,
    body: &str,
) -> String {
    let payload_id = text(payload, "/id");
    if let (Some(id), Some(suffix)) = (&payload_id, suffix) {
        return format!("{id}:{suffix}");
    }
    if let Some(id) = payload_id {
        let digest = sha256_hex(payload.to_string().as_bytes());
        return format!("{event}:{id}:{digest}");
    }
    match text(envelope, "/id") {
        Some(id) => format!("{event}:{id}"),
        None => format!("{event}:sha256:{}", sha256_hex(body.as_bytes())),
    }
}

fn ack_level(payload: &Value) -> Option<i64> {
    if let Some(level) = payload.get("ack").and_then(Value::as_i64) {
        return Some(level);
    }
    match payload.get("ackName").and_then(Value::as_str)? {
        "ERROR" => Some(-1),
        "PENDING" => Some(0),
        "SERVER" => Some(1),
        "DEVICE" => Some(2),
        "READ" => Some(3),
        "PLAYED" => Some(4),
        _ => None,
    }
}
