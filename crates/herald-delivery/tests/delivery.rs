#![allow(clippy::unwrap_used)]
//! The delivery service against real components: a nats-server, the config
//! service on SQLite (its Watch stream feeding the cache, its attempt writer
//! storing the records), and local HTTP receivers that record what they get
//! and answer as scripted.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap as HttpHeaders, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use herald_bus::{Bus, BusConfig, async_nats::HeaderMap, headers};
use herald_config::{ConfigState, Settings, secrets::MasterKey};
use herald_core::{
    address::AllowList,
    catalog::EventType,
    channel::Channel as EventChannel,
    envelope::envelope_body,
    event::{Event, parse_data},
    id::{AttemptId, DeliveryId, EndpointId, EventId, TenantId},
    signing::{EndpointSecret, verify_standard},
};
use herald_delivery::{DeliveryArgs, DeliveryError, DeliveryMetrics, DeliverySettings};
use herald_proto::{
    timestamp_from_wire, timestamp_to_wire,
    v1::{
        self as pb, admin_service_client::AdminServiceClient,
        attempt_service_client::AttemptServiceClient, config_service_client::ConfigServiceClient,
    },
};
use herald_store::{Store, StoreOptions};
use herald_testkit::NatsServer;
use herald_watch::{ConfigCache, WatchConfig};
use hmac::{Hmac, KeyInit, Mac};
use prometheus_client::registry::Registry;
use prost::Message;
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Channel};

const ADMIN: &str = "test-admin-token";
const SERVICE: &str = "test-service-token";
/// How long a test waits for something that should happen within a second.
const PATIENCE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Harness: NATS, the config service, the Watch-fed cache and delivery
// ---------------------------------------------------------------------------

struct Harness {
    channel: Channel,
    bus: Bus,
    registry: Registry,
    delivery: Option<JoinHandle<Result<(), DeliveryError>>>,
    delivery_stop: CancellationToken,
    shutdown: CancellationToken,
    config_addr: SocketAddr,
    _nats: NatsServer,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn delivery_args() -> DeliveryArgs {
    DeliveryArgs {
        max_in_flight: 64,
        max_per_endpoint: 8,
        max_per_tenant: 256,
        connect_timeout: Duration::from_secs(2),
        circuit_failures: 10,
        circuit_cooldown: Duration::from_secs(30),
        circuit_max_cooldown: Duration::from_secs(600),
        transform_threads: 1,
    }
}

/// Everything runs with the config service allowing `127.0.0.0/8`;
/// `delivery_allow_list` is what the delivery service allows.
async fn start(delivery_allow_list: &str) -> Harness {
    start_with(delivery_allow_list, delivery_args()).await
}

async fn start_with(delivery_allow_list: &str, args: DeliveryArgs) -> Harness {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect_with(&StoreOptions {
        url: format!("sqlite:{}", dir.path().join("herald.db").display()),
        schema: None,
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let bus = Bus::connect(&BusConfig::for_url(nats.url()), "test")
        .await
        .unwrap();
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
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = ConfigState::new(store, bus.clone(), settings);
    tokio::spawn(herald_config::run(
        listener,
        state,
        herald_telemetry::server::RequestMetrics::default(),
        shutdown.clone(),
    ));

    let mut registry = Registry::default();
    let metrics = DeliveryMetrics::register(&mut registry);
    let delivery_stop = shutdown.child_token();
    let delivery = spawn_delivery(
        &bus,
        addr,
        DeliverySettings {
            args,
            allow_list: AllowList::parse(delivery_allow_list).unwrap(),
        },
        metrics,
        &shutdown,
        delivery_stop.clone(),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Harness {
        channel,
        bus,
        registry,
        delivery: Some(delivery),
        delivery_stop,
        shutdown,
        config_addr: addr,
        _nats: nats,
        _dir: dir,
    }
}

/// A delivery service with its own Watch-fed cache.
fn spawn_delivery(
    bus: &Bus,
    config_addr: SocketAddr,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
    shutdown: &CancellationToken,
    delivery_stop: CancellationToken,
) -> JoinHandle<Result<(), DeliveryError>> {
    let cache = ConfigCache::new();
    let (synced_sender, synced) = watch::channel(false);
    tokio::spawn(herald_watch::run(
        WatchConfig {
            config_url: format!("http://{config_addr}"),
        },
        SERVICE.to_owned(),
        vec![pb::WatchedKind::Endpoint, pb::WatchedKind::Tenant],
        cache.handler(),
        synced_sender,
        shutdown.clone(),
    ));
    tokio::spawn(herald_delivery::run(
        bus.clone(),
        cache,
        synced,
        settings,
        metrics,
        delivery_stop,
    ))
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

struct CreatedEndpoint {
    endpoint: pb::Endpoint,
    secret: String,
}

impl Harness {
    fn config(&self) -> ConfigServiceClient<Channel> {
        ConfigServiceClient::new(self.channel.clone())
    }

    async fn tenant(&self) -> Tenant {
        let mut admin = AdminServiceClient::new(self.channel.clone());
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
        let token = admin
            .create_token(authed(
                ADMIN,
                pb::CreateTokenRequest {
                    tenant_id: tenant.id.clone(),
                    name: "ci".into(),
                    scope: pb::TokenScope::Tenant.into(),
                    ttl: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        Tenant {
            id: tenant.id,
            token: token.secret,
        }
    }

    async fn create_endpoint(&self, tenant: &Tenant, spec: pb::EndpointSpec) -> CreatedEndpoint {
        let created = self
            .config()
            .create_endpoint(authed(
                &tenant.token,
                pb::CreateEndpointRequest {
                    spec: Some(spec),
                    secret: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        CreatedEndpoint {
            endpoint: created.endpoint.unwrap(),
            secret: created.secret,
        }
    }

    /// `TestEndpoint`, which goes through the delivery service for real.
    async fn test_endpoint(&self, tenant: &Tenant, endpoint_id: &str) -> pb::TestEndpointResponse {
        self.config()
            .test_endpoint(authed(
                &tenant.token,
                pb::TestEndpointRequest {
                    endpoint_id: endpoint_id.to_owned(),
                    event_type: String::new(),
                    timeout: Some(prost_types::Duration {
                        seconds: 10,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Creates an endpoint and makes it ACTIVE through a passed test
    /// (the receiver's first request).
    async fn active_endpoint(&self, tenant: &Tenant, spec: pb::EndpointSpec) -> CreatedEndpoint {
        let created = self.create_endpoint(tenant, spec).await;
        let tested = self.test_endpoint(tenant, &created.endpoint.id).await;
        let endpoint = tested.endpoint.unwrap();
        assert_eq!(
            endpoint.status(),
            pb::EndpointStatus::Active,
            "{:?}",
            tested.attempt
        );
        CreatedEndpoint {
            endpoint,
            secret: created.secret,
        }
    }

    async fn get_endpoint(&self, tenant: &Tenant, endpoint_id: &str) -> pb::Endpoint {
        self.config()
            .get_endpoint(authed(
                &tenant.token,
                pb::GetEndpointRequest {
                    endpoint_id: endpoint_id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Publishes a live job for a fresh event, as fanout does, made for the
    /// endpoint as `endpoint` shows it.
    async fn publish_job(&self, endpoint: &pb::Endpoint) -> (DeliveryId, Event) {
        self.publish_job_enqueued_at(endpoint, OffsetDateTime::now_utc())
            .await
    }

    async fn publish_job_enqueued_at(
        &self,
        endpoint: &pb::Endpoint,
        enqueued_at: OffsetDateTime,
    ) -> (DeliveryId, Event) {
        let event = sample_event(&endpoint.tenant_id);
        let endpoint_id = EndpointId::parse(&endpoint.id).unwrap();
        let delivery_id = DeliveryId::for_event_endpoint(&event.id, &endpoint_id);
        let job = pb::DeliveryJob {
            delivery_id: delivery_id.to_string(),
            event: Some((&event).into()),
            endpoint_id: endpoint.id.clone(),
            endpoint_revision: endpoint.revision,
            trigger: pb::DeliveryTrigger::Live.into(),
            attempts_made: 0,
            test: false,
            enqueued_at: Some(timestamp_to_wire(enqueued_at)),
            recovery_job_id: String::new(),
            schedule_position: 0,
            not_before: None,
        };
        let mut job_headers = HeaderMap::new();
        job_headers.insert(headers::TENANT, endpoint.tenant_id.as_str());
        job_headers.insert(headers::ENDPOINT, endpoint.id.as_str());
        job_headers.insert(headers::EVENT_ID, event.id.as_str());
        job_headers.insert(headers::MESSAGE_TYPE, "herald.v1.DeliveryJob");
        self.bus
            .publish(
                self.bus
                    .topology()
                    .job_subject(&endpoint_id, herald_bus::JobLane::Pool),
                &format!("{}:{}", event.id, endpoint_id),
                job_headers,
                job.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        (delivery_id, event)
    }

    /// The event's attempt records stored so far, oldest first.
    async fn stored_attempts(&self, tenant: &Tenant, event: &Event) -> Vec<pb::Attempt> {
        let mut attempts = AttemptServiceClient::new(self.channel.clone())
            .list_attempts(authed(
                &tenant.token,
                pb::ListAttemptsRequest {
                    event_id: event.id.to_string(),
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .attempts;
        attempts.sort_by_key(|attempt| attempt.attempt);
        attempts
    }

    /// The event's attempt records once the attempt writer stored `count`
    /// of them, oldest first.
    async fn attempts(&self, tenant: &Tenant, event: &Event, count: usize) -> Vec<pb::Attempt> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let attempts = self.stored_attempts(tenant, event).await;
            if attempts.len() >= count {
                return attempts;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} attempts, have {attempts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    /// Starts the delivery service again after [`Harness::stop_delivery`].
    fn restart_delivery(&mut self, args: DeliveryArgs) {
        self.delivery_stop = self.shutdown.child_token();
        self.delivery = Some(spawn_delivery(
            &self.bus,
            self.config_addr,
            DeliverySettings {
                args,
                allow_list: AllowList::parse("127.0.0.0/8").unwrap(),
            },
            DeliveryMetrics::register(&mut Registry::default()),
            &self.shutdown,
            self.delivery_stop.clone(),
        ));
    }

    /// Stops the delivery service alone and waits for it to drain.
    async fn stop_delivery(&mut self) -> Result<(), DeliveryError> {
        self.delivery_stop.cancel();
        let delivery = self.delivery.take().unwrap();
        tokio::time::timeout(PATIENCE, delivery)
            .await
            .unwrap()
            .unwrap()
    }
}

fn sample_event(tenant_id: &str) -> Event {
    let now = OffsetDateTime::now_utc();
    let id = EventId::generate();
    Event {
        id,
        tenant_id: TenantId::parse(tenant_id).unwrap(),
        channel: EventChannel::Whatsapp,
        device_id: None,
        event_type: EventType::parse("message.received").unwrap(),
        occurred_at: now,
        received_at: now,
        source_ref: None,
        idempotency_key: format!("test:{id}"),
        data: parse_data(br#"{"text":"hi","n":12345678901234567890123}"#).unwrap(),
    }
}

fn millis(value: u64) -> prost_types::Duration {
    prost_types::Duration::try_from(Duration::from_millis(value)).unwrap()
}

/// An endpoint spec with the given retry delays (none: no retries) and a
/// 2 s request timeout.
fn spec(url: &str, retry_delays_ms: &[u64]) -> pb::EndpointSpec {
    pb::EndpointSpec {
        name: "Orders".into(),
        url: url.into(),
        retry: Some(pb::RetryPolicy {
            delays: retry_delays_ms.iter().map(|delay| millis(*delay)).collect(),
            jitter: 0.0,
            use_default: false,
        }),
        timeout: Some(millis(2000)),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Receivers: real HTTP servers that record requests and answer as scripted
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    delay: Duration,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Debug)]
struct Received {
    at: Instant,
    headers: HttpHeaders,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn is_test(&self) -> bool {
        let envelope: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        envelope.get("test") == Some(&serde_json::Value::Bool(true))
    }
}

#[derive(Debug, Default)]
struct ReceiverState {
    received: Mutex<Vec<Arc<Received>>>,
    /// Replies in order; 200 once it is empty.
    script: Mutex<VecDeque<Reply>>,
}

#[derive(Clone, Debug)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(ip: &str) -> Receiver {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState::default());
        let app = Router::new().fallback(receive).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    fn received(&self) -> Vec<Arc<Received>> {
        self.state.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Arc<Received>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} requests, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    _uri: Uri,
    headers: HttpHeaders,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Arc::new(Received {
        at: Instant::now(),
        headers,
        body,
    }));
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::status(200));
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), "ok").into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn hex_hmac_sha256(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn wire_time(timestamp: Option<prost_types::Timestamp>) -> OffsetDateTime {
    timestamp_from_wire("timestamp", timestamp).unwrap()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_delivery_activates_on_200_and_201_only() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let ok = Receiver::start("127.0.0.1").await;
    let created = Receiver::start("127.0.0.1").await;
    created.script([Reply::status(201)]);
    let broken = Receiver::start("127.0.0.1").await;
    broken.script([Reply::status(500)]);
    let slow = Receiver::start("127.0.0.1").await;
    slow.script([Reply::status(200).after(Duration::from_secs(3))]);

    let mut endpoints = Vec::new();
    for receiver in [&ok, &created, &broken, &slow] {
        let mut spec = spec(&receiver.url(), &[]);
        spec.timeout = Some(millis(1000));
        endpoints.push(herald.create_endpoint(&tenant, spec).await);
    }
    let (ok_test, created_test, broken_test, slow_test) = tokio::join!(
        herald.test_endpoint(&tenant, &endpoints[0].endpoint.id),
        herald.test_endpoint(&tenant, &endpoints[1].endpoint.id),
        herald.test_endpoint(&tenant, &endpoints[2].endpoint.id),
        herald.test_endpoint(&tenant, &endpoints[3].endpoint.id),
    );

    for (test, code) in [(&ok_test, 200), (&created_test, 201)] {
        let attempt = test.attempt.as_ref().unwrap();
        assert_eq!(attempt.status(), pb::AttemptStatus::Succeeded);
        assert_eq!(attempt.response_code, code);
        assert_eq!(attempt.response_body.as_ref(), b"ok");
        assert!(attempt.test);
        assert_eq!(attempt.trigger(), pb::DeliveryTrigger::Test);
        assert_eq!(
            test.endpoint.as_ref().unwrap().status(),
            pb::EndpointStatus::Active
        );
    }
    let request = &ok.wait_for(1).await[0];
    assert!(request.is_test(), "the envelope says test");
    verify_standard(
        &EndpointSecret::parse(&endpoints[0].secret).unwrap(),
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.header("webhook-signature"),
        &request.body,
        now_unix(),
    )
    .unwrap();

    let failed = broken_test.attempt.as_ref().unwrap();
    assert_eq!(
        failed.status(),
        pb::AttemptStatus::Failed,
        "no retries configured"
    );
    assert_eq!(failed.response_code, 500);
    assert_eq!(failed.error, "endpoint answered HTTP 500");
    assert_eq!(
        broken_test.endpoint.as_ref().unwrap().status(),
        pb::EndpointStatus::PendingTest
    );

    let timed_out = slow_test.attempt.as_ref().unwrap();
    assert_eq!(timed_out.status(), pb::AttemptStatus::Failed);
    assert_eq!(timed_out.response_code, 0);
    assert_eq!(timed_out.error, "no response within 1s");
    let took = Duration::try_from(timed_out.duration.unwrap()).unwrap();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        slow_test.endpoint.as_ref().unwrap().status(),
        pb::EndpointStatus::PendingTest
    );
    assert_eq!(slow.received().len(), 1, "the request reached the receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signing_scheme_reaches_its_receiver_and_verifies() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let standard_receiver = Receiver::start("127.0.0.1").await;
    let hex_receiver = Receiver::start("127.0.0.1").await;
    let shared_receiver = Receiver::start("127.0.0.1").await;

    let standard = herald
        .active_endpoint(&tenant, spec(&standard_receiver.url(), &[]))
        .await;
    let hex = herald
        .active_endpoint(
            &tenant,
            pb::EndpointSpec {
                signing_scheme: pb::SigningScheme::Sha256Hex.into(),
                signature_header: "X-Acme-Signature".into(),
                headers: [
                    ("X-Tenant".to_owned(), "acme".to_owned()),
                    ("Authorization".to_owned(), "Bearer abc".to_owned()),
                ]
                .into(),
                ..spec(&hex_receiver.url(), &[])
            },
        )
        .await;
    let shared = herald
        .active_endpoint(
            &tenant,
            pb::EndpointSpec {
                signing_scheme: pb::SigningScheme::SharedSecret.into(),
                ..spec(&shared_receiver.url(), &[])
            },
        )
        .await;

    let (standard_delivery, standard_event) = herald.publish_job(&standard.endpoint).await;
    let (hex_delivery, hex_event) = herald.publish_job(&hex.endpoint).await;
    let (shared_delivery, shared_event) = herald.publish_job(&shared.endpoint).await;

    // Each receiver's first request was its test.
    let request = &standard_receiver.wait_for(2).await[1];
    assert!(!request.is_test());
    assert_eq!(request.body, envelope_body(&standard_event, false));
    assert_eq!(request.header("webhook-id"), standard_delivery.as_str());
    assert_eq!(
        request.header("X-Idempotency-Key"),
        standard_delivery.as_str()
    );
    assert_eq!(request.header("Content-Type"), "application/json");
    assert_eq!(request.header("X-Herald-Event"), "message.received");
    verify_standard(
        &EndpointSecret::parse(&standard.secret).unwrap(),
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.header("webhook-signature"),
        &request.body,
        now_unix(),
    )
    .unwrap();

    let request = &hex_receiver.wait_for(2).await[1];
    assert_eq!(request.body, envelope_body(&hex_event, false));
    assert_eq!(
        request.header("X-Acme-Signature"),
        format!(
            "sha256={}",
            hex_hmac_sha256(hex.secret.as_bytes(), &request.body)
        )
    );
    assert_eq!(request.header("X-Idempotency-Key"), hex_delivery.as_str());
    assert_eq!(request.header("X-Tenant"), "acme");
    assert_eq!(request.header("Authorization"), "Bearer abc");
    assert!(request.headers.get("webhook-signature").is_none());

    let request = &shared_receiver.wait_for(2).await[1];
    assert_eq!(request.body, envelope_body(&shared_event, false));
    assert_eq!(request.header("X-Webhook-Secret"), shared.secret);
    assert_eq!(
        request.header("X-Idempotency-Key"),
        shared_delivery.as_str()
    );

    let attempt = &herald.attempts(&tenant, &standard_event, 1).await[0];
    assert_eq!(
        attempt.id,
        AttemptId::for_delivery(&standard_delivery, 1).to_string()
    );
    assert_eq!(attempt.delivery_id, standard_delivery.to_string());
    assert_eq!(attempt.event_id, standard_event.id.to_string());
    assert_eq!(attempt.tenant_id, tenant.id);
    assert_eq!(attempt.endpoint_id, standard.endpoint.id);
    assert_eq!(attempt.event_type, "message.received");
    assert_eq!(attempt.attempt, 1);
    assert_eq!(attempt.status(), pb::AttemptStatus::Succeeded);
    assert_eq!(attempt.response_code, 200);
    assert_eq!(attempt.response_body.as_ref(), b"ok");
    assert_eq!(attempt.url, standard_receiver.url());
    assert_eq!(attempt.trigger(), pb::DeliveryTrigger::Live);
    assert!(!attempt.test);
    assert!(attempt.error.is_empty());
    assert!(attempt.next_attempt_at.is_none());
    assert!(attempt.duration.is_some());
    assert_eq!(attempt.request_headers["webhook-signature"], "[redacted]");
    assert_eq!(
        attempt.request_headers["webhook-id"],
        standard_delivery.as_str()
    );

    let attempt = &herald.attempts(&tenant, &hex_event, 1).await[0];
    assert_eq!(attempt.request_headers["X-Acme-Signature"], "[redacted]");
    assert_eq!(attempt.request_headers["Authorization"], "[redacted]");
    // Every custom header value, credential-looking or not.
    assert_eq!(attempt.request_headers["X-Tenant"], "[redacted]");
    let attempt = &herald.attempts(&tenant, &shared_event, 1).await[0];
    assert_eq!(attempt.request_headers["X-Webhook-Secret"], "[redacted]");
    assert!(
        !format!("{attempt:?}").contains(&shared.secret),
        "the secret is nowhere in the record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_twice_then_succeeding_takes_three_attempts_on_the_schedule() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let endpoint = herald
        .active_endpoint(&tenant, spec(&receiver.url(), &[300, 700]))
        .await;
    receiver.script([Reply::status(500), Reply::status(503), Reply::status(200)]);

    let (delivery, event) = herald.publish_job(&endpoint.endpoint).await;
    let requests = receiver.wait_for(4).await;
    let tries = &requests[1..];
    for request in tries {
        assert_eq!(request.header("webhook-id"), delivery.as_str());
    }
    let first_gap = tries[1].at - tries[0].at;
    let second_gap = tries[2].at - tries[1].at;
    assert!(
        first_gap >= Duration::from_millis(300) && first_gap < Duration::from_millis(1500),
        "{first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(700) && second_gap < Duration::from_millis(1900),
        "{second_gap:?}"
    );

    let attempts = herald.attempts(&tenant, &event, 3).await;
    assert_eq!(attempts.len(), 3);
    let statuses: Vec<_> = attempts.iter().map(pb::Attempt::status).collect();
    assert_eq!(
        statuses,
        [
            pb::AttemptStatus::Retrying,
            pb::AttemptStatus::Retrying,
            pb::AttemptStatus::Succeeded
        ]
    );
    let codes: Vec<u32> = attempts
        .iter()
        .map(|attempt| attempt.response_code)
        .collect();
    assert_eq!(codes, [500, 503, 200]);
    for (number, attempt) in (1..).zip(&attempts) {
        assert_eq!(attempt.attempt, number);
        assert_eq!(
            attempt.id,
            AttemptId::for_delivery(&delivery, number).to_string()
        );
    }
    let planned = wire_time(attempts[0].next_attempt_at) - wire_time(attempts[0].attempted_at);
    assert!(
        planned >= time::Duration::milliseconds(300) && planned < time::Duration::seconds(1),
        "{planned:?}"
    );
    assert!(attempts[1].next_attempt_at.is_some());
    assert!(attempts[2].next_attempt_at.is_none());
    assert_eq!(attempts[0].error, "endpoint answered HTTP 500");

    let metrics = herald.metrics_text();
    for line in [
        "herald_deliveries_total{outcome=\"retrying\"} 2",
        // The test delivery and the third try.
        "herald_deliveries_total{outcome=\"succeeded\"} 2",
        "herald_deliveries_in_flight 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(metrics.contains("herald_delivery_attempt_duration_seconds_count 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_the_schedule() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    // The first scheduled delay is 200 ms; the receiver asks for 2 s, which
    // the schedule's longest delay (3 s) allows.
    let endpoint = herald
        .active_endpoint(&tenant, spec(&receiver.url(), &[200, 3000]))
        .await;
    receiver.script([Reply::status(503).header("Retry-After", "2")]);

    let (_, event) = herald.publish_job(&endpoint.endpoint).await;
    let requests = receiver.wait_for(3).await;
    let gap = requests[2].at - requests[1].at;
    assert!(
        gap >= Duration::from_secs(2) && gap < Duration::from_millis(2900),
        "{gap:?}"
    );
    let attempts = herald.attempts(&tenant, &event, 2).await;
    assert_eq!(attempts[0].status(), pb::AttemptStatus::Retrying);
    let planned = wire_time(attempts[0].next_attempt_at) - wire_time(attempts[0].attempted_at);
    assert!(
        planned >= time::Duration::seconds(2) && planned < time::Duration::milliseconds(2500),
        "{planned:?}"
    );
    assert_eq!(attempts[1].status(), pb::AttemptStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_never_succeeds_ends_dead() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let endpoint = herald
        .active_endpoint(&tenant, spec(&receiver.url(), &[200, 200]))
        .await;
    receiver.script([Reply::status(500), Reply::status(502), Reply::status(500)]);

    let (_, event) = herald.publish_job(&endpoint.endpoint).await;
    let attempts = herald.attempts(&tenant, &event, 3).await;
    let statuses: Vec<_> = attempts.iter().map(pb::Attempt::status).collect();
    assert_eq!(
        statuses,
        [
            pb::AttemptStatus::Retrying,
            pb::AttemptStatus::Retrying,
            pb::AttemptStatus::Dead
        ]
    );
    assert!(attempts[2].next_attempt_at.is_none());
    assert_eq!(attempts[2].response_code, 500);
    // The failed job was acknowledged: nothing comes after the last retry.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received().len(), 4, "the test and three tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_deleted_endpoints_get_nothing_the_disabled_ones_jobs_dead_lettered() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let paused_receiver = Receiver::start("127.0.0.1").await;
    let deleted_receiver = Receiver::start("127.0.0.1").await;
    let paused = herald
        .active_endpoint(&tenant, spec(&paused_receiver.url(), &[]))
        .await;
    let deleted = herald
        .active_endpoint(&tenant, spec(&deleted_receiver.url(), &[]))
        .await;

    herald
        .config()
        .delete_endpoint(authed(
            &tenant.token,
            pb::DeleteEndpointRequest {
                endpoint_id: deleted.endpoint.id.clone(),
            },
        ))
        .await
        .unwrap();
    let disabled = herald
        .config()
        .disable_endpoint(authed(
            &tenant.token,
            pb::DisableEndpointRequest {
                endpoint_id: paused.endpoint.id.clone(),
                reason: "maintenance".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Fanout saw the disable first: the job carries its revision, and
    // delivery waits for its cache to catch up before deciding.
    let (_, paused_event) = herald.publish_job(&disabled).await;
    // Kept in the dead letters for a redrive once it is enabled again.
    let attempt = &herald.attempts(&tenant, &paused_event, 1).await[0];
    assert_eq!(attempt.status(), pb::AttemptStatus::Dead);
    assert_eq!(
        attempt.error,
        format!("endpoint {} is disabled", paused.endpoint.id)
    );
    assert_eq!(attempt.url, paused_receiver.url());
    assert_eq!(attempt.response_code, 0);

    // The cache applies changes in order, so it has seen the deletion too.
    // A job queued before the deletion is skipped without waiting for the
    // endpoint to reappear.
    let (_, deleted_event) = herald
        .publish_job_enqueued_at(
            &deleted.endpoint,
            OffsetDateTime::now_utc() - time::Duration::minutes(1),
        )
        .await;
    let attempt = &herald.attempts(&tenant, &deleted_event, 1).await[0];
    assert_eq!(attempt.status(), pb::AttemptStatus::Skipped);
    assert_eq!(
        attempt.error,
        format!("endpoint {} was deleted", deleted.endpoint.id)
    );
    assert!(attempt.url.is_empty());
    assert_eq!(paused_receiver.received().len(), 1, "only the test");
    assert_eq!(deleted_receiver.received().len(), 1, "only the test");
    assert!(
        herald
            .metrics_text()
            .contains("herald_deliveries_total{outcome=\"skipped\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_with_both_secrets_during_the_overlap() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let endpoint = herald
        .active_endpoint(&tenant, spec(&receiver.url(), &[]))
        .await;
    let secrets = herald
        .config()
        .rotate_endpoint_secret(authed(
            &tenant.token,
            pb::RotateEndpointSecretRequest {
                endpoint_id: endpoint.endpoint.id.clone(),
                secret: String::new(),
                overlap: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(secrets.previous, endpoint.secret);
    let rotated = herald.get_endpoint(&tenant, &endpoint.endpoint.id).await;

    let (delivery, _) = herald.publish_job(&rotated).await;
    let request = &receiver.wait_for(2).await[1];
    assert_eq!(request.header("webhook-id"), delivery.as_str());
    let signature = request.header("webhook-signature");
    let entries: Vec<&str> = signature.split(' ').collect();
    assert_eq!(entries.len(), 2, "{signature}");
    for (entry, secret) in entries.iter().zip([&secrets.current, &secrets.previous]) {
        assert!(entry.starts_with("v1,"), "{entry}");
        verify_standard(
            &EndpointSecret::parse(secret).unwrap(),
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            entry,
            &request.body,
            now_unix(),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_literal_outside_the_delivery_allow_list_is_never_connected_to() {
    // The config service accepts 127.0.0.0/8; delivery allows only 127.0.0.1.
    let herald = start("127.0.0.1/32").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.2").await;
    let endpoint = herald
        .create_endpoint(&tenant, spec(&receiver.url(), &[]))
        .await;

    let tested = herald.test_endpoint(&tenant, &endpoint.endpoint.id).await;
    let attempt = tested.attempt.unwrap();
    assert_eq!(attempt.status(), pb::AttemptStatus::Failed);
    assert_eq!(attempt.response_code, 0);
    assert_eq!(
        attempt.error,
        "address 127.0.0.2 is loopback and not on the allow-list"
    );
    assert_eq!(
        tested.endpoint.unwrap().status(),
        pb::EndpointStatus::PendingTest
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_resolving_to_a_refused_address_is_never_connected_to() {
    let herald = start("127.0.0.2/32").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let endpoint = herald.create_endpoint(&tenant, spec(&url, &[])).await;

    let tested = herald.test_endpoint(&tenant, &endpoint.endpoint.id).await;
    let attempt = tested.attempt.unwrap();
    assert_eq!(attempt.status(), pb::AttemptStatus::Failed);
    assert_eq!(attempt.response_code, 0);
    assert!(
        attempt
            .error
            .starts_with("localhost resolves only to refused addresses: "),
        "{}",
        attempt.error
    );
    assert!(
        attempt
            .error
            .contains("address 127.0.0.1 is loopback and not on the allow-list"),
        "{}",
        attempt.error
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let elsewhere = Receiver::start("127.0.0.1").await;
    let receiver = Receiver::start("127.0.0.1").await;
    receiver.script([Reply::status(302).header("Location", elsewhere.url())]);
    let endpoint = herald
        .create_endpoint(&tenant, spec(&receiver.url(), &[]))
        .await;

    let tested = herald.test_endpoint(&tenant, &endpoint.endpoint.id).await;
    let attempt = tested.attempt.unwrap();
    assert_eq!(attempt.status(), pb::AttemptStatus::Failed);
    assert_eq!(attempt.response_code, 302);
    assert_eq!(
        attempt.error,
        "endpoint answered HTTP 302; redirects are not followed"
    );
    assert_eq!(
        tested.endpoint.unwrap().status(),
        pb::EndpointStatus::PendingTest
    );
    assert_eq!(receiver.received().len(), 1);
    assert!(elsewhere.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_hold_up_another_and_shutdown_drains() {
    // Three requests at once in all, two per endpoint: if a job waiting for
    // its endpoint held a global slot, the slow endpoint's backlog would
    // take the third and the fast endpoint would wait.
    let mut herald = start_with(
        "127.0.0.0/8",
        DeliveryArgs {
            max_in_flight: 3,
            max_per_endpoint: 2,
            ..delivery_args()
        },
    )
    .await;
    let tenant = herald.tenant().await;
    let slow_receiver = Receiver::start("127.0.0.1").await;
    let fast_receiver = Receiver::start("127.0.0.1").await;
    let mut slow_spec = spec(&slow_receiver.url(), &[]);
    slow_spec.timeout = Some(millis(10_000));
    let slow = herald.active_endpoint(&tenant, slow_spec).await;
    let fast = herald
        .active_endpoint(&tenant, spec(&fast_receiver.url(), &[]))
        .await;
    slow_receiver.script(vec![Reply::status(200).after(Duration::from_secs(2)); 6]);

    let mut slow_events = Vec::new();
    for _ in 0..6 {
        slow_events.push(herald.publish_job(&slow.endpoint).await.1);
    }
    slow_receiver.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        slow_receiver.received().len(),
        3,
        "the test, then two at a time"
    );

    let published = Instant::now();
    herald.publish_job(&fast.endpoint).await;
    let arrived = fast_receiver.wait_for(2).await[1].at;
    assert!(
        arrived - published < Duration::from_secs(1),
        "{:?}",
        arrived - published
    );

    // Shutdown lets the two requests in flight finish and records them,
    // and starts nothing new.
    herald.stop_delivery().await.unwrap();
    assert_eq!(slow_receiver.received().len(), 3);
    // The attempt writer may store them a moment after the drain.
    let deadline = Instant::now() + PATIENCE;
    let succeeded = loop {
        let mut succeeded = Vec::new();
        for event in &slow_events {
            succeeded.extend(herald.stored_attempts(&tenant, event).await);
        }
        if succeeded.len() >= 2 || Instant::now() > deadline {
            break succeeded;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(succeeded.len(), 2, "{succeeded:?}");
    assert!(
        succeeded
            .iter()
            .all(|attempt| attempt.status() == pb::AttemptStatus::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_17_handback_keeps_attempt_numbers() {
    // One request at a time per endpoint: the second job waits for the
    // first, and is handed back unsent when the service stops.
    let args = DeliveryArgs {
        max_per_endpoint: 1,
        ..delivery_args()
    };
    let mut herald = start_with("127.0.0.0/8", args.clone()).await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let mut slow_spec = spec(&receiver.url(), &[100]);
    slow_spec.timeout = Some(millis(10_000));
    let endpoint = herald.active_endpoint(&tenant, slow_spec).await;
    receiver.script([Reply::status(200).after(Duration::from_secs(2))]);
    let (_, first) = herald.publish_job(&endpoint.endpoint).await;
    receiver.wait_for(2).await;
    let (_, waiting) = herald.publish_job(&endpoint.endpoint).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    herald.stop_delivery().await.unwrap();
    assert_eq!(receiver.received().len(), 2, "the test and the first job");
    assert_eq!(herald.attempts(&tenant, &first, 1).await[0].attempt, 1);

    // Back: the waiting job's first real attempt fails, its retry succeeds.
    receiver.script([Reply::status(500)]);
    herald.restart_delivery(args);
    let attempts = herald.attempts(&tenant, &waiting, 2).await;
    let numbers: Vec<(u32, pb::AttemptStatus)> = attempts
        .iter()
        .map(|attempt| (attempt.attempt, attempt.status()))
        .collect();
    assert_eq!(
        numbers,
        [
            (1, pb::AttemptStatus::Retrying),
            (2, pb::AttemptStatus::Succeeded)
        ],
        "a hand-back is not an attempt"
    );
    // The retry was on the schedule's first delay, not past its end.
    assert_eq!(receiver.received().len(), 4);
}

/// The pool consumer's jobs handed out and not yet settled.
async fn pool_ack_pending(herald: &Harness) -> u64 {
    herald
        .bus
        .consumer_lag(herald_bus::ConsumerRole::Delivery)
        .await
        .unwrap()
        .unwrap()
        .ack_pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_01_a_retry_waits_in_its_endpoints_held_lane_not_in_the_shared_pool() {
    let herald = start("127.0.0.0/8").await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let endpoint = herald
        .active_endpoint(&tenant, spec(&receiver.url(), &[2_000, 2_000]))
        .await;
    receiver.script([Reply::status(500), Reply::status(503)]);

    let (delivery, event) = herald.publish_job(&endpoint.endpoint).await;
    receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pool_ack_pending(&herald).await,
        0,
        "the retry holds no place in the pool shared by every tenant"
    );
    let requests = receiver.wait_for(4).await;
    let tries = &requests[1..];
    for pair in tries.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(2_000) && gap < Duration::from_millis(3_500),
            "{gap:?}"
        );
    }
    let attempts = herald.attempts(&tenant, &event, 3).await;
    let numbers: Vec<(u32, String, pb::AttemptStatus)> = attempts
        .iter()
        .map(|attempt| (attempt.attempt, attempt.id.clone(), attempt.status()))
        .collect();
    assert_eq!(
        numbers,
        [
            (
                1,
                AttemptId::for_delivery(&delivery, 1).to_string(),
                pb::AttemptStatus::Retrying
            ),
            (
                2,
                AttemptId::for_delivery(&delivery, 2).to_string(),
                pb::AttemptStatus::Retrying
            ),
            (
                3,
                AttemptId::for_delivery(&delivery, 3).to_string(),
                pb::AttemptStatus::Succeeded
            ),
        ]
    );
    assert!(
        herald
            .metrics_text()
            .contains("herald_delivery_jobs_held_total{reason=\"retry\"} 2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_01_an_open_circuits_backlog_leaves_the_shared_pool_and_drains_after() {
    let herald = start_with(
        "127.0.0.0/8",
        DeliveryArgs {
            circuit_failures: 1,
            // Long enough to publish the backlog and look before the probe.
            circuit_cooldown: Duration::from_secs(10),
            circuit_max_cooldown: Duration::from_secs(10),
            ..delivery_args()
        },
    )
    .await;
    let tenant = herald.tenant().await;
    let receiver = Receiver::start("127.0.0.1").await;
    let endpoint = herald
        .active_endpoint(&tenant, spec(&receiver.url(), &[30_000]))
        .await;
    receiver.script([Reply::status(500)]);
    let (_, first) = herald.publish_job(&endpoint.endpoint).await;
    receiver.wait_for(2).await;

    // The circuit is open: the next jobs move to the held lane at once.
    let events: Vec<Event> =
        futures::future::join_all((0..40).map(|_| herald.publish_job(&endpoint.endpoint)))
            .await
            .into_iter()
            .map(|(_, event)| event)
            .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lag = herald
        .bus
        .consumer_lag(herald_bus::ConsumerRole::Delivery)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (lag.pending, lag.ack_pending),
        (0, 0),
        "nothing of the open circuit's backlog waits in the pool"
    );
    assert_eq!(receiver.received().len(), 2, "no request while it is open");

    // After the cooldown one probe closes it and the backlog follows, each
    // delivery on its first attempt.
    let deadline = Instant::now() + PATIENCE;
    while receiver.received().len() < 2 + 40 {
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for event in &events {
        let attempts = herald.attempts(&tenant, event, 1).await;
        assert_eq!(attempts[0].attempt, 1);
        assert_eq!(attempts[0].status(), pb::AttemptStatus::Succeeded);
    }
    let retried = herald.attempts(&tenant, &first, 1).await;
    assert_eq!(retried[0].status(), pb::AttemptStatus::Retrying);
    let metrics = herald.metrics_text();
    assert!(
        metrics.contains("herald_delivery_jobs_held_total{reason=\"circuit_open\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_01_one_tenant_takes_at_most_its_share_of_the_global_slots() {
    // Four requests at once in all, two per tenant: without the tenant's
    // share, two slow endpoints of one tenant would take all four and the
    // other tenant would wait for them.
    let herald = start_with(
        "127.0.0.0/8",
        DeliveryArgs {
            max_in_flight: 4,
            max_per_tenant: 2,
            ..delivery_args()
        },
    )
    .await;
    let busy = herald.tenant().await;
    let slow_receivers = [
        Receiver::start("127.0.0.1").await,
        Receiver::start("127.0.0.1").await,
    ];
    let mut slow_endpoints = Vec::new();
    for receiver in &slow_receivers {
        let mut slow_spec = spec(&receiver.url(), &[]);
        slow_spec.timeout = Some(millis(10_000));
        slow_endpoints.push(herald.active_endpoint(&busy, slow_spec).await);
        receiver.script(vec![Reply::status(200).after(Duration::from_secs(2)); 4]);
    }
    let other = herald.tenant().await;
    let fast_receiver = Receiver::start("127.0.0.1").await;
    let fast = herald
        .active_endpoint(&other, spec(&fast_receiver.url(), &[]))
        .await;

    for endpoint in &slow_endpoints {
        for _ in 0..4 {
            herald.publish_job(&endpoint.endpoint).await;
        }
    }
    let in_flight = || {
        slow_receivers
            .iter()
            .map(|receiver| receiver.received().len() - 1)
            .sum::<usize>()
    };
    let deadline = Instant::now() + PATIENCE;
    while in_flight() < 2 {
        assert!(
            Instant::now() < deadline,
            "the busy tenant's jobs never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        in_flight(),
        2,
        "the busy tenant has two requests out, not four"
    );

    let published = Instant::now();
    herald.publish_job(&fast.endpoint).await;
    let arrived = fast_receiver.wait_for(2).await[1].at;
    assert!(
        arrived - published < Duration::from_secs(1),
        "{:?}",
        arrived - published
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_08_a_tenants_own_max_in_flight_deliveries_replaces_the_default_share() {
    // The default share is every slot; the busy tenant's own quota is two.
    let herald = start_with(
        "127.0.0.0/8",
        DeliveryArgs {
            max_in_flight: 4,
            max_per_tenant: 4,
            ..delivery_args()
        },
    )
    .await;
    let busy = herald.tenant().await;
    AdminServiceClient::new(herald.channel.clone())
        .update_tenant(authed(
            ADMIN,
            pb::UpdateTenantRequest {
                tenant_id: busy.id.clone(),
                quotas: Some(pb::TenantQuotas {
                    max_in_flight_deliveries: 2,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    // Activating an endpoint takes a test delivery, so once it is active
    // delivery's cache holds the later endpoint and hence the quota before it.
    let slow_receivers = [
        Receiver::start("127.0.0.1").await,
        Receiver::start("127.0.0.1").await,
    ];
    let mut slow_endpoints = Vec::new();
    for receiver in &slow_receivers {
        let mut slow_spec = spec(&receiver.url(), &[]);
        slow_spec.timeout = Some(millis(10_000));
        slow_endpoints.push(herald.active_endpoint(&busy, slow_spec).await);
        receiver.script(vec![Reply::status(200).after(Duration::from_secs(2)); 4]);
    }
    let other = herald.tenant().await;
    let fast_receiver = Receiver::start("127.0.0.1").await;
    let fast = herald
        .active_endpoint(&other, spec(&fast_receiver.url(), &[]))
        .await;

    for endpoint in &slow_endpoints {
        for _ in 0..4 {
            herald.publish_job(&endpoint.endpoint).await;
        }
    }
    let in_flight = || {
        slow_receivers
            .iter()
            .map(|receiver| receiver.received().len() - 1)
            .sum::<usize>()
    };
    let deadline = Instant::now() + PATIENCE;
    while in_flight() < 2 {
        assert!(
            Instant::now() < deadline,
            "the busy tenant's jobs never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        in_flight(),
        2,
        "the busy tenant has its quota's two requests out, not the default four"
    );

    let published = Instant::now();
    herald.publish_job(&fast.endpoint).await;
    let arrived = fast_receiver.wait_for(2).await[1].at;
    assert!(
        arrived - published < Duration::from_secs(1),
        "{:?}",
        arrived - published
    );
}
