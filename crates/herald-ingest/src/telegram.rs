//! Telegram Bot API updates, normalised. One update per POST, one event.
//!
//! | update kind | event type |
//! |---|---|
//! | `message`, `channel_post`, `business_message` | `message.received` (`payment.completed` when it carries `successful_payment`) |
//! | `edited_message`, `edited_channel_post`, `edited_business_message` | `message.received` with `"edited": true` |
//! | `callback_query` (an inline button was tapped) | `message.received`, `text` = the button's data |
//! | `my_chat_member` in a private chat, new status `kicked` (the user blocked the bot) | `contact.opted_out` |
//! | `my_chat_member` in a private chat, from `kicked` back to `member` (unblocked) | `contact.updated` |
//! | anything else, known or not (`inline_query`, `poll`, `my_chat_member` in groups, …) | `telegram.<kind>` |
//!
//! Why edits are `message.received`: an edit carries the message's whole
//! current content under the same `(chat_id, message_id)`, so a consumer that
//! keys on those upserts it, and subscribers of the catalog type see it; the
//! `edited` flag lets those who only want new messages skip it (Telegram
//! also fires edits for changes a bot may not care about).
//! A tap on a button is a reply, as it is on WABA (`interactive`), hence
//! `message.received`.
//!
//! The key is the `update_id`, which Telegram repeats on every retry of an
//! update; an update without an integer `update_id` is refused.

use serde_json::{Map, Value, value::RawValue};

use crate::normalise::{
    Data, NormalisedEvent, ParseError, catalog, channel_type, id_text, source_ref, text, unix_time,
};

const EXPECTED: &str = "a Telegram update";

/// Normalises one update body (the raw bytes, already authenticated).
pub fn parse(body: &[u8]) -> Result<NormalisedEvent, ParseError> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|error| ParseError::from_serde(EXPECTED, &error))?;
    let update: Map<String, Value> = serde_json::from_str(raw.get())
        .map_err(|error| ParseError::from_serde(EXPECTED, &error))?;
    let update_id = match update.get("update_id") {
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => number.to_string(),
        _ => return Err(ParseError::MissingUpdateId),
    };
    // An update holds at most one kind; the first other key names it.
    let (kind, object) = update
        .iter()
        .find(|(key, _)| key.as_str() != "update_id")
        .map(|(key, object)| (key.as_str(), object))
        .unwrap_or(("unknown", &Value::Null));

    let mut data = Data {
        original: Some(raw),
        ..Data::default()
    };
    let (event_type, occurred_at) = match kind {
        "message"
        | "channel_post"
        | "business_message"
        | "edited_message"
        | "edited_channel_post"
        | "edited_business_message" => {
            data.edited = kind.starts_with("edited_");
            data.message_id = id_text(object, "/message_id");
            data.chat_id = id_text(object, "/chat/id");
            data.from = id_text(object, "/from/id").or_else(|| id_text(object, "/sender_chat/id"));
            data.text = text(object, "/text").or_else(|| text(object, "/caption"));
            let event_type = if object.get("successful_payment").is_some() {
                catalog("payment.completed")
            } else {
                catalog("message.received")
            };
            let when = if data.edited {
                object.get("edit_date").or_else(|| object.get("date"))
            } else {
                object.get("date")
            };
            (event_type, unix_time(when))
        }
        "callback_query" => {
            data.message_id = id_text(object, "/id");
            data.chat_id = id_text(object, "/message/chat/id");
            data.from = id_text(object, "/from/id");
            data.text = text(object, "/data");
            // The query has no date of its own; `message.date` is when the
            // bot's message was sent, not when the button was tapped.
            (catalog("message.received"), None)
        }
        "my_chat_member" => {
            data.chat_id = id_text(object, "/chat/id");
            data.from = id_text(object, "/from/id");
            data.status = text(object, "/new_chat_member/status");
            let private = text(object, "/chat/type").as_deref() == Some("private");
            let old = text(object, "/old_chat_member/status");
            let event_type = match (private, old.as_deref(), data.status.as_deref()) {
                (true, _, Some("kicked")) => catalog("contact.opted_out"),
                (true, Some("kicked"), Some("member")) => catalog("contact.updated"),
                _ => channel_type("telegram", kind),
            };
            (event_type, unix_time(object.get("date")))
        }
        _ => {
            data.from = id_text(object, "/from/id").or_else(|| id_text(object, "/user/id"));
            data.chat_id = id_text(object, "/chat/id");
            (
                channel_type("telegram", kind),
                unix_time(object.get("date")),
            )
        }
    };
    Ok(NormalisedEvent {
        event_type,
        occurred_at,
        source_ref: source_ref(Some(update_id.clone())),
        source_key: update_id,
        data: data.encode()?,
    })
}
