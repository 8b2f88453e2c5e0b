//! Discovery for automation platforms, labels, aliases and schemas through
//! a running `herald all`: a REST-hook cycle performed only from what
//! `GET /api/integrations/describe` says (method, base URL, path, input
//! fields), an alias subscriber receiving WhatsApp events under Kapso's
//! name, and schemas served and enforced.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_core::catalog::CATALOG;
use herald_testkit_stack::{Receiver, eventually};
use herald_tests::herald_all::HeraldAll;
use serde_json::{Map, Value, json};

/// An action of the description, performed as a platform would: the path's
/// placeholders and the body built from its input fields, each given value
/// or the field's default.
async fn perform(
    http: &reqwest::Client,
    origin: &str,
    token: &str,
    action: &Value,
    values: &Map<String, Value>,
) -> (u16, Value) {
    let mut path = action["path"].as_str().unwrap().to_owned();
    let mut body = Map::new();
    for field in action["input_fields"].as_array().unwrap() {
        let key = field["key"].as_str().unwrap();
        let value = values
            .get(key)
            .cloned()
            .or_else(|| Some(field["default"].clone()).filter(|value| !value.is_null()));
        match (field["location"].as_str().unwrap(), value) {
            ("path", Some(value)) => {
                path = path.replace(&format!("{{{key}}}"), value.as_str().unwrap());
            }
            ("body", Some(value)) => {
                body.insert(key.to_owned(), value);
            }
            (_, None) => assert!(!field["required"].as_bool().unwrap(), "{key} is required"),
            (location, _) => panic!("unknown location {location}"),
        }
    }
    let base = action["base_url"].as_str().unwrap_or(origin);
    let method =
        reqwest::Method::from_bytes(action["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut request = http
        .request(method.clone(), format!("{base}{path}"))
        .bearer_auth(token);
    if method != reqwest::Method::DELETE && method != reqwest::Method::GET {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn action<'a>(description: &'a Value, key: &str) -> &'a Value {
    description["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|action| action["key"] == key)
        .unwrap_or_else(|| panic!("no {key} action in {description}"))
}

fn values(pairs: Value) -> Map<String, Value> {
    pairs.as_object().unwrap().clone()
}

/// The live (not test) deliveries the receiver got.
fn live(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|received| serde_json::from_slice::<Value>(&received.body).unwrap())
        .filter(|envelope| envelope.get("test").is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_hook_cycle_runs_from_the_description_alone() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Zapier").await;
    let api = stack.api(&tenant.token);
    let (status, description) = api.get("/api/integrations/describe").await;
    assert_eq!(status, 200, "{description}");
    let (status, versioned) = api.get("/api/v1/integrations/describe").await;
    assert_eq!(status, 200);
    assert_eq!(versioned, description, "both paths give one answer");
    let (status, _) = stack
        .api("hrld_not_a_token")
        .get("/api/integrations/describe")
        .await;
    assert_eq!(status, 401);

    // Triggers: every catalog type with its label, schema and sample, and
    // the aliases.
    let triggers = description["triggers"].as_array().unwrap();
    for entry in CATALOG {
        let trigger = triggers
            .iter()
            .find(|trigger| trigger["key"] == entry.name)
            .unwrap_or_else(|| panic!("{} is not a trigger", entry.name));
        assert_eq!(trigger["label"], entry.label);
        assert_eq!(trigger["description"], entry.description);
        assert_eq!(trigger["data_schema"]["type"], "object", "{}", entry.name);
        assert_eq!(trigger["sample"]["event"], entry.name);
    }
    let incoming = triggers
        .iter()
        .find(|trigger| trigger["key"] == "message.received")
        .unwrap();
    assert_eq!(incoming["label"], "Incoming Message");
    assert_eq!(
        incoming["channels"],
        json!(["whatsapp", "telegram", "waba"])
    );
    let alias = triggers
        .iter()
        .find(|trigger| trigger["key"] == "whatsapp.message.received")
        .unwrap();
    assert_eq!(alias["alias_of"], "message.received");
    assert_eq!(alias["channels"], json!(["whatsapp", "waba"]));
    assert_eq!(alias["sample"]["event"], "whatsapp.message.received");

    // Subscribe: the test on save reaches the hook, which makes it active.
    let receiver = Receiver::start(Duration::ZERO).await;
    let http = reqwest::Client::new();
    let origin = stack.url("");
    let (status, subscribed) = perform(
        &http,
        &origin,
        &tenant.token,
        action(&description, "subscribe"),
        &values(json!({"url": receiver.url(), "event_types": ["message.received"]})),
    )
    .await;
    assert_eq!(status, 201, "{subscribed}");
    assert_eq!(subscribed["endpoint"]["status"], "active", "{subscribed}");
    assert_eq!(
        subscribed["test"]["attempt"]["response_code"], 200,
        "{subscribed}"
    );
    let hook_id = subscribed
        .pointer(
            action(&description, "subscribe")["output"]["id"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
        .clone();

    // An event published through the described action reaches the hook.
    let publish = action(&description, "publish_event");
    assert_eq!(
        publish["base_url"].as_str().unwrap(),
        format!("http://{}", stack.herald.ingest_addr)
    );
    let (status, published) = perform(
        &http,
        &origin,
        &tenant.token,
        publish,
        &values(
            json!({"type": "message.received", "data": {"from": "16505551234", "text": "Hi!"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{published}");
    let delivered = eventually(
        "the published event at the hook",
        Duration::from_secs(30),
        || {
            let live = live(&receiver);
            async move { live.into_iter().next() }
        },
    )
    .await;
    assert_eq!(delivered["event"], "message.received");
    assert_eq!(delivered["id"], published["event_id"]);
    assert_eq!(delivered["data"]["text"], "Hi!");

    // Data violating the type's schema is refused naming its JSON path.
    let (status, refused) = perform(
        &http,
        &origin,
        &tenant.token,
        publish,
        &values(json!({"type": "message.received", "data": {"text": 42}})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "data.text");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("$.text: expected string"),
        "{refused}"
    );

    // Unsubscribe: the endpoint is gone and nothing more is delivered.
    let (status, _) = perform(
        &http,
        &origin,
        &tenant.token,
        action(&description, "unsubscribe"),
        &values(json!({ "endpoint_id": hook_id })),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .get(&format!("/api/v1/endpoints/{}", hook_id.as_str().unwrap()))
        .await;
    assert_eq!(status, 404);
    let (status, _) = perform(
        &http,
        &origin,
        &tenant.token,
        publish,
        &values(json!({"type": "message.received", "data": {"text": "after"}})),
    )
    .await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(live(&receiver).len(), 1, "nothing after unsubscribe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_subscriber_gets_whatsapp_events_under_the_alias() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Kapso").await;
    let api = stack.api(&tenant.token);
    let mut devices = Vec::new();
    for (channel, verification) in [
        ("whatsapp", json!({"whatsapp": {"hmac_key": "change-me"}})),
        (
            "telegram",
            json!({"telegram": {"secret_token": "change-me"}}),
        ),
    ] {
        let (status, device) = api
            .post(
                "/api/v1/devices",
                json!({"channel": channel, "name": channel, "external_id": channel, "verification": verification}),
            )
            .await;
        assert_eq!(status, 201, "{device}");
        devices.push(device["id"].as_str().unwrap().to_owned());
    }
    let receiver = Receiver::start(Duration::ZERO).await;
    let (status, created) = api
        .post(
            "/api/v1/endpoints",
            json!({
                "name": "Kapso receiver",
                "url": receiver.url(),
                "event_types": ["whatsapp.message.received"],
                "test_on_save": true,
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["endpoint"]["status"], "active", "{created}");
    assert_eq!(created["endpoint"]["test_on_save"], true);

    let http = reqwest::Client::new();
    let events = format!("http://{}/api/v1/events", stack.herald.ingest_addr);
    for (device, text) in [
        (&devices[1], "from telegram"),
        (&devices[0], "from whatsapp"),
    ] {
        let response = http
            .post(&events)
            .bearer_auth(&tenant.token)
            .json(&json!({"type": "message.received", "device_id": device, "data": {"text": text}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
    let delivered = eventually(
        "the WhatsApp event under the alias",
        Duration::from_secs(30),
        || {
            let live = live(&receiver);
            async move { live.into_iter().next() }
        },
    )
    .await;
    assert_eq!(delivered["event"], "whatsapp.message.received");
    assert_eq!(delivered["data"]["text"], "from whatsapp");
    let headers: Vec<String> = receiver
        .received()
        .iter()
        .map(|received| received.header("x-herald-event").to_owned())
        .collect();
    assert!(
        headers
            .iter()
            .any(|header| header == "whatsapp.message.received"),
        "{headers:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        live(&receiver).len(),
        1,
        "the Telegram event is not the alias's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_show_labels_channels_and_schemas_and_store_custom_schemas() {
    let stack = HeraldAll::start();
    let tenant = stack.tenant("Schemas").await;
    let api = stack.api(&tenant.token);
    let (status, listed) = api.get("/api/v1/event-types").await;
    assert_eq!(status, 200);
    let status_type = listed["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event_type| event_type["name"] == "message.delivered")
        .unwrap()
        .clone();
    assert_eq!(status_type["label"], "Message status: delivered");
    assert_eq!(status_type["channels"], json!(["whatsapp", "waba"]));
    assert_eq!(status_type["schema"]["type"], "object");

    let (status, refused) = api
        .post(
            "/api/v1/event-types",
            json!({"name": "order.packed", "schema": {"type": "object", "format": "x"}}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "schema");
    let (status, refused) = api
        .post(
            "/api/v1/event-types",
            json!({"name": "order.packed", "sample_data": {"sku": 1}, "schema": {"type": "object", "properties": {"sku": {"type": "string"}}}}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "sample_data");
    let schema =
        json!({"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}});
    let (status, created) = api
        .post(
            "/api/v1/event-types",
            json!({"name": "order.packed", "sample_data": {"sku": "A1"}, "schema": schema}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["schema"], schema);
    assert_eq!(created["label"], "order.packed");
    let (_, listed) = api.get("/api/v1/event-types").await;
    let custom = listed["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event_type| event_type["name"] == "order.packed")
        .unwrap()
        .clone();
    assert_eq!(custom["schema"], schema);

    // Ingest learns the schema through Watch and enforces it.
    let http = reqwest::Client::new();
    let events = format!("http://{}/api/v1/events", stack.herald.ingest_addr);
    let refused = eventually(
        "ingest enforcing the new schema",
        Duration::from_secs(10),
        || {
            let request = http
                .post(&events)
                .bearer_auth(&tenant.token)
                .json(&json!({"type": "order.packed", "data": {"sku": 7}}));
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16() == 400).then_some(response)
            }
        },
    )
    .await;
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["field"], "data.sku", "{refused}");
}
