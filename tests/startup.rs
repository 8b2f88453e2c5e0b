//! Starting, probing and stopping the `herald` binary.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    config_service_client::ConfigServiceClient,
};
use herald_tests::{
    HeraldProcess, NatsServer, free_port, postgres_url, run_herald, sqlite_url, wait_for,
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

async fn grpc_channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
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
