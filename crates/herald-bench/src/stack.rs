//! Herald's release binaries as separate processes, set up with a tenant
//! and active endpoints pointing at the benchmark receiver.

use std::{
    future::Future,
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use herald_bus::{Bus, BusConfig, async_nats};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::{Event, parse_data},
    id::{EventId, TenantId},
};
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    config_service_client::ConfigServiceClient,
};
use herald_testkit::{NatsCluster, NatsServer, free_port, http_get};
use prost::Message;
use time::OffsetDateTime;

use crate::receiver::BenchReceiver;

const SERVICE_TOKEN: &str = "hrld_svc_bench";

pub struct Stack {
    nats: Nats,
    _state: tempfile::TempDir,
    /// Each Herald service's process, by its name.
    children: Vec<(&'static str, Child)>,
    bus: Bus,
    tenant: TenantId,
    fanout: usize,
    ingest_addr: SocketAddr,
    token: String,
    device_id: String,
}

/// The WABA device's app secret: the key of `X-Hub-Signature-256`.
const APP_SECRET: &str = "bench-app-secret";

/// A latency distribution in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(mut samples_ms: Vec<f64>) -> anyhow::Result<Latency> {
        anyhow::ensure!(!samples_ms.is_empty(), "no latency was measured");
        samples_ms.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            samples_ms[((samples_ms.len() as f64 - 1.0) * quantile).round() as usize]
        };
        Ok(Latency {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// How the stack's NATS server stores streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// nats-server's default: acknowledged once written, synced to disk
    /// every two minutes.
    Default,
    /// `jetstream { sync_interval: always }`: synced before every
    /// acknowledgement.
    SyncAlways,
    /// Three nodes with routes on loopback, every stream replicated three
    /// times (the production setting): acknowledged once two nodes have it.
    Replicated,
}

impl Durability {
    pub fn nats_server(self) -> Nats {
        match self {
            Durability::Default => Nats::Single(NatsServer::start()),
            Durability::SyncAlways => Nats::Single(NatsServer::start_with_config(Some(
                "jetstream { sync_interval: always }\n",
            ))),
            Durability::Replicated => Nats::Cluster(NatsCluster::start()),
        }
    }

    /// Herald's `--stream-replicas` for these servers.
    fn stream_replicas(self) -> &'static str {
        match self {
            Durability::Default | Durability::SyncAlways => "1",
            Durability::Replicated => "3",
        }
    }
}

/// The NATS a stack or a ceiling runs on.
pub enum Nats {
    Single(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    /// Every server's URL, comma-separated, as `NATS_URL` takes them.
    pub fn url(&self) -> String {
        match self {
            Nats::Single(server) => server.url(),
            Nats::Cluster(cluster) => cluster.url(),
        }
    }

    /// CPU seconds of every nats-server process.
    fn cpu_seconds(&self) -> f64 {
        match self {
            Nats::Single(server) => server.pid().map_or(0.0, cpu_seconds),
            Nats::Cluster(cluster) => cluster
                .nodes
                .iter()
                .filter_map(NatsServer::pid)
                .map(cpu_seconds)
                .sum(),
        }
    }
}

/// The config service's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A fresh SQLite file in the stack's state directory (the default
    /// `herald` runs with).
    Sqlite,
    /// A PostgreSQL database the caller created for this stack alone.
    Postgres { url: String },
}

impl Stack {
    /// Herald's four services on a fresh NATS server and database, with
    /// one active endpoint per URL in `endpoints`.
    pub async fn start(
        binary: &Path,
        endpoints: &[String],
        durability: Durability,
        database: &Database,
    ) -> anyhow::Result<Stack> {
        Stack::start_transformed(binary, endpoints, durability, database, None).await
    }

    /// [`Stack::start`] with every endpoint running `transformation` on
    /// each delivery.
    pub async fn start_transformed(
        binary: &Path,
        endpoints: &[String],
        durability: Durability,
        database: &Database,
        transformation: Option<&str>,
    ) -> anyhow::Result<Stack> {
        let nats = durability.nats_server();
        let state = tempfile::tempdir()?;
        let config_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let ingest_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let database_url = match database {
            Database::Sqlite => format!("sqlite:{}", state.path().join("herald.db").display()),
            Database::Postgres { url } => url.clone(),
        };
        let common = |ops: SocketAddr| -> Vec<(String, String)> {
            vec![
                ("NATS_URL".into(), nats.url()),
                (
                    "HERALD_STREAM_REPLICAS".into(),
                    durability.stream_replicas().into(),
                ),
                ("HERALD_SERVICE_TOKEN".into(), SERVICE_TOKEN.into()),
                ("HERALD_ALLOW_CIDRS".into(), "127.0.0.0/8".into()),
                (
                    "HERALD_STATE_DIR".into(),
                    state.path().display().to_string(),
                ),
                ("HERALD_OPS_ADDR".into(), ops.to_string()),
                ("HERALD_CONFIG_ADDR".into(), config_addr.to_string()),
                ("HERALD_CONFIG_URL".into(), format!("http://{config_addr}")),
                ("HERALD_INGEST_ADDR".into(), ingest_addr.to_string()),
                ("DATABASE_URL".into(), database_url.clone()),
                ("RUST_LOG".into(), "warn".into()),
            ]
        };
        let mut children = Vec::new();
        for service in ["config", "ingest", "fanout", "delivery"] {
            let ops = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let child = Command::new(binary)
                .arg(service)
                .envs(common(ops))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| {
                    format!(
                        "cannot start {} {service} (run `make bench`, which builds it)",
                        binary.display()
                    )
                })?;
            children.push((service, child));
            wait_ready(ops, service).await?;
        }

        let admin_token = std::fs::read_to_string(state.path().join("admin.token"))?
            .trim()
            .to_owned();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{config_addr}"))?
            .connect()
            .await?;
        let mut admin = AdminServiceClient::new(channel.clone());
        let tenant = admin
            .create_tenant(authed(
                &admin_token,
                pb::CreateTenantRequest {
                    name: "bench".into(),
                },
            ))
            .await?
            .into_inner();
        let token = admin
            .create_token(authed(
                &admin_token,
                pb::CreateTokenRequest {
                    tenant_id: tenant.id.clone(),
                    name: "bench".into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner()
            .secret;
        let mut config = ConfigServiceClient::new(channel);
        let device = config
            .create_device(authed(
                &token,
                pb::CreateDeviceRequest {
                    channel: pb::Channel::Waba.into(),
                    name: "bench line".into(),
                    external_id: "106540352242922".into(),
                    verification: Some(pb::DeviceVerification {
                        channel: Some(pb::device_verification::Channel::Waba(
                            pb::WabaVerification {
                                app_secret: APP_SECRET.into(),
                                verify_token: "bench".into(),
                            },
                        )),
                        configured: false,
                    }),
                },
            ))
            .await?
            .into_inner();
        for (index, url) in endpoints.iter().enumerate() {
            let endpoint = config
                .create_endpoint(authed(
                    &token,
                    pb::CreateEndpointRequest {
                        spec: Some(pb::EndpointSpec {
                            name: format!("bench {index}"),
                            url: url.clone(),
                            all_devices: true,
                            all_event_types: true,
                            transformation: transformation.map(|code| pb::Transformation {
                                code: code.to_owned(),
                            }),
                            ..Default::default()
                        }),
                        secret: String::new(),
                    },
                ))
                .await?
                .into_inner()
                .endpoint
                .context("an endpoint")?;
            let tested = config
                .test_endpoint(authed(
                    &token,
                    pb::TestEndpointRequest {
                        endpoint_id: endpoint.id,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            anyhow::ensure!(
                tested.endpoint.map(|e| e.status()) == Some(pb::EndpointStatus::Active),
                "the test delivery failed"
            );
        }
        // Fanout learns of the activations through its Watch stream.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let bus = Bus::connect(&BusConfig::for_url(nats.url()), "bench").await?;
        Ok(Stack {
            nats,
            _state: state,
            children,
            bus,
            tenant: TenantId::parse(&tenant.id)?,
            fanout: endpoints.len(),
            ingest_addr,
            token,
            device_id: device.id,
        })
    }

    async fn publish(
        &self,
        index: usize,
    ) -> anyhow::Result<async_nats::jetstream::context::PublishAckFuture> {
        let now = OffsetDateTime::now_utc();
        let event = Event {
            id: EventId::generate(),
            tenant_id: self.tenant,
            channel: Channel::Internal,
            device_id: None,
            event_type: EventType::parse("message.received")?,
            occurred_at: now,
            received_at: now,
            source_ref: None,
            idempotency_key: format!("bench-{}", EventId::generate()),
            data: parse_data(
                format!(r#"{{"t":{},"index":{index}}}"#, now.unix_timestamp_nanos()).as_bytes(),
            )?,
        };
        Ok(self
            .bus
            .publish(
                self.bus.topology().event_subject(&event),
                &event.idempotency_key,
                async_nats::HeaderMap::new(),
                Bytes::from(pb::Event::from(&event).encode_to_vec()),
            )
            .await?)
    }

    /// Deliveries per second, from the first publish to the last 2xx, with
    /// `events` published as fast as the bus takes them; and how many
    /// deliveries that was.
    pub async fn throughput(
        &self,
        receiver: &BenchReceiver,
        events: usize,
    ) -> anyhow::Result<(f64, u64)> {
        receiver.reset();
        let started = Instant::now();
        self.publish_events(events).await?;
        let deliveries = u64::try_from(events * self.fanout)?;
        let finished = wait_for_count(receiver, deliveries, Duration::from_secs(300)).await?;
        Ok((
            deliveries as f64 / (finished - started).as_secs_f64(),
            deliveries,
        ))
    }

    /// Publishes `events` on the bus as fast as it takes them, as ingest
    /// does once it accepted them.
    pub async fn publish_events(&self, events: usize) -> anyhow::Result<()> {
        let mut acks = Vec::new();
        for index in 0..events {
            acks.push(self.publish(index).await?);
            if acks.len() == 1_000 {
                for ack in acks.drain(..) {
                    ack.await?;
                }
            }
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }

    /// Waits until fanout has turned every published event into jobs.
    pub async fn wait_fanned_out(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let lag = self
                .bus
                .consumer_lag(herald_bus::ConsumerRole::Fanout)
                .await?;
            if lag.is_some_and(|lag| lag.pending == 0 && lag.ack_pending == 0) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "fanout did not take every event within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A client of ingest's public faces, as a customer's service or Meta
    /// calls them; each client's events are new ones.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.ingest_addr))?
                .connect()
                .await?;
        Ok(Client {
            ingest: pb::ingest_service_client::IngestServiceClient::new(channel),
            http: reqwest::Client::builder().build()?,
            waba_url: format!(
                "http://{}/inbound/waba/{}",
                self.ingest_addr, self.device_id
            ),
            token: self.token.clone(),
            run: OffsetDateTime::now_utc().unix_timestamp_nanos(),
        })
    }

    /// Deliveries per second of `calls` client calls made `in_flight` at a
    /// time, from the first call to the last 2xx, and how many deliveries
    /// that was.
    pub async fn client_throughput(
        &self,
        receiver: &BenchReceiver,
        call: ClientCall,
        calls: u64,
        in_flight: usize,
    ) -> anyhow::Result<(f64, u64)> {
        let client = self.client().await?;
        receiver.reset();
        let started = Instant::now();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..calls)
            .map(|index| client.send(call, index))
            .buffer_unordered(in_flight)
            .collect()
            .await;
        for result in results {
            result?;
        }
        let deliveries = calls * call.events_per_call() * u64::try_from(self.fanout)?;
        let finished = wait_for_count(receiver, deliveries, Duration::from_secs(300)).await?;
        Ok((
            deliveries as f64 / (finished - started).as_secs_f64(),
            deliveries,
        ))
    }

    /// Latency from the client's call to the receiver's 2xx, with
    /// `per_second` events sent at a steady rate for `duration`; `receiver`
    /// must be the URL of exactly one endpoint.
    pub async fn client_latency(
        &self,
        receiver: &BenchReceiver,
        call: ClientCall,
        per_second: u64,
        duration: Duration,
    ) -> anyhow::Result<Latency> {
        let client = self.client().await?;
        receiver.reset();
        let per_call = call.events_per_call();
        let calls = per_second * duration.as_secs() / per_call;
        let mut answers = tokio::task::JoinSet::new();
        paced(per_second / per_call, calls, |index| {
            let client = client.clone();
            answers.spawn(async move { client.send(call, index).await });
            async { anyhow::Ok(()) }
        })
        .await?;
        while let Some(answer) = answers.join_next().await {
            answer??;
        }
        wait_for_count(receiver, calls * per_call, Duration::from_secs(120)).await?;
        Latency::of(receiver.latencies_ms())
    }

    /// Latency from publishing (the moment ingest would accept) to the
    /// receiver's 2xx, with `per_second` events published at a steady rate
    /// for `duration`; `receiver` must be the URL of exactly one endpoint.
    pub async fn latency(
        &self,
        receiver: &BenchReceiver,
        per_second: u64,
        duration: Duration,
    ) -> anyhow::Result<Latency> {
        receiver.reset();
        let events = per_second * duration.as_secs();
        paced(per_second, events, |index| async move {
            let ack = self.publish(usize::try_from(index)?).await?;
            tokio::spawn(async move { ack.await });
            Ok(())
        })
        .await?;
        wait_for_count(receiver, events, Duration::from_secs(120)).await?;
        Latency::of(receiver.latencies_ms())
    }

    /// Events accepted per second through gRPC `PublishStream`, in
    /// messages of 100 items.
    pub async fn ingest_grpc(&self, events: usize) -> anyhow::Result<f64> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.ingest_addr))?
                .connect()
                .await?;
        let ingest = pb::ingest_service_client::IngestServiceClient::new(channel);
        let batches: Vec<pb::PublishRequest> = (0..events.div_ceil(100))
            .map(|batch| pb::PublishRequest {
                items: (0..100)
                    .map(|item| pb::PublishItem {
                        r#type: "message.received".into(),
                        data: Bytes::from(format!(r#"{{"batch":{batch},"item":{item}}}"#)),
                        idempotency_key: format!("grpc-{batch}-{item}"),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        // One stream carries at most 10,000 items; several streams run at once.
        let started = Instant::now();
        let streams: Vec<Vec<pb::PublishRequest>> = batches
            .chunks(50)
            .map(<[pb::PublishRequest]>::to_vec)
            .collect();
        let answers: Vec<anyhow::Result<usize>> = futures::stream::iter(streams)
            .map(|stream| {
                let mut ingest = ingest.clone();
                let request = authed(&self.token, futures::stream::iter(stream));
                async move {
                    let response = ingest.publish_stream(request).await?.into_inner();
                    Ok(response
                        .results
                        .iter()
                        .filter(|result| {
                            matches!(
                                result.outcome,
                                Some(pb::publish_result::Outcome::Accepted(_))
                            )
                        })
                        .count())
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut accepted = 0;
        for answer in answers {
            accepted += answer?;
        }
        anyhow::ensure!(
            accepted == events.div_ceil(100) * 100,
            "only {accepted} events were accepted"
        );
        Ok(accepted as f64 / started.elapsed().as_secs_f64())
    }

    /// Events accepted per second through signed WABA webhooks of 50
    /// messages each, 16 requests at a time.
    pub async fn ingest_waba(&self, events: usize) -> anyhow::Result<f64> {
        let client = reqwest::Client::builder().build()?;
        let url = format!(
            "http://{}/inbound/waba/{}",
            self.ingest_addr, self.device_id
        );
        let bodies: Vec<Vec<u8>> = (0..events.div_ceil(50))
            .map(|batch| waba_body(&batch.to_string(), 50, 0))
            .collect();
        let started = Instant::now();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(bodies)
            .map(|body| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let signature =
                        format!("sha256={}", hmac_sha256_hex(APP_SECRET.as_bytes(), &body));
                    let response = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-Hub-Signature-256", signature)
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "ingest answered {}",
                        response.status()
                    );
                    Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for result in results {
            result?;
        }
        Ok((events.div_ceil(50) * 50) as f64 / started.elapsed().as_secs_f64())
    }

    /// Resident memory of each Herald process now and at its peak
    /// (`VmRSS`, `VmHWM`), in MiB.
    pub fn memory_mib(&self) -> Vec<(&'static str, f64, f64)> {
        self.children
            .iter()
            .map(|(service, child)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find(|line| line.starts_with(name))
                        .and_then(|line| line.split_whitespace().nth(1))
                        .and_then(|kib| kib.parse::<f64>().ok())
                        .unwrap_or(0.0)
                        / 1024.0
                };
                (*service, field("VmRSS:"), field("VmHWM:"))
            })
            .collect()
    }

    /// CPU seconds (user and system) each Herald process used so far.
    pub fn cpu_seconds_by_service(&self) -> Vec<(&'static str, f64)> {
        self.children
            .iter()
            .map(|(service, child)| (*service, cpu_seconds(child.id())))
            .collect()
    }

    /// CPU time (user and system) the Herald processes used so far, and
    /// the NATS server's, in seconds.
    pub fn cpu_seconds(&self) -> (f64, f64) {
        let herald = self
            .children
            .iter()
            .map(|(_, child)| cpu_seconds(child.id()))
            .sum();
        let nats = self.nats.cpu_seconds();
        (herald, nats)
    }
}

/// The Herald processes end with the stack, also when a measurement fails:
/// the config service last, so no Watch stream breaks (and logs) first.
impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Meta Cloud API webhook carrying `count` text messages, each with
/// its send time as `t` (nanoseconds since the epoch; extra fields in a
/// message are kept in the event's `data.original`).
fn waba_body(key: &str, count: usize, sent_nanos: i128) -> Vec<u8> {
    let messages: Vec<serde_json::Value> = (0..count)
        .map(|index| {
            serde_json::json!({
                "from": "16505551234",
                "id": format!("wamid.bench-{key}-{index}"),
                "timestamp": "1732530000",
                "type": "text",
                "text": {"body": format!("order {key}/{index} 📦")},
                "t": i64::try_from(sent_nanos).unwrap_or_default(),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": "Kerry"}, "wa_id": "16505551234"}],
                    "messages": messages
                }
            }]
        }]
    }))
    .unwrap_or_default()
}

/// How a client hands events to ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCall {
    /// A gRPC `Publish` call carrying this many events.
    Publish { events: u64 },
    /// A signed WABA webhook carrying one message.
    Waba,
}

impl ClientCall {
    pub fn events_per_call(self) -> u64 {
        match self {
            ClientCall::Publish { events } => events.max(1),
            ClientCall::Waba => 1,
        }
    }
}

/// Ingest's gRPC and webhook clients for one stack.
#[derive(Clone)]
pub struct Client {
    ingest: pb::ingest_service_client::IngestServiceClient<tonic::transport::Channel>,
    http: reqwest::Client,
    waba_url: String,
    token: String,
    /// Makes the idempotency keys of this client's calls unique, so no run
    /// repeats an earlier one's events (ingest would deduplicate them).
    run: i128,
}

impl Client {
    /// One call, its events stamped with the time it starts; fails unless
    /// ingest accepted every event.
    pub async fn send(&self, call: ClientCall, index: u64) -> anyhow::Result<()> {
        let sent = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let key = format!("{}-{index}", self.run);
        match call {
            ClientCall::Publish { events } => {
                let request = pb::PublishRequest {
                    items: (0..events)
                        .map(|item| pb::PublishItem {
                            r#type: "message.received".into(),
                            data: Bytes::from(format!(r#"{{"t":{sent},"item":{item}}}"#)),
                            idempotency_key: format!("client-{key}-{item}"),
                            ..Default::default()
                        })
                        .collect(),
                };
                let response = self
                    .ingest
                    .clone()
                    .publish(authed(&self.token, request))
                    .await?
                    .into_inner();
                let accepted = response
                    .results
                    .iter()
                    .filter(|result| {
                        matches!(
                            result.outcome,
                            Some(pb::publish_result::Outcome::Accepted(_))
                        )
                    })
                    .count();
                anyhow::ensure!(
                    u64::try_from(accepted)? == events,
                    "ingest accepted {accepted} of {events} events"
                );
            }
            ClientCall::Waba => {
                let body = waba_body(&key, 1, sent);
                let signature = format!("sha256={}", hmac_sha256_hex(APP_SECRET.as_bytes(), &body));
                let response = self
                    .http
                    .post(&self.waba_url)
                    .header("Content-Type", "application/json")
                    .header("X-Hub-Signature-256", signature)
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "ingest answered {}",
                    response.status()
                );
            }
        }
        Ok(())
    }
}

fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    herald_core::digest::hex(&mac.finalize().into_bytes())
}

/// Calls `send` for indexes `0..count`, `per_second` of them a second:
/// every millisecond, all that are due.
pub async fn paced<F, Fut>(per_second: u64, count: u64, mut send: F) -> anyhow::Result<()>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    while sent < count {
        interval.tick().await;
        let due = ((started.elapsed().as_secs_f64() * per_second as f64) as u64).min(count);
        while sent < due {
            send(sent).await?;
            sent += 1;
        }
    }
    Ok(())
}

/// User plus system CPU seconds of a process (`/proc/<pid>/stat`), 0 when
/// it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS_PER_SECOND: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks_per_second = *TICKS_PER_SECOND.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|ticks| ticks.trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `fields` starts at 3.
    (ticks(11) + ticks(12)) / ticks_per_second
}

pub async fn wait_for_count(
    receiver: &BenchReceiver,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if receiver.received() >= expected {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} deliveries within {timeout:?}",
            receiver.received()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_ready(ops: SocketAddr, service: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if tokio::task::spawn_blocking(move || http_get(ops, "/readyz"))
            .await?
            .is_some_and(|(status, _)| status == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("herald {service} was not ready within 60 s")
}

fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
