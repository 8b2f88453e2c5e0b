//! Herald as separate `config`, `fanout` and `delivery` processes (several
//! delivery replicas if asked) on one NATS server and SQLite, and a tenant
//! to drive it with.

use std::time::Duration;

use bytes::Bytes;
use herald_bus::{
    Bus, BusConfig,
    async_nats::{self, jetstream::context::PublishAckFuture},
};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::{Event, parse_data},
    id::{EventId, TenantId},
};
use herald_proto::v1::{
    self as pb, config_service_client::ConfigServiceClient,
    recovery_service_client::RecoveryServiceClient,
};
use prost::Message;
use time::OffsetDateTime;
use tonic::transport::Channel as GrpcChannel;

pub use herald_testkit_stack::authed;

use crate::{HeraldProcess, NatsServer};

pub const SERVICE_TOKEN: &str = "hrld_svc_e2e-shared-service-token";

/// Herald split into its services, every process sharing one state
/// directory (credentials) and one database.
#[derive(Debug)]
pub struct Stack {
    pub nats: NatsServer,
    pub config: HeraldProcess,
    pub fanout: HeraldProcess,
    pub deliveries: Vec<HeraldProcess>,
    pub state: tempfile::TempDir,
    /// Added to every process's environment.
    extra: Vec<(String, String)>,
}

impl Stack {
    /// Starts config, fanout and `replicas` delivery processes, each with
    /// `extra` in its environment.
    pub fn start(replicas: usize, extra: &[(&str, &str)]) -> Stack {
        let nats = NatsServer::start();
        let state = tempfile::tempdir().unwrap();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let database_url = format!("sqlite:{}", state.path().join("herald.db").display());
        let config = start_process(
            &["config"],
            &nats,
            &state,
            &extra,
            &[("DATABASE_URL", &database_url)],
        );
        let config_url = format!("http://{}", config.config_addr);
        let fanout = start_process(
            &["fanout"],
            &nats,
            &state,
            &extra,
            &[("HERALD_CONFIG_URL", &config_url)],
        );
        let mut stack = Stack {
            nats,
            config,
            fanout,
            deliveries: Vec::new(),
            state,
            extra,
        };
        for _ in 0..replicas {
            let delivery = stack.start_delivery();
            stack.deliveries.push(delivery);
        }
        stack
    }

    pub fn config_url(&self) -> String {
        format!("http://{}", self.config.config_addr)
    }

    /// One more fanout replica, ready.
    pub fn start_fanout(&self) -> HeraldProcess {
        start_process(
            &["fanout"],
            &self.nats,
            &self.state,
            &self.extra,
            &[("HERALD_CONFIG_URL", &self.config_url())],
        )
    }

    /// One more delivery replica, ready.
    pub fn start_delivery(&self) -> HeraldProcess {
        start_process(
            &["delivery"],
            &self.nats,
            &self.state,
            &self.extra,
            &[("HERALD_CONFIG_URL", &self.config_url())],
        )
    }

    /// An ingest process (channel webhooks and the Publish API), ready.
    pub fn start_ingest(&self) -> HeraldProcess {
        start_process(
            &["ingest"],
            &self.nats,
            &self.state,
            &self.extra,
            &[("HERALD_CONFIG_URL", &self.config_url())],
        )
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.state.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub async fn channel(&self) -> GrpcChannel {
        tonic::transport::Endpoint::from_shared(self.config_url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A new tenant and a tenant token for it.
    pub async fn tenant(&self) -> TenantClient {
        let channel = self.channel().await;
        tenant_client(channel, &self.admin_token()).await
    }

    pub async fn bus(&self) -> Bus {
        Bus::connect(&BusConfig::for_url(self.nats.url()), "e2e")
            .await
            .unwrap()
    }
}

fn start_process(
    args: &[&str],
    nats: &NatsServer,
    state: &tempfile::TempDir,
    extra: &[(String, String)],
    more: &[(&str, &str)],
) -> HeraldProcess {
    let nats_url = nats.url();
    let state_dir = state.path().to_str().unwrap();
    let mut envs: Vec<(&str, &str)> = vec![
        ("NATS_URL", &nats_url),
        ("HERALD_SERVICE_TOKEN", SERVICE_TOKEN),
        ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        ("HERALD_STATE_DIR", state_dir),
        // A killed worker's jobs come back this soon (live workers extend it).
        ("HERALD_DELIVERY_ACK_WAIT", "3s"),
    ];
    envs.extend(
        extra
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    );
    envs.extend_from_slice(more);
    let mut process = HeraldProcess::start(args, &envs);
    process.wait_until_ready(Duration::from_secs(30));
    process
}

pub fn millis(value: u64) -> prost_types::Duration {
    prost_types::Duration::try_from(Duration::from_millis(value)).unwrap()
}

/// An endpoint at `url` receiving every event, retried after each of
/// `retry_delays_ms` (no jitter), with a 2 s request timeout.
pub fn spec(url: &str, retry_delays_ms: &[u64]) -> pb::EndpointSpec {
    pb::EndpointSpec {
        retry: Some(pb::RetryPolicy {
            delays: retry_delays_ms.iter().map(|delay| millis(*delay)).collect(),
            jitter: 0.0,
            use_default: false,
        }),
        timeout: Some(millis(2_000)),
        ..herald_testkit_stack::endpoint_spec("Receiver", url)
    }
}

/// A tenant of a running Herald, and clients holding its token.
#[derive(Clone, Debug)]
pub struct TenantClient {
    pub id: String,
    pub token: String,
    pub config: ConfigServiceClient<GrpcChannel>,
    pub recovery: RecoveryServiceClient<GrpcChannel>,
}

/// A connected gRPC channel to `url`.
pub async fn grpc_channel(url: &str) -> GrpcChannel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn tenant_client(channel: GrpcChannel, admin_token: &str) -> TenantClient {
    let tenant = herald_testkit_stack::create_tenant(&channel, admin_token, "Acme").await;
    TenantClient {
        id: tenant.id,
        token: tenant.token,
        config: ConfigServiceClient::new(channel.clone()),
        recovery: RecoveryServiceClient::new(channel),
    }
}

impl TenantClient {
    /// Creates an endpoint and activates it with a test delivery (which the
    /// receiver must answer with 200), and gives fanout time to learn of it.
    pub async fn active_endpoint(&mut self, spec: pb::EndpointSpec) -> pb::CreateEndpointResponse {
        let created = create_active_endpoint(&mut self.config, &self.token, spec).await;
        // Fanout learns of the activation through its Watch stream.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        created
    }
}

/// Creates an endpoint with `token` and activates it with a test delivery,
/// which its receiver must answer with 200.
pub async fn create_active_endpoint(
    config: &mut ConfigServiceClient<GrpcChannel>,
    token: &str,
    spec: pb::EndpointSpec,
) -> pb::CreateEndpointResponse {
    let created = config
        .create_endpoint(authed(
            token,
            pb::CreateEndpointRequest {
                spec: Some(spec),
                secret: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let endpoint_id = created.endpoint.as_ref().unwrap().id.clone();
    let tested = config
        .test_endpoint(authed(
            token,
            pb::TestEndpointRequest {
                endpoint_id,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        tested.endpoint.unwrap().status(),
        pb::EndpointStatus::Active,
        "{:?}",
        tested.attempt
    );
    created
}

/// An internal `contact.created` event of the tenant carrying `data`, as
/// ingest accepts one.
pub fn internal_event(tenant_id: &str, idempotency_key: String, data: &str) -> Event {
    Event {
        id: EventId::generate(),
        tenant_id: TenantId::parse(tenant_id).unwrap(),
        channel: Channel::Internal,
        device_id: None,
        event_type: EventType::parse("contact.created").unwrap(),
        occurred_at: OffsetDateTime::now_utc(),
        received_at: OffsetDateTime::now_utc(),
        source_ref: None,
        idempotency_key,
        data: parse_data(data.as_bytes()).unwrap(),
    }
}

/// Publishes `event` to the events stream as ingest does; JetStream has
/// accepted it once the returned acknowledgement resolves.
pub async fn publish_event(bus: &Bus, event: &Event) -> PublishAckFuture {
    bus.publish(
        bus.topology().event_subject(event),
        &event.idempotency_key,
        async_nats::HeaderMap::new(),
        Bytes::from(pb::Event::from(event).encode_to_vec()),
    )
    .await
    .unwrap()
}

/// Publishes `count` events of the tenant as ingest does, in order, each
/// with its index in `data.index`.
pub async fn publish_events(bus: &Bus, tenant_id: &str, first: usize, count: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut acks = Vec::new();
    for index in first..first + count {
        let event = internal_event(
            tenant_id,
            format!("e2e-{tenant_id}-{index}"),
            &format!(r#"{{"index":{index}}}"#),
        );
        acks.push(publish_event(bus, &event).await);
        events.push(event);
    }
    for ack in acks {
        ack.await.unwrap();
    }
    events
}
