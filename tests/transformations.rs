//! Endpoint transformations through separate `herald config`, `fanout` and
//! `delivery` processes and real receivers: the shaped body and headers
//! arrive signed over the bytes sent; a throwing or endless program sends
//! nothing and is dead-lettered with where it failed; a cancel is a skipped
//! attempt; a program that does not compile is refused when saved; and a
//! simulation answers over gRPC and the JSON API.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_core::signing::{EndpointSecret, verify_standard};
use herald_proto::v1::{
    self as pb, attempt_service_client::AttemptServiceClient,
    simulate_transformation_request::Input as SimulateInput,
};
use herald_tests::{
    Receiver, eventually,
    stack::{Stack, TenantClient, authed, internal_event, publish_event, spec},
};
use time::OffsetDateTime;

/// Every program lets the activation's test delivery through unchanged.
const SHAPING: &str = r#"function handler(webhook) {
  if (webhook.event.test) return webhook;
  webhook.event = {
    kind: webhook.eventType,
    name: webhook.event.data.name,
    sameTime: Date.now() === new Date(webhook.event.timestamp).getTime(),
    sentTo: webhook.url,
  };
  webhook.headers = { "X-Crm-Kind": "contact" };
  webhook.eventType = "crm.contact.created";
  return webhook;
}"#;

const THROWING: &str = "function handler(webhook) {\n  if (webhook.event.test) return webhook;\n  throw new Error('no contacts here');\n}";

const CANCELLING: &str = "function handler(webhook) {\n  if (webhook.event.test) return webhook;\n  return { cancel: true, reason: 'contacts are not wanted' };\n}";

const ENDLESS: &str =
    "function handler(webhook) {\n  if (webhook.event.test) return webhook;\n  for (;;) {}\n}";

fn with_program(url: &str, code: &str) -> pb::EndpointSpec {
    pb::EndpointSpec {
        transformation: Some(pb::Transformation { code: code.into() }),
        ..spec(url, &[100, 100])
    }
}

async fn attempts_of(
    stack: &Stack,
    tenant: &TenantClient,
    endpoint_id: &str,
    status: pb::AttemptStatus,
) -> Vec<pb::Attempt> {
    let attempts = AttemptServiceClient::new(stack.channel().await);
    eventually("the attempt in the log", Duration::from_secs(30), || {
        let mut attempts = attempts.clone();
        async move {
            let listed = attempts
                .list_attempts(authed(
                    &tenant.token,
                    pb::ListAttemptsRequest {
                        endpoint_id: endpoint_id.to_owned(),
                        status: status.into(),
                        page_size: 100,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .attempts;
            let live: Vec<pb::Attempt> = listed.into_iter().filter(|a| !a.test).collect();
            (!live.is_empty()).then_some(live)
        }
    })
    .await
}

fn live(receiver: &Receiver) -> Vec<herald_tests::Received> {
    receiver
        .received()
        .into_iter()
        .filter(|received| !received.body.windows(11).any(|w| w == br#""test":true"#))
        .collect()
}

#[test]
fn transformations_shape_cancel_and_fail_deliveries() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut tenant = stack.tenant().await;
        let receivers = [
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
        ];
        let mut endpoints = Vec::new();
        for (receiver, code) in receivers
            .iter()
            .zip([SHAPING, THROWING, CANCELLING, ENDLESS])
        {
            let created = tenant
                .active_endpoint(with_program(&receiver.url(), code))
                .await;
            endpoints.push((created.endpoint.unwrap().id, created.secret));
        }

        let bus = stack.bus().await;
        let event = internal_event(
            &tenant.id,
            format!("transform-{}", tenant.id),
            r#"{"name":"Maria Silva","phone":"16505551234"}"#,
        );
        publish_event(&bus, &event).await.await.unwrap();

        // The shaped delivery: the program's body and headers, the renamed
        // event type, signed over the bytes that arrived.
        let shaped = eventually("the shaped delivery", Duration::from_secs(30), || async {
            live(&receivers[0]).into_iter().next()
        })
        .await;
        let body: serde_json::Value = serde_json::from_slice(&shaped.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "kind": "contact.created",
                "name": "Maria Silva",
                "sameTime": true,
                "sentTo": receivers[0].url(),
            })
        );
        assert_eq!(shaped.header("X-Crm-Kind"), "contact");
        assert_eq!(shaped.header("X-Herald-Event"), "crm.contact.created");
        verify_standard(
            &EndpointSecret::parse(&endpoints[0].1).unwrap(),
            shaped.header("webhook-id"),
            shaped.header("webhook-timestamp"),
            shaped.header("webhook-signature"),
            &shaped.body,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .unwrap();

        // A throw: dead at once (no retry), with the error's line and
        // column, in the dead letters, and nothing sent.
        let dead = attempts_of(&stack, &tenant, &endpoints[1].0, pb::AttemptStatus::Dead).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].attempt, 1, "a failing program is not retried");
        assert!(
            dead[0].error.contains("Error: no contacts here"),
            "{}",
            dead[0].error
        );
        assert!(
            dead[0].error.contains("at line 3, column"),
            "{}",
            dead[0].error
        );
        assert_eq!(dead[0].response_code, 0);
        let dead_letters = tenant
            .recovery
            .list_dead_letters(authed(
                &tenant.token,
                pb::ListDeadLettersRequest {
                    endpoint_id: endpoints[1].0.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        assert_eq!(dead_letters.len(), 1);
        assert!(dead_letters[0].reason.contains("no contacts here"));

        // A cancel: skipped with its reason, nothing sent.
        let skipped =
            attempts_of(&stack, &tenant, &endpoints[2].0, pb::AttemptStatus::Skipped).await;
        assert!(
            skipped[0].error.contains("contacts are not wanted"),
            "{}",
            skipped[0].error
        );

        // An endless loop is stopped by the time limit.
        let stopped = attempts_of(&stack, &tenant, &endpoints[3].0, pb::AttemptStatus::Dead).await;
        assert!(
            stopped[0].error.contains("time_limit"),
            "{}",
            stopped[0].error
        );

        tokio::time::sleep(Duration::from_millis(500)).await;
        for receiver in &receivers[1..] {
            assert!(
                live(receiver).is_empty(),
                "a failed or cancelled delivery was sent"
            );
        }
    });
}

#[test]
fn programs_are_checked_when_saved_and_simulated_on_request() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut tenant = stack.tenant().await;

        // A syntax error is refused, naming the field and the line.
        let refused = tenant
            .config
            .create_endpoint(authed(
                &tenant.token,
                pb::CreateEndpointRequest {
                    spec: Some(with_program(
                        "http://127.0.0.1:9/hook",
                        "function handler(webhook) {\n  return webhook\n  let = ;\n}",
                    )),
                    secret: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().starts_with("spec.transformation.code:"),
            "{}",
            refused.message()
        );
        assert!(refused.message().contains("line 3"), "{}", refused.message());

        // Over gRPC: a catalog sample through a program.
        let simulated = tenant
            .config
            .simulate_transformation(authed(
                &tenant.token,
                pb::SimulateTransformationRequest {
                    code: "function handler(w) { return { event: { text: w.event.data.text }, headers: { 'X-Via': 'sim' } }; }".into(),
                    input: Some(SimulateInput::EventType("message.received".into())),
                    url: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(simulated.error, None);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&simulated.body_json).unwrap(),
            serde_json::json!({"text": "Hi! Is my order #4521 on its way?"})
        );
        assert_eq!(simulated.headers["X-Via"], "sim");
        assert_eq!(simulated.event_type, "message.received");

        // A failing program is a result, with its line and column.
        let failed = tenant
            .config
            .simulate_transformation(authed(
                &tenant.token,
                pb::SimulateTransformationRequest {
                    code: "function handler(w) {\n  return w.event.data.missing.deeper;\n}".into(),
                    input: Some(SimulateInput::EventJson(r#"{"event":"x","data":{}}"#.into())),
                    url: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let error = failed.error.unwrap();
        assert_eq!(error.kind, "thrown");
        assert!(error.message.starts_with("TypeError"), "{error:?}");
        assert_eq!(error.line, 2);
        assert!(error.column > 0);

        // Input that is not JSON is the caller's mistake.
        let bad_input = tenant
            .config
            .simulate_transformation(authed(
                &tenant.token,
                pb::SimulateTransformationRequest {
                    code: "function handler(w) { return w; }".into(),
                    input: Some(SimulateInput::EventJson("{not json".into())),
                    url: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(bad_input.code(), tonic::Code::InvalidArgument);
        assert!(bad_input.message().starts_with("event_json"), "{}", bad_input.message());

        // Over the JSON API: a cancel.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/transformations/simulate", stack.config_url()))
            .bearer_auth(&tenant.token)
            .json(&serde_json::json!({
                "code": "function handler(w) { return { cancel: true, reason: 'quiet hours' }; }",
                "event_type": "contact.created",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(answer["cancel"], true, "{answer}");
        assert_eq!(answer["cancel_reason"], "quiet hours", "{answer}");

        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/transformations/simulate", stack.config_url()))
            .bearer_auth(&tenant.token)
            .json(&serde_json::json!({
                "code": "function handler(w) {\n  throw new RangeError('nope');\n}",
                "event": {"event": "contact.created", "data": {}},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(answer["error"]["line"], 2, "{answer}");
        assert_eq!(answer["error"]["message"], "RangeError: nope", "{answer}");

        let refused = reqwest::Client::new()
            .post(format!("{}/api/v1/transformations/simulate", stack.config_url()))
            .bearer_auth(&tenant.token)
            .json(&serde_json::json!({"code": "function handler(w) { return w; }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
    });
}
