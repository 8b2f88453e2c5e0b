//! Meta's WhatsApp Cloud API (WABA) notifications, normalised.
//!
//! One POST is a batch: every `entry[].changes[]`, and in each change's
//! `value` every `messages[]` and `statuses[]` item, becomes one event.
//! - messages → `message.received`, except `type: "system"` (a user changed
//!   number or business-scoped id) → `contact.updated`;
//! - statuses `sent` / `delivered` / `read` / `failed` → `message.sent` /
//!   `.delivered` / `.read` / `.failed`; `played` (a voice message was
//!   played, which implies read) → `message.read` with `"status": "played"`;
//!   any other status → `waba.status.<status>`;
//! - a change whose `field` is not `messages`, or that holds neither
//!   messages nor statuses, is kept whole as `waba.<field>`.
//!
//! The `status` field is trusted over anything else: Meta's own documentation
//! has a "read" example whose JSON says `sent`, and Herald publishes what the
//! JSON says. Keys: a message is `<wamid>:received`, a status
//! `<wamid>:<status>` (Meta retries and may send a status twice), or
//! `<wamid>:<status>:<recipient_participant_id>` for a group member's receipt
//! (every member of a group reads the same message); an item without an id is
//! keyed by the SHA-256 of its bytes, which a retry repeats.

use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use crate::normalise::{
    Data, NormalisedEvent, ParseError, catalog, channel_type, id_text, sha256_hex, source_ref,
    text, unix_time,
};

const EXPECTED: &str = "a WhatsApp Business Account notification";

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default)]
    field: Option<String>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChangeValue<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    statuses: Option<Vec<&'a RawValue>>,
}

/// Normalises one notification body (the raw bytes, already verified).
pub fn parse(body: &[u8]) -> Result<Vec<NormalisedEvent>, ParseError> {
    let notification: Notification<'_> =
        serde_json::from_slice(body).map_err(|error| ParseError::from_serde(EXPECTED, &error))?;
    // The events keep slices of the body as they are.
    herald_core::event::check_unicode_escapes(body).map_err(|_| ParseError::Missing {
        expected: EXPECTED,
        reason: "it holds a \\u escape that is not Unicode (a lone surrogate)",
    })?;
    let mut events = Vec::new();
    for change in notification.entry.iter().flat_map(|entry| &entry.changes) {
        let field = change.field.as_deref().unwrap_or("unknown");
        let Some(raw_value) = change.value else {
            continue;
        };
        let before = events.len();
        if field == "messages"
            && let Ok(value) = serde_json::from_str::<ChangeValue<'_>>(raw_value.get())
        {
            let metadata = value.metadata.map(parse_value).unwrap_or(Value::Null);
            let business = text(&metadata, "/display_phone_number");
            for message in value.messages.iter().flatten() {
                events.push(message_event(message, &value, business.clone())?);
            }
            for status in value.statuses.iter().flatten() {
                events.push(status_event(status, &value, business.clone())?);
            }
        }
        // Nothing of it was a message or a status: keep the change itself.
        if events.len() == before {
            events.push(change_event(field, raw_value)?);
        }
    }
    Ok(events)
}

/// Items are valid JSON already (they came out of the body as raw values).
fn parse_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

fn item_key(id: Option<&String>, suffix: &str, raw: &RawValue) -> String {
    match id {
        Some(id) => format!("{id}:{suffix}"),
        None => format!("sha256:{}:{suffix}", sha256_hex(raw.get().as_bytes())),
    }
}

/// A status's key: each group participant's receipt of one message is its
/// own event.
pub(crate) fn status_key(
    id: Option<&String>,
    state: Option<&str>,
    status: &Value,
    raw: &RawValue,
) -> String {
    let state = state.unwrap_or("unknown");
    match id_text(status, "/recipient_participant_id") {
        Some(participant) => item_key(id, &format!("{state}:{participant}"), raw),
        None => item_key(id, state, raw),
    }
}

fn message_event(
    raw: &RawValue,
    value: &ChangeValue<'_>,
    business: Option<String>,
) -> Result<NormalisedEvent, ParseError> {
    let message = parse_value(raw);
    let id = text(&message, "/id");
    let kind = text(&message, "/type");
    let event_type = match kind.as_deref() {
        Some("system") => catalog("contact.updated"),
        _ => catalog("message.received"),
    };
    let data = Data {
        message_id: id.clone(),
        // Users with a username may come without a phone number: their
        // business-scoped user id is then the only sender id.
        from: text(&message, "/from").or_else(|| text(&message, "/from_user_id")),
        to: business,
        text: message_text(&message, kind.as_deref()),
        original: Some(raw),
        metadata: value.metadata,
        contacts: value.contacts,
        ..Data::default()
    };
    Ok(NormalisedEvent {
        event_type,
        occurred_at: unix_time(message.get("timestamp")),
        source_key: item_key(id.as_ref(), "received", raw),
        source_ref: source_ref(id),
        data: data.encode()?,
    })
}

/// The text a person would read: the body, a media caption, or the title of
/// the button or list row they tapped.
fn message_text(message: &Value, kind: Option<&str>) -> Option<String> {
    match kind? {
        "text" => text(message, "/text/body"),
        "image" | "video" | "document" | "sticker" | "audio" => {
            text(message, &format!("/{}/caption", kind?))
        }
        "interactive" => text(message, "/interactive/button_reply/title")
            .or_else(|| text(message, "/interactive/list_reply/title")),
        "button" => text(message, "/button/text"),
        _ => None,
    }
}

fn status_event(
    raw: &RawValue,
    value: &ChangeValue<'_>,
    business: Option<String>,
) -> Result<NormalisedEvent, ParseError> {
    let status = parse_value(raw);
    let id = text(&status, "/id");
    let state = text(&status, "/status");
    let event_type = match state.as_deref() {
        Some("sent") => catalog("message.sent"),
        Some("delivered") => catalog("message.delivered"),
        Some("read" | "played") => catalog("message.read"),
        Some("failed") => catalog("message.failed"),
        Some(other) => channel_type("waba.status", other),
        None => channel_type("waba.status", "unknown"),
    };
    let data = Data {
        message_id: id.clone(),
        from: business,
        to: id_text(&status, "/recipient_id").or_else(|| text(&status, "/recipient_user_id")),
        status: state.clone(),
        original: Some(raw),
        metadata: value.metadata,
        contacts: value.contacts,
        ..Data::default()
    };
    Ok(NormalisedEvent {
        event_type,
        occurred_at: unix_time(status.get("timestamp")),
        source_key: status_key(id.as_ref(), state.as_deref(), &status, raw),
        source_ref: source_ref(id),
        data: data.encode()?,
    })
}

fn change_event(field: &str, raw: &RawValue) -> Result<NormalisedEvent, ParseError> {
    let data = Data {
        field: Some(field.to_owned()),
        original: Some(raw),
        ..Data::default()
    };
    Ok(NormalisedEvent {
        event_type: channel_type("waba", field),
        occurred_at: None,
        source_ref: None,
        source_key: format!("{}:sha256:{}", field, sha256_hex(raw.get().as_bytes())),
        data: data.encode()?,
    })
}
