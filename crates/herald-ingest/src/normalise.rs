//! What every channel parser produces, and the helpers they share.
//!
//! Everything here is pure: bytes in, values out, no clock and no I/O, so the
//! parsers can be tested on fixtures and fuzzed without a bus.

pub(crate) use herald_core::digest::sha256_hex;
use herald_core::{
    catalog::EventType,
    event::{MAX_IDEMPOTENCY_KEY_BYTES, MAX_SOURCE_REF_BYTES},
};
use serde::Serialize;
use serde_json::{Value, value::RawValue};
use time::OffsetDateTime;

/// One canonical event as a channel parser sees it: everything but what the
/// device, the tenant and the clock decide.
#[derive(Debug)]
pub struct NormalisedEvent {
    pub event_type: EventType,
    /// When the source says it happened; `None` when it does not say (the
    /// event then takes the time Herald received it).
    pub occurred_at: Option<OffsetDateTime>,
    /// The source's own reference (wamid, update_id, gateway message id).
    pub source_ref: Option<String>,
    /// Deterministic from the source and unique within one device; the
    /// idempotency key is `<channel>:<device>:<source_key>` (see
    /// [`idempotency_key`]).
    pub source_key: String,
    /// The `data` document (see the crate documentation for its shape).
    pub data: Box<RawValue>,
}

/// Why a webhook body could not be normalised. Messages give positions, never
/// content: the body is customer data and must not reach the logs.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the body is not {expected} (line {line}, column {column})")]
    Shape {
        expected: &'static str,
        line: usize,
        column: usize,
    },
    #[error("the body is not {expected}: {reason}")]
    Missing {
        expected: &'static str,
        reason: &'static str,
    },
    #[error("the Telegram update has no integer update_id")]
    MissingUpdateId,
    #[error("cannot encode the event data: {0}")]
    Encode(String),
}

impl ParseError {
    /// Classifies a serde error without quoting the input it complained about.
    pub(crate) fn from_serde(expected: &'static str, error: &serde_json::Error) -> ParseError {
        let (line, column) = (error.line(), error.column());
        if error.is_data() {
            ParseError::Shape {
                expected,
                line,
                column,
            }
        } else {
            ParseError::NotJson { line, column }
        }
    }
}

/// The `data` document every channel event carries. Normalised fields are
/// left out when the source does not have them; `original` is the channel's
/// own object, byte for byte.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Data<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub original: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<&'a RawValue>,
}

impl Data<'_> {
    pub(crate) fn encode(&self) -> Result<Box<RawValue>, ParseError> {
        serde_json::to_string(self)
            .and_then(RawValue::from_string)
            .map_err(|error| ParseError::Encode(error.to_string()))
    }
}

/// A catalog type by name. The names used by the parsers are constants that
/// the catalog holds (checked by tests), and a custom-style fallback keeps
/// the event rather than failing should one ever be removed.
pub(crate) fn catalog(name: &str) -> EventType {
    EventType::catalog(name).unwrap_or_else(|| channel_type("herald", "unknown"))
}

/// `<prefix>.<kind>` when that is a valid event type name, else
/// `<prefix>.unknown`: an event of a kind nobody foresaw is kept, under a
/// name that cannot break subjects or subscriptions.
pub(crate) fn channel_type(prefix: &str, kind: &str) -> EventType {
    EventType::parse(&format!("{prefix}.{kind}"))
        .or_else(|_| EventType::parse(&format!("{prefix}.unknown")))
        // Unreachable: every prefix is a constant valid segment (tested), so
        // `<prefix>.unknown` parses; this only keeps the function total.
        .unwrap_or_else(|_| EventType::endpoint_disabled())
}

/// A string field, if it is one.
pub(crate) fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A string or integer field as text (Telegram ids are integers, Meta's are
/// strings).
pub(crate) fn id_text(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// Seconds since 1970 as a string or a number, fractional or not. Values of
/// 10^11 and more are taken as milliseconds: in seconds they would be past
/// the year 5000, and gateways mix both units (WAHA's envelope uses ms, its
/// payloads seconds, one DTO documents ms with a seconds example).
pub(crate) fn unix_time(value: Option<&Value>) -> Option<OffsetDateTime> {
    let seconds = match value? {
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        Value::Number(number) => number.as_f64()?,
        _ => return None,
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let seconds = if seconds >= 1e11 {
        seconds / 1000.0
    } else {
        seconds
    };
    // Millisecond precision is all any source has; rounding there avoids
    // float noise in the nanoseconds.
    // Past the year 9999 an event cannot carry the time; checked before
    // the float becomes an integer, where it would saturate.
    if seconds >= 253_402_300_800.0 {
        return None;
    }
    let millis = (seconds * 1000.0).round() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(millis.checked_mul(1_000_000)?).ok()
}

/// A source reference when it obeys the event rules; a reference that does
/// not is left out rather than failing the event.
pub(crate) fn source_ref(value: Option<String>) -> Option<String> {
    value.filter(|reference| {
        !reference.is_empty()
            && reference.len() <= MAX_SOURCE_REF_BYTES
            && !reference.chars().any(char::is_control)
    })
}

/// The idempotency key (and `Nats-Msg-Id`) of a channel event:
/// `<channel>:<device id>:<source key>`. The device id scopes it, so no
/// tenant can pre-empt another's events by guessing their keys. A key that
/// would break the header rules (too long, or bytes outside visible ASCII)
/// is replaced by `<channel>:<device id>:h:<sha256 of the source key>`,
/// which is as deterministic.
pub fn idempotency_key(channel: &str, device_id: &str, source_key: &str) -> String {
    let key = format!("{channel}:{device_id}:{source_key}");
    if key.len() <= MAX_IDEMPOTENCY_KEY_BYTES && key.bytes().all(|byte| byte.is_ascii_graphic()) {
        key
    } else {
        format!(
            "{channel}:{device_id}:h:{}",
            sha256_hex(source_key.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_used_by_the_parsers_exist() {
        for name in [
            "message.received",
            "message.sent",
            "message.delivered",
            "message.read",
            "message.failed",
            "contact.updated",
            "contact.opted_out",
            "payment.completed",
        ] {
            assert_eq!(catalog(name).as_str(), name);
        }
    }

    #[test]
    fn channel_types_fall_back_to_unknown() {
        assert_eq!(
            channel_type("waba", "account_update").as_str(),
            "waba.account_update"
        );
        assert_eq!(
            channel_type("whatsapp", "group.v2.join").as_str(),
            "whatsapp.group.v2.join"
        );
        for bad in ["", "Upper", "a b", "1st", "x..y", "é", "a.b.c.d.e.f.g.h"] {
            assert_eq!(channel_type("waba", bad).as_str(), "waba.unknown", "{bad}");
        }
    }

    #[test]
    fn unix_time_handles_units_and_forms() {
        let second = OffsetDateTime::from_unix_timestamp(1_749_416_383).unwrap();
        for value in [
            serde_json::json!("1749416383"),
            serde_json::json!(1_749_416_383),
            serde_json::json!(1_749_416_383_000_u64),
        ] {
            assert_eq!(unix_time(Some(&value)), Some(second), "{value}");
        }
        let fractional = unix_time(Some(&serde_json::json!(1_710_481_111.853))).unwrap();
        assert_eq!(fractional.unix_timestamp_nanos(), 1_710_481_111_853_000_000);
        for bad in [
            serde_json::json!("soon"),
            serde_json::json!(-5),
            serde_json::json!(null),
            serde_json::json!(1e300),
            serde_json::json!([1]),
        ] {
            assert_eq!(unix_time(Some(&bad)), None, "{bad}");
        }
    }

    #[test]
    fn idempotency_keys_are_scoped_and_always_valid() {
        assert_eq!(
            idempotency_key("waba", "dev_1", "wamid.X=:read"),
            "waba:dev_1:wamid.X=:read"
        );
        let long = "x".repeat(300);
        let hashed = idempotency_key("waba", "dev_1", &long);
        assert!(hashed.starts_with("waba:dev_1:h:"));
        assert_eq!(hashed, idempotency_key("waba", "dev_1", &long));
        let spaced = idempotency_key("whatsapp", "dev_1", "a b:é");
        assert!(spaced.bytes().all(|byte| byte.is_ascii_graphic()));
    }
}
