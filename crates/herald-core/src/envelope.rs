//! The JSON body POSTed to customer endpoints.
//!
//! The body is written by hand rather than through a serde struct, for two
//! reasons. The signature covers the exact bytes, so key order and formatting
//! are part of the contract and must not depend on a serializer's choices. And
//! `data` is spliced in byte for byte, so numbers that do not fit in an `f64`
//! reach the customer unchanged. Every other value is an id, a channel name, an
//! event type or a timestamp, whose characters never need JSON escaping.
//!
//! The shape is:
//!
//! ```json
//! {"id":"evt_…","event":"message.received","organizationId":"org_…",
//!  "deviceId":"dev_…","channel":"whatsapp",
//!  "timestamp":"2024-05-06T05:08:09.123Z","data":{…}}
//! ```
//!
//! with `deviceId` `null` when the event has no device, and `,"test":true`
//! before the closing brace for test deliveries.

use time::{OffsetDateTime, UtcOffset};

use crate::{catalog::EventType, event::Event};

/// The envelope bytes for `event`; `test` marks a test delivery sent from the
/// dashboard.
#[must_use]
pub fn envelope_body(event: &Event, test: bool) -> Vec<u8> {
    let data = event.data.get();
    let mut body = String::with_capacity(data.len() + 256);
    body.push_str("{\"id\":\"");
    body.push_str(event.id.as_str());
    body.push_str("\",\"event\":\"");
    body.push_str(event.event_type.as_str());
    body.push_str("\",\"organizationId\":\"");
    body.push_str(event.tenant_id.as_str());
    body.push_str("\",\"deviceId\":");
    match &event.device_id {
        Some(device_id) => {
            body.push('"');
            body.push_str(device_id.as_str());
            body.push('"');
        }
        None => body.push_str("null"),
    }
    body.push_str(",\"channel\":\"");
    body.push_str(event.channel.as_str());
    body.push_str("\",\"timestamp\":\"");
    body.push_str(&envelope_timestamp(event.occurred_at));
    body.push_str("\",\"data\":");
    body.push_str(data);
    if test {
        body.push_str(",\"test\":true");
    }
    body.push('}');
    body.into_bytes()
}

/// How much of a sent body the attempt log keeps: enough for any catalog
/// event whole, bounded so one huge payload cannot swell the log.
pub const STORED_BODY_BYTES: usize = 64 * 1024;

/// The part of `body` the attempt log keeps.
#[must_use]
pub fn stored_body(body: &[u8]) -> &[u8] {
    &body[..body.len().min(STORED_BODY_BYTES)]
}

/// The `data` of a test delivery of `event_type`: the catalog's sample, so
/// the receiver sees the shape live events have; a custom type gets a note.
#[must_use]
pub fn test_data(event_type: &EventType) -> &'static str {
    event_type.catalog_entry().map_or(
        r#"{"message":"This is a test delivery from Herald."}"#,
        |entry| entry.sample_data,
    )
}

/// `moment` in UTC as RFC 3339 with exactly three fractional digits and a `Z`,
/// e.g. `2024-05-06T05:08:09.123Z`: the most widely parsed form, and milliseconds
/// are as precise as sources report.
///
/// Sub-millisecond digits are truncated, not rounded, so the envelope never
/// claims a later time than the source did. A moment that has no UTC form in
/// the years `time` supports (only possible within hours of year 9999, and
/// refused by [`Event::validate`]) is written in its own offset instead.
#[must_use]
pub fn envelope_timestamp(moment: OffsetDateTime) -> String {
    match moment.checked_to_offset(UtcOffset::UTC) {
        Some(utc) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second(),
            utc.millisecond()
        ),
        None => {
            let (hours, minutes, _) = moment.offset().as_hms();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}{:02}:{:02}",
                moment.year(),
                u8::from(moment.month()),
                moment.day(),
                moment.hour(),
                moment.minute(),
                moment.second(),
                moment.millisecond(),
                if moment.offset().is_negative() {
                    '-'
                } else {
                    '+'
                },
                hours.unsigned_abs(),
                minutes.unsigned_abs()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_data;
    use crate::event::tests::sample_event;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    #[test]
    fn body_has_exact_shape_and_key_order() {
        let event = sample_event();
        let body = String::from_utf8(envelope_body(&event, false)).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"id":"evt_01jabcdefghjkmnpqrstvwxyz0","event":"message.received","#,
                r#""organizationId":"org_01jabcdefghjkmnpqrstvwxyz1","#,
                r#""deviceId":"dev_01jabcdefghjkmnpqrstvwxyz2","channel":"whatsapp","#,
                r#""timestamp":"2024-05-06T05:08:09.123Z","#,
                r#""data":{"text":"hi","n":12345678901234567890123}}"#
            )
        );
    }

    #[test]
    fn test_flag_goes_last() {
        let body = String::from_utf8(envelope_body(&sample_event(), true)).unwrap();
        assert!(
            body.ends_with(r#""data":{"text":"hi","n":12345678901234567890123},"test":true}"#),
            "{body}"
        );
    }

    #[test]
    fn missing_device_is_null() {
        let mut event = sample_event();
        event.device_id = None;
        let body = envelope_body(&event, false);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(parsed["deviceId"].is_null());
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains(r#""deviceId":null,"#)
        );
    }

    #[test]
    fn output_is_json_and_numbers_survive() {
        let mut event = sample_event();
        let raw =
            r#"{"n": 12345678901234567890123, "f": 1.000000000000000000001, "s": "\u00e9\n"}"#;
        event.data = parse_data(raw.as_bytes()).unwrap();
        for test in [false, true] {
            let body = envelope_body(&event, test);
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed["id"], event.id.as_str());
            assert_eq!(parsed["event"], "message.received");
            assert_eq!(parsed["organizationId"], event.tenant_id.as_str());
            assert_eq!(parsed["channel"], "whatsapp");
            assert_eq!(parsed.get("test").is_some(), test);
            let text = String::from_utf8(body).unwrap();
            assert!(text.contains(&format!("\"data\":{raw}")), "{text}");
            // Through a RawValue the number text is still exactly the source's.
            #[derive(serde::Deserialize)]
            struct Envelope<'a> {
                #[serde(borrow)]
                data: &'a serde_json::value::RawValue,
            }
            let envelope: Envelope<'_> = serde_json::from_str(&text).unwrap();
            assert_eq!(envelope.data.get(), raw);
        }
    }

    #[test]
    fn timestamp_is_utc_milliseconds_with_z() {
        for (moment, expected) in [
            (
                datetime!(2024-05-06 07:08:09.123456 +02:00),
                "2024-05-06T05:08:09.123Z",
            ),
            (
                datetime!(2024-05-06 07:08:09.999999999 UTC),
                "2024-05-06T07:08:09.999Z",
            ),
            (
                datetime!(2024-05-06 07:08:09 UTC),
                "2024-05-06T07:08:09.000Z",
            ),
            (
                datetime!(2024-01-01 00:30 +01:00),
                "2023-12-31T23:30:00.000Z",
            ),
            (
                datetime!(0001-02-03 04:05:06.007 UTC),
                "0001-02-03T04:05:06.007Z",
            ),
        ] {
            let formatted = envelope_timestamp(moment);
            assert_eq!(formatted, expected);
            assert!(OffsetDateTime::parse(&formatted, &Rfc3339).is_ok());
        }
    }

    #[test]
    fn timestamp_without_a_utc_form_keeps_its_offset() {
        let formatted = envelope_timestamp(datetime!(9999-12-31 23:00:00.5 -05:30));
        assert_eq!(formatted, "9999-12-31T23:00:00.500-05:30");
    }
}
