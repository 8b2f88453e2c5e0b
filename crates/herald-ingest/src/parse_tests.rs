//! The pure parsers against every fixture, and fuzzed: arbitrary bytes and
//! mutated fixtures must give an error or events, never a panic.

use proptest::prelude::*;
use serde_json::Value;

use crate::{gateway, normalise::NormalisedEvent, telegram, waba};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../tests/fixtures/", $name)).as_slice()
    };
}

const WABA_BATCH: &[u8] = fixture!("waba_batch.json");
const TELEGRAM: &[&[u8]] = &[
    fixture!("telegram_text.json"),
    fixture!("telegram_edited.json"),
    fixture!("telegram_callback.json"),
    fixture!("telegram_kicked.json"),
    fixture!("telegram_unknown_kind.json"),
    fixture!("telegram_photo.json"),
];
const GATEWAY: &[&[u8]] = &[
    fixture!("gateway_message.json"),
    fixture!("gateway_ack_group.json"),
    fixture!("gateway_reaction.json"),
    fixture!("gateway_session_status.json"),
];

fn data(event: &NormalisedEvent) -> Value {
    serde_json::from_str(event.data.get()).unwrap()
}

fn summary(events: &[NormalisedEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|event| (event.event_type.to_string(), event.source_key.clone()))
        .collect()
}

#[test]
fn a_waba_batch_becomes_one_event_per_message_and_status() {
    let events = waba::parse(WABA_BATCH).unwrap();
    let expected = [
        ("message.received", "wamid.BATCH1:received"),
        ("message.received", "wamid.BATCH2:received"),
        ("message.received", "wamid.BATCH3:received"),
        ("message.sent", "wamid.OUT1:sent"),
        ("message.delivered", "wamid.OUT1:delivered"),
        ("message.received", "wamid.BATCH4:received"),
        ("message.received", "wamid.BATCH5:received"),
        ("message.read", "wamid.OUT2:read"),
        ("message.failed", "wamid.OUT3:failed"),
        ("message.read", "wamid.OUT4:played"),
        ("message.delivered", "wamid.OUT5:delivered"),
        ("message.read", "wamid.OUT5:read"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(kind, key)| ((*kind).to_owned(), (*key).to_owned()))
        .collect();
    assert_eq!(summary(&events), expected);
    assert_eq!(
        events[0].occurred_at.unwrap().unix_timestamp(),
        1_749_416_383
    );
    assert_eq!(events[0].source_ref.as_deref(), Some("wamid.BATCH1"));
}

#[test]
fn waba_data_keeps_the_original_bytes_and_adds_normalised_fields() {
    let events = waba::parse(WABA_BATCH).unwrap();
    let first = events[0].data.get();
    // Escapes (surrogate pairs included) survive untouched in `original`.
    assert!(
        first.contains(r#""body": "Ol\u00e1! Does it come in blue? \ud83d\udc99""#),
        "{first}"
    );
    let text = data(&events[0]);
    assert_eq!(text["text"], "Olá! Does it come in blue? 💙");
    assert_eq!(text["from"], "16505551234");
    assert_eq!(text["to"], "15550783881");
    assert_eq!(text["message_id"], "wamid.BATCH1");
    assert_eq!(text["metadata"]["phone_number_id"], "106540352242922");
    assert_eq!(text["contacts"][0]["profile"]["name"], "Zoë Ångström");
    assert_eq!(data(&events[1])["text"], "Taj Mahal 🕌");
    // Numbers are kept byte for byte, trailing zeros included.
    assert!(events[2].data.get().contains("37.44221496582000"));
    // A sender known only by business-scoped user id.
    assert_eq!(data(&events[6])["from"], "US.99999999999999999999");
    assert_eq!(data(&events[6])["text"], "こんにちは");
    let failed = data(&events[8]);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["original"]["errors"][0]["code"], 131_049);
    assert!(failed.get("contacts").is_none());
    assert_eq!(data(&events[9])["status"], "played");
    assert_eq!(data(&events[10])["to"], "US.13491208655302741918");
}

#[test]
fn waba_statuses_are_what_the_json_says() {
    // Meta's documentation labels this "read"; its JSON says sent.
    let events = waba::parse(fixture!("waba_mislabeled_read.json")).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type.as_str(), "message.sent");
    let odd = br#"{"entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"w","status":"deleted"},{"id":"w"}]}}]}]}"#;
    let events = waba::parse(odd).unwrap();
    assert_eq!(events[0].event_type.as_str(), "waba.status.deleted");
    assert_eq!(events[1].event_type.as_str(), "waba.status.unknown");
    let system = br#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"w","type":"system","system":{"type":"user_changed_user_id"}}]}}]}]}"#;
    assert_eq!(
        waba::parse(system).unwrap()[0].event_type.as_str(),
        "contact.updated"
    );
}

#[test]
fn other_waba_fields_are_kept_as_their_own_type() {
    let events = waba::parse(fixture!("waba_template_update.json")).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_type.as_str(),
        "waba.message_template_status_update"
    );
    assert!(events[0].data.get().contains("12345678901234567890"));
    assert_eq!(data(&events[0])["field"], "message_template_status_update");
    assert!(
        events[0]
            .source_key
            .starts_with("message_template_status_update:sha256:")
    );
}

#[test]
fn waba_items_without_ids_are_keyed_by_their_bytes() {
    let body = br#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"type":"text"},{"type":"text "}]}}]}]}"#;
    let events = waba::parse(body).unwrap();
    assert_eq!(events.len(), 2);
    assert_ne!(events[0].source_key, events[1].source_key);
    assert_eq!(
        waba::parse(body).unwrap()[0].source_key,
        events[0].source_key
    );
}

#[test]
fn malformed_waba_bodies_are_refused_without_quoting_them() {
    for body in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"entry\":5}",
        b"{\"entry\":[{\"changes\":7}]}",
        b"\xff",
    ] {
        let error = waba::parse(body).unwrap_err().to_string();
        assert!(!error.contains("changes\":7"), "{error}");
    }
    assert!(waba::parse(br#"{"entry":[]}"#).unwrap().is_empty());
}

#[test]
fn telegram_updates_map_to_the_documented_types() {
    let expected = [
        ("message.received", "892252934", Some(1_569_518_342)),
        ("message.received", "10000", Some(1_441_646_600)),
        ("message.received", "163399206", None),
        ("contact.opted_out", "7", Some(1_644_677_726)),
        ("telegram.new_update_kind", "99", None),
        ("message.received", "494890299", Some(1_680_376_451)),
    ];
    for (body, (kind, key, when)) in TELEGRAM.iter().zip(expected) {
        let event = telegram::parse(body).unwrap();
        assert_eq!(event.event_type.as_str(), kind);
        assert_eq!(event.source_key, key);
        assert_eq!(event.source_ref.as_deref(), Some(key));
        assert_eq!(event.occurred_at.map(|at| at.unix_timestamp()), when);
        // The whole update is the original, byte for byte.
        let original = serde_json::to_string(&data(&event)["original"]).unwrap();
        let reparsed: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(original, serde_json::to_string(&reparsed).unwrap());
    }
    let text = data(&telegram::parse(TELEGRAM[0]).unwrap());
    assert_eq!(text["text"], "hello there 👋 é");
    assert_eq!(text["chat_id"], "-1001293752024");
    assert_eq!(text["from"], "5964236329");
    assert_eq!(text["message_id"], "6557");
    assert!(
        telegram::parse(TELEGRAM[0])
            .unwrap()
            .data
            .get()
            .contains(r"\u00e9")
    );
    let edited = data(&telegram::parse(TELEGRAM[1]).unwrap());
    assert_eq!(edited["edited"], true);
    let callback = data(&telegram::parse(TELEGRAM[2]).unwrap());
    assert_eq!(callback["text"], "K0ktLokvzsgvj6+oKquqACIA");
    assert_eq!(callback["message_id"], "1874464818486990916");
    assert!(
        telegram::parse(TELEGRAM[4])
            .unwrap()
            .data
            .get()
            .contains("12345678901234567890123")
    );
    assert_eq!(
        data(&telegram::parse(TELEGRAM[5]).unwrap())["text"],
        "Кот 🐈"
    );
}

#[test]
fn telegram_updates_need_an_integer_update_id() {
    for body in [
        &br#"{"message":{}}"#[..],
        br#"{"update_id":"5","message":{}}"#,
        br#"{"update_id":1.5}"#,
    ] {
        assert!(matches!(
            telegram::parse(body),
            Err(crate::normalise::ParseError::MissingUpdateId)
        ));
    }
    assert!(telegram::parse(b"[1]").is_err());
    assert_eq!(
        telegram::parse(br#"{"update_id":1}"#)
            .unwrap()
            .event_type
            .as_str(),
        "telegram.unknown"
    );
    let payment = br#"{"update_id":2,"message":{"message_id":1,"chat":{"id":1},"date":1,"successful_payment":{"total_amount":100}}}"#;
    assert_eq!(
        telegram::parse(payment).unwrap().event_type.as_str(),
        "payment.completed"
    );
    let unblocked = br#"{"update_id":3,"my_chat_member":{"chat":{"id":4,"type":"private"},"date":1,"old_chat_member":{"status":"kicked"},"new_chat_member":{"status":"member"}}}"#;
    assert_eq!(
        telegram::parse(unblocked).unwrap().event_type.as_str(),
        "contact.updated"
    );
    let group = br#"{"update_id":4,"my_chat_member":{"chat":{"id":-4,"type":"group"},"date":1,"new_chat_member":{"status":"kicked"}}}"#;
    assert_eq!(
        telegram::parse(group).unwrap().event_type.as_str(),
        "telegram.my_chat_member"
    );
}

#[test]
fn gateway_events_map_to_the_documented_types() {
    let expected = [
        (
            "message.received",
            "false_11111111111@c.us_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:received",
        ),
        (
            "message.read",
            "true_11111111111@g.us_4CC5EDD64BC22EBA6D639F2AF571346C_9999@lid:9999@lid:ack:3",
        ),
        (
            "whatsapp.message.reaction",
            "message.reaction:false_79111111@c.us_11111111111111111111111111111111:",
        ),
        ("whatsapp.session.status", "session.status:sha256:"),
    ];
    for (body, (kind, key)) in GATEWAY.iter().zip(expected) {
        let event = gateway::parse(body).unwrap();
        assert_eq!(event.event_type.as_str(), kind);
        assert!(event.source_key.starts_with(key), "{}", event.source_key);
    }
    let message = gateway::parse(GATEWAY[0]).unwrap();
    assert_eq!(message.occurred_at.unwrap().unix_timestamp(), 1_667_561_485);
    let fields = data(&message);
    assert_eq!(fields["text"], "Hi there! ✨");
    assert_eq!(fields["from"], "11111111111@c.us");
    assert_eq!(fields["to"], "71111111111@c.us");
    assert_eq!(fields["original"]["session"], "default");
    let ack = data(&gateway::parse(GATEWAY[1]).unwrap());
    assert_eq!(ack["status"], "READ");
    assert_eq!(ack["from"], "9999@lid");
    let reaction = gateway::parse(GATEWAY[2]).unwrap();
    assert_eq!(
        reaction.occurred_at.unwrap().unix_timestamp_nanos(),
        1_710_481_111_853_000_000
    );
    // No payload timestamp: the envelope's milliseconds are used.
    let envelope_only = br#"{"event":"message","timestamp":1741249702485,"payload":{"id":"x"}}"#;
    assert_eq!(
        gateway::parse(envelope_only)
            .unwrap()
            .occurred_at
            .unwrap()
            .unix_timestamp(),
        1_741_249_702
    );
}

#[test]
fn hardening_18_gateway_events_are_keyed_by_their_payload_id() {
    let reaction = |envelope_id: &str, text: &str| {
        format!(
            r#"{{"id":"{envelope_id}","event":"message.reaction","payload":{{"id":"false_1@c.us_R1","reaction":{{"text":"{text}"}}}}}}"#
        )
    };
    let key = |body: String| gateway::parse(body.as_bytes()).unwrap().source_key;
    // The same event in a new envelope is the same event.
    assert_eq!(key(reaction("evt_1", "👍")), key(reaction("evt_2", "👍")));
    // The same id with another payload (a chat id names many events) is not.
    assert_ne!(key(reaction("evt_1", "👍")), key(reaction("evt_1", "❤️")));
    let no_payload_id = |envelope_id: &str| {
        format!(
            r#"{{"id":"{envelope_id}","event":"session.status","payload":{{"status":"WORKING"}}}}"#
        )
    };
    assert_ne!(key(no_payload_id("evt_1")), key(no_payload_id("evt_2")));
    assert_eq!(key(no_payload_id("evt_1")), "session.status:evt_1");
    // Messages and acks keep their keys.
    assert_eq!(
        key(r#"{"id":"evt_9","event":"message","payload":{"id":"m1"}}"#.to_owned()),
        "m1:received"
    );
}

#[test]
fn hardening_18_waba_group_receipts_are_keyed_per_participant() {
    let receipt = |participant: Option<&str>| {
        let participant = participant
            .map(|id| format!(r#","recipient_participant_id":"{id}""#))
            .unwrap_or_default();
        let status = format!(
            r#"{{"id":"wamid.G","status":"read","timestamp":"1700000000","recipient_id":"120363000000000000"{participant}}}"#
        );
        let raw: Box<serde_json::value::RawValue> =
            serde_json::value::RawValue::from_string(status).unwrap();
        let value: Value = serde_json::from_str(raw.get()).unwrap();
        waba::status_key(Some(&"wamid.G".to_owned()), Some("read"), &value, &raw)
    };
    assert_eq!(receipt(Some("111")), "wamid.G:read:111");
    assert_ne!(receipt(Some("111")), receipt(Some("222")));
    assert_eq!(
        receipt(None),
        "wamid.G:read",
        "one-to-one keys are unchanged"
    );
}

#[test]
fn gateway_ack_levels() {
    for (level, kind) in [
        ("-1", "message.failed"),
        ("0", "whatsapp.message.ack"),
        ("1", "message.sent"),
        ("2", "message.delivered"),
        ("3", "message.read"),
        ("4", "message.read"),
        ("9", "whatsapp.message.ack"),
    ] {
        let body = format!(r#"{{"event":"message.ack","payload":{{"id":"m","ack":{level}}}}}"#);
        let event = gateway::parse(body.as_bytes()).unwrap();
        assert_eq!(event.event_type.as_str(), kind, "{level}");
        assert!(event.source_key.ends_with(&format!(":ack:{level}")));
    }
    let by_name = br#"{"event":"message.ack","payload":{"id":"m","ackName":"DEVICE"}}"#;
    assert_eq!(
        gateway::parse(by_name).unwrap().event_type.as_str(),
        "message.delivered"
    );
    assert!(gateway::parse(br#"{"payload":{}}"#).is_err());
    assert_eq!(
        gateway::parse(br#"{"event":"Weird Event!"}"#)
            .unwrap()
            .event_type
            .as_str(),
        "whatsapp.unknown"
    );
}

/// A fixture with a few bytes replaced, inserted or removed.
fn mutated(fixtures: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    (
        0..fixtures.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    )
        .prop_map(move |(which, edits)| {
            let mut bytes = fixtures[which].to_vec();
            for (index, byte, kind) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = index.index(bytes.len());
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            bytes
        })
}

/// Whether a parser's event satisfies its catalog type's schema (custom
/// channel types such as `waba.message_template_status_update` have none):
/// Publish enforces these schemas, so the channels' own events must meet
/// them too.
fn satisfies_schema(event: &NormalisedEvent) -> Result<(), String> {
    let Some(schema) = event
        .event_type
        .catalog_entry()
        .and_then(|entry| entry.schema())
    else {
        return Ok(());
    };
    schema
        .validate_text(event.data.get())
        .map_err(|violation| format!("{}: {violation}", event.event_type))
}

#[test]
fn every_fixture_satisfies_its_catalog_schema() {
    let mut checked = std::collections::BTreeSet::new();
    let mut events = Vec::new();
    for body in WABA_FIXTURES {
        events.extend(waba::parse(body).unwrap());
    }
    for body in TELEGRAM {
        events.push(telegram::parse(body).unwrap());
    }
    for body in GATEWAY {
        events.push(gateway::parse(body).unwrap());
    }
    for event in &events {
        satisfies_schema(event).unwrap();
        if event.event_type.is_catalog() {
            checked.insert(event.event_type.to_string());
        }
    }
    // The fixtures reach the types the channels produce.
    for name in ["message.received", "message.read", "contact.opted_out"] {
        assert!(checked.contains(name), "{name} not covered: {checked:?}");
    }
}

const WABA_FIXTURES: &[&[u8]] = &[
    WABA_BATCH,
    fixture!("waba_template_update.json"),
    fixture!("waba_mislabeled_read.json"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = waba::parse(&body);
        let _ = telegram::parse(&body);
        let _ = gateway::parse(&body);
    }

    #[test]
    fn waba_never_panics_on_mutated_fixtures(body in mutated(WABA_FIXTURES)) {
        if let Ok(events) = waba::parse(&body) {
            for event in events {
                prop_assert!(herald_core::event::parse_data(event.data.get().as_bytes()).is_ok());
                prop_assert_eq!(satisfies_schema(&event), Ok(()));
            }
        }
    }

    #[test]
    fn telegram_never_panics_on_mutated_fixtures(body in mutated(TELEGRAM)) {
        if let Ok(event) = telegram::parse(&body) {
            prop_assert!(herald_core::event::parse_data(event.data.get().as_bytes()).is_ok());
            prop_assert_eq!(satisfies_schema(&event), Ok(()));
        }
    }

    #[test]
    fn gateway_never_panics_on_mutated_fixtures(body in mutated(GATEWAY)) {
        if let Ok(event) = gateway::parse(&body) {
            prop_assert!(herald_core::event::parse_data(event.data.get().as_bytes()).is_ok());
            prop_assert_eq!(satisfies_schema(&event), Ok(()));
        }
    }

    #[test]
    fn json_shaped_values_never_panic(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap();
        for event in waba::parse(&body).into_iter().flatten() {
            prop_assert_eq!(satisfies_schema(&event), Ok(()));
        }
        for event in [telegram::parse(&body), gateway::parse(&body)].into_iter().flatten() {
            prop_assert_eq!(satisfies_schema(&event), Ok(()));
        }
    }
}

/// Arbitrary JSON using the channels' own key names, so the fuzzing reaches
/// past the first shape check.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "entry",
        "changes",
        "field",
        "value",
        "messages",
        "statuses",
        "metadata",
        "id",
        "status",
        "timestamp",
        "type",
        "text",
        "body",
        "update_id",
        "message",
        "chat",
        "date",
        "event",
        "payload",
        "ack",
        "ackName",
        "from",
        "participant",
        "edit_date",
        "my_chat_member",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9 .]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..5).prop_map(
                |map| Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}
