//! Presets: the payload contracts of the products Herald's customers come
//! from, so a receiver written for one of them works unchanged.
//!
//! A preset decides three things together: the body (shaped from the event),
//! the extra headers naming the event, and the signing scheme. Without a
//! preset an endpoint gets Herald's own envelope ([`crate::envelope`]).
//!
//! - `kirisan` (Kirisan webhooks): top-level `event`, `device`, `channel`,
//!   `sender`, `message`, `timestamp`; `X-Kirisan-Event` and
//!   `X-Kirisan-Device`; the secret in `X-Webhook-Secret`.
//! - `kaanha` (Kaanha events webhook API): exactly `{event, organizationId,
//!   timestamp, data}` with camelCase `data` and millisecond ISO timestamps;
//!   `X-Kaanha-Signature: sha256=<hex>` over the raw body.
//! - `kapso` (Kapso WhatsApp webhooks): `whatsapp.*` event names, a body of
//!   `message`, `conversation` and `whatsapp_config`, `test: true` on tests,
//!   `X-Webhook-Event`; `X-Webhook-Signature: <hex>` over the raw body.
//!   `X-Idempotency-Key` is the delivery id, which Herald sends on every
//!   delivery and repeats on every retry.
//!
//! Design decisions:
//! - Shaping never fails. An event's `data` is whatever its source sent, so
//!   every field is looked up defensively: a missing or mistyped field becomes
//!   `null` (lists a receiver iterates, such as `tags`, become `[]`).
//! - The body is written by hand from an ordered tree, like the envelope: key
//!   order is part of what is signed, and numbers copied from `data` keep
//!   their exact text (a 128-bit amount is not rounded through an `f64`).
//! - Herald's own headers (`X-Herald-Event`, `X-Idempotency-Key`...) are sent
//!   as well: they name Herald's event type, so tooling that reads them keeps
//!   working whatever the preset renames.
//! - A preset owns the endpoint's signing: [`Preset::signing_scheme`] is the
//!   only scheme its deliveries are signed with.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::channel::Channel;
use crate::envelope::{envelope_body, envelope_timestamp};
use crate::event::Event;
use crate::excerpt::excerpt;
use crate::signing::SigningScheme;

/// `X-Kirisan-Event`: the event name, for Kirisan receivers.
pub const KIRISAN_EVENT_HEADER: &str = "X-Kirisan-Event";
/// `X-Kirisan-Device`: the device id, for Kirisan receivers.
pub const KIRISAN_DEVICE_HEADER: &str = "X-Kirisan-Device";
/// The header Kaanha receivers read the `sha256=<hex>` signature from.
pub const KAANHA_SIGNATURE_HEADER: &str = "X-Kaanha-Signature";
/// The header Kapso receivers read the hex signature from.
pub const KAPSO_SIGNATURE_HEADER: &str = "X-Webhook-Signature";
/// The header Kapso receivers read the event name from.
pub const KAPSO_EVENT_HEADER: &str = "X-Webhook-Event";

/// A built-in payload contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    Kirisan,
    Kaanha,
    Kapso,
}

/// A preset name that is not one of [`Preset::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown preset {value:?}: expected one of kirisan, kaanha, kapso, or empty for Herald's own envelope"
)]
pub struct PresetError {
    /// Excerpt of the refused name.
    pub value: String,
}

impl Preset {
    /// Every preset, in the order the console lists them.
    pub const ALL: [Preset; 3] = [Preset::Kirisan, Preset::Kaanha, Preset::Kapso];

    /// The configuration name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Kirisan => "kirisan",
            Preset::Kaanha => "kaanha",
            Preset::Kapso => "kapso",
        }
    }

    /// The preset called `name`; the empty name means none (Herald's own
    /// envelope).
    pub fn parse(name: &str) -> Result<Option<Preset>, PresetError> {
        if name.is_empty() {
            return Ok(None);
        }
        Preset::ALL
            .into_iter()
            .find(|preset| preset.as_str() == name)
            .map(Some)
            .ok_or_else(|| PresetError {
                value: excerpt(name),
            })
    }

    /// One line saying what the preset sends, for people choosing one.
    #[must_use]
    pub const fn summary(self) -> &'static str {
        match self {
            Preset::Kirisan => {
                "Kirisan-compatible: event, device, channel, sender, message, timestamp; \
                 X-Kirisan-Event, X-Kirisan-Device and the secret in X-Webhook-Secret"
            }
            Preset::Kaanha => {
                "Kaanha-compatible: {event, organizationId, timestamp, data} in camelCase; \
                 X-Kaanha-Signature: sha256=<hex>"
            }
            Preset::Kapso => {
                "Kapso-compatible: whatsapp.* events with message, conversation and \
                 whatsapp_config; X-Webhook-Signature: <hex>, X-Idempotency-Key, test: true"
            }
        }
    }

    /// The only scheme this preset's deliveries are signed with.
    #[must_use]
    pub fn signing_scheme(self) -> SigningScheme {
        match self {
            Preset::Kirisan => SigningScheme::SharedSecret,
            Preset::Kaanha => SigningScheme::Sha256Hex {
                header: KAANHA_SIGNATURE_HEADER.to_owned(),
            },
            Preset::Kapso => SigningScheme::Hex {
                header: KAPSO_SIGNATURE_HEADER.to_owned(),
            },
        }
    }

    /// Headers this preset sets itself, which an endpoint's custom headers
    /// may not take.
    #[must_use]
    pub const fn header_names(self) -> &'static [&'static str] {
        match self {
            Preset::Kirisan => &[KIRISAN_EVENT_HEADER, KIRISAN_DEVICE_HEADER],
            Preset::Kaanha => &[KAANHA_SIGNATURE_HEADER],
            Preset::Kapso => &[KAPSO_EVENT_HEADER, KAPSO_SIGNATURE_HEADER],
        }
    }

    /// The event name this preset's receivers see for `event`.
    ///
    /// Kapso names WhatsApp events `whatsapp.*`; events from other channels
    /// and types Kapso has no name for keep Herald's name, so a Kapso
    /// receiver never takes a Telegram message for a WhatsApp one.
    #[must_use]
    pub fn event_name(self, event: &Event) -> String {
        match self {
            Preset::Kirisan | Preset::Kaanha => event.event_type.as_str().to_owned(),
            Preset::Kapso => kapso_event_name(event)
                .unwrap_or(event.event_type.as_str())
                .to_owned(),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What one delivery sends: the body, the headers the preset adds (the
/// signature comes later, over `body`), and the event name the receiver sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub event_name: String,
}

/// Shapes `event` for an endpoint with `preset` (`None`: Herald's envelope);
/// `test` marks a test delivery.
#[must_use]
pub fn shape(preset: Option<Preset>, event: &Event, test: bool) -> Shaped {
    let event_name = match preset {
        Some(preset) => preset.event_name(event),
        None => event.event_type.as_str().to_owned(),
    };
    let data = Json::parse(&event.data);
    let (body, headers) = match preset {
        None => (envelope_body(event, test), Vec::new()),
        Some(Preset::Kirisan) => {
            let mut headers = vec![(KIRISAN_EVENT_HEADER.to_owned(), event_name.clone())];
            if let Some(device_id) = &event.device_id {
                headers.push((KIRISAN_DEVICE_HEADER.to_owned(), device_id.to_string()));
            }
            (kirisan_body(event, &event_name, &data, test), headers)
        }
        Some(Preset::Kaanha) => (kaanha_body(event, &event_name, &data), Vec::new()),
        Some(Preset::Kapso) => (
            kapso_body(event, &event_name, &data, test),
            vec![(KAPSO_EVENT_HEADER.to_owned(), event_name.clone())],
        ),
    };
    Shaped {
        body,
        headers,
        event_name,
    }
}

// Kirisan

/// Message status events: Kirisan's "Message status".
const STATUS_TYPES: [&str; 4] = [
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
];

fn kirisan_body(event: &Event, event_name: &str, data: &Json, test: bool) -> Vec<u8> {
    let mut fields = vec![
        ("event", Json::string(event_name)),
        (
            "device",
            event
                .device_id
                .as_ref()
                .map_or(Json::Null, |device| Json::string(device.as_str())),
        ),
        ("channel", Json::string(event.channel.as_str())),
    ];
    let event_type = event.event_type.as_str();
    if event_type == "message.received" {
        fields.push((
            "sender",
            Json::object(vec![
                ("id", data.get("from").cloned_or_null()),
                ("name", contact_name(data)),
            ]),
        ));
        fields.push((
            "message",
            Json::object(vec![
                ("id", data.get("message_id").cloned_or_null()),
                ("type", message_type(data)),
                ("text", data.get("text").cloned_or_null()),
            ]),
        ));
    } else if event_type == "form.submitted" {
        fields.push((
            "sender",
            Json::object(vec![
                ("id", data.get("from").cloned_or_null()),
                ("name", contact_name(data)),
            ]),
        ));
        fields.push(("message", Json::Null));
        fields.push((
            "submission",
            Json::object(vec![
                ("form_id", data.get("form_id").cloned_or_null()),
                ("answers", data.get("answers").cloned_or_null()),
                ("submitted_at", data.get("submitted_at").cloned_or_null()),
            ]),
        ));
    } else if STATUS_TYPES.contains(&event_type) {
        // The message was sent by the device named in `device`.
        fields.push(("sender", Json::Null));
        fields.push((
            "message",
            Json::object(vec![
                ("id", data.get("message_id").cloned_or_null()),
                ("status", message_status(event_type, data)),
                ("recipient", data.get("to").cloned_or_null()),
                ("error", first_error(data)),
            ]),
        ));
    } else {
        fields.push((
            "sender",
            data.get("from")
                .or_else(|| data.get("phone"))
                .map_or(Json::Null, |id| {
                    Json::object(vec![("id", id.clone()), ("name", contact_name(data))])
                }),
        ));
        fields.push(("message", Json::Null));
        fields.push(("data", data.clone()));
    }
    fields.push((
        "timestamp",
        Json::string(&envelope_timestamp(event.occurred_at)),
    ));
    if test {
        fields.push(("test", Json::Bool(true)));
    }
    Json::object(fields).to_bytes()
}

// Kaanha

fn kaanha_body(event: &Event, event_name: &str, data: &Json) -> Vec<u8> {
    let event_type = event.event_type.as_str();
    let shaped = if event_type == "message.received" {
        Json::object(vec![
            ("messageId", data.get("message_id").cloned_or_null()),
            (
                "conversationId",
                data.get("conversation_id").cloned_or_null(),
            ),
            (
                "contact",
                Json::object(vec![
                    ("id", contact_id(data)),
                    ("phone", phone(data.get("from"))),
                    ("name", contact_name(data)),
                    ("tags", list_or_empty(data.get("tags"))),
                ]),
            ),
            (
                "message",
                Json::object(vec![
                    ("type", message_type(data)),
                    ("text", data.get("text").cloned_or_null()),
                    ("timestamp", source_timestamp(event, data)),
                ]),
            ),
        ])
    } else if STATUS_TYPES.contains(&event_type) {
        Json::object(vec![
            ("messageId", data.get("message_id").cloned_or_null()),
            (
                "conversationId",
                data.get("conversation_id").cloned_or_null(),
            ),
            (
                "contact",
                Json::object(vec![
                    ("id", contact_id(data)),
                    ("phone", phone(data.get("to"))),
                ]),
            ),
            ("status", message_status(event_type, data)),
            ("timestamp", source_timestamp(event, data)),
            ("error", first_error(data)),
        ])
    } else if event_type == "contact.created" || event_type == "contact.updated" {
        let mut contact = vec![
            ("id", contact_id(data)),
            ("phone", phone(data.get("phone"))),
            ("name", data.get("name").cloned_or_null()),
            ("email", data.get("email").cloned_or_null()),
            ("tags", list_or_empty(data.get("tags"))),
            ("optedIn", opted_in(data)),
        ];
        let mut fields = Vec::new();
        if event_type == "contact.created" {
            contact.push(("createdAt", iso_millis(data.get("created_at"))));
            fields.push(("contact", Json::object(contact)));
        } else {
            contact.push(("updatedAt", iso_millis(data.get("updated_at"))));
            fields.push(("contact", Json::object(contact)));
            fields.push(("changed", camel_case_values(data.get("changed"))));
        }
        Json::object(fields)
    } else if event_type == "contact.opted_out" {
        Json::object(vec![
            (
                "contact",
                Json::object(vec![
                    ("id", contact_id(data)),
                    ("phone", phone(data.get("phone"))),
                ]),
            ),
            ("reason", data.get("reason").cloned_or_null()),
            ("optedOutAt", iso_millis(data.get("opted_out_at"))),
        ])
    } else {
        camel_case_keys(data)
    };
    Json::object(vec![
        ("event", Json::string(event_name)),
        ("organizationId", Json::string(event.tenant_id.as_str())),
        (
            "timestamp",
            Json::string(&envelope_timestamp(event.occurred_at)),
        ),
        ("data", shaped),
    ])
    .to_bytes()
}

/// `data` with every object key in camelCase and every `*_at` timestamp in
/// the millisecond ISO form; other values unchanged.
fn camel_case_keys(value: &Json) -> Json {
    match value {
        Json::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let value = if key.ends_with("_at") {
                        iso_millis(Some(value))
                    } else {
                        camel_case_keys(value)
                    };
                    (camel_case(key), value)
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(camel_case_keys).collect()),
        other => other.clone(),
    }
}

/// A list of field names (`changed`) in camelCase, as the receiver sees
/// those fields.
fn camel_case_values(value: Option<&Json>) -> Json {
    match value {
        Some(Json::Array(items)) => Json::Array(
            items
                .iter()
                .map(|item| match item {
                    Json::String(name) => Json::String(camel_case(name)),
                    other => other.clone(),
                })
                .collect(),
        ),
        _ => Json::Array(Vec::new()),
    }
}

fn camel_case(key: &str) -> String {
    let mut camel = String::with_capacity(key.len());
    let mut upper = false;
    for character in key.chars() {
        if character == '_' && !camel.is_empty() {
            upper = true;
        } else if upper {
            camel.extend(character.to_uppercase());
            upper = false;
        } else {
            camel.push(character);
        }
    }
    if upper {
        camel.push('_');
    }
    camel
}

fn opted_in(data: &Json) -> Json {
    match data.get("opted_in") {
        Some(Json::Bool(value)) => Json::Bool(*value),
        _ => Json::Null,
    }
}

// Kapso

/// Kapso's name for a WhatsApp event Herald knows, if Kapso has one.
fn kapso_event_name(event: &Event) -> Option<&'static str> {
    if !matches!(event.channel, Channel::Whatsapp | Channel::Waba) {
        return None;
    }
    match event.event_type.as_str() {
        "message.received" => Some("whatsapp.message.received"),
        "message.sent" => Some("whatsapp.message.sent"),
        "message.delivered" => Some("whatsapp.message.delivered"),
        "message.read" => Some("whatsapp.message.read"),
        "message.failed" => Some("whatsapp.message.failed"),
        "conversation.opened" => Some("whatsapp.conversation.created"),
        "conversation.resolved" => Some("whatsapp.conversation.ended"),
        _ => None,
    }
}

fn kapso_body(event: &Event, event_name: &str, data: &Json, test: bool) -> Vec<u8> {
    let event_type = event.event_type.as_str();
    let whatsapp_config = || {
        Json::object(vec![
            (
                "id",
                event
                    .device_id
                    .as_ref()
                    .map_or(Json::Null, |device| Json::string(device.as_str())),
            ),
            (
                "display_phone_number",
                if event_type == "message.received" {
                    phone(data.get("to"))
                } else {
                    Json::Null
                },
            ),
        ])
    };
    let mut fields = vec![("event", Json::string(event_name))];
    let is_kapso_name = event_name.starts_with("whatsapp.");
    if is_kapso_name && event_type.starts_with("message.") {
        let inbound = event_type == "message.received";
        fields.push((
            "message",
            Json::object(vec![
                ("id", data.get("message_id").cloned_or_null()),
                ("message_type", message_type(data)),
                ("content", data.get("text").cloned_or_null()),
                (
                    "direction",
                    Json::string(if inbound { "inbound" } else { "outbound" }),
                ),
                ("status", message_status(event_type, data)),
                (
                    "phone_number",
                    phone(data.get(if inbound { "from" } else { "to" })),
                ),
                ("created_at", source_timestamp(event, data)),
                ("error", first_error(data)),
            ]),
        ));
        fields.push((
            "conversation",
            Json::object(vec![
                ("id", data.get("conversation_id").cloned_or_null()),
                (
                    "phone_number",
                    phone(data.get(if inbound { "from" } else { "to" })),
                ),
                ("status", Json::string("active")),
            ]),
        ));
        fields.push(("whatsapp_config", whatsapp_config()));
    } else if is_kapso_name {
        let opened = event_type == "conversation.opened";
        fields.push((
            "conversation",
            Json::object(vec![
                ("id", data.get("conversation_id").cloned_or_null()),
                ("phone_number", phone(data.get("from"))),
                (
                    "status",
                    Json::string(if opened { "active" } else { "ended" }),
                ),
                (
                    if opened { "created_at" } else { "ended_at" },
                    iso_millis(data.get(if opened { "opened_at" } else { "resolved_at" })),
                ),
            ]),
        ));
        fields.push(("whatsapp_config", whatsapp_config()));
    } else {
        fields.push(("data", data.clone()));
    }
    if test {
        fields.push(("test", Json::Bool(true)));
    }
    Json::object(fields).to_bytes()
}

// Field lookups shared by the presets

/// The contact's display name: WhatsApp's `contacts[0].profile.name`, else
/// a top-level `name`.
fn contact_name(data: &Json) -> Json {
    data.get("contacts")
        .and_then(|contacts| contacts.index(0))
        .and_then(|contact| contact.get("profile"))
        .and_then(|profile| profile.get("name"))
        .or_else(|| data.get("name"))
        .cloned_or_null()
}

/// The source's `contact_id`, else the contact's WhatsApp id
/// (`contacts[0].wa_id`), else the phone number the event names: receivers
/// key contacts by id, and the number is the one id every channel has.
fn contact_id(data: &Json) -> Json {
    data.get("contact_id")
        .or_else(|| {
            data.get("contacts")
                .and_then(|contacts| contacts.index(0))
                .and_then(|contact| contact.get("wa_id"))
        })
        .or_else(|| data.get("from"))
        .or_else(|| data.get("to"))
        .or_else(|| data.get("phone"))
        .cloned_or_null()
}

/// The message type the source reported (`original.type`, else `type`);
/// `text` when there is only a text.
fn message_type(data: &Json) -> Json {
    match data
        .get("original")
        .and_then(|original| original.get("type"))
        .or_else(|| data.get("type"))
    {
        Some(value) => value.clone(),
        None if matches!(data.get("text"), Some(Json::String(_))) => Json::string("text"),
        None => Json::Null,
    }
}

/// `status` from the data, else the one the event type names.
fn message_status(event_type: &str, data: &Json) -> Json {
    match data.get("status") {
        Some(status) => status.clone(),
        None => Json::string(event_type.strip_prefix("message.").unwrap_or(event_type)),
    }
}

/// The first of the source's `errors` (WhatsApp's `original.errors`).
fn first_error(data: &Json) -> Json {
    data.get("original")
        .and_then(|original| original.get("errors"))
        .or_else(|| data.get("errors"))
        .and_then(|errors| errors.index(0))
        .cloned_or_null()
}

/// A phone number in E.164 form: WhatsApp writes `16505551234`, receivers of
/// these products expect `+16505551234`. Anything else is passed unchanged.
fn phone(value: Option<&Json>) -> Json {
    match value {
        Some(Json::String(number))
            if !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            Json::String(format!("+{number}"))
        }
        Some(other) => other.clone(),
        None => Json::Null,
    }
}

fn list_or_empty(value: Option<&Json>) -> Json {
    match value {
        Some(list @ Json::Array(_)) => list.clone(),
        _ => Json::Array(Vec::new()),
    }
}

/// When the source says the message happened (`original.timestamp`, unix
/// seconds), else when the event occurred.
fn source_timestamp(event: &Event, data: &Json) -> Json {
    match data
        .get("original")
        .and_then(|original| original.get("timestamp"))
        .and_then(unix_seconds)
    {
        Some(moment) => Json::String(envelope_timestamp(moment)),
        None => Json::String(envelope_timestamp(event.occurred_at)),
    }
}

fn unix_seconds(value: &Json) -> Option<OffsetDateTime> {
    let text = match value {
        Json::String(text) | Json::Number(text) => text,
        _ => return None,
    };
    let seconds: i64 = text.parse().ok()?;
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// An RFC 3339 or unix-seconds timestamp in the millisecond ISO form
/// (`2026-03-24T10:30:00.000Z`); anything else unchanged, a missing one null.
fn iso_millis(value: Option<&Json>) -> Json {
    let Some(value) = value else {
        return Json::Null;
    };
    let parsed = match value {
        Json::String(text) => OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .or_else(|| unix_seconds(value)),
        Json::Number(_) => unix_seconds(value),
        _ => None,
    };
    match parsed {
        Some(moment) => Json::String(envelope_timestamp(moment)),
        None => value.clone(),
    }
}

// An ordered JSON tree that keeps numbers' text

/// JSON as the source wrote it: object keys in their order, numbers as
/// their exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// An object's members in order, each value still raw.
struct RawMembers(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = RawMembers;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMembers, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push((key, value));
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

impl Json {
    /// The tree of a raw value; text that is not JSON (an event's `data`
    /// always is) reads as null rather than failing a delivery.
    fn parse(raw: &RawValue) -> Json {
        let text = raw.get().trim();
        match text.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<RawMembers>(text).map_or(Json::Null, |members| {
                Json::Object(
                    members
                        .0
                        .into_iter()
                        .map(|(key, value)| (key, Json::parse(&value)))
                        .collect(),
                )
            }),
            Some(b'[') => serde_json::from_str::<Vec<Box<RawValue>>>(text)
                .map_or(Json::Null, |items| {
                    Json::Array(items.iter().map(|item| Json::parse(item)).collect())
                }),
            Some(b'"') => serde_json::from_str::<String>(text).map_or(Json::Null, Json::String),
            Some(b't') => Json::Bool(true),
            Some(b'f') => Json::Bool(false),
            Some(b'-' | b'0'..=b'9') => Json::Number(text.to_owned()),
            _ => Json::Null,
        }
    }

    fn string(value: &str) -> Json {
        Json::String(value.to_owned())
    }

    fn object(fields: Vec<(&str, Json)>) -> Json {
        Json::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        )
    }

    /// The member `key` of an object; the first one when the source repeated
    /// it.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    fn index(&self, index: usize) -> Option<&Json> {
        match self {
            Json::Array(items) => items.get(index),
            _ => None,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        self.write(&mut out);
        out.into_bytes()
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Number(text) => out.push_str(text),
            Json::String(text) => write_string(text, out),
            Json::Array(items) => {
                out.push('[');
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (position, (key, value)) in fields.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

trait OrNull {
    fn cloned_or_null(self) -> Json;
}

impl OrNull for Option<&Json> {
    fn cloned_or_null(self) -> Json {
        self.cloned().unwrap_or(Json::Null)
    }
}

/// A JSON string literal, escaped as `JSON.stringify` does.
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CATALOG, EventType};
    use crate::event::parse_data;
    use crate::event::tests::sample_event;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn event(event_type: &str, data: &str) -> Event {
        Event {
            event_type: EventType::parse(event_type).unwrap(),
            data: parse_data(data.as_bytes()).unwrap(),
            ..sample_event()
        }
    }

    fn catalog_event(name: &str) -> Event {
        let entry = CATALOG.iter().find(|entry| entry.name == name).unwrap();
        event(entry.name, entry.sample_data)
    }

    fn body(preset: Preset, event: &Event, test: bool) -> Value {
        serde_json::from_slice(&shape(Some(preset), event, test).body).unwrap()
    }

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn names_parse_and_the_empty_name_is_none() {
        for preset in Preset::ALL {
            assert_eq!(Preset::parse(preset.as_str()), Ok(Some(preset)));
        }
        assert_eq!(Preset::parse(""), Ok(None));
        let error = Preset::parse("Kaanha").unwrap_err();
        assert!(error.to_string().contains("\"Kaanha\""), "{error}");
    }

    #[test]
    fn without_a_preset_the_body_is_heralds_envelope() {
        let event = sample_event();
        let shaped = shape(None, &event, true);
        assert_eq!(shaped.body, envelope_body(&event, true));
        assert!(shaped.headers.is_empty());
        assert_eq!(shaped.event_name, "message.received");
    }

    #[test]
    fn kirisan_incoming_message_exact_body_and_headers() {
        let shaped = shape(
            Some(Preset::Kirisan),
            &catalog_event("message.received"),
            false,
        );
        assert_eq!(
            String::from_utf8(shaped.body).unwrap(),
            concat!(
                r#"{"event":"message.received","device":"dev_01jabcdefghjkmnpqrstvwxyz2","#,
                r#""channel":"whatsapp","sender":{"id":"16505551234","name":"Maria Silva"},"#,
                r#""message":{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUQ2RjI4QzE5RTBBNDk1MwA=","#,
                r#""type":"text","text":"Hi! Is my order #4521 on its way?"},"#,
                r#""timestamp":"2024-05-06T05:08:09.123Z"}"#
            )
        );
        assert_eq!(
            shaped.headers,
            vec![
                ("X-Kirisan-Event".to_owned(), "message.received".to_owned()),
                (
                    "X-Kirisan-Device".to_owned(),
                    "dev_01jabcdefghjkmnpqrstvwxyz2".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn kirisan_submission_and_status_shapes() {
        let submission = body(Preset::Kirisan, &catalog_event("form.submitted"), true);
        assert_eq!(
            keys(&submission),
            [
                "channel",
                "device",
                "event",
                "message",
                "sender",
                "submission",
                "test",
                "timestamp"
            ]
        );
        assert_eq!(submission["submission"]["form_id"], "frm_delivery_feedback");
        assert_eq!(submission["submission"]["answers"]["rating"], "5");
        assert_eq!(submission["sender"]["id"], "16505551234");
        assert!(submission["message"].is_null());
        assert_eq!(submission["test"], true);

        for status in STATUS_TYPES {
            let body = body(Preset::Kirisan, &catalog_event(status), false);
            assert_eq!(body["event"], status);
            assert!(body["sender"].is_null());
            assert_eq!(
                body["message"]["status"],
                status.strip_prefix("message.").unwrap()
            );
            assert_eq!(body["message"]["recipient"], "16505551234");
        }
        let failed = body(Preset::Kirisan, &catalog_event("message.failed"), false);
        assert_eq!(failed["message"]["error"]["code"], 131026);
    }

    #[test]
    fn kirisan_without_a_device_sends_no_device_header() {
        let mut event = catalog_event("contact.created");
        event.device_id = None;
        let shaped = shape(Some(Preset::Kirisan), &event, false);
        assert_eq!(
            shaped.headers,
            vec![("X-Kirisan-Event".to_owned(), "contact.created".to_owned())]
        );
        let body: Value = serde_json::from_slice(&shaped.body).unwrap();
        assert!(body["device"].is_null());
        assert_eq!(body["sender"]["id"], "16505551234");
        assert_eq!(body["data"]["contact_id"], "ct_5v8q2w");
    }

    #[test]
    fn kaanha_message_received_matches_the_seed_example() {
        let shaped = shape(
            Some(Preset::Kaanha),
            &catalog_event("message.received"),
            true,
        );
        assert!(shaped.headers.is_empty());
        let body: Value = serde_json::from_slice(&shaped.body).unwrap();
        assert_eq!(
            body,
            json!({
                "event": "message.received",
                "organizationId": "org_01jabcdefghjkmnpqrstvwxyz1",
                "timestamp": "2024-05-06T05:08:09.123Z",
                "data": {
                    "messageId": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUQ2RjI4QzE5RTBBNDk1MwA=",
                    "conversationId": null,
                    "contact": {
                        "id": "16505551234",
                        "phone": "+16505551234",
                        "name": "Maria Silva",
                        "tags": []
                    },
                    "message": {
                        "type": "text",
                        "text": "Hi! Is my order #4521 on its way?",
                        "timestamp": "2025-11-25T12:00:00.000Z"
                    }
                }
            })
        );
        assert!(
            String::from_utf8(shaped.body)
                .unwrap()
                .starts_with(r#"{"event":"message.received","organizationId":"#)
        );
    }

    #[test]
    fn kaanha_contact_created_matches_the_seed_example() {
        let event = event(
            "contact.created",
            r#"{"contact_id":"ct_1","phone":"919876543210","name":"Jane Smith","email":"jane@example.com","tags":[],"opted_in":true,"created_at":"2026-03-24T10:30:00Z"}"#,
        );
        assert_eq!(
            body(Preset::Kaanha, &event, false)["data"],
            json!({
                "contact": {
                    "id": "ct_1",
                    "phone": "+919876543210",
                    "name": "Jane Smith",
                    "email": "jane@example.com",
                    "tags": [],
                    "optedIn": true,
                    "createdAt": "2026-03-24T10:30:00.000Z"
                }
            })
        );
    }

    #[test]
    fn kaanha_other_types_are_camel_case_with_millisecond_timestamps() {
        let broadcast = body(Preset::Kaanha, &catalog_event("broadcast.completed"), false);
        assert_eq!(
            broadcast["data"],
            json!({
                "broadcastId": "bc_spring_sale",
                "name": "Spring sale",
                "recipients": 1250,
                "sent": 1243,
                "failed": 7,
                "completedAt": "2026-11-25T12:00:00.000Z"
            })
        );
        let updated = body(Preset::Kaanha, &catalog_event("contact.updated"), false);
        assert_eq!(updated["data"]["changed"], json!(["name"]));
        assert_eq!(updated["data"]["contact"]["name"], "Maria Silva-Costa");
        let payment = body(Preset::Kaanha, &catalog_event("payment.completed"), false);
        assert_eq!(payment["data"]["orderRef"], "4521");
        for entry in CATALOG {
            let body = body(Preset::Kaanha, &catalog_event(entry.name), true);
            assert_eq!(
                keys(&body),
                ["data", "event", "organizationId", "timestamp"],
                "{}",
                entry.name
            );
            assert_eq!(body["event"], entry.name);
        }
    }

    #[test]
    fn camel_case_keeps_odd_keys_readable() {
        assert_eq!(camel_case("order_ref"), "orderRef");
        assert_eq!(camel_case("_private"), "_private");
        assert_eq!(camel_case("trailing_"), "trailing_");
        assert_eq!(camel_case("a__b"), "aB");
        assert_eq!(camel_case("already"), "already");
    }

    #[test]
    fn kapso_names_whatsapp_events_and_keeps_others() {
        for (herald, kapso) in [
            ("message.received", "whatsapp.message.received"),
            ("message.delivered", "whatsapp.message.delivered"),
            ("message.read", "whatsapp.message.read"),
            ("message.failed", "whatsapp.message.failed"),
            ("message.sent", "whatsapp.message.sent"),
            ("conversation.opened", "whatsapp.conversation.created"),
            ("conversation.resolved", "whatsapp.conversation.ended"),
            ("form.submitted", "form.submitted"),
            ("payment.completed", "payment.completed"),
        ] {
            let shaped = shape(Some(Preset::Kapso), &catalog_event(herald), false);
            assert_eq!(shaped.event_name, kapso, "{herald}");
            assert_eq!(
                shaped.headers,
                vec![("X-Webhook-Event".to_owned(), kapso.to_owned())]
            );
        }
        let mut telegram = catalog_event("message.received");
        telegram.channel = Channel::Telegram;
        assert_eq!(Preset::Kapso.event_name(&telegram), "message.received");
    }

    #[test]
    fn kapso_message_body_and_test_flag() {
        let received = body(Preset::Kapso, &catalog_event("message.received"), true);
        assert_eq!(
            received,
            json!({
                "event": "whatsapp.message.received",
                "message": {
                    "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUQ2RjI4QzE5RTBBNDk1MwA=",
                    "message_type": "text",
                    "content": "Hi! Is my order #4521 on its way?",
                    "direction": "inbound",
                    "status": "received",
                    "phone_number": "+16505551234",
                    "created_at": "2025-11-25T12:00:00.000Z",
                    "error": null
                },
                "conversation": {"id": null, "phone_number": "+16505551234", "status": "active"},
                "whatsapp_config": {
                    "id": "dev_01jabcdefghjkmnpqrstvwxyz2",
                    "display_phone_number": "+15550783881"
                },
                "test": true
            })
        );
        let failed = body(Preset::Kapso, &catalog_event("message.failed"), false);
        assert_eq!(failed["message"]["direction"], "outbound");
        assert_eq!(failed["message"]["error"]["title"], "Message undeliverable");
        assert!(failed.get("test").is_none());
        let other = body(Preset::Kapso, &catalog_event("form.submitted"), false);
        assert_eq!(keys(&other), ["data", "event"]);
    }

    #[test]
    fn presets_fix_their_signing() {
        assert_eq!(
            Preset::Kirisan.signing_scheme(),
            SigningScheme::SharedSecret
        );
        assert_eq!(
            Preset::Kaanha.signing_scheme().header_name(),
            Some("X-Kaanha-Signature")
        );
        assert_eq!(Preset::Kapso.signing_scheme().as_str(), "hex");
        for preset in Preset::ALL {
            preset.signing_scheme().validate().unwrap();
        }
    }

    #[test]
    fn numbers_and_escapes_survive_byte_for_byte() {
        let event = event(
            "custom.thing",
            r#"{"n":12345678901234567890123,"f":1.0e-7,"s":"a\"b\\c\n\u0001é"}"#,
        );
        let text = String::from_utf8(shape(Some(Preset::Kapso), &event, false).body).unwrap();
        assert!(
            text.contains(
                r#""data":{"n":12345678901234567890123,"f":1.0e-7,"s":"a\"b\\c\n\u0001é"}"#
            ),
            "{text}"
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |value| value.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("from".to_owned()),
                        Just("to".to_owned()),
                        Just("original".to_owned()),
                        Just("contacts".to_owned()),
                        Just("errors".to_owned()),
                        Just("created_at".to_owned()),
                        Just("tags".to_owned()),
                        "[a-z_]{0,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_data_gives_valid_json_for_every_preset(
            data in arbitrary_json(),
            type_index in 0..CATALOG.len() + 1,
            test in any::<bool>(),
        ) {
            let name = CATALOG.get(type_index).map_or("custom.thing", |entry| entry.name);
            let event = event(name, &data.to_string());
            for preset in Preset::ALL {
                let shaped = shape(Some(preset), &event, test);
                let parsed: Value = serde_json::from_slice(&shaped.body)
                    .map_err(|error| TestCaseError::fail(format!("{preset}: {error}")))?;
                prop_assert!(parsed.is_object());
                prop_assert_eq!(parsed["event"].as_str(), Some(shaped.event_name.as_str()));
            }
        }
    }
}
