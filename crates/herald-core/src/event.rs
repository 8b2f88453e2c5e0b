//! The canonical event: what ingest adapters produce, the bus carries and the
//! delivery service turns into envelopes.
//!
//! Design decisions:
//! - `data` is kept as raw JSON bytes ([`RawValue`]), never parsed into a
//!   `serde_json::Value`. Customers' payloads contain numbers that do not fit in
//!   an `f64` (order ids, 128-bit amounts, high-precision decimals); re-encoding
//!   them would silently change what the customer receives.
//! - Timestamps are serialized as RFC 3339. `occurred_at` comes from the source
//!   and may be skewed or in the future, so no ordering against `received_at` is
//!   enforced; both must only be representable in RFC 3339 (years 0000-9999
//!   in UTC).
//! - Limits, and why:
//!   - `idempotency_key`: 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes of visible
//!     ASCII (`!` to `~`). It becomes the NATS `Nats-Msg-Id` header, where
//!     whitespace or non-ASCII would be mangled or refused, and 256 bytes is
//!     far above any source's natural key (`<channel>:<device>:<wamid>`).
//!   - `source_ref`: when present, 1 to [`MAX_SOURCE_REF_BYTES`] bytes of UTF-8
//!     without control characters; it is shown in the dashboard and logs.
//!   - `data`: any JSON value of at most [`MAX_EVENT_DATA_BYTES`] bytes by
//!     default; deployments may choose another limit with
//!     [`Event::validate_with_data_limit`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::catalog::EventType;
use crate::channel::Channel;
use crate::id::{DeviceId, EventId, TenantId};

/// Default largest `data` payload, in bytes (1 MiB).
pub const MAX_EVENT_DATA_BYTES: usize = 1024 * 1024;
/// Largest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
/// Largest source reference, in bytes.
pub const MAX_SOURCE_REF_BYTES: usize = 256;

/// One event, as accepted by Herald.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Herald's id for the event.
    pub id: EventId,
    /// The tenant the event belongs to.
    pub tenant_id: TenantId,
    /// The channel it came from.
    pub channel: Channel,
    /// The device it came through, when the channel has devices.
    pub device_id: Option<DeviceId>,
    /// What happened.
    pub event_type: EventType,
    /// When it happened at the source.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When Herald accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The source's own reference: a wamid, a Telegram `update_id`, a gateway
    /// message id.
    pub source_ref: Option<String>,
    /// Deterministic key derived from the source, so that a redelivered source
    /// event is accepted once; the bus's `Nats-Msg-Id`.
    pub idempotency_key: String,
    /// The payload, byte for byte as the source sent it.
    pub data: Box<RawValue>,
}

// `RawValue` has no `PartialEq`; comparing its text is what equality means for
// a payload that is kept byte for byte.
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.tenant_id == other.tenant_id
            && self.channel == other.channel
            && self.device_id == other.device_id
            && self.event_type == other.event_type
            && self.occurred_at == other.occurred_at
            && self.received_at == other.received_at
            && self.source_ref == other.source_ref
            && self.idempotency_key == other.idempotency_key
            && self.data.get() == other.data.get()
    }
}

impl Eq for Event {}

/// Why an event (or its payload) was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// `idempotency_key` is empty.
    #[error("event idempotency_key is empty")]
    EmptyIdempotencyKey,
    /// `idempotency_key` is too long.
    #[error(
        "event idempotency_key is {length} bytes long, the limit is {MAX_IDEMPOTENCY_KEY_BYTES}"
    )]
    IdempotencyKeyTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// `idempotency_key` has a character outside visible ASCII.
    #[error(
        "event idempotency_key contains {character:?} at byte {position}; only visible ASCII \
         ('!' to '~') is allowed"
    )]
    IdempotencyKeyInvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset.
        position: usize,
    },
    /// `source_ref` is present but empty.
    #[error("event source_ref is empty; leave it out instead")]
    EmptySourceRef,
    /// `source_ref` is too long.
    #[error("event source_ref is {length} bytes long, the limit is {MAX_SOURCE_REF_BYTES}")]
    SourceRefTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// `source_ref` contains a control character.
    #[error("event source_ref contains control character {character:?} at byte {position}")]
    SourceRefControlCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset.
        position: usize,
    },
    /// A timestamp cannot be written as RFC 3339 in UTC.
    #[error("event {field} {value} is outside the years 0000-9999 once converted to UTC")]
    TimestampOutOfRange {
        /// `occurred_at` or `received_at`.
        field: &'static str,
        /// The timestamp as given.
        value: OffsetDateTime,
    },
    /// `data` is larger than the limit.
    #[error("event data is {length} bytes long, the limit is {limit}")]
    DataTooLarge {
        /// Its length in bytes.
        length: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// `data` is not valid JSON.
    #[error("event data is not valid JSON: {0}")]
    InvalidData(#[source] serde_json::Error),
    /// `data` holds half of a UTF-16 surrogate pair as a `\u` escape.
    #[error("event data is not valid Unicode: a lone surrogate escape at byte {offset}")]
    InvalidEscape { offset: usize },
}

impl Event {
    /// Checks the rules in the module documentation, with the default data
    /// limit [`MAX_EVENT_DATA_BYTES`].
    pub fn validate(&self) -> Result<(), EventError> {
        self.validate_with_data_limit(MAX_EVENT_DATA_BYTES)
    }

    /// Checks the rules in the module documentation, with `max_data_bytes` as
    /// the data limit.
    pub fn validate_with_data_limit(&self, max_data_bytes: usize) -> Result<(), EventError> {
        validate_idempotency_key(&self.idempotency_key)?;
        if let Some(source_ref) = &self.source_ref {
            validate_source_ref(source_ref)?;
        }
        validate_timestamp("occurred_at", self.occurred_at)?;
        validate_timestamp("received_at", self.received_at)?;
        let length = self.data.get().len();
        if length > max_data_bytes {
            return Err(EventError::DataTooLarge {
                length,
                limit: max_data_bytes,
            });
        }
        Ok(())
    }
}

fn validate_idempotency_key(key: &str) -> Result<(), EventError> {
    if key.is_empty() {
        return Err(EventError::EmptyIdempotencyKey);
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(EventError::IdempotencyKeyTooLong { length: key.len() });
    }
    match key
        .char_indices()
        .find(|(_, character)| !character.is_ascii_graphic())
    {
        Some((position, character)) => Err(EventError::IdempotencyKeyInvalidCharacter {
            character,
            position,
        }),
        None => Ok(()),
    }
}

fn validate_source_ref(source_ref: &str) -> Result<(), EventError> {
    if source_ref.is_empty() {
        return Err(EventError::EmptySourceRef);
    }
    if source_ref.len() > MAX_SOURCE_REF_BYTES {
        return Err(EventError::SourceRefTooLong {
            length: source_ref.len(),
        });
    }
    match source_ref
        .char_indices()
        .find(|(_, character)| character.is_control())
    {
        Some((position, character)) => Err(EventError::SourceRefControlCharacter {
            character,
            position,
        }),
        None => Ok(()),
    }
}

fn validate_timestamp(field: &'static str, value: OffsetDateTime) -> Result<(), EventError> {
    let in_range = value
        .checked_to_offset(time::UtcOffset::UTC)
        .is_some_and(|utc| (0..=9999).contains(&utc.year()));
    if in_range {
        Ok(())
    } else {
        Err(EventError::TimestampOutOfRange { field, value })
    }
}

/// Checks that `bytes` are one JSON value of at most [`MAX_EVENT_DATA_BYTES`]
/// and keeps them exactly (whitespace around the value is dropped; everything
/// inside it, numbers included, is kept byte for byte).
pub fn parse_data(bytes: &[u8]) -> Result<Box<RawValue>, EventError> {
    parse_data_with_limit(bytes, MAX_EVENT_DATA_BYTES)
}

/// [`parse_data`] with `max_data_bytes` as the limit.
pub fn parse_data_with_limit(
    bytes: &[u8],
    max_data_bytes: usize,
) -> Result<Box<RawValue>, EventError> {
    // Checked before parsing so an oversized payload costs no parsing work.
    if bytes.len() > max_data_bytes {
        return Err(EventError::DataTooLarge {
            length: bytes.len(),
            limit: max_data_bytes,
        });
    }
    let data: Box<RawValue> = serde_json::from_slice(bytes).map_err(EventError::InvalidData)?;
    check_unicode_escapes(bytes)?;
    Ok(data)
}

/// Refuses JSON text (already known to be valid JSON) with a `\u` escape
/// that is half of a surrogate pair. JSON's grammar allows it and raw
/// values keep escapes as written, but it is not Unicode, and receivers'
/// JSON parsers refuse it.
pub fn check_unicode_escapes(json: &[u8]) -> Result<(), EventError> {
    let code_unit = |at: usize| -> Option<u32> {
        let hex = json.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut index = 0;
    while index < json.len() {
        if json[index] != b'\\' {
            index += 1;
            continue;
        }
        if json.get(index + 1) != Some(&b'u') {
            // Any other escape is two bytes long.
            index += 2;
            continue;
        }
        let start = index;
        let unit = code_unit(index + 2).ok_or(EventError::InvalidEscape { offset: start })?;
        index += 6;
        match unit {
            0xD800..=0xDBFF => {
                let low = (json.get(index..index + 2) == Some(b"\\u"))
                    .then(|| code_unit(index + 2))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Err(EventError::InvalidEscape { offset: start });
                }
                index += 6;
            }
            0xDC00..=0xDFFF => return Err(EventError::InvalidEscape { offset: start }),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn data_with_a_lone_surrogate_escape_is_refused() {
        for lone in [
            br#"{"text":"\udc99"}"#.as_slice(),
            br#"{"text":"\ud83d"}"#,
            br#"{"text":"\ud83d\u0041"}"#,
        ] {
            assert!(
                matches!(
                    parse_data(lone),
                    Err(EventError::InvalidEscape { offset: 9 })
                ),
                "{lone:?}"
            );
        }
        let emoji = br#"{"text":"\ud83d\ude00 \\udc99 is text","n":1E345678901234567890}"#;
        assert_eq!(
            parse_data(emoji).unwrap().get().as_bytes(),
            emoji.as_slice()
        );
    }

    /// A valid event for tests across the crate.
    pub(crate) fn sample_event() -> Event {
        Event {
            id: EventId::parse("evt_01jabcdefghjkmnpqrstvwxyz0").unwrap(),
            tenant_id: TenantId::parse("org_01jabcdefghjkmnpqrstvwxyz1").unwrap(),
            channel: Channel::Whatsapp,
            device_id: Some(DeviceId::parse("dev_01jabcdefghjkmnpqrstvwxyz2").unwrap()),
            event_type: EventType::parse("message.received").unwrap(),
            occurred_at: datetime!(2024-05-06 07:08:09.123456 +02:00),
            received_at: datetime!(2024-05-06 05:08:10 UTC),
            source_ref: Some("wamid.HBgLMTU1NTAwMDAwMDAVAgASGBQzQTk0".to_owned()),
            idempotency_key: "whatsapp:dev_01jabcdefghjkmnpqrstvwxyz2:wamid.HBgL".to_owned(),
            data: parse_data(br#"{"text":"hi","n":12345678901234567890123}"#).unwrap(),
        }
    }

    #[test]
    fn sample_event_is_valid() {
        sample_event().validate().unwrap();
    }

    #[test]
    fn parse_data_keeps_bytes_exactly() {
        let raw = br#"{"n": 12345678901234567890123, "f": 1.000000000000000000001}"#;
        let data = parse_data(raw).unwrap();
        assert_eq!(data.get().as_bytes(), raw);
    }

    #[test]
    fn parse_data_accepts_any_json_value() {
        for raw in ["[1,2]", "\"text\"", "42", "null", "true", "{}"] {
            assert_eq!(parse_data(raw.as_bytes()).unwrap().get(), raw);
        }
        assert_eq!(parse_data(b"  {\"a\":1}\n").unwrap().get(), "{\"a\":1}");
    }

    #[test]
    fn parse_data_refuses_invalid_json() {
        for raw in [
            &b""[..],
            b"{",
            b"{\"a\":1} x",
            b"{'a':1}",
            b"\xff",
            b"NaN",
            b"[1,]",
        ] {
            let error = parse_data(raw).unwrap_err();
            assert!(matches!(error, EventError::InvalidData(_)), "{raw:?}");
            assert!(
                error
                    .to_string()
                    .starts_with("event data is not valid JSON")
            );
        }
    }

    #[test]
    fn parse_data_enforces_the_limit_at_the_boundary() {
        let at_limit = format!("\"{}\"", "a".repeat(MAX_EVENT_DATA_BYTES - 2));
        assert!(parse_data(at_limit.as_bytes()).is_ok());
        let over_limit = format!("\"{}\"", "a".repeat(MAX_EVENT_DATA_BYTES - 1));
        assert!(matches!(
            parse_data(over_limit.as_bytes()),
            Err(EventError::DataTooLarge {
                length,
                limit: MAX_EVENT_DATA_BYTES
            }) if length == MAX_EVENT_DATA_BYTES + 1
        ));
        assert!(parse_data_with_limit(b"[1,2,3]", 7).is_ok());
        assert!(parse_data_with_limit(b"[1,2,3]", 6).is_err());
    }

    #[test]
    fn serde_round_trip_keeps_data_and_uses_rfc3339() {
        let event = sample_event();
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains("\"occurred_at\":\"2024-05-06T07:08:09.123456+02:00\""));
        assert!(json.contains("\"data\":{\"text\":\"hi\",\"n\":12345678901234567890123}"));
        assert!(json.contains("\"channel\":\"whatsapp\""));
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn deserialize_validates_ids_and_types() {
        let json = serde_json::to_string(&sample_event()).unwrap();
        let bad_type = json.replace("message.received", "Message.Received");
        assert!(serde_json::from_str::<Event>(&bad_type).is_err());
        let bad_id = json.replace("evt_", "ep_");
        assert!(serde_json::from_str::<Event>(&bad_id).is_err());
    }

    #[test]
    fn idempotency_key_rules() {
        let mut event = sample_event();
        event.idempotency_key = String::new();
        assert!(matches!(
            event.validate(),
            Err(EventError::EmptyIdempotencyKey)
        ));
        event.idempotency_key = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES);
        assert!(event.validate().is_ok());
        event.idempotency_key = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1);
        assert!(matches!(
            event.validate(),
            Err(EventError::IdempotencyKeyTooLong { length: 257 })
        ));
        for (key, bad, position) in [("a b", ' ', 1), ("ab\n", '\n', 2), ("é", 'é', 0)] {
            event.idempotency_key = key.to_owned();
            match event.validate() {
                Err(EventError::IdempotencyKeyInvalidCharacter {
                    character,
                    position: found,
                }) => {
                    assert_eq!((character, found), (bad, position));
                }
                other => panic!("{key:?}: {other:?}"),
            }
        }
        event.idempotency_key = "!~".to_owned();
        assert!(event.validate().is_ok());
    }

    #[test]
    fn source_ref_rules() {
        let mut event = sample_event();
        event.source_ref = None;
        assert!(event.validate().is_ok());
        event.source_ref = Some(String::new());
        assert!(matches!(event.validate(), Err(EventError::EmptySourceRef)));
        event.source_ref = Some("r".repeat(MAX_SOURCE_REF_BYTES));
        assert!(event.validate().is_ok());
        event.source_ref = Some("r".repeat(MAX_SOURCE_REF_BYTES + 1));
        assert!(matches!(
            event.validate(),
            Err(EventError::SourceRefTooLong { length: 257 })
        ));
        event.source_ref = Some("update 42 ünïcode".to_owned());
        assert!(event.validate().is_ok());
        event.source_ref = Some("a\u{0}b".to_owned());
        assert_eq!(
            event.validate().unwrap_err().to_string(),
            "event source_ref contains control character '\\0' at byte 1"
        );
    }

    #[test]
    fn data_limit_is_checked_by_validate() {
        let event = sample_event();
        let length = event.data.get().len();
        assert!(event.validate_with_data_limit(length).is_ok());
        assert!(matches!(
            event.validate_with_data_limit(length - 1),
            Err(EventError::DataTooLarge { .. })
        ));
    }

    #[test]
    fn timestamps_must_fit_rfc3339_in_utc() {
        let mut event = sample_event();
        event.occurred_at = datetime!(9999-12-31 23:00 -05:00);
        let message = event.validate().unwrap_err().to_string();
        assert!(message.starts_with("event occurred_at"), "{message}");
        event.occurred_at = datetime!(9999-12-31 23:00 UTC);
        assert!(event.validate().is_ok());
        event.received_at = datetime!(-0001-06-01 00:00 UTC);
        assert!(matches!(
            event.validate(),
            Err(EventError::TimestampOutOfRange {
                field: "received_at",
                ..
            })
        ));
    }
}
