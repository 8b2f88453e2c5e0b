//! Starting, probing and stopping the `herald` binary.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_bus::{Bus, BusConfig};
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    config_service_client::ConfigServiceClient,
};
use herald_tests::{
    HeraldProcess, NatsCluster, NatsServer, free_port, postgres_url, run_herald, sqlite_url,
    wait_for,
};
use herald_tests::{
    Receiver, eventually,
    stack::{grpc_channel, publish_events, spec, tenant_client},
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// The last line of stderr: the one that says what went wrong.
fn last_stderr_line(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_unknown_flag_is_one_line_and_exit_code_2() {
    let output = run_herald(&["all", "--bogus"], &[], Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[test]
fn an_unparsable_nats_url_is_named() {
    let output = run_herald(
        &["fanout"],
        &[("NATS_URL", "not a url")],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(1));
    let line = last_stderr_line(&output);
    assert!(
        line.starts_with("error: invalid --nats-url / NATS_URL \"not a url\""),
        "{line}"
    );
}

#[test]
fn an_invalid_public_ingest_url_is_named() {
    let output = run_herald(
        &["config", "--public-ingest-url", "ftp://hooks.example.com"],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(1));
    let line = last_stderr_line(&output);
    assert!(
        line.starts_with(
            "error: invalid --public-ingest-url / HERALD_PUBLIC_INGEST_URL \"ftp://hooks.example.com\""
        ),
        "{line}"
    );
}

#[test]
fn an_invalid_ops_address_is_named() {
    let output = run_herald(
        &["delivery", "--ops-addr", "localhost:http"],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
    let line = last_stderr_line(&output);
    assert!(line.contains("--ops-addr"), "{line}");
}

#[test]
fn unreachable_nats_at_start_exits_with_the_url() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let output = run_herald(
        &["ingest", "--nats-connect-timeout", "2s"],
        &[
            ("NATS_URL", &url),
            ("HERALD_OPS_ADDR", &format!("127.0.0.1:{}", free_port())),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(1));
    let line = last_stderr_line(&output);
    assert!(
        line.starts_with(&format!("error: cannot connect to NATS at {url}")),
        "{line}"
    );
}

#[test]
fn an_unsupported_database_url_is_named() {
    let nats = NatsServer::start();
    let output = run_herald(
        &["config"],
        &[
            ("NATS_URL", &nats.url()),
            ("DATABASE_URL", "mysql://root:hunter2@localhost/herald"),
            ("HERALD_OPS_ADDR", &format!("127.0.0.1:{}", free_port())),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(1));
    let line = last_stderr_line(&output);
    assert!(line.contains("unsupported database URL"), "{line}");
    assert!(!line.contains("hunter2"), "the password leaked: {line}");
}

#[test]
fn herald_all_on_sqlite_is_ready_follows_nats_and_stops_on_sigterm() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let database_url = sqlite_url(dir.path());
    let mut herald = HeraldProcess::start(
        &["all"],
        &[("NATS_URL", &nats.url()), ("DATABASE_URL", &database_url)],
    );
    herald.wait_until_ready(Duration::from_secs(30));

    let (status, body) = herald.get("/healthz").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "alive"
    );
    let (_, body) = herald.get("/readyz").unwrap();
    let readiness: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(readiness["checks"]["nats"], "ok");
    assert_eq!(readiness["checks"]["database"], "ok");
    assert!(dir.path().join("herald.db").is_file());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ops_url = format!("http://{}", herald.ops_addr);
    runtime.block_on(async {
        wait_for_grpc_health(&ops_url, ServingStatus::Serving).await;
        let services = reflected_services(&ops_url).await;
        for expected in [
            "grpc.health.v1.Health",
            "herald.v1.ConfigService",
            "herald.v1.AdminService",
            "herald.v1.IngestService",
            "herald.v1.WatchService",
        ] {
            assert!(
                services.iter().any(|s| s == expected),
                "{expected} missing from {services:?}"
            );
        }
    });

    // Losing NATS makes the process unready (HTTP and gRPC), and it recovers.
    nats.stop();
    wait_for(
        "readiness to drop with NATS down",
        Duration::from_secs(20),
        || herald.get("/readyz").filter(|(status, _)| *status == 503),
    );
    runtime.block_on(wait_for_grpc_health(&ops_url, ServingStatus::NotServing));
    nats.restart();
    herald.wait_until_ready(Duration::from_secs(30));

    // One registry for every service of the process, each family once
    // (labelled families appear with their first series).
    // The gauge follows readiness on its own tick, so it may lag /readyz.
    let metrics = wait_for("herald_ready to be 1", Duration::from_secs(10), || {
        let metrics = herald_tests::scrape(herald.ops_addr);
        (metrics.value("herald_ready", &[]) == Some(1.0)).then_some(metrics)
    });
    for family in [
        "herald_build",
        "herald_fanout_jobs",
        "herald_delivery_retries_scheduled",
        "herald_delivery_latency_seconds",
        "herald_deliveries_in_flight",
    ] {
        assert!(metrics.families.contains_key(family), "{family} missing");
    }

    let status = herald.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn herald_config_on_postgres_is_ready_and_restarts_cleanly() {
    let nats = NatsServer::start();
    let database_url = postgres_url();
    let schema = herald_testkit::fresh_postgres_schema();
    for _ in 0..2 {
        let mut herald = HeraldProcess::start(
            &["config"],
            &[
                ("NATS_URL", &nats.url()),
                ("DATABASE_URL", &database_url),
                ("HERALD_DATABASE_SCHEMA", &schema),
            ],
        );
        herald.wait_until_ready(Duration::from_secs(30));
        let (_, body) = herald.get("/readyz").unwrap();
        let readiness: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(readiness["checks"]["database"], "ok", "{body}");
        assert!(herald.terminate(Duration::from_secs(15)).success());
    }
}

#[test]
fn each_service_runs_as_its_own_process() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let database_url = sqlite_url(dir.path());
    let shared = [
        ("NATS_URL", nats.url()),
        (
            "HERALD_SERVICE_TOKEN",
            "hrld_svc_shared-by-every-service".to_owned(),
        ),
    ];
    let mut config_envs: Vec<(&str, &str)> = shared
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    config_envs.push(("DATABASE_URL", &database_url));
    let mut config = HeraldProcess::start(&["config"], &config_envs);
    config.wait_until_ready(Duration::from_secs(30));

    let config_url = format!("http://{}", config.config_addr);
    let mut envs: Vec<(&str, &str)> = shared
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    envs.push(("HERALD_CONFIG_URL", &config_url));
    let mut processes: Vec<HeraldProcess> = ["ingest", "fanout", "delivery"]
        .into_iter()
        .map(|service| HeraldProcess::start(&[service], &envs))
        .collect();
    for process in &mut processes {
        process.wait_until_ready(Duration::from_secs(30));
    }
    let (_, body) = processes[1].get("/readyz").unwrap();
    let readiness: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(readiness["checks"]["fanout configuration"], "ok", "{body}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = herald_bus::async_nats::connect(nats.url()).await.unwrap();
        let jetstream = herald_bus::async_nats::jetstream::new(client);
        let mut names: Vec<String> = jetstream
            .stream_names()
            .map(|name| name.unwrap())
            .collect()
            .await;
        names.sort();
        assert_eq!(
            names,
            [
                "HERALD_ATTEMPTS",
                "HERALD_DEAD",
                "HERALD_EVENTS",
                "HERALD_JOBS",
                "KV_HERALD_BACKLOG",
                "KV_HERALD_CIRCUITS",
                "KV_HERALD_CONFIG",
                "KV_HERALD_DEDUPE",
                "KV_HERALD_DEVICE_HEALTH",
                "KV_HERALD_HANDBACKS",
                "KV_HERALD_RATE",
                "KV_HERALD_RECOVERY"
            ]
        );
    });

    // Without the config service, a follower keeps its configuration but
    // reports it can no longer vouch for it.
    assert!(config.terminate(Duration::from_secs(15)).success());
    wait_for(
        "fanout to become unready without the config service",
        Duration::from_secs(60),
        || {
            processes[1]
                .get("/readyz")
                .filter(|(status, _)| *status == 503)
        },
    );
    for process in processes {
        assert!(process.terminate(Duration::from_secs(15)).success());
    }
}

/// gRPC health follows readiness within a second; allow a few.
async fn wait_for_grpc_health(url: &str, expected: ServingStatus) {
    let mut status = grpc_health(url).await;
    for _ in 0..50 {
        if status == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = grpc_health(url).await;
    }
    assert_eq!(status, expected);
}

async fn grpc_health(url: &str) -> ServingStatus {
    let mut client = HealthClient::new(grpc_channel(url).await);
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    response.into_inner().status()
}

/// The services listed over reflection's older `v1alpha` protocol, which
/// older grpcurl and most Python tooling speak.
async fn reflected_services_v1alpha(url: &str) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(grpc_channel(url).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap_or_else(|status| panic!("v1alpha reflection on {url}: {status}"))
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[test]
fn hardening_22_every_reflection_port_lists_services_over_v1_and_v1alpha() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let database_url = sqlite_url(dir.path());
    let mut herald = HeraldProcess::start(
        &["all"],
        &[("NATS_URL", &nats.url()), ("DATABASE_URL", &database_url)],
    );
    herald.wait_until_ready(Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (port, addr, own) in [
            ("ops", herald.ops_addr, "herald.v1.ConfigService"),
            ("config", herald.config_addr, "herald.v1.ConfigService"),
            ("ingest", herald.ingest_addr, "herald.v1.IngestService"),
        ] {
            let url = format!("http://{addr}");
            let v1 = reflected_services(&url).await;
            let v1alpha = reflected_services_v1alpha(&url).await;
            assert_eq!(v1, v1alpha, "{port}: both versions list the same services");
            for expected in [
                own,
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ] {
                assert!(
                    v1alpha.iter().any(|service| service == expected),
                    "{port}: {expected} missing from {v1alpha:?}"
                );
            }
        }
    });
}

async fn reflected_services(url: &str) -> Vec<String> {
    let mut client = ServerReflectionClient::new(grpc_channel(url).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[test]
fn the_config_api_keeps_its_data_and_secrets_across_restarts() {
    let nats = NatsServer::start();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_owned();
    let database_url = sqlite_url(state.path());
    let envs = [
        ("NATS_URL", nats.url()),
        ("DATABASE_URL", database_url),
        ("HERALD_STATE_DIR", state_dir),
    ];
    let envs: Vec<(&str, &str)> = envs
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut herald = HeraldProcess::start(&["all"], &envs);
    herald.wait_until_ready(Duration::from_secs(30));
    let admin_token = std::fs::read_to_string(state.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let url = format!("http://{}", herald.config_addr);
    let (tenant_token, endpoint_id, secret) = runtime.block_on(async {
        let channel = grpc_channel(&url).await;
        let mut admin = AdminServiceClient::new(channel.clone());
        let tenant = admin
            .create_tenant(authed(
                &admin_token,
                pb::CreateTenantRequest {
                    name: "Acme".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let token = admin
            .create_token(authed(
                &admin_token,
                pb::CreateTokenRequest {
                    tenant_id: tenant.id,
                    name: "ci".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .secret;
        let created = ConfigServiceClient::new(channel)
            .create_endpoint(authed(
                &token,
                pb::CreateEndpointRequest {
                    spec: Some(pb::EndpointSpec {
                        name: "Orders".into(),
                        url: "https://hooks.example.com/herald".into(),
                        ..Default::default()
                    }),
                    secret: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (token, created.endpoint.unwrap().id, created.secret)
    });
    assert!(herald.terminate(Duration::from_secs(15)).success());

    // Same database, same state directory: migrations are a no-op, and the
    // generated master key still decrypts the stored secret.
    let mut herald = HeraldProcess::start(&["all"], &envs);
    herald.wait_until_ready(Duration::from_secs(30));
    let url = format!("http://{}", herald.config_addr);
    runtime.block_on(async {
        let channel = grpc_channel(&url).await;
        let secrets = ConfigServiceClient::new(channel)
            .get_endpoint_secret(authed(
                &tenant_token,
                pb::GetEndpointSecretRequest { endpoint_id },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(secrets.current, secret);
        let services = reflected_services(&url).await;
        assert!(
            services.iter().any(|s| s == "herald.v1.ConfigService"),
            "{services:?}"
        );
    });
    assert!(herald.terminate(Duration::from_secs(15)).success());
}

fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[test]
fn every_service_stops_on_sigterm_while_nats_is_down() {
    let mut stack = herald_tests::stack::Stack::start(1, &[]);
    let ingest = stack.start_ingest();
    stack.nats.stop();
    let processes = [
        ("ingest", ingest),
        ("fanout", stack.fanout),
        ("delivery", stack.deliveries.remove(0)),
        ("config", stack.config),
    ];
    for (name, process) in processes {
        let status = process.terminate(Duration::from_secs(30));
        assert!(status.success(), "herald {name} exited with {status}");
    }
}

/// Credentials every process of a multi-process test shares, so no two
/// config replicas generate their own at the same moment.
const SHARED_CREDENTIALS: [(&str, &str); 3] = [
    ("HERALD_SERVICE_TOKEN", "hrld_svc_shared-by-every-service"),
    ("HERALD_ADMIN_TOKEN", "hrld_admin_shared-by-every-config"),
    (
        "HERALD_MASTER_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ),
];

/// Held by each test that starts a fresh cluster with every service, so two
/// such starts never run at once: their dozens of processes and connections
/// would take the free ports the other picked for its listeners before
/// they bind (a port race of the test, not a start-up race of Herald).
static FRESH_CLUSTER_STARTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fresh 3-node cluster, and config ×2, ingest, fanout and delivery
/// started at the same instant on it with stream replicas 3, as a fresh
/// deploy does; returns once every process is ready, failing if one exits.
fn start_all_at_once(round: usize) -> (NatsCluster, Vec<(&'static str, HeraldProcess)>) {
    let cluster = NatsCluster::start();
    let nats_url = cluster.url();
    let database_url = postgres_url();
    let schema = herald_testkit::fresh_postgres_schema();
    let mut envs: Vec<(&str, &str)> = SHARED_CREDENTIALS.to_vec();
    envs.extend([
        ("NATS_URL", nats_url.as_str()),
        ("HERALD_STREAM_REPLICAS", "3"),
        ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        // Six processes set up R3 streams on two shared cores: give them
        // longer than production's default before they give up.
        ("HERALD_NATS_SETUP_TIMEOUT", "120s"),
    ]);
    let mut config_envs = envs.clone();
    config_envs.extend([
        ("DATABASE_URL", database_url.as_str()),
        ("HERALD_DATABASE_SCHEMA", schema.as_str()),
    ]);
    // Within milliseconds of each other: the followers only need the
    // configs' addresses, chosen before they are spawned.
    let mut processes: Vec<(&str, HeraldProcess)> = (0..2)
        .map(|_| ("config", HeraldProcess::start(&["config"], &config_envs)))
        .collect();
    let config_url = processes
        .iter()
        .map(|(_, config)| format!("http://{}", config.config_addr))
        .collect::<Vec<_>>()
        .join(",");
    envs.push(("HERALD_CONFIG_URL", &config_url));
    for service in ["ingest", "fanout", "delivery"] {
        processes.push((service, HeraldProcess::start(&[service], &envs)));
    }
    for (service, process) in &mut processes {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = process.exit_status() {
                panic!("round {round}: {service} exited with {status} during a concurrent start");
            }
            if process
                .get("/readyz")
                .is_some_and(|(status, _)| status == 200)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {service} not ready within 120 s: {:?}",
                process.get("/readyz")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (cluster, processes)
}

#[test]
fn topology_04_every_service_started_at_once_on_a_fresh_cluster_comes_up() {
    // Ten fresh clusters in a row, as issue 18 asks (a start-up race shows
    // in some rounds only); `HERALD_TEST_STARTUP_RACES` runs more or fewer.
    let rounds: usize = std::env::var("HERALD_TEST_STARTUP_RACES")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(10);
    let _alone = FRESH_CLUSTER_STARTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for round in 1..=rounds {
        let (_cluster, processes) = start_all_at_once(round);
        let (_, body) = processes[3].1.get("/readyz").unwrap();
        let readiness: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(readiness["checks"]["fanout consumer"], "ok", "{body}");
        for (service, process) in processes {
            assert!(
                process.terminate(Duration::from_secs(15)).success(),
                "round {round}: {service} did not stop cleanly"
            );
        }
        println!("round {round} of {rounds}: every service came up");
    }
}

#[test]
fn topology_03_fresh_replicated_consumers_work_as_soon_as_ready() {
    let _alone = FRESH_CLUSTER_STARTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (cluster, processes) = start_all_at_once(1);
    let config_url = format!("http://{}", processes[0].1.config_addr);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let admin = SHARED_CREDENTIALS[1].1;
        let mut tenant = tenant_client(grpc_channel(&config_url).await, admin).await;
        // The test delivery goes through the pool consumer and back through
        // the attempt writer's.
        tenant
            .active_endpoint(spec(&receiver.url(), &[20; 5]))
            .await;
        let bus = Bus::connect(&BusConfig::for_url(cluster.url()), "e2e")
            .await
            .unwrap();
        let published = std::time::Instant::now();
        publish_events(&bus, &tenant.id, 0, 20).await;
        eventually("every event delivered", Duration::from_secs(60), || async {
            let delivered = receiver
                .received()
                .iter()
                .filter(|received| received.succeeded() && received.data().get("index").is_some())
                .count();
            (delivered >= 20).then_some(())
        })
        .await;
        let took = published.elapsed();
        println!("20 events delivered {took:?} after they were published");
        // An idle consumer waits out a 30 s pull expiry plus 5 s.
        assert!(took <= Duration::from_secs(10), "delivery took {took:?}");
    });
}

#[test]
fn topology_05_nats_url_takes_a_list_of_servers() {
    let nats = NatsServer::start();
    let dead = free_port();
    for nats_url in [
        format!("nats://127.0.0.1:{dead},{}", nats.url()),
        format!("127.0.0.1:{dead} , 127.0.0.1:{}", nats.port()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let database_url = sqlite_url(dir.path());
        let mut herald = HeraldProcess::start(
            &["config"],
            &[("NATS_URL", &nats_url), ("DATABASE_URL", &database_url)],
        );
        herald.wait_until_ready(Duration::from_secs(30));
        assert!(herald.terminate(Duration::from_secs(15)).success());
    }
}
