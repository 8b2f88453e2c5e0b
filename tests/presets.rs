//! The seed contracts as presets, through separate `herald config`,
//! `fanout` and `delivery` processes: every catalog type is delivered
//! through each preset to a real receiver, which checks the body keys and
//! headers each product documents and verifies the signatures the way its
//! receivers do: with the products' own Node.js snippets when `node` is
//! installed, and always with an independent re-implementation (RFC 2104
//! HMAC written out in `signatures`, not Herald's signing code).
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use herald_core::{
    catalog::{CATALOG, EventType},
    channel::Channel,
    event::{Event, parse_data},
    id::{DeviceId, EventId, TenantId},
};
use herald_proto::v1 as pb;
use herald_tests::{
    Received, Receiver,
    signatures::hmac_sha256_hex,
    stack::{Stack, publish_event},
};
use serde_json::Value;
use time::OffsetDateTime;

/// Seed 003's verifier, as its documentation prints it, run on a captured
/// delivery: exit 0 when it accepts the signature.
const KAANHA_VERIFIER: &str = r#"
const crypto = require('crypto');
const fs = require('fs');

function verifyWebhook(rawBody, signature, secret) {
  const expected = 'sha256=' + crypto
    .createHmac('sha256', secret)
    .update(rawBody)
    .digest('hex');

  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expected)
  );
}

const [bodyFile, signature, secret] = process.argv.slice(2);
const rawBody = fs.readFileSync(bodyFile);
process.exit(verifyWebhook(rawBody, signature, secret) ? 0 : 1);
"#;

/// Kapso's verifier, which signs `JSON.stringify` of the parsed body (what
/// an Express `express.json()` receiver holds): it accepts only a body
/// written the way `JSON.stringify` writes it.
const KAPSO_VERIFIER: &str = r#"
const crypto = require('crypto');
const fs = require('fs');

function verifyWebhook(payload, signature, secret) {
  const expectedSignature = crypto
    .createHmac('sha256', secret)
    .update(JSON.stringify(payload))
    .digest('hex');

  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expectedSignature)
  );
}

const [bodyFile, signature, secret] = process.argv.slice(2);
const payload = JSON.parse(fs.readFileSync(bodyFile, 'utf8'));
process.exit(verifyWebhook(payload, signature, secret) ? 0 : 1);
"#;

/// Runs `script` with `node` on a captured delivery; `None` when node is
/// not installed (the Rust re-implementation has checked it either way).
fn node_accepts(
    dir: &Path,
    script: &str,
    body: &[u8],
    signature: &str,
    secret: &str,
) -> Option<bool> {
    let script_file = dir.join("verify.js");
    std::fs::write(&script_file, script).unwrap();
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, body).unwrap();
    let status = Command::new("node")
        .arg(&script_file)
        .arg(&body_file)
        .arg(signature)
        .arg(secret)
        .status()
        .ok()?;
    Some(status.success())
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

fn is_millisecond_iso(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    // 2026-03-24T10:30:00.000Z
    text.len() == 24
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

const STATUS_TYPES: [&str; 4] = [
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
];

fn check_kirisan(received: &Received, secret: &str, device: &str) -> String {
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    let event = body["event"].as_str().unwrap().to_owned();
    assert_eq!(received.header("X-Kirisan-Event"), event);
    assert_eq!(received.header("X-Kirisan-Device"), device);
    assert_eq!(received.header("X-Webhook-Secret"), secret);
    assert_eq!(body["device"], device);
    assert_eq!(body["channel"], "whatsapp");
    assert!(is_millisecond_iso(&body["timestamp"]), "{body}");
    let top = [
        "event",
        "device",
        "channel",
        "sender",
        "message",
        "timestamp",
    ];
    if event == "message.received" {
        assert_eq!(keys(&body), set(&top), "{body}");
        assert_eq!(keys(&body["sender"]), set(&["id", "name"]));
        assert_eq!(keys(&body["message"]), set(&["id", "type", "text"]));
        assert_eq!(body["message"]["type"], "text");
    } else if event == "form.submitted" {
        let mut expected = set(&top);
        expected.insert("submission");
        assert_eq!(keys(&body), expected, "{body}");
        assert_eq!(
            keys(&body["submission"]),
            set(&["form_id", "answers", "submitted_at"])
        );
    } else if STATUS_TYPES.contains(&event.as_str()) {
        assert_eq!(keys(&body), set(&top), "{body}");
        assert!(body["sender"].is_null());
        assert_eq!(
            keys(&body["message"]),
            set(&["id", "status", "recipient", "error"])
        );
        assert_eq!(
            body["message"]["status"],
            event.strip_prefix("message.").unwrap()
        );
    } else {
        let mut expected = set(&top);
        expected.insert("data");
        assert_eq!(keys(&body), expected, "{body}");
    }
    event
}

fn check_kaanha(received: &Received, secret: &str, tenant_id: &str, dir: &Path) -> String {
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(
        keys(&body),
        set(&["event", "organizationId", "timestamp", "data"]),
        "{body}"
    );
    assert_eq!(body["organizationId"], tenant_id);
    assert!(is_millisecond_iso(&body["timestamp"]), "{body}");
    let signature = received.header("X-Kaanha-Signature");
    assert_eq!(
        signature,
        format!(
            "sha256={}",
            hmac_sha256_hex(secret.as_bytes(), &received.body)
        )
    );
    if let Some(accepted) = node_accepts(dir, KAANHA_VERIFIER, &received.body, signature, secret) {
        assert!(accepted, "the seed's Node.js verifier refused {body}");
    }
    let event = body["event"].as_str().unwrap().to_owned();
    let data = &body["data"];
    match event.as_str() {
        "message.received" => {
            assert_eq!(
                keys(data),
                set(&["messageId", "conversationId", "contact", "message"])
            );
            assert_eq!(
                keys(&data["contact"]),
                set(&["id", "phone", "name", "tags"])
            );
            assert_eq!(keys(&data["message"]), set(&["type", "text", "timestamp"]));
            assert!(is_millisecond_iso(&data["message"]["timestamp"]));
            assert_eq!(data["contact"]["phone"], "+16505551234");
        }
        "contact.created" => {
            assert_eq!(keys(data), set(&["contact"]));
            assert_eq!(
                keys(&data["contact"]),
                set(&[
                    "id",
                    "phone",
                    "name",
                    "email",
                    "tags",
                    "optedIn",
                    "createdAt"
                ])
            );
            assert!(is_millisecond_iso(&data["contact"]["createdAt"]));
        }
        _ => {
            // The same camelCase style everywhere else.
            fn no_snake_keys(value: &Value) {
                match value {
                    Value::Object(map) => {
                        for (key, value) in map {
                            assert!(!key.contains('_'), "snake_case key {key}");
                            no_snake_keys(value);
                        }
                    }
                    Value::Array(items) => items.iter().for_each(no_snake_keys),
                    _ => {}
                }
            }
            no_snake_keys(data);
        }
    }
    event
}

fn check_kapso(received: &Received, secret: &str, device: &str, dir: &Path) -> String {
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    let signature = received.header("X-Webhook-Signature");
    assert_eq!(
        signature,
        hmac_sha256_hex(secret.as_bytes(), &received.body)
    );
    if let Some(accepted) = node_accepts(dir, KAPSO_VERIFIER, &received.body, signature, secret) {
        assert!(accepted, "Kapso's Node.js verifier refused {body}");
    }
    assert!(received.header("X-Idempotency-Key").starts_with("dlv_"));
    let event = body["event"].as_str().unwrap().to_owned();
    assert_eq!(received.header("X-Webhook-Event"), event);
    if event.starts_with("whatsapp.message.") {
        assert_eq!(
            keys(&body),
            set(&["event", "message", "conversation", "whatsapp_config"]),
            "{body}"
        );
        assert_eq!(
            keys(&body["message"]),
            set(&[
                "id",
                "message_type",
                "content",
                "direction",
                "status",
                "phone_number",
                "created_at",
                "error"
            ])
        );
        assert_eq!(body["whatsapp_config"]["id"], device);
    } else if event.starts_with("whatsapp.conversation.") {
        assert_eq!(
            keys(&body),
            set(&["event", "conversation", "whatsapp_config"]),
            "{body}"
        );
    } else {
        assert_eq!(keys(&body), set(&["event", "data"]), "{body}");
    }
    event
}

/// The Kapso name each catalog type is delivered under.
fn kapso_name(herald: &str) -> &str {
    match herald {
        "message.received" => "whatsapp.message.received",
        "message.sent" => "whatsapp.message.sent",
        "message.delivered" => "whatsapp.message.delivered",
        "message.read" => "whatsapp.message.read",
        "message.failed" => "whatsapp.message.failed",
        "conversation.opened" => "whatsapp.conversation.created",
        "conversation.resolved" => "whatsapp.conversation.ended",
        other => other,
    }
}

#[test]
fn every_catalog_type_reaches_each_preset_in_its_contract() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let mut tenant = stack.tenant().await;
        let presets = ["kirisan", "kaanha", "kapso"];
        let mut receivers = Vec::new();
        let mut secrets = Vec::new();
        for preset in presets {
            let receiver = Receiver::start(Duration::ZERO).await;
            let created = tenant
                .active_endpoint(pb::EndpointSpec {
                    name: format!("{preset} receiver"),
                    url: receiver.url(),
                    preset: preset.into(),
                    ..Default::default()
                })
                .await;
            let spec = created.endpoint.unwrap().spec.unwrap();
            assert_eq!(spec.preset, preset);
            receivers.push(receiver);
            secrets.push(created.secret);
        }
        // The activating test delivery: Kapso marks it `test: true`.
        let kapso_test: Value = serde_json::from_slice(&receivers[2].received()[0].body).unwrap();
        assert_eq!(kapso_test["test"], true, "{kapso_test}");

        let device = DeviceId::generate();
        let bus = stack.bus().await;
        for (index, entry) in CATALOG.iter().enumerate() {
            let event = Event {
                id: EventId::generate(),
                tenant_id: TenantId::parse(&tenant.id).unwrap(),
                channel: Channel::Whatsapp,
                device_id: Some(device),
                event_type: EventType::parse(entry.name).unwrap(),
                occurred_at: OffsetDateTime::now_utc(),
                received_at: OffsetDateTime::now_utc(),
                source_ref: None,
                idempotency_key: format!("presets-{}-{index}", tenant.id),
                data: parse_data(entry.sample_data.as_bytes()).unwrap(),
            };
            publish_event(&bus, &event).await.await.unwrap();
        }

        // Each receiver's first request is the activating test.
        let live =
            |receiver: &Receiver| receiver.received().into_iter().skip(1).collect::<Vec<_>>();
        for _ in 0..800 {
            if receivers
                .iter()
                .all(|receiver| live(receiver).len() >= CATALOG.len())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let device = device.to_string();
        let all: BTreeSet<&str> = CATALOG.iter().map(|entry| entry.name).collect();

        // The verifiers can refuse: a wrong secret fails both.
        if let [first, ..] = live(&receivers[1]).as_slice() {
            let signature = first.header("X-Kaanha-Signature");
            let refused =
                node_accepts(dir.path(), KAANHA_VERIFIER, &first.body, signature, "wrong");
            assert_ne!(refused, Some(true));
        }
        if let [first, ..] = live(&receivers[2]).as_slice() {
            let signature = first.header("X-Webhook-Signature");
            let refused = node_accepts(dir.path(), KAPSO_VERIFIER, &first.body, signature, "wrong");
            assert_ne!(refused, Some(true));
        }

        let kirisan: BTreeSet<String> = live(&receivers[0])
            .iter()
            .map(|received| check_kirisan(received, &secrets[0], &device))
            .collect();
        assert_eq!(kirisan, all.iter().map(|name| (*name).to_owned()).collect());

        let kaanha: BTreeSet<String> = live(&receivers[1])
            .iter()
            .map(|received| check_kaanha(received, &secrets[1], &tenant.id, dir.path()))
            .collect();
        assert_eq!(kaanha, all.iter().map(|name| (*name).to_owned()).collect());

        let kapso: BTreeSet<String> = live(&receivers[2])
            .iter()
            .map(|received| check_kapso(received, &secrets[2], &device, dir.path()))
            .collect();
        assert_eq!(
            kapso,
            all.iter().map(|name| kapso_name(name).to_owned()).collect()
        );
        for name in [
            "whatsapp.message.received",
            "whatsapp.conversation.created",
            "whatsapp.message.delivered",
            "whatsapp.message.read",
            "whatsapp.message.failed",
        ] {
            assert!(kapso.contains(name), "no {name}");
        }
    });
}

/// A preset owns its endpoint's signing: another scheme with it, or an
/// unknown preset, is refused naming the field.
#[test]
fn conflicting_or_unknown_presets_are_refused_naming_the_field() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut tenant = stack.tenant().await;
        let identity = "function handler(webhook) { return webhook; }";
        for (preset, scheme, code, field) in [
            ("acme", pb::SigningScheme::Unspecified, "", "spec.preset"),
            (
                "kaanha",
                pb::SigningScheme::Standard,
                "",
                "spec.signing_scheme",
            ),
            // Both would shape the body.
            (
                "kapso",
                pb::SigningScheme::Unspecified,
                identity,
                "spec.preset",
            ),
        ] {
            let refused = tenant
                .config
                .create_endpoint(herald_tests::stack::authed(
                    &tenant.token,
                    pb::CreateEndpointRequest {
                        spec: Some(pb::EndpointSpec {
                            name: "refused".into(),
                            url: "https://hooks.example.com/x".into(),
                            preset: preset.into(),
                            signing_scheme: scheme.into(),
                            transformation: Some(pb::Transformation { code: code.into() }),
                            ..Default::default()
                        }),
                        secret: String::new(),
                    },
                ))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument);
            assert!(refused.message().contains(field), "{}", refused.message());
        }
    });
}

/// The JSON API sets and shows the preset with the signing it fixes, and
/// changing only the preset takes the new one's signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_sets_a_preset_and_shows_its_signing() {
    let stack = herald_tests::herald_all::HeraldAll::start();
    let tenant = stack.tenant("Presets").await;
    let api = stack.api(&tenant.token);
    let (status, created) = api
        .post(
            "/api/v1/endpoints",
            serde_json::json!({
                "name": "Kapso bot",
                "url": "https://bot.example.com/whatsapp",
                "preset": "kapso"
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let endpoint = &created["endpoint"];
    assert_eq!(endpoint["preset"], "kapso");
    assert_eq!(endpoint["signing_scheme"], "hex");
    assert_eq!(endpoint["signature_header"], "X-Webhook-Signature");

    let id = endpoint["id"].as_str().unwrap();
    let (status, updated) = api
        .patch(
            &format!("/api/v1/endpoints/{id}"),
            serde_json::json!({"preset": "kaanha"}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["preset"], "kaanha");
    assert_eq!(updated["signing_scheme"], "sha256_hex");
    assert_eq!(updated["signature_header"], "X-Kaanha-Signature");

    for (body, field) in [
        (
            serde_json::json!({"name": "x", "url": "https://x.example.com/", "preset": "acme"}),
            "preset",
        ),
        (
            serde_json::json!({
                "name": "x",
                "url": "https://x.example.com/",
                "preset": "kirisan",
                "signing_scheme": "standard"
            }),
            "signing_scheme",
        ),
    ] {
        let (status, refused) = api.post("/api/v1/endpoints", body).await;
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["error"]["field"]
                .as_str()
                .is_some_and(|named| named.contains(field)),
            "{refused}"
        );
    }
}

/// Kapso's `X-Idempotency-Key` names the delivery of one event to one
/// endpoint: a retry repeats it, with the same body and signature.
#[test]
fn a_kapso_retry_repeats_its_idempotency_key() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let created = tenant
            .active_endpoint(pb::EndpointSpec {
                preset: "kapso".into(),
                ..herald_tests::stack::spec(&receiver.url(), &[300, 300])
            })
            .await;
        receiver.answer(503);
        let entry = CATALOG
            .iter()
            .find(|entry| entry.name == "message.received")
            .unwrap();
        let event = Event {
            id: EventId::generate(),
            tenant_id: TenantId::parse(&tenant.id).unwrap(),
            channel: Channel::Whatsapp,
            device_id: Some(DeviceId::generate()),
            event_type: EventType::parse(entry.name).unwrap(),
            occurred_at: OffsetDateTime::now_utc(),
            received_at: OffsetDateTime::now_utc(),
            source_ref: None,
            idempotency_key: format!("presets-retry-{}", tenant.id),
            data: parse_data(entry.sample_data.as_bytes()).unwrap(),
        };
        let bus = stack.bus().await;
        publish_event(&bus, &event).await.await.unwrap();
        let live =
            |receiver: &Receiver| receiver.received().into_iter().skip(1).collect::<Vec<_>>();
        for _ in 0..400 {
            if !live(&receiver).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        receiver.answer(200);
        for _ in 0..400 {
            if live(&receiver).iter().any(Received::succeeded) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let tries = live(&receiver);
        assert!(tries.len() >= 2, "no retry: {}", tries.len());
        assert!(tries.last().unwrap().succeeded());
        let key = tries[0].header("X-Idempotency-Key");
        assert!(key.starts_with("dlv_"), "{key}");
        for attempt in &tries {
            assert_eq!(attempt.header("X-Idempotency-Key"), key);
            assert_eq!(attempt.body, tries[0].body);
            assert_eq!(
                attempt.header("X-Webhook-Signature"),
                hmac_sha256_hex(created.secret.as_bytes(), &attempt.body)
            );
        }
    });
}
