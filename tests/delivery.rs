//! Deliveries through separate `herald config`, `fanout` and `delivery`
//! processes, with a real receiver.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use herald_bus::{Bus, BusConfig, async_nats};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::{Event, parse_data},
    id::{EventId, TenantId},
    signing::{EndpointSecret, verify_standard},
};
use herald_proto::v1 as pb;
use herald_tests::{
    Receiver,
    signatures::hmac_sha256_hex,
    stack::{Stack, TenantClient, authed, create_active_endpoint, publish_events},
};
use prost::Message;
use time::OffsetDateTime;

const EVENTS: usize = 400;

#[test]
fn killing_delivery_mid_flight_loses_no_job() {
    let mut stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::from_millis(20)).await;
        let mut tenant = stack.tenant().await;
        let created = tenant
            .active_endpoint(pb::EndpointSpec {
                name: "Receiver".into(),
                url: receiver.url(),
                ..Default::default()
            })
            .await;
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS).await;

        // Crash the delivery service while requests are in flight.
        let distinct = |receiver: &Receiver| receiver.counts_by_webhook_id().len();
        for _ in 0..600 {
            if distinct(&receiver) > EVENTS / 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let at_crash = distinct(&receiver);
        assert!(at_crash < EVENTS, "everything arrived before the crash; the test proves nothing");
        stack.deliveries.remove(0).kill();
        let _restarted = stack.start_delivery();

        // Every event arrives; repeats only ever carry a webhook-id seen before.
        let mut arrived = 0;
        for _ in 0..2_400 {
            arrived = distinct(&receiver);
            if arrived == EVENTS + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let counts = receiver.counts_by_webhook_id();
        let duplicates: usize = counts.values().map(|count| count - 1).sum();
        println!("events {EVENTS}, delivered before the crash {at_crash}, delivered {arrived} (incl. the test), duplicates {duplicates}");
        assert_eq!(arrived, EVENTS + 1, "a job was lost");

        let secret = EndpointSecret::parse(&created.secret).unwrap();
        for received in receiver.received() {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            verify_standard(
                &secret,
                received.header("webhook-id"),
                received.header("webhook-timestamp"),
                received.header("webhook-signature"),
                &received.body,
                now,
            )
            .unwrap();
        }
    });
    drop(stack.fanout);
}

/// One event, five endpoints of one tenant: the three that match get it,
/// each signed with its own scheme; the other two (another event type, a
/// disabled endpoint) get nothing.
#[test]
fn one_event_reaches_exactly_its_matching_endpoints_each_signed_its_way() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receivers = [
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
            Receiver::start(Duration::ZERO).await,
        ];
        let TenantClient {
            id: tenant_id,
            token,
            mut config,
            ..
        } = stack.tenant().await;
        let schemes = [
            (pb::SigningScheme::Standard, "", "message.received"),
            (
                pb::SigningScheme::Sha256Hex,
                "X-Kaanha-Signature",
                "message.received",
            ),
            (pb::SigningScheme::SharedSecret, "", ""),
            (pb::SigningScheme::Standard, "", "message.read"),
            (pb::SigningScheme::Standard, "", "message.received"),
        ];
        let mut secrets = Vec::new();
        for (index, (scheme, header, event_type)) in schemes.iter().enumerate() {
            let spec = pb::EndpointSpec {
                name: format!("endpoint {index}"),
                url: receivers[index].url(),
                signing_scheme: (*scheme).into(),
                signature_header: (*header).into(),
                event_types: if event_type.is_empty() {
                    vec![]
                } else {
                    vec![(*event_type).into()]
                },
                ..Default::default()
            };
            let created = create_active_endpoint(&mut config, &token, spec).await;
            let endpoint_id = created.endpoint.unwrap().id;
            if index == 4 {
                config
                    .disable_endpoint(authed(
                        &token,
                        pb::DisableEndpointRequest {
                            endpoint_id,
                            reason: String::new(),
                        },
                    ))
                    .await
                    .unwrap();
            }
            secrets.push(created.secret);
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;

        let bus = Bus::connect(&BusConfig::for_url(stack.nats.url()), "e2e")
            .await
            .unwrap();
        let event = Event {
            id: EventId::generate(),
            tenant_id: TenantId::parse(&tenant_id).unwrap(),
            channel: Channel::Waba,
            device_id: None,
            event_type: EventType::parse("message.received").unwrap(),
            occurred_at: OffsetDateTime::now_utc(),
            received_at: OffsetDateTime::now_utc(),
            source_ref: Some("wamid.HBgLMTIzNDU2Nzg5MA==".into()),
            idempotency_key: "wamid.HBgLMTIzNDU2Nzg5MA==:received".into(),
            data: parse_data(r#"{"text":"Olá 👋","amount":12345678901234567890.10}"#.as_bytes())
                .unwrap(),
        };
        bus.publish(
            bus.topology().event_subject(&event),
            &event.idempotency_key,
            async_nats::HeaderMap::new(),
            Bytes::from(pb::Event::from(&event).encode_to_vec()),
        )
        .await
        .unwrap()
        .await
        .unwrap();

        let live = |receiver: &Receiver| -> Vec<herald_tests::Received> {
            receiver
                .received()
                .into_iter()
                .filter(|received| !received.body.windows(11).any(|w| w == br#""test":true"#))
                .collect()
        };
        for _ in 0..400 {
            if receivers[..3]
                .iter()
                .all(|receiver| !live(receiver).is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let deliveries: Vec<Vec<herald_tests::Received>> = receivers.iter().map(live).collect();
        assert_eq!(
            deliveries.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1, 1, 0, 0]
        );

        let body_text = String::from_utf8(deliveries[0][0].body.to_vec()).unwrap();
        assert!(
            body_text.contains(r#""amount":12345678901234567890.10"#),
            "numbers survive: {body_text}"
        );
        assert!(body_text.contains("Olá 👋"));

        let standard = &deliveries[0][0];
        verify_standard(
            &EndpointSecret::parse(&secrets[0]).unwrap(),
            standard.header("webhook-id"),
            standard.header("webhook-timestamp"),
            standard.header("webhook-signature"),
            &standard.body,
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .unwrap();
        let hex = &deliveries[1][0];
        assert_eq!(
            hex.header("X-Kaanha-Signature"),
            format!(
                "sha256={}",
                hmac_sha256_hex(secrets[1].as_bytes(), &hex.body)
            )
        );
        let shared = &deliveries[2][0];
        assert_eq!(shared.header("X-Webhook-Secret"), secrets[2]);
        for delivered in [standard, hex, shared] {
            assert_eq!(delivered.header("X-Herald-Event"), "message.received");
            assert!(delivered.header("User-Agent").starts_with("Herald/"));
            assert!(delivered.header("X-Idempotency-Key").starts_with("dlv_"));
        }
    });
}
