#![allow(clippy::unwrap_used)]
//! The ingest service against real components: a nats-server, the config
//! service on SQLite (devices and tokens created through its API, its Watch
//! stream feeding the cache), and real HTTP and gRPC clients.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use herald_bus::{Bus, BusConfig, headers};
use herald_config::{ConfigState, Settings, secrets::MasterKey};
use herald_core::address::AllowList;
use herald_ingest::{IngestArgs, IngestMetrics};
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    config_service_client::ConfigServiceClient, ingest_service_client::IngestServiceClient,
    publish_result::Outcome,
};
use herald_store::{Store, StoreOptions};
use herald_telemetry::server::RequestMetrics;
use herald_testkit::NatsServer;
use herald_watch::{ConfigCache, WatchConfig};
use hmac::{Hmac, KeyInit, Mac};
use prometheus_client::registry::Registry;
use prost::Message;
use sha2::{Sha256, Sha512};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, transport::Channel};

const ADMIN: &str = "test-admin-token";
const SERVICE: &str = "test-service-token";
const PATIENCE: Duration = Duration::from_secs(15);
const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "verify-me";
const TELEGRAM_SECRET: &str = "tg_Secret-123";
const GATEWAY_KEY: &str = "gateway-key";

const WABA_BATCH: &[u8] = include_bytes!("fixtures/waba_batch.json");
const TELEGRAM_TEXT: &[u8] = include_bytes!("fixtures/telegram_text.json");
const TELEGRAM_CALLBACK: &[u8] = include_bytes!("fixtures/telegram_callback.json");
const GATEWAY_MESSAGE: &[u8] = include_bytes!("fixtures/gateway_message.json");
const GATEWAY_ACK: &[u8] = include_bytes!("fixtures/gateway_ack_group.json");

struct Harness {
    nats: NatsServer,
    bus: Bus,
    cache: ConfigCache,
    config: Channel,
    ingest: SocketAddr,
    http: reqwest::Client,
    registry: Registry,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Harness {
    start_with(|_, _| {}).await
}

/// With each tenant's events-per-second quota (0: none).
async fn start_with_quota(events_per_second: f64, burst: u32) -> Harness {
    start_with(|_, args| {
        args.tenant_events_per_second = events_per_second;
        args.tenant_events_burst = burst;
    })
    .await
}

/// A harness whose bus and ingest settings `adjust` changed first.
async fn start_with(adjust: impl FnOnce(&mut BusConfig, &mut IngestArgs)) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    herald_testkit::trace_spans();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect_with(&StoreOptions {
        url: format!("sqlite:{}", dir.path().join("herald.db").display()),
        schema: None,
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut bus_config = BusConfig::for_url(nats.url());
    let mut args = IngestArgs {
        max_body_bytes: 64 * 1024,
        ..IngestArgs::for_addr(listener.local_addr().unwrap())
    };
    adjust(&mut bus_config, &mut args);
    let ingest_listener = listener;
    let bus = Bus::connect(&bus_config, "test").await.unwrap();
    bus.ensure_streams().await.unwrap();
    let settings = Settings {
        admin_token: ADMIN.to_owned(),
        service_token: SERVICE.to_owned(),
        master_key: MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap(),
        allow_list: AllowList::parse("127.0.0.0/8").unwrap(),
        attempt_retention: Duration::from_secs(30 * 24 * 3600),
        sweep_interval: Duration::from_secs(3600),
        auto_disable_after: None,
        secret_overlap: Duration::from_secs(24 * 3600),
        test_timeout: Duration::from_secs(10),
        change_retention: Duration::from_secs(7 * 24 * 3600),
        trusted_proxies: Vec::new(),
        max_dead_letters: 100_000,
        metrics: herald_config::ConfigMetrics::default(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config_addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = ConfigState::new(store, bus.clone(), settings);
    tokio::spawn(herald_config::run(
        listener,
        state,
        herald_telemetry::server::RequestMetrics::default(),
        shutdown.clone(),
    ));

    let cache = ConfigCache::new();
    let (synced_sender, synced) = watch::channel(false);
    tokio::spawn(herald_watch::run(
        WatchConfig {
            config_url: format!("http://{config_addr}"),
        },
        SERVICE.to_owned(),
        Vec::new(),
        cache.handler(),
        synced_sender,
        shutdown.clone(),
    ));
    let mut registry = Registry::default();
    let requests = RequestMetrics::register(&mut registry);
    let metrics = IngestMetrics::register(&mut registry, requests);
    let ingest = ingest_listener.local_addr().unwrap();
    tokio::spawn(herald_ingest::run(
        ingest_listener,
        bus.clone(),
        cache.clone(),
        synced,
        args,
        metrics,
        shutdown.clone(),
    ));
    let config = tonic::transport::Endpoint::from_shared(format!("http://{config_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Harness {
        nats,
        bus,
        cache,
        config,
        ingest,
        http: reqwest::Client::new(),
        registry,
        shutdown,
        _dir: dir,
    }
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

struct Tenant {
    id: String,
    token: String,
}

impl Harness {
    async fn tenant(&self) -> Tenant {
        let mut admin = AdminServiceClient::new(self.config.clone());
        let tenant = admin
            .create_tenant(authed(
                ADMIN,
                pb::CreateTenantRequest {
                    name: "Acme".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let token = self.token(&tenant.id, pb::TokenScope::Tenant, None).await;
        Tenant {
            id: tenant.id,
            token,
        }
    }

    async fn token(&self, tenant: &str, scope: pb::TokenScope, ttl: Option<u64>) -> String {
        let token = AdminServiceClient::new(self.config.clone())
            .create_token(authed(
                ADMIN,
                pb::CreateTokenRequest {
                    tenant_id: tenant.to_owned(),
                    name: "ci".into(),
                    scope: scope.into(),
                    ttl: ttl.map(|seconds| prost_types::Duration {
                        seconds: seconds as i64,
                        nanos: 0,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let hash = sha256_hex(token.secret.as_bytes());
        self.wait_until("the token reaches the cache", |cache| {
            cache.snapshot().tokens_by_hash.contains_key(&hash)
        })
        .await;
        token.secret
    }

    async fn device(
        &self,
        tenant: &Tenant,
        channel: pb::Channel,
        verification: pb::device_verification::Channel,
    ) -> String {
        let device = ConfigServiceClient::new(self.config.clone())
            .create_device(authed(
                &tenant.token,
                pb::CreateDeviceRequest {
                    channel: channel.into(),
                    name: "line".into(),
                    external_id: "ext".into(),
                    verification: Some(pb::DeviceVerification {
                        channel: Some(verification),
                        configured: false,
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let id = device.id.clone();
        self.wait_until("the device reaches the cache", |cache| {
            cache.snapshot().devices.contains_key(&id)
        })
        .await;
        device.id
    }

    async fn waba_device(&self, tenant: &Tenant) -> String {
        self.device(
            tenant,
            pb::Channel::Waba,
            pb::device_verification::Channel::Waba(pb::WabaVerification {
                app_secret: APP_SECRET.into(),
                verify_token: VERIFY_TOKEN.into(),
            }),
        )
        .await
    }

    async fn wait_until(&self, what: &str, check: impl Fn(&ConfigCache) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !check(&self.cache) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ingest)
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
        let mut request = self.http.post(self.url(path)).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post_waba(&self, device: &str, body: &[u8]) -> (u16, String) {
        let signature = format!("sha256={}", hmac_sha256(APP_SECRET, body));
        self.post(
            &format!("/inbound/waba/{device}"),
            &[("x-hub-signature-256", signature)],
            body,
        )
        .await
    }

    /// Every event on the events stream, in order: subject, headers, event.
    async fn events(&self) -> Vec<(String, herald_bus::async_nats::HeaderMap, pb::Event)> {
        let mut stream = self
            .bus
            .jetstream()
            .get_stream(self.bus.topology().events_stream())
            .await
            .unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut events = Vec::new();
        for sequence in 1..=last {
            let message = stream.direct_get(sequence).await.unwrap();
            events.push((
                message.subject.to_string(),
                message.headers.clone(),
                pb::Event::decode(message.payload).unwrap(),
            ));
        }
        events
    }

    fn ingest_client(&self) -> IngestServiceClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(self.url(""))
            .unwrap()
            .connect_lazy();
        IngestServiceClient::new(channel)
    }

    fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&Sha256::digest(bytes))
}

fn hmac_sha256(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hmac_sha512(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_waba_batch_becomes_twelve_events_once() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
    let signature = format!("sha256={}", hmac_sha256(APP_SECRET, WABA_BATCH));
    let (status, body) = harness
        .post(
            &format!("/inbound/waba/{device}"),
            &[
                ("x-hub-signature-256", signature),
                ("traceparent", traceparent.clone()),
            ],
            WABA_BATCH,
        )
        .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let events = harness.events().await;
    assert_eq!(events.len(), 12);
    let types: Vec<&str> = events
        .iter()
        .map(|(_, _, event)| event.r#type.as_str())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|kind| **kind == "message.received")
            .count(),
        5
    );
    assert_eq!(
        types.iter().filter(|kind| **kind == "message.read").count(),
        3
    );
    for (subject, headers, event) in &events {
        assert_eq!(
            subject,
            &format!(
                "herald.events.{}.{}.waba.{}",
                tenant.id, event.id, event.r#type
            )
        );
        assert_eq!(event.tenant_id, tenant.id);
        assert_eq!(event.device_id, device);
        assert_eq!(event.channel, pb::Channel::Waba as i32);
        assert!(
            event
                .idempotency_key
                .starts_with(&format!("waba:{device}:wamid."))
        );
        assert_eq!(
            headers.get(headers::MESSAGE_ID).unwrap().as_str(),
            event.idempotency_key
        );
        assert_eq!(headers.get(headers::EVENT_ID).unwrap().as_str(), event.id);
        assert_eq!(headers.get(headers::TENANT).unwrap().as_str(), tenant.id);
        assert_eq!(
            headers.get(headers::EVENT_TYPE).unwrap().as_str(),
            event.r#type
        );
        assert_eq!(
            headers.get(headers::MESSAGE_TYPE).unwrap().as_str(),
            "herald.v1.Event"
        );
        // The webhook's trace continues: same trace, sampled, and the
        // parent is ingest's own span now, not the caller's.
        let onward = headers.get(headers::TRACEPARENT).unwrap().as_str();
        let (trace, rest) = traceparent
            .rsplit_once('-')
            .unwrap()
            .0
            .rsplit_once('-')
            .unwrap();
        assert!(onward.starts_with(&format!("{trace}-")), "{onward}");
        assert!(!onward.contains(rest), "{onward}");
        assert!(onward.ends_with("-01"), "{onward}");
        let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
        assert!(data["original"].is_object());
    }
    let first = &events[0].2;
    assert_eq!(first.occurred_at.unwrap().seconds, 1_749_416_383);
    assert_eq!(first.source_ref, "wamid.BATCH1");
    let first_data = String::from_utf8(first.data.to_vec()).unwrap();
    assert!(first_data.contains(r"\ud83d\udc99"), "{first_data}");

    // Meta retries: the same POST stores nothing new.
    assert_eq!(harness.post_waba(&device, WABA_BATCH).await.0, 200);
    assert_eq!(harness.events().await.len(), 12);

    // A tampered byte fails the signature and publishes nothing.
    let mut tampered = WABA_BATCH.to_vec();
    let at = tampered.iter().position(|byte| *byte == b'B').unwrap();
    tampered[at] = b'C';
    let signature = format!("sha256={}", hmac_sha256(APP_SECRET, WABA_BATCH));
    let (status, body) = harness
        .post(
            &format!("/inbound/waba/{device}"),
            &[("x-hub-signature-256", signature)],
            &tampered,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body, "the x-hub-signature-256 header does not match\n");
    let (status, _) = harness
        .post(&format!("/inbound/waba/{device}"), &[], WABA_BATCH)
        .await;
    assert_eq!(status, 403);
    assert_eq!(harness.events().await.len(), 12);

    // Malformed but signed: 400; unknown device or wrong channel: 404; too big: 413.
    assert_eq!(harness.post_waba(&device, b"{\"entry\":").await.0, 400);
    assert_eq!(
        harness
            .post_waba("dev_01jabcdefghjkmnpqrstvwxyz2", WABA_BATCH)
            .await
            .0,
        404
    );
    let (status, _) = harness
        .post(&format!("/inbound/telegram/{device}"), &[], TELEGRAM_TEXT)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        harness.post_waba(&device, &vec![b' '; 70 * 1024]).await.0,
        413
    );
    assert_eq!(harness.events().await.len(), 12);

    let metrics = harness.metrics_text();
    assert!(
        metrics.contains(r#"herald_ingest_events_total{channel="waba",type="message.received"} 5"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"herald_ingest_requests_total{route="waba",status="200"} 2"#));
    assert!(metrics.contains(r#"herald_ingest_requests_total{route="waba",status="403"} 2"#));
    // By route template: one series however many devices post.
    assert!(
        metrics.contains(
            r#"herald_http_requests_total{method="POST",route="/inbound/waba/{device_id}",status="200"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"herald_http_request_duration_seconds_count{method="POST",route="/inbound/waba/{device_id}"} 7"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_waba_handshake_echoes_the_challenge_only_for_the_right_token() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;
    let handshake = |token: &str, mode: &str| {
        harness
            .http
            .get(harness.url(&format!(
                "/inbound/waba/{device}?hub.mode={mode}&hub.challenge=1158201444&hub.verify_token={token}"
            )))
            .send()
    };
    let response = handshake(VERIFY_TOKEN, "subscribe").await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "1158201444");
    for (token, mode) in [
        ("wrong", "subscribe"),
        (VERIFY_TOKEN, "unsubscribe"),
        ("", "subscribe"),
    ] {
        let response = handshake(token, mode).await.unwrap();
        assert_eq!(response.status().as_u16(), 403);
        assert!(!response.text().await.unwrap().contains("1158201444"));
    }
}

#[tokio::test]
async fn telegram_and_gateway_webhooks_are_authenticated_and_published_once() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let bot = harness
        .device(
            &tenant,
            pb::Channel::Telegram,
            pb::device_verification::Channel::Telegram(pb::TelegramVerification {
                secret_token: TELEGRAM_SECRET.into(),
            }),
        )
        .await;
    let path = format!("/inbound/telegram/{bot}");
    let secret = |value: &str| vec![("x-telegram-bot-api-secret-token", value.to_owned())];
    assert_eq!(
        harness.post(&path, &secret("wrong"), TELEGRAM_TEXT).await.0,
        403
    );
    assert_eq!(harness.post(&path, &[], TELEGRAM_TEXT).await.0, 403);
    assert_eq!(harness.events().await.len(), 0);
    assert_eq!(
        harness
            .post(&path, &secret(TELEGRAM_SECRET), TELEGRAM_TEXT)
            .await,
        (200, String::new())
    );
    assert_eq!(
        harness
            .post(&path, &secret(TELEGRAM_SECRET), TELEGRAM_TEXT)
            .await
            .0,
        200
    );
    assert_eq!(
        harness
            .post(&path, &secret(TELEGRAM_SECRET), TELEGRAM_CALLBACK)
            .await
            .0,
        200
    );
    let (status, body) = harness
        .post(
            &path,
            &secret(TELEGRAM_SECRET),
            br#"{"message":{"text":"hi"}}"#,
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "the Telegram update has no integer update_id\n")
    );
    let events = harness.events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].2.idempotency_key,
        format!("telegram:{bot}:892252934")
    );
    assert_eq!(events[0].2.source_ref, "892252934");
    assert_eq!(events[0].2.occurred_at.unwrap().seconds, 1_569_518_342);
    assert_eq!(events[1].2.r#type, "message.received");

    let gateway = harness
        .device(
            &tenant,
            pb::Channel::Whatsapp,
            pb::device_verification::Channel::Whatsapp(pb::GatewayVerification {
                hmac_key: GATEWAY_KEY.into(),
            }),
        )
        .await;
    let path = format!("/inbound/whatsapp/{gateway}");
    let signed = |body: &[u8]| {
        vec![
            ("x-webhook-hmac", hmac_sha512(GATEWAY_KEY, body)),
            ("x-webhook-hmac-algorithm", "sha512".to_owned()),
        ]
    };
    let wrong = vec![("x-webhook-hmac", hmac_sha512("other", GATEWAY_MESSAGE))];
    assert_eq!(harness.post(&path, &wrong, GATEWAY_MESSAGE).await.0, 403);
    assert_eq!(harness.post(&path, &[], GATEWAY_MESSAGE).await.0, 403);
    assert_eq!(
        harness
            .post(&path, &signed(GATEWAY_MESSAGE), GATEWAY_MESSAGE)
            .await
            .0,
        200
    );
    assert_eq!(
        harness
            .post(&path, &signed(GATEWAY_MESSAGE), GATEWAY_MESSAGE)
            .await
            .0,
        200
    );
    assert_eq!(
        harness
            .post(&path, &signed(GATEWAY_ACK), GATEWAY_ACK)
            .await
            .0,
        200
    );
    let events = harness.events().await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[2].2.r#type, "message.received");
    assert_eq!(
        events[2].0,
        format!(
            "herald.events.{}.{}.whatsapp.message.received",
            tenant.id, events[2].2.id
        )
    );
    assert_eq!(events[3].2.r#type, "message.read");

    // A gateway without a key is not asked to sign.
    let open = harness
        .device(
            &tenant,
            pb::Channel::Whatsapp,
            pb::device_verification::Channel::Whatsapp(pb::GatewayVerification::default()),
        )
        .await;
    let (status, _) = harness
        .post(&format!("/inbound/whatsapp/{open}"), &[], GATEWAY_MESSAGE)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        harness.events().await.len(),
        5,
        "another device, another key"
    );
}

fn item(kind: &str, data: &str) -> pb::PublishItem {
    pb::PublishItem {
        r#type: kind.to_owned(),
        data: data.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn publish_refuses_data_violating_its_types_schema_with_the_json_path() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let mut config = ConfigServiceClient::new(harness.config.clone());
    // A schema Herald cannot enforce is refused naming the field.
    let refused = config
        .register_event_type(authed(
            &tenant.token,
            pb::RegisterEventTypeRequest {
                name: "order.packed".into(),
                schema: r#"{"type":"object","properties":{"sku":{"pattern":"^A"}}}"#.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("schema"), "{refused:?}");
    assert!(refused.message().contains("pattern"), "{refused:?}");
    config
        .register_event_type(authed(
            &tenant.token,
            pb::RegisterEventTypeRequest {
                name: "order.shipped".into(),
                description: "An order left the warehouse.".into(),
                sample_data: br#"{"order":"A1","lines":[{"qty":1}]}"#.to_vec().into(),
                schema: r#"{"type":"object","required":["order"],"properties":{
                    "order":{"type":"string"},
                    "lines":{"type":"array","items":{"type":"object","properties":{"qty":{"type":"integer","minimum":1}}}}
                }}"#
                .into(),
            },
        ))
        .await
        .unwrap();
    let tenant_id = tenant.id.clone();
    harness
        .wait_until("the custom type's schema reaches the cache", |cache| {
            cache
                .snapshot()
                .event_type_schemas
                .contains_key(&(tenant_id.clone(), "order.shipped".to_owned()))
        })
        .await;
    let items = vec![
        item("order.shipped", r#"{"order":"A1","lines":[{"qty":2}]}"#),
        item(
            "order.shipped",
            r#"{"order":"A1","lines":[{"qty":2},{"qty":0}]}"#,
        ),
        item("order.shipped", r#"{"lines":[]}"#),
        item("message.received", r#"{"from":"16505551234","text":7}"#),
        item(
            "broadcast.completed",
            r#"{"broadcast_id":"bc_1","sent":-1}"#,
        ),
        item("form.submitted", "[]"),
        item("contact.created", r#"{"contact_id":"ct_1","name":"Maria"}"#),
    ];
    let response = harness
        .ingest_client()
        .publish(authed(&tenant.token, pb::PublishRequest { items }))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<Outcome> = response
        .results
        .into_iter()
        .map(|r| r.outcome.unwrap())
        .collect();
    assert!(matches!(&outcomes[0], Outcome::Accepted(_)), "{outcomes:?}");
    assert!(matches!(&outcomes[6], Outcome::Accepted(_)), "{outcomes:?}");
    let refusals: Vec<(String, String)> = outcomes[1..6]
        .iter()
        .map(|outcome| match outcome {
            Outcome::Error(error) => {
                assert_eq!(error.code, "", "content refusals are InvalidArgument");
                (error.field.clone(), error.message.clone())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let expected = [
        (
            "items[1].data.lines[1].qty",
            "$.lines[1].qty: must be at least 1",
        ),
        ("items[2].data.order", "$.order: is required"),
        (
            "items[3].data.text",
            "$.text: expected string, found number",
        ),
        ("items[4].data.sent", "$.sent: must be at least 0"),
        ("items[5].data", "$: expected object, found array"),
    ];
    for ((field, message), (expected_field, expected_message)) in refusals.iter().zip(expected) {
        assert_eq!(field, expected_field);
        assert!(
            message.starts_with(expected_message),
            "{message:?} does not start with {expected_message:?}"
        );
    }
    assert_eq!(
        harness.events().await.len(),
        2,
        "only the valid items are on the bus"
    );
    let metrics = harness.metrics_text();
    for line in [
        r#"herald_ingest_events_refused_total{reason="schema",type="custom"} 2"#,
        r#"herald_ingest_events_refused_total{reason="schema",type="message.received"} 1"#,
        r#"herald_ingest_events_refused_total{reason="schema",type="broadcast.completed"} 1"#,
        r#"herald_ingest_events_refused_total{reason="schema",type="form.submitted"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from {metrics}");
    }
}

#[tokio::test]
async fn publish_validates_each_item_and_deduplicates_keys() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let other = harness.tenant().await;
    let foreign_device = harness.waba_device(&other).await;
    ConfigServiceClient::new(harness.config.clone())
        .register_event_type(authed(
            &tenant.token,
            pb::RegisterEventTypeRequest {
                name: "order.shipped".into(),
                description: "An order left the warehouse.".into(),
                sample_data: Default::default(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let tenant_id = tenant.id.clone();
    harness
        .wait_until("the custom type reaches the cache", |cache| {
            cache
                .snapshot()
                .event_types
                .contains_key(&(tenant_id.clone(), "order.shipped".to_owned()))
        })
        .await;
    let publisher = harness
        .token(&tenant.id, pb::TokenScope::Publish, None)
        .await;
    let mut client = harness.ingest_client();
    let keyed = pb::PublishItem {
        idempotency_key: "order-42".into(),
        ..item("order.shipped", r#"{"order":12345678901234567890123}"#)
    };
    let items = vec![
        item("message.received", r#"{"text":"hi"}"#),
        keyed.clone(),
        item("order.unknown", "{}"),
        item("message.sent", "{not json"),
        pb::PublishItem {
            device_id: foreign_device,
            ..item("message.sent", "{}")
        },
        item("endpoint.disabled", "{}"),
    ];
    let response = client
        .publish(authed(&publisher, pb::PublishRequest { items }))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<Outcome> = response
        .results
        .into_iter()
        .map(|r| r.outcome.unwrap())
        .collect();
    assert_eq!(outcomes.len(), 6);
    let Outcome::Accepted(first) = &outcomes[1] else {
        panic!("{outcomes:?}")
    };
    assert!(!first.duplicate);
    assert!(matches!(&outcomes[0], Outcome::Accepted(_)));
    let fields: Vec<String> = outcomes[2..]
        .iter()
        .map(|outcome| match outcome {
            Outcome::Error(error) => error.field.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "items[2].type",
            "items[3].data",
            "items[4].device_id",
            "items[5].type"
        ]
    );
    let events = harness.events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].2.r#type, "order.shipped");
    assert_eq!(events[1].2.channel, pb::Channel::Internal as i32);
    assert_eq!(
        events[1].2.idempotency_key,
        format!("publish:{}:order-42", tenant.id)
    );
    assert_eq!(
        &events[1].2.data[..],
        br#"{"order":12345678901234567890123}"#
    );

    // The same key again: one event, the same id, marked duplicate.
    let response = client
        .publish(authed(
            &tenant.token,
            pb::PublishRequest {
                items: vec![keyed.clone()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(Outcome::Accepted(again)) = &response.results[0].outcome else {
        panic!()
    };
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(harness.events().await.len(), 2);

    // PublishStream: every batch's results in order, indexed across the stream.
    let batches = vec![
        pb::PublishRequest {
            items: vec![item("message.received", "{}"), item("Bad", "{}")],
        },
        pb::PublishRequest {
            items: vec![keyed, item("message.read", "[1]")],
        },
    ];
    let response = client
        .publish_stream(authed(&publisher, tokio_stream::iter(batches)))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<Outcome> = response
        .results
        .into_iter()
        .map(|r| r.outcome.unwrap())
        .collect();
    assert_eq!(outcomes.len(), 4);
    assert!(matches!(&outcomes[0], Outcome::Accepted(a) if !a.duplicate));
    assert!(matches!(&outcomes[1], Outcome::Error(e) if e.field == "items[1].type"));
    assert!(
        matches!(&outcomes[2], Outcome::Accepted(a) if a.duplicate && a.event_id == first.event_id)
    );
    // A catalog type's data is an object (its schema), on a stream too.
    assert!(
        matches!(&outcomes[3], Outcome::Error(e) if e.field == "items[3].data" && e.message.starts_with("$: expected object")),
        "{outcomes:?}"
    );
    assert_eq!(harness.events().await.len(), 3);
}

#[tokio::test]
async fn publish_needs_a_token_that_may_publish() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let reader = harness.token(&tenant.id, pb::TokenScope::Read, None).await;
    let short = harness
        .token(&tenant.id, pb::TokenScope::Publish, Some(1))
        .await;
    let mut client = harness.ingest_client();
    let request = || pb::PublishRequest {
        items: vec![item("message.received", "{}")],
    };
    let code = |result: Result<tonic::Response<pb::PublishResponse>, tonic::Status>| {
        result.unwrap_err().code()
    };
    assert_eq!(
        code(client.publish(authed(&reader, request())).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(client.publish(authed("hrld_nope", request())).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(client.publish(Request::new(request())).await),
        Code::Unauthenticated
    );
    assert!(client.publish(authed(&short, request())).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        code(client.publish(authed(&short, request())).await),
        Code::Unauthenticated
    );
    assert!(
        client
            .publish(authed(&tenant.token, request()))
            .await
            .is_ok()
    );
    assert_eq!(harness.events().await.len(), 2);
}

#[tokio::test]
async fn with_nats_down_webhooks_answer_503_and_the_retry_lands_once() {
    let mut harness = start().await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;
    // One event lands first, so the retry must add only the missing eleven.
    let first_only = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"display_phone_number":"1"},"messages":[{"from":"2","id":"wamid.BATCH1","timestamp":"1749416383","type":"text","text":{"body":"x"}}]}}]}]}"#;
    assert_eq!(harness.post_waba(&device, first_only).await.0, 200);

    harness.nats.stop();
    let (status, body) = harness.post_waba(&device, WABA_BATCH).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "the event bus did not acknowledge; retry\n");
    harness.nats.restart();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = harness.post_waba(&device, WABA_BATCH).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the bus never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = harness.events().await;
    let mut keys: Vec<&str> = events
        .iter()
        .map(|(_, _, e)| e.idempotency_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), events.len(), "no event stored twice");
    assert_eq!(events.len(), 12);
}

#[tokio::test]
async fn before_the_configuration_is_loaded_receivers_answer_503() {
    let harness = start().await;
    let (_never, synced) = watch::channel(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut registry = Registry::default();
    tokio::spawn(herald_ingest::run(
        listener,
        harness.bus.clone(),
        ConfigCache::new(),
        synced,
        IngestArgs {
            max_body_bytes: 1024,
            ..IngestArgs::for_addr(addr)
        },
        IngestMetrics::register(&mut registry, RequestMetrics::default()),
        harness.shutdown.clone(),
    ));
    for channel in ["waba", "telegram", "whatsapp"] {
        let response = harness
            .http
            .post(format!(
                "http://{addr}/inbound/{channel}/dev_01jabcdefghjkmnpqrstvwxyz2"
            ))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response.text().await.unwrap(),
            "the configuration is not loaded yet; retry shortly\n"
        );
    }
}

#[tokio::test]
async fn a_stream_over_the_item_limit_is_refused_not_hung() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let publisher = harness
        .token(&tenant.id, pb::TokenScope::Publish, None)
        .await;
    let mut client = harness.ingest_client();
    let oversized: Vec<pb::PublishRequest> = (0..101)
        .map(|_| pb::PublishRequest {
            items: (0..100).map(|_| item("message.received", "{}")).collect(),
        })
        .collect();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        client.publish_stream(authed(&publisher, tokio_stream::iter(oversized))),
    )
    .await
    .expect("the stream is answered");
    let refused = answer.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("items"), "{}", refused.message());
}

#[tokio::test]
async fn a_call_of_ten_thousand_items_is_published_whole() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let publisher = harness
        .token(&tenant.id, pb::TokenScope::Publish, None)
        .await;
    // More items than async-nats lets await their acknowledgement at once
    // (5,000), in one call and in two calls at the same time.
    let items = |call: usize| pb::PublishRequest {
        items: (0..10_000)
            .map(|index| pb::PublishItem {
                idempotency_key: format!("bulk-{call}-{index}"),
                ..item("message.received", "{}")
            })
            .collect(),
    };
    let publish = |call: usize| {
        let mut client = harness.ingest_client();
        let request = authed(&publisher, items(call));
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(120), client.publish(request))
                .await
                .expect("the call is answered")
                .unwrap()
                .into_inner()
        }
    };
    let (first, second) = futures::join!(publish(0), publish(1));
    for response in [first, second] {
        assert_eq!(response.results.len(), 10_000);
        assert!(
            response
                .results
                .iter()
                .all(|result| matches!(result.outcome, Some(Outcome::Accepted(_))))
        );
    }
}

/// One WABA message, `wamid.<id>`.
fn waba_message(id: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"display_phone_number":"1"}},"messages":[{{"from":"2","id":"wamid.{id}","timestamp":"1749416383","type":"text","text":{{"body":"x"}}}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn topology_channel_retry_beyond_the_duplicate_window_makes_no_new_event() {
    let harness = start_with(|bus, args| {
        bus.duplicate_window = Duration::from_secs(1);
        args.dedupe_horizon_waba = Duration::from_secs(4);
    })
    .await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;
    let body = waba_message("HORIZON1");
    let started = Instant::now();
    assert_eq!(harness.post_waba(&device, &body).await.0, 200);
    assert_eq!(harness.events().await.len(), 1);

    // Past the stream's duplicate window, inside the horizon: Meta's retry
    // of the same wamid is still the same event.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(harness.post_waba(&device, &body).await.0, 200);
    assert_eq!(
        harness.events().await.len(),
        1,
        "a retry made a second event"
    );

    // Past the horizon the key is forgotten, as configured.
    loop {
        assert_eq!(harness.post_waba(&device, &body).await.0, 200);
        if harness.events().await.len() == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the key outlived its horizon"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[tokio::test]
async fn topology_a_key_claimed_by_an_event_never_stored_publishes_that_event() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;
    // What a process that died between claiming and publishing leaves behind.
    let orphan = "evt_01jabcdefghjkmnpqrstvwxyz2";
    let claim = harness
        .bus
        .dedupe_keys()
        .await
        .unwrap()
        .claim(
            &format!("waba:{device}:wamid.ORPHAN:received"),
            orphan,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(claim, herald_bus::Claim::New);

    assert_eq!(
        harness.post_waba(&device, &waba_message("ORPHAN")).await.0,
        200
    );
    assert_eq!(
        harness.post_waba(&device, &waba_message("ORPHAN")).await.0,
        200
    );
    let events = harness.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].2.id, orphan,
        "the event takes the id its key names"
    );
}

#[tokio::test]
async fn hardening_06_a_malformed_protobuf_request_is_an_invalid_argument() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let channel = tonic::transport::Endpoint::from_shared(harness.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Field 1 (items), length 2, then two bytes that start no valid field.
    let malformed = [0x0a, 0x02, 0xff, 0xfe];
    for path in [
        "/herald.v1.IngestService/Publish",
        "/herald.v1.IngestService/PublishStream",
    ] {
        let status =
            herald_testkit::raw_grpc_call(channel.clone(), path, &tenant.token, &malformed)
                .await
                .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
    }
    assert!(harness.events().await.is_empty());
}

#[tokio::test]
async fn hardening_12_every_ingest_answer_says_nosniff() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;
    let answers = [
        harness
            .http
            .post(harness.url(&format!("/inbound/waba/{device}")))
            .body(WABA_BATCH.to_vec())
            .send()
            .await
            .unwrap(),
        harness
            .http
            .get(harness.url(&format!(
                "/inbound/waba/{device}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42"
            )))
            .send()
            .await
            .unwrap(),
        harness
            .http
            .post(harness.url("/inbound/telegram/dev_unknown"))
            .body("{}")
            .send()
            .await
            .unwrap(),
        harness
            .http
            .get(harness.url("/no/such/path"))
            .send()
            .await
            .unwrap(),
    ];
    for answer in answers {
        assert_eq!(
            answer
                .headers()
                .get("x-content-type-options")
                .map(|value| value.to_str().unwrap()),
            Some("nosniff"),
            "{} {}",
            answer.url(),
            answer.status()
        );
    }
}

#[tokio::test]
async fn hardening_18_gateway_event_resent_in_a_new_envelope_is_one_event() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let gateway = harness
        .device(
            &tenant,
            pb::Channel::Whatsapp,
            pb::device_verification::Channel::Whatsapp(pb::GatewayVerification::default()),
        )
        .await;
    let path = format!("/inbound/whatsapp/{gateway}");
    let reaction = |envelope_id: &str, emoji: &str| {
        format!(
            r#"{{"id":"{envelope_id}","timestamp":1710481112000,"event":"message.reaction","session":"default","payload":{{"id":"false_79111111@c.us_REACTION1","from":"79111111@c.us","timestamp":1710481111.853,"reaction":{{"text":"{emoji}","messageId":"true_79111111@c.us_MSG1"}}}}}}"#
        )
    };
    for body in [
        reaction("evt_01", "🙏"),
        // The gateway re-sends the same event in a new envelope.
        reaction("evt_02", "🙏"),
        // Another event with the same id (a changed reaction) is kept.
        reaction("evt_03", "👍"),
    ] {
        assert_eq!(harness.post(&path, &[], body.as_bytes()).await.0, 200);
    }
    let events = harness.events().await;
    let texts: Vec<String> = events
        .iter()
        .map(|(_, _, event)| {
            let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
            data["original"]["payload"]["reaction"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["🙏", "👍"]);
}

#[tokio::test]
async fn hardening_18_waba_group_read_receipts_are_one_event_each() {
    let harness = start().await;
    let tenant = harness.tenant().await;
    let device = harness.waba_device(&tenant).await;
    let receipt = |participant: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"statuses":[{{"id":"wamid.GROUP1","status":"read","timestamp":"1749416500","recipient_id":"120363025246125486","recipient_type":"group","recipient_participant_id":"{participant}"}}]}}}}]}}]}}"#
        )
    };
    for participant in ["111", "222", "333", "222"] {
        let body = receipt(participant);
        assert_eq!(harness.post_waba(&device, body.as_bytes()).await.0, 200);
    }
    let events = harness.events().await;
    let readers: Vec<String> = events
        .iter()
        .map(|(_, _, event)| {
            assert_eq!(event.r#type, "message.read");
            let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
            data["original"]["recipient_participant_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        readers,
        ["111", "222", "333"],
        "Meta's retry of 222 is not a fourth"
    );
}

#[tokio::test]
async fn topology_01_a_tenant_over_its_events_quota_gets_429_with_retry_after_and_resource_exhausted()
 {
    // Two events per second, two at once.
    let harness = start_with_quota(2.0, 2).await;
    let tenant = harness.tenant().await;
    let other = harness.tenant().await;
    let bot = harness
        .device(
            &tenant,
            pb::Channel::Telegram,
            pb::device_verification::Channel::Telegram(pb::TelegramVerification {
                secret_token: TELEGRAM_SECRET.into(),
            }),
        )
        .await;
    let webhook = || {
        harness
            .http
            .post(harness.url(&format!("/inbound/telegram/{bot}")))
            .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
            .body(TELEGRAM_TEXT)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(webhook().await.unwrap().status().as_u16(), 200);
    }
    // Over the quota: 429, which Meta and Telegram retry, after Retry-After.
    let refused = webhook().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");

    // The Publish API refuses the tenant's items one by one.
    let mut client = harness.ingest_client();
    let request = || pb::PublishRequest {
        items: vec![item("message.received", r#"{"text":"hi"}"#)],
    };
    let results = client
        .publish(authed(&tenant.token, request()))
        .await
        .unwrap()
        .into_inner()
        .results;
    let Some(pb::publish_result::Outcome::Error(error)) = &results[0].outcome else {
        panic!("{results:?}");
    };
    assert_eq!(error.field, "items[0]");
    assert_eq!(error.code, "RESOURCE_EXHAUSTED");
    assert!(error.retry_after.is_some(), "{error:?}");
    // Another tenant's quota is its own.
    let results = client
        .publish(authed(&other.token, request()))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(
        matches!(
            results[0].outcome,
            Some(pb::publish_result::Outcome::Accepted(_))
        ),
        "{results:?}"
    );

    // Once the wait is over the tenant is accepted again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(webhook().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn topology_08_a_tenants_own_events_quota_applies_without_restart_and_spares_others() {
    // No default quota: only the tenant given one is limited.
    let harness = start().await;
    let tenant = harness.tenant().await;
    let other = harness.tenant().await;
    let bot = harness
        .device(
            &tenant,
            pb::Channel::Telegram,
            pb::device_verification::Channel::Telegram(pb::TelegramVerification {
                secret_token: TELEGRAM_SECRET.into(),
            }),
        )
        .await;
    let webhook = || {
        harness
            .http
            .post(harness.url(&format!("/inbound/telegram/{bot}")))
            .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
            .body(TELEGRAM_TEXT)
            .send()
    };
    let set_quota = |events_per_second: f64, events_burst: u32| {
        let mut admin = AdminServiceClient::new(harness.config.clone());
        let tenant_id = tenant.id.clone();
        async move {
            admin
                .update_tenant(authed(
                    ADMIN,
                    pb::UpdateTenantRequest {
                        tenant_id,
                        quotas: Some(pb::TenantQuotas {
                            events_per_second,
                            events_burst,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
        }
    };
    let applied = |events_per_second: f64| {
        let tenant_id = tenant.id.clone();
        move |cache: &ConfigCache| {
            cache
                .snapshot()
                .tenants
                .get(&tenant_id)
                .and_then(|tenant| tenant.quotas)
                .is_some_and(|quotas| quotas.events_per_second == events_per_second)
        }
    };

    set_quota(2.0, 2).await;
    harness
        .wait_until("the quota reaches ingest's cache", applied(2.0))
        .await;
    for _ in 0..2 {
        assert_eq!(webhook().await.unwrap().status().as_u16(), 200);
    }
    let refused = webhook().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");

    let mut client = harness.ingest_client();
    let request = |count: usize| pb::PublishRequest {
        items: (0..count)
            .map(|_| item("message.received", r#"{"text":"hi"}"#))
            .collect(),
    };
    let results = client
        .publish(authed(&tenant.token, request(1)))
        .await
        .unwrap()
        .into_inner()
        .results;
    let Some(pb::publish_result::Outcome::Error(error)) = &results[0].outcome else {
        panic!("{results:?}");
    };
    assert_eq!(error.code, "RESOURCE_EXHAUSTED");
    assert!(error.retry_after.is_some(), "{error:?}");

    // The other tenant has no quota of its own and there is no default.
    let results = client
        .publish(authed(&other.token, request(50)))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(
        results.iter().all(|result| matches!(
            result.outcome,
            Some(pb::publish_result::Outcome::Accepted(_))
        )),
        "{results:?}"
    );

    // Raised without a restart: once the debt of the old rate is paid,
    // five at once fit where the old burst took two.
    set_quota(1000.0, 100).await;
    harness
        .wait_until("the raised quota reaches ingest's cache", applied(1000.0))
        .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..5 {
        assert_eq!(webhook().await.unwrap().status().as_u16(), 200);
    }
}
