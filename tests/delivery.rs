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
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    config_service_client::ConfigServiceClient,
};
use herald_tests::{HeraldProcess, NatsServer, Receiver};
use prost::Message;
use time::OffsetDateTime;

const SERVICE_TOKEN: &str = "hrld_svc_e2e-shared-service-token";
const EVENTS: usize = 400;

fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

struct Stack {
    nats: NatsServer,
    config: HeraldProcess,
    fanout: HeraldProcess,
    delivery: HeraldProcess,
    state: tempfile::TempDir,
}

fn envs<'a>(
    stack_state: &'a str,
    nats_url: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut envs = vec![
        ("NATS_URL", nats_url),
        ("HERALD_SERVICE_TOKEN", SERVICE_TOKEN),
        ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        ("HERALD_STATE_DIR", stack_state),
        // A killed worker's jobs come back this soon (live workers extend it).
        ("HERALD_DELIVERY_ACK_WAIT", "3s"),
    ];
    envs.extend_from_slice(extra);
    envs
}

fn start_delivery(nats_url: &str, state: &str, config_url: &str) -> HeraldProcess {
    let mut delivery = HeraldProcess::start(
        &["delivery"],
        &envs(state, nats_url, &[("HERALD_CONFIG_URL", config_url)]),
    );
    delivery.wait_until_ready(Duration::from_secs(30));
    delivery
}

fn start_stack() -> Stack {
    let nats = NatsServer::start();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_owned();
    let database_url = format!("sqlite:{}", state.path().join("herald.db").display());
    let mut config = HeraldProcess::start(
        &["config"],
        &envs(&state_dir, &nats.url(), &[("DATABASE_URL", &database_url)]),
    );
    config.wait_until_ready(Duration::from_secs(30));
    let config_url = format!("http://{}", config.config_addr);
    let mut fanout = HeraldProcess::start(
        &["fanout"],
        &envs(
            &state_dir,
            &nats.url(),
            &[("HERALD_CONFIG_URL", &config_url)],
        ),
    );
    fanout.wait_until_ready(Duration::from_secs(30));
    let delivery = start_delivery(&nats.url(), &state_dir, &config_url);
    Stack {
        nats,
        config,
        fanout,
        delivery,
        state,
    }
}

#[test]
fn killing_delivery_mid_flight_loses_no_job() {
    let stack = start_stack();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::from_millis(20)).await;
        let admin_token = std::fs::read_to_string(stack.state.path().join("admin.token")).unwrap().trim().to_owned();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", stack.config.config_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut admin = AdminServiceClient::new(channel.clone());
        let tenant = admin.create_tenant(authed(&admin_token, pb::CreateTenantRequest { name: "Acme".into() })).await.unwrap().into_inner();
        let token = admin
            .create_token(authed(&admin_token, pb::CreateTokenRequest { tenant_id: tenant.id.clone(), name: "e2e".into(), ..Default::default() }))
            .await
            .unwrap()
            .into_inner()
            .secret;
        let mut config = ConfigServiceClient::new(channel);
        let created = config
            .create_endpoint(authed(
                &token,
                pb::CreateEndpointRequest {
                    spec: Some(pb::EndpointSpec { name: "Receiver".into(), url: receiver.url(), ..Default::default() }),
                    secret: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let endpoint_id = created.endpoint.unwrap().id;
        let tested = config
            .test_endpoint(authed(&token, pb::TestEndpointRequest { endpoint_id: endpoint_id.clone(), ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tested.attempt.unwrap().response_code, 200);
        assert_eq!(tested.endpoint.unwrap().status(), pb::EndpointStatus::Active);
        // Fanout learns of the activation through its Watch stream.
        tokio::time::sleep(Duration::from_millis(1_000)).await;

        let bus = Bus::connect(&BusConfig::for_url(stack.nats.url()), "e2e").await.unwrap();
        let tenant_id = TenantId::parse(&tenant.id).unwrap();
        let mut acks = Vec::new();
        for index in 0..EVENTS {
            let event = Event {
                id: EventId::generate(),
                tenant_id,
                channel: Channel::Internal,
                device_id: None,
                event_type: EventType::parse("contact.created").unwrap(),
                occurred_at: OffsetDateTime::now_utc(),
                received_at: OffsetDateTime::now_utc(),
                source_ref: None,
                idempotency_key: format!("e2e-{index}"),
                data: parse_data(format!(r#"{{"index":{index}}}"#).as_bytes()).unwrap(),
            };
            acks.push(
                bus.publish(
                    bus.topology().event_subject(&event.tenant_id, event.channel, &event.event_type),
                    &event.idempotency_key,
                    async_nats::HeaderMap::new(),
                    Bytes::from(pb::Event::from(&event).encode_to_vec()),
                )
                .await
                .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }

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
        stack.delivery.kill();
        let config_url = format!("http://{}", stack.config.config_addr);
        let _restarted = start_delivery(&stack.nats.url(), stack.state.path().to_str().unwrap(), &config_url);

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
