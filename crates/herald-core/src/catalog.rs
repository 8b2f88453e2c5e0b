//! Event type names and the catalog of built-in types.
//!
//! An event type is a dot-separated lowercase name such as
//! `message.received`. Design decisions:
//! - The name is validated once, when an [`EventType`] is built, so code holding
//!   one never re-checks it, and its characters (`a-z`, `0-9`, `_`, `.`) are
//!   safe to put unescaped in JSON, HTTP headers and NATS subjects.
//! - [`EventType`] is an `Arc<str>`: subscriptions, the index and every event
//!   carry one, and cloning must not allocate.
//! - The catalog is a static table, not an enum: custom types (any valid name
//!   that is not in the catalog) travel through exactly the same code paths,
//!   and adding a catalog type is a one-line change.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::Channel;
use crate::excerpt::excerpt;
use crate::schema::DataSchema;

/// Longest event type name accepted, in bytes (names are ASCII).
pub const MAX_EVENT_TYPE_LEN: usize = 100;
/// Fewest dot-separated segments: a namespace and an action.
pub const MIN_EVENT_TYPE_SEGMENTS: usize = 2;
/// Most dot-separated segments.
pub const MAX_EVENT_TYPE_SEGMENTS: usize = 8;

/// One built-in event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The event type name.
    pub name: &'static str,
    /// What people call it: the name the dashboard and automation platforms
    /// show beside the type name. Seed 000's names where it had one; its
    /// "Message status" covers four types, told apart by the status.
    pub label: &'static str,
    /// The channels whose events can be of this type, so a form offers only
    /// the types the selected devices can produce.
    pub channels: &'static [Channel],
    /// One sentence saying when the event is emitted, shown to customers.
    pub description: &'static str,
    /// A realistic example of the event's `data` (a JSON object), for
    /// documentation and automation platforms that show what a trigger sends.
    pub sample_data: &'static str,
    /// The JSON Schema of `data` (see [`crate::schema`]): what Publish
    /// enforces, and what every channel parser's output satisfies.
    pub data_schema: &'static str,
}

/// The built-in event types, in the order the dashboard lists them.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "message.received",
        label: "Incoming Message",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: MESSAGE_RECEIVED_SCHEMA,
        description: "A contact sent a message to one of your devices.",
        sample_data: r#"{"message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUQ2RjI4QzE5RTBBNDk1MwA=","from":"16505551234","to":"15550783881","text":"Hi! Is my order #4521 on its way?","original":{"from":"16505551234","id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUQ2RjI4QzE5RTBBNDk1MwA=","timestamp":"1764072000","text":{"body":"Hi! Is my order #4521 on its way?"},"type":"text"},"contacts":[{"profile":{"name":"Maria Silva"},"wa_id":"16505551234"}]}"#,
    },
    CatalogEntry {
        name: "message.sent",
        label: "Message status: sent",
        channels: &[Channel::Whatsapp, Channel::Waba],
        data_schema: MESSAGE_STATUS_SCHEMA,
        description: "A message from one of your devices was accepted by the channel.",
        sample_data: r#"{"message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","to":"16505551234","status":"sent","original":{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","status":"sent","timestamp":"1764072005","recipient_id":"16505551234"}}"#,
    },
    CatalogEntry {
        name: "message.delivered",
        label: "Message status: delivered",
        channels: &[Channel::Whatsapp, Channel::Waba],
        data_schema: MESSAGE_STATUS_SCHEMA,
        description: "A message you sent reached the contact's phone.",
        sample_data: r#"{"message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","to":"16505551234","status":"delivered","original":{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","status":"delivered","timestamp":"1764072007","recipient_id":"16505551234"}}"#,
    },
    CatalogEntry {
        name: "message.read",
        label: "Message status: read",
        channels: &[Channel::Whatsapp, Channel::Waba],
        data_schema: MESSAGE_STATUS_SCHEMA,
        description: "The contact opened a message you sent.",
        sample_data: r#"{"message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","to":"16505551234","status":"read","original":{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","status":"read","timestamp":"1764072042","recipient_id":"16505551234"}}"#,
    },
    CatalogEntry {
        name: "message.failed",
        label: "Message status: failed",
        channels: &[Channel::Whatsapp, Channel::Waba],
        data_schema: MESSAGE_STATUS_SCHEMA,
        description: "A message you sent could not be delivered to the contact.",
        sample_data: r#"{"message_id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","to":"16505551234","status":"failed","original":{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDRDc2QTJFRjFCMkM4RDMA","status":"failed","timestamp":"1764072009","recipient_id":"16505551234","errors":[{"code":131026,"title":"Message undeliverable"}]}}"#,
    },
    CatalogEntry {
        name: "form.submitted",
        label: "Submission",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: FORM_SUBMITTED_SCHEMA,
        description: "A contact completed and submitted a form.",
        sample_data: r#"{"form_id":"frm_delivery_feedback","from":"16505551234","answers":{"rating":"5","comment":"Fast and friendly, thank you!"},"submitted_at":"2026-11-25T12:00:00Z"}"#,
    },
    CatalogEntry {
        name: "conversation.opened",
        label: "Conversation opened",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: CONVERSATION_OPENED_SCHEMA,
        description: "A new conversation with a contact was opened.",
        sample_data: r#"{"conversation_id":"conv_8f2k1m","from":"16505551234","origin":"user_initiated","opened_at":"2026-11-25T12:00:00Z"}"#,
    },
    CatalogEntry {
        name: "conversation.resolved",
        label: "Conversation resolved",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: CONVERSATION_RESOLVED_SCHEMA,
        description: "A conversation with a contact was marked as resolved.",
        sample_data: r#"{"conversation_id":"conv_8f2k1m","resolved_by":"agent@example.com","resolved_at":"2026-11-25T12:20:00Z"}"#,
    },
    CatalogEntry {
        name: "contact.created",
        label: "Contact created",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: CONTACT_CREATED_SCHEMA,
        description: "A new contact was added to your organization.",
        sample_data: r#"{"contact_id":"ct_5v8q2w","phone":"16505551234","name":"Maria Silva","created_at":"2026-11-25T12:00:00Z"}"#,
    },
    CatalogEntry {
        name: "contact.updated",
        label: "Contact updated",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: CONTACT_UPDATED_SCHEMA,
        description: "A contact's details were changed.",
        sample_data: r#"{"contact_id":"ct_5v8q2w","phone":"16505551234","name":"Maria Silva-Costa","changed":["name"]}"#,
    },
    CatalogEntry {
        name: "contact.opted_out",
        label: "Contact opted out",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: CONTACT_OPTED_OUT_SCHEMA,
        description: "A contact asked to stop receiving messages from you.",
        sample_data: r#"{"contact_id":"ct_5v8q2w","phone":"16505551234","reason":"STOP","opted_out_at":"2026-11-25T12:00:00Z"}"#,
    },
    CatalogEntry {
        name: "broadcast.completed",
        label: "Broadcast completed",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: BROADCAST_COMPLETED_SCHEMA,
        description: "A broadcast finished sending to all of its recipients.",
        sample_data: r#"{"broadcast_id":"bc_spring_sale","name":"Spring sale","recipients":1250,"sent":1243,"failed":7,"completed_at":"2026-11-25T12:00:00Z"}"#,
    },
    CatalogEntry {
        name: "payment.completed",
        label: "Payment completed",
        channels: &[Channel::Whatsapp, Channel::Telegram, Channel::Waba],
        data_schema: PAYMENT_COMPLETED_SCHEMA,
        description: "A contact completed a payment.",
        sample_data: r#"{"payment_id":"pay_3k9d7x","from":"16505551234","amount":"49.90","currency":"EUR","order_ref":"4521"}"#,
    },
    CatalogEntry {
        name: ENDPOINT_DISABLED,
        label: "Endpoint disabled",
        channels: &[Channel::Internal],
        data_schema: ENDPOINT_DISABLED_SCHEMA,
        description: "Herald disabled one of your webhook endpoints after repeated failures.",
        sample_data: r#"{"endpoint_id":"ep_01jd3m6b8q2w4e6r8t0y2u4i6o","name":"Orders","url":"https://hooks.example.com/herald","reason":"no successful delivery for 5 days","failing_since":"2026-11-20T12:00:00Z"}"#,
    },
];

/// The operational event type Herald itself emits when it auto-disables an
/// endpoint.
const ENDPOINT_DISABLED: &str = "endpoint.disabled";

// The schemas describe what Herald actually produces: the channel parsers
// leave out any normalised field the source does not carry, so the types a
// channel emits require no property, and a publisher may add properties of
// its own. `original`, `metadata` and `contacts` are the channel's own
// objects, unchanged, and so are not constrained.

const MESSAGE_RECEIVED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "message.received data",
  "type": "object",
  "properties": {
    "message_id": {"type": "string", "description": "The channel's message id: a wamid, a Telegram message_id or callback id, a gateway message id."},
    "chat_id": {"type": "string", "description": "Telegram: the chat the message is in."},
    "from": {"type": "string", "description": "The sender: a phone number on WhatsApp, a user id on Telegram."},
    "to": {"type": "string", "description": "The receiving number, when the channel says it."},
    "text": {"type": "string", "description": "The text, caption or button title, when the message has one."},
    "edited": {"type": "boolean", "description": "Telegram: true for an edited message."},
    "original": {"description": "The channel's own message object, unchanged."},
    "metadata": {"description": "WABA: the notification's metadata."},
    "contacts": {"description": "WABA: the notification's contacts."}
  }
}"#;

const MESSAGE_STATUS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "message status data",
  "type": "object",
  "properties": {
    "message_id": {"type": "string", "description": "The id of the message you sent."},
    "from": {"type": "string", "description": "The sending number, when the channel says it."},
    "to": {"type": "string", "description": "The recipient."},
    "status": {"type": "string", "description": "The channel's own status name (sent, delivered, read, played, failed, or the gateway's ack name)."},
    "original": {"description": "The channel's own status object, unchanged."},
    "metadata": {"description": "WABA: the notification's metadata."},
    "contacts": {"description": "WABA: the notification's contacts."}
  }
}"#;

const FORM_SUBMITTED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "form.submitted data",
  "type": "object",
  "required": ["form_id", "answers"],
  "properties": {
    "form_id": {"type": "string", "minLength": 1},
    "from": {"type": "string"},
    "answers": {"type": "object", "description": "The answers by question key."},
    "submitted_at": {"type": "string", "description": "RFC 3339."}
  }
}"#;

const CONVERSATION_OPENED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "conversation.opened data",
  "type": "object",
  "required": ["conversation_id"],
  "properties": {
    "conversation_id": {"type": "string", "minLength": 1},
    "from": {"type": "string"},
    "origin": {"type": "string"},
    "opened_at": {"type": "string", "description": "RFC 3339."}
  }
}"#;

const CONVERSATION_RESOLVED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "conversation.resolved data",
  "type": "object",
  "required": ["conversation_id"],
  "properties": {
    "conversation_id": {"type": "string", "minLength": 1},
    "resolved_by": {"type": "string"},
    "resolved_at": {"type": "string", "description": "RFC 3339."}
  }
}"#;

const CONTACT_CREATED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "contact.created data",
  "type": "object",
  "required": ["contact_id"],
  "properties": {
    "contact_id": {"type": "string", "minLength": 1},
    "phone": {"type": "string"},
    "name": {"type": "string"},
    "created_at": {"type": "string", "description": "RFC 3339."}
  }
}"#;

const CONTACT_UPDATED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "contact.updated data",
  "type": "object",
  "properties": {
    "contact_id": {"type": "string"},
    "phone": {"type": "string"},
    "name": {"type": "string"},
    "changed": {"type": "array", "items": {"type": "string"}, "description": "The names of the changed fields."},
    "message_id": {"type": "string", "description": "WABA: the system message that reported the change."},
    "chat_id": {"type": "string", "description": "Telegram: the chat of the bot's membership change."},
    "from": {"type": "string"},
    "to": {"type": "string"},
    "text": {"type": "string"},
    "status": {"type": "string", "description": "Telegram: the bot's new membership status."},
    "original": {"description": "The channel's own object, unchanged."},
    "metadata": {"description": "WABA: the notification's metadata."},
    "contacts": {"description": "WABA: the notification's contacts."}
  }
}"#;

const CONTACT_OPTED_OUT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "contact.opted_out data",
  "type": "object",
  "properties": {
    "contact_id": {"type": "string"},
    "phone": {"type": "string"},
    "reason": {"type": "string"},
    "opted_out_at": {"type": "string", "description": "RFC 3339."},
    "chat_id": {"type": "string", "description": "Telegram: the private chat with the bot."},
    "from": {"type": "string"},
    "status": {"type": "string", "description": "Telegram: the bot's new membership status (kicked)."},
    "original": {"description": "The channel's own object, unchanged."}
  }
}"#;

const BROADCAST_COMPLETED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "broadcast.completed data",
  "type": "object",
  "required": ["broadcast_id"],
  "properties": {
    "broadcast_id": {"type": "string", "minLength": 1},
    "name": {"type": "string"},
    "recipients": {"type": "integer", "minimum": 0},
    "sent": {"type": "integer", "minimum": 0},
    "failed": {"type": "integer", "minimum": 0},
    "completed_at": {"type": "string", "description": "RFC 3339."}
  }
}"#;

const PAYMENT_COMPLETED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "payment.completed data",
  "type": "object",
  "properties": {
    "payment_id": {"type": "string"},
    "from": {"type": "string"},
    "amount": {"type": ["string", "number"], "description": "A decimal amount; a string keeps its exact digits."},
    "currency": {"type": "string"},
    "order_ref": {"type": "string"},
    "message_id": {"type": "string", "description": "Telegram: the message carrying the successful payment."},
    "chat_id": {"type": "string"},
    "text": {"type": "string"},
    "edited": {"type": "boolean"},
    "original": {"description": "The channel's own object, unchanged."}
  }
}"#;

const ENDPOINT_DISABLED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "endpoint.disabled data",
  "type": "object",
  "required": ["endpoint_id", "url", "reason"],
  "properties": {
    "endpoint_id": {"type": "string"},
    "name": {"type": "string"},
    "url": {"type": "string"},
    "status": {"type": "string"},
    "reason": {"type": "string"},
    "failing_since": {"type": "string", "description": "RFC 3339."}
  }
}"#;

/// The parsed schemas of [`CATALOG`], in its order. Parsed on first use;
/// every one is checked by the `catalog_schemas_are_valid_and_admit_the_samples`
/// test, and an entry whose schema did not parse would enforce nothing
/// rather than refuse every event.
static CATALOG_SCHEMAS: std::sync::LazyLock<Vec<Option<DataSchema>>> =
    std::sync::LazyLock::new(|| {
        CATALOG
            .iter()
            .map(|entry| DataSchema::parse(entry.data_schema).ok())
            .collect()
    });

impl CatalogEntry {
    /// The parsed [`CatalogEntry::data_schema`].
    #[must_use]
    pub fn schema(&self) -> Option<&'static DataSchema> {
        let index = CATALOG.iter().position(|entry| entry.name == self.name)?;
        CATALOG_SCHEMAS.get(index)?.as_ref()
    }
}

/// Another product's name for a catalog type, restricted to some channels:
/// an endpoint subscribed to the alias receives the catalog type's events
/// from those channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    /// The subscribable name.
    pub name: &'static str,
    /// The catalog type it stands for.
    pub target: &'static str,
    /// The channels whose events it covers.
    pub channels: &'static [Channel],
}

/// Kapso's WhatsApp event names (seed 004). Both WhatsApp channels, the
/// gateway and the Business API, are WhatsApp to a Kapso receiver.
pub const ALIASES: &[Alias] = &[
    Alias {
        name: "whatsapp.message.received",
        target: "message.received",
        channels: &[Channel::Whatsapp, Channel::Waba],
    },
    Alias {
        name: "whatsapp.conversation.created",
        target: "conversation.opened",
        channels: &[Channel::Whatsapp, Channel::Waba],
    },
    Alias {
        name: "whatsapp.message.delivered",
        target: "message.delivered",
        channels: &[Channel::Whatsapp, Channel::Waba],
    },
    Alias {
        name: "whatsapp.message.read",
        target: "message.read",
        channels: &[Channel::Whatsapp, Channel::Waba],
    },
    Alias {
        name: "whatsapp.message.failed",
        target: "message.failed",
        channels: &[Channel::Whatsapp, Channel::Waba],
    },
];

/// The alias called `name`, if any.
#[must_use]
pub fn alias(name: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|alias| alias.name == name)
}

/// The aliases an event of `event_type` from `channel` is also known by.
pub fn aliases_of(
    event_type: &EventType,
    channel: Channel,
) -> impl Iterator<Item = &'static Alias> + '_ {
    ALIASES.iter().filter(move |alias| {
        alias.target == event_type.as_str() && alias.channels.contains(&channel)
    })
}

/// Why an event type name was refused. Every message quotes (an excerpt of) the
/// name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    /// The name is longer than [`MAX_EVENT_TYPE_LEN`].
    #[error(
        "event type {value:?} is invalid: it is {length} bytes long, the limit is \
         {MAX_EVENT_TYPE_LEN}"
    )]
    TooLong {
        /// Excerpt of the refused name.
        value: String,
        /// Its length in bytes.
        length: usize,
    },
    /// Fewer than [`MIN_EVENT_TYPE_SEGMENTS`] segments.
    #[error(
        "event type {value:?} is invalid: it needs at least {MIN_EVENT_TYPE_SEGMENTS} \
         dot-separated segments, like \"message.received\""
    )]
    TooFewSegments {
        /// Excerpt of the refused name.
        value: String,
    },
    /// More than [`MAX_EVENT_TYPE_SEGMENTS`] segments.
    #[error(
        "event type {value:?} is invalid: it has {count} segments, the limit is \
         {MAX_EVENT_TYPE_SEGMENTS}"
    )]
    TooManySegments {
        /// Excerpt of the refused name.
        value: String,
        /// Number of segments found.
        count: usize,
    },
    /// Two dots in a row, or a leading or trailing dot.
    #[error("event type {value:?} is invalid: segment {position} is empty")]
    EmptySegment {
        /// Excerpt of the refused name.
        value: String,
        /// 1-based position of the empty segment.
        position: usize,
    },
    /// A segment with characters other than `[a-z][a-z0-9_]*`.
    #[error(
        "event type {value:?} is invalid: segments must be lowercase, start with a letter \
         and contain only a-z, 0-9 and _ (segment {segment:?})"
    )]
    InvalidSegment {
        /// Excerpt of the refused name.
        value: String,
        /// Excerpt of the offending segment.
        segment: String,
    },
    /// A custom type may not reuse a catalog name.
    #[error(
        "event type {value:?} is a built-in catalog type or alias and cannot be registered as a \
         custom type"
    )]
    CatalogName {
        /// The refused name.
        value: String,
    },
}

/// A validated event type name. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Arc<str>);

fn segment_is_valid(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_lowercase())
        && bytes.all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

impl EventType {
    /// Validates `value`: 2 to 8 dot-separated segments, each
    /// `[a-z][a-z0-9_]*`, at most 100 bytes in total.
    pub fn parse(value: &str) -> Result<EventType, EventTypeError> {
        if value.len() > MAX_EVENT_TYPE_LEN {
            return Err(EventTypeError::TooLong {
                value: excerpt(value),
                length: value.len(),
            });
        }
        let mut count = 0;
        for (index, segment) in value.split('.').enumerate() {
            count += 1;
            if segment.is_empty() {
                // An empty name is a single empty segment; report it as too
                // short, which is what the caller got wrong.
                if value.is_empty() {
                    break;
                }
                return Err(EventTypeError::EmptySegment {
                    value: excerpt(value),
                    position: index + 1,
                });
            }
            if !segment_is_valid(segment) {
                return Err(EventTypeError::InvalidSegment {
                    value: excerpt(value),
                    segment: excerpt(segment),
                });
            }
        }
        if count < MIN_EVENT_TYPE_SEGMENTS {
            return Err(EventTypeError::TooFewSegments {
                value: excerpt(value),
            });
        }
        if count > MAX_EVENT_TYPE_SEGMENTS {
            return Err(EventTypeError::TooManySegments {
                value: excerpt(value),
                count,
            });
        }
        Ok(EventType(Arc::from(value)))
    }

    /// The catalog type called `name`, or `None` when `name` is not in
    /// [`CATALOG`].
    #[must_use]
    pub fn catalog(name: &str) -> Option<EventType> {
        CATALOG
            .iter()
            .find(|entry| entry.name == name)
            .map(EventType::from_catalog)
    }

    /// The event type of a catalog entry.
    #[must_use]
    pub fn from_catalog(entry: &CatalogEntry) -> EventType {
        // Catalog names are checked by the `catalog_names_are_valid` test, so
        // they skip validation here.
        EventType(Arc::from(entry.name))
    }

    /// `endpoint.disabled`, which Herald emits itself when it auto-disables an
    /// endpoint.
    #[must_use]
    pub fn endpoint_disabled() -> EventType {
        EventType(Arc::from(ENDPOINT_DISABLED))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a built-in type (as opposed to a tenant's custom type).
    #[must_use]
    pub fn is_catalog(&self) -> bool {
        self.catalog_entry().is_some()
    }

    /// The catalog entry for this type, if it is a built-in type.
    #[must_use]
    pub fn catalog_entry(&self) -> Option<&'static CatalogEntry> {
        CATALOG.iter().find(|entry| entry.name == self.as_str())
    }
}

/// Validates a tenant-defined event type: a valid name that is not a catalog
/// type, so custom events can never be mistaken for built-in ones.
pub fn validate_custom_type(value: &str) -> Result<EventType, EventTypeError> {
    let event_type = EventType::parse(value)?;
    if event_type.is_catalog() || alias(value).is_some() {
        return Err(EventTypeError::CatalogName {
            value: value.to_owned(),
        });
    }
    Ok(event_type)
}

impl fmt::Display for EventType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "EventType({:?})", self.as_str())
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;

    fn from_str(value: &str) -> Result<Self, EventTypeError> {
        EventType::parse(value)
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

// Sound because `Eq`, `Ord` and `Hash` on `Arc<str>` are those of the `str`,
// and it lets sets of event types be queried with a `&str`.
impl Borrow<str> for EventType {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

struct EventTypeVisitor;

impl Visitor<'_> for EventTypeVisitor {
    type Value = EventType;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an event type name such as \"message.received\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<EventType, E> {
        EventType::parse(value).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(EventTypeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn catalog_names_are_valid() {
        for entry in CATALOG {
            let parsed = EventType::parse(entry.name).unwrap();
            assert_eq!(parsed, EventType::from_catalog(entry));
            assert!(parsed.is_catalog());
            assert_eq!(parsed.catalog_entry(), Some(entry));
        }
    }

    #[test]
    fn catalog_samples_are_event_data() {
        for entry in CATALOG {
            let data = crate::event::parse_data(entry.sample_data.as_bytes())
                .unwrap_or_else(|error| panic!("{}: {error}", entry.name));
            assert!(data.get().starts_with('{'), "{}", entry.name);
        }
    }

    #[test]
    fn catalog_schemas_are_valid_and_admit_the_samples() {
        for entry in CATALOG {
            let schema = crate::schema::DataSchema::parse(entry.data_schema)
                .unwrap_or_else(|error| panic!("{}: {error}", entry.name));
            assert_eq!(entry.schema(), Some(&schema), "{}", entry.name);
            schema
                .validate_text(entry.sample_data)
                .unwrap_or_else(|violation| panic!("{}: {violation}", entry.name));
            assert!(
                schema.validate_text("[]").is_err(),
                "{}: data must be an object",
                entry.name
            );
        }
    }

    #[test]
    fn labels_and_channels_follow_the_seed() {
        let label = |name: &str| {
            EventType::catalog(name)
                .unwrap()
                .catalog_entry()
                .unwrap()
                .label
        };
        assert_eq!(label("message.received"), "Incoming Message");
        assert_eq!(label("form.submitted"), "Submission");
        for status in [
            "message.sent",
            "message.delivered",
            "message.read",
            "message.failed",
        ] {
            assert!(label(status).starts_with("Message status: "), "{status}");
            let entry = EventType::catalog(status).unwrap().catalog_entry().unwrap();
            assert!(!entry.channels.contains(&Channel::Telegram), "{status}");
            assert!(entry.channels.contains(&Channel::Waba), "{status}");
        }
        for entry in CATALOG {
            assert!(
                !entry.label.is_empty() && !entry.channels.is_empty(),
                "{}",
                entry.name
            );
        }
    }

    #[test]
    fn aliases_name_catalog_types_on_whatsapp_channels() {
        for alias in ALIASES {
            assert!(EventType::parse(alias.name).is_ok(), "{}", alias.name);
            assert!(EventType::catalog(alias.target).is_some(), "{}", alias.name);
            assert!(EventType::catalog(alias.name).is_none(), "{}", alias.name);
            assert!(validate_custom_type(alias.name).is_err(), "{}", alias.name);
        }
        let received = EventType::catalog("message.received").unwrap();
        let names = |channel| {
            aliases_of(&received, channel)
                .map(|alias| alias.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Channel::Whatsapp), ["whatsapp.message.received"]);
        assert_eq!(names(Channel::Waba), ["whatsapp.message.received"]);
        assert!(names(Channel::Telegram).is_empty());
        assert_eq!(
            alias("whatsapp.conversation.created").unwrap().target,
            "conversation.opened"
        );
    }

    #[test]
    fn catalog_names_are_unique_and_descriptions_are_sentences() {
        let names: BTreeSet<&str> = CATALOG.iter().map(|entry| entry.name).collect();
        assert_eq!(names.len(), CATALOG.len());
        for entry in CATALOG {
            assert!(entry.description.ends_with('.'), "{}", entry.name);
            assert!(
                entry.description.starts_with(char::is_uppercase),
                "{}",
                entry.name
            );
        }
    }

    #[test]
    fn catalog_holds_the_documented_types() {
        let names: Vec<&str> = CATALOG.iter().map(|entry| entry.name).collect();
        assert_eq!(
            names,
            [
                "message.received",
                "message.sent",
                "message.delivered",
                "message.read",
                "message.failed",
                "form.submitted",
                "conversation.opened",
                "conversation.resolved",
                "contact.created",
                "contact.updated",
                "contact.opted_out",
                "broadcast.completed",
                "payment.completed",
                "endpoint.disabled",
            ]
        );
    }

    #[test]
    fn catalog_lookup() {
        assert_eq!(
            EventType::catalog("message.read").unwrap().as_str(),
            "message.read"
        );
        assert_eq!(EventType::catalog("order.shipped"), None);
        assert_eq!(
            EventType::endpoint_disabled(),
            EventType::catalog("endpoint.disabled").unwrap()
        );
        assert!(EventType::endpoint_disabled().is_catalog());
    }

    #[test]
    fn valid_names_are_accepted() {
        for value in [
            "a.b",
            "order.shipped",
            "shop.order.line_item.v2",
            "a1.b_2.c",
            "a.b.c.d.e.f.g.h",
            &format!("a.{}", "b".repeat(MAX_EVENT_TYPE_LEN - 2)),
        ] {
            let parsed = EventType::parse(value).unwrap();
            assert_eq!(parsed.as_str(), value);
            assert!(!parsed.is_catalog());
        }
    }

    #[test]
    fn invalid_names_are_refused_with_the_reason() {
        let too_long = format!("a.{}", "b".repeat(MAX_EVENT_TYPE_LEN - 1));
        let cases: Vec<(&str, &str)> = vec![
            ("", "needs at least 2"),
            ("message", "needs at least 2"),
            ("message.", "segment 2 is empty"),
            (".message", "segment 1 is empty"),
            ("message..received", "segment 2 is empty"),
            ("a.b.c.d.e.f.g.h.i", "has 9 segments, the limit is 8"),
            (&too_long, "is 101 bytes long, the limit is 100"),
            ("Message.Received", "segments must be lowercase"),
            ("message.1st", "(segment \"1st\")"),
            ("message._private", "(segment \"_private\")"),
            ("message.re-ceived", "(segment \"re-ceived\")"),
            ("message.received ", "(segment \"received \")"),
            ("message.récu", "(segment \"récu\")"),
            ("message/received.x", "(segment \"message/received\")"),
        ];
        for (value, expected) in cases {
            let message = EventType::parse(value).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{value:?}: {message:?} lacks {expected:?}"
            );
            assert!(message.starts_with("event type \""), "{message}");
        }
    }

    #[test]
    fn uppercase_error_message_names_the_value() {
        assert_eq!(
            EventType::parse("Message.Received")
                .unwrap_err()
                .to_string(),
            "event type \"Message.Received\" is invalid: segments must be lowercase, start with \
             a letter and contain only a-z, 0-9 and _ (segment \"Message\")"
        );
    }

    #[test]
    fn custom_types_must_not_be_catalog_types() {
        assert!(validate_custom_type("order.shipped").is_ok());
        assert!(validate_custom_type("message.received_late").is_ok());
        assert_eq!(
            validate_custom_type("message.received").unwrap_err(),
            EventTypeError::CatalogName {
                value: "message.received".to_owned()
            }
        );
        assert!(matches!(
            validate_custom_type("bad"),
            Err(EventTypeError::TooFewSegments { .. })
        ));
    }

    #[test]
    fn serde_is_a_validated_string() {
        let parsed: EventType = serde_json::from_str("\"contact.opted_out\"").unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            "\"contact.opted_out\""
        );
        let error = serde_json::from_str::<EventType>("\"Contact\"").unwrap_err();
        assert!(
            error.to_string().contains("event type \"Contact\""),
            "{error}"
        );
    }

    #[test]
    fn sets_can_be_queried_by_str() {
        let set: BTreeSet<EventType> = [EventType::parse("a.b").unwrap()].into();
        assert!(set.contains("a.b"));
        assert!(!set.contains("a.c"));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_the_grammar(value in "[a-zA-Z0-9_.é -]{0,40}") {
            let grammar = value.len() <= MAX_EVENT_TYPE_LEN
                && (MIN_EVENT_TYPE_SEGMENTS..=MAX_EVENT_TYPE_SEGMENTS)
                    .contains(&value.split('.').count())
                && value.split('.').all(segment_is_valid);
            prop_assert_eq!(EventType::parse(&value).is_ok(), grammar);
        }

        #[test]
        fn generated_valid_names_round_trip(
            segments in proptest::collection::vec("[a-z][a-z0-9_]{0,10}", 2..=8)
        ) {
            let value = segments.join(".");
            let parsed = EventType::parse(&value).unwrap();
            prop_assert_eq!(parsed.as_str(), value.as_str());
        }
    }
}
