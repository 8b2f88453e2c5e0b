//! The config service through its real gRPC API, on SQLite and PostgreSQL,
//! with a real nats-server.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use futures::StreamExt;
use herald_bus::{Bus, BusConfig, async_nats, headers};
use herald_config::{ConfigState, Settings, secrets::MasterKey};
use herald_core::address::AllowList;
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    attempt_service_client::AttemptServiceClient, config_service_client::ConfigServiceClient,
    watch_response::Change, watch_service_client::WatchServiceClient, watched_object::Object,
};
use herald_store::{Store, StoreOptions};
use herald_testkit::NatsServer;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, transport::Channel};

const ADMIN: &str = "test-admin-token";
const SERVICE: &str = "test-service-token";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Harness {
    channel: Channel,
    store: Store,
    bus: Bus,
    shutdown: CancellationToken,
    _nats: NatsServer,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(backend: Backend) -> Harness {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let options = match backend {
        Backend::Sqlite => StoreOptions {
            url: format!("sqlite:{}", dir.path().join("herald.db").display()),
            schema: None,
        },
        Backend::Postgres => StoreOptions {
            url: herald_testkit::postgres_url(),
            schema: Some(herald_testkit::fresh_postgres_schema()),
        },
    };
    let store = Store::connect_with(&options).await.unwrap();
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
        test_timeout: Duration::from_secs(5),
        change_retention: Duration::from_secs(7 * 24 * 3600),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = ConfigState::new(store.clone(), bus.clone(), settings);
    tokio::spawn(herald_config::run(
        listener,
        state,
        herald_telemetry::server::RequestMetrics::default(),
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Harness {
        channel,
        store,
        bus,
        shutdown,
        _nats: nats,
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
    fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    fn config(&self) -> ConfigServiceClient<Channel> {
        ConfigServiceClient::new(self.channel.clone())
    }

    fn attempts(&self) -> AttemptServiceClient<Channel> {
        AttemptServiceClient::new(self.channel.clone())
    }

    async fn tenant(&self, name: &str) -> Tenant {
        let tenant = self
            .admin()
            .create_tenant(authed(ADMIN, pb::CreateTenantRequest { name: name.into() }))
            .await
            .unwrap()
            .into_inner();
        let token = self
            .admin()
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

    async fn create_endpoint(
        &self,
        tenant: &Tenant,
        spec: pb::EndpointSpec,
    ) -> Result<pb::CreateEndpointResponse, tonic::Status> {
        self.config()
            .create_endpoint(authed(
                &tenant.token,
                pb::CreateEndpointRequest {
                    spec: Some(spec),
                    secret: String::new(),
                },
            ))
            .await
            .map(|response| response.into_inner())
    }

    async fn endpoint_count(&self, tenant: &Tenant) -> usize {
        let mut count = 0;
        let mut page_token = String::new();
        loop {
            let page = self
                .config()
                .list_endpoints(authed(
                    &tenant.token,
                    pb::ListEndpointsRequest {
                        page_size: 500,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            count += page.endpoints.len();
            if page.next_page_token.is_empty() {
                return count;
            }
            page_token = page.next_page_token;
        }
    }
}

fn spec(name: &str, url: &str) -> pb::EndpointSpec {
    pb::EndpointSpec {
        name: name.into(),
        url: url.into(),
        ..Default::default()
    }
}

fn field_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(herald_config::FIELD_METADATA_KEY)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Runs one test body on both databases.
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await }
            )+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await }
            )+
        }
    };
}

on_both_databases!(
    endpoint_lifecycle,
    bad_input_names_the_field_and_writes_nothing,
    search_needs_three_characters,
    paging_is_stable_under_concurrent_inserts,
    tenants_are_isolated,
    secret_rotation_keeps_the_previous_secret_for_the_overlap,
    watch_resumes_from_a_revision,
    attempt_records_are_stored_once,
    test_endpoint_activates_on_a_2xx_attempt,
    secrets_are_encrypted_at_rest,
    hardening_19_attempt_duration_keeps_microseconds,
);

async fn endpoint_lifecycle(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let device = herald
        .config()
        .create_device(authed(
            &tenant.token,
            pb::CreateDeviceRequest {
                channel: pb::Channel::Waba.into(),
                name: "Support line".into(),
                external_id: "106540352242922".into(),
                verification: Some(pb::DeviceVerification {
                    channel: Some(pb::device_verification::Channel::Waba(
                        pb::WabaVerification {
                            app_secret: "app-secret".into(),
                            verify_token: "verify-me".into(),
                        },
                    )),
                    configured: false,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Verification material is write-only for tenants.
    match device.verification.unwrap().channel.unwrap() {
        pb::device_verification::Channel::Waba(waba) => {
            assert!(waba.app_secret.is_empty() && waba.verify_token.is_empty())
        }
        other => panic!("unexpected verification {other:?}"),
    }

    let created = herald
        .create_endpoint(
            &tenant,
            pb::EndpointSpec {
                device_ids: vec![device.id.clone()],
                event_types: vec!["message.received".into(), "message.read".into()],
                ..spec("Orders", "https://hooks.example.com/herald")
            },
        )
        .await
        .unwrap();
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    let endpoint = created.endpoint.unwrap();
    assert_eq!(endpoint.status(), pb::EndpointStatus::PendingTest);
    let spec_read = endpoint.spec.clone().unwrap();
    assert_eq!(spec_read.device_ids, std::slice::from_ref(&device.id));
    assert!(!spec_read.all_devices);
    assert_eq!(spec_read.event_types, ["message.read", "message.received"]);

    let mut config = herald.config();
    let renamed = config
        .update_endpoint(authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                spec: Some(pb::EndpointSpec {
                    name: "Orders v2".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
                etag: endpoint.etag.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.spec.as_ref().unwrap().name, "Orders v2");
    assert_eq!(
        renamed.spec.as_ref().unwrap().url,
        "https://hooks.example.com/herald"
    );
    assert_ne!(renamed.etag, endpoint.etag);

    // A stale etag loses.
    let stale = config
        .update_endpoint(authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                spec: Some(pb::EndpointSpec {
                    name: "Lost".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
                etag: endpoint.etag.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    let disabled = config
        .disable_endpoint(authed(
            &tenant.token,
            pb::DisableEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                reason: "maintenance".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disabled.status(), pb::EndpointStatus::Disabled);
    assert_eq!(disabled.status_reason, "maintenance");
    assert_eq!(
        disabled.spec.as_ref().unwrap().name,
        "Orders v2",
        "configuration survives a pause"
    );
    let enabled = config
        .enable_endpoint(authed(
            &tenant.token,
            pb::EnableEndpointRequest {
                endpoint_id: endpoint.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        enabled.status(),
        pb::EndpointStatus::PendingTest,
        "it was never tested, so it resumes pending"
    );

    let summary = config
        .get_summary(authed(&tenant.token, pb::GetSummaryRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (summary.endpoints_total, summary.endpoints_pending_test),
        (1, 1)
    );

    config
        .delete_endpoint(authed(
            &tenant.token,
            pb::DeleteEndpointRequest {
                endpoint_id: endpoint.id.clone(),
            },
        ))
        .await
        .unwrap();
    let gone = config
        .get_endpoint(authed(
            &tenant.token,
            pb::GetEndpointRequest {
                endpoint_id: endpoint.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

async fn bad_input_names_the_field_and_writes_nothing(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let cases: Vec<(pb::EndpointSpec, &str)> = vec![
        (spec("Plain", "http://hooks.example.com/x"), "spec.url"),
        (spec("Private", "https://10.0.0.1/x"), "spec.url"),
        (
            spec("Metadata", "https://169.254.169.254/latest"),
            "spec.url",
        ),
        (spec("", "https://hooks.example.com/x"), "spec.name"),
        (
            spec(&"n".repeat(201), "https://hooks.example.com/x"),
            "spec.name",
        ),
        (
            spec("Nul\u{0}byte", "https://hooks.example.com/x"),
            "spec.name",
        ),
        (
            pb::EndpointSpec {
                description: "nul\u{0}".into(),
                ..spec("Described", "https://hooks.example.com/x")
            },
            "spec.description",
        ),
        (
            pb::EndpointSpec {
                event_types: vec!["message.received".into(), "made.up".into()],
                ..spec("Types", "https://hooks.example.com/x")
            },
            "spec.event_types[1]",
        ),
        (
            pb::EndpointSpec {
                device_ids: vec![herald_core::id::DeviceId::generate().to_string()],
                ..spec("Devices", "https://hooks.example.com/x")
            },
            "spec.device_ids[0]",
        ),
        (
            pb::EndpointSpec {
                headers: [("webhook-signature".to_owned(), "forged".to_owned())].into(),
                ..spec("Headers", "https://hooks.example.com/x")
            },
            "spec.headers",
        ),
    ];
    for (spec, field) in cases {
        let error = herald.create_endpoint(&tenant, spec).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert_eq!(field_of(&error), field, "{error:?}");
        assert!(error.message().starts_with(field), "{}", error.message());
    }
    assert_eq!(herald.endpoint_count(&tenant).await, 0);

    let too_big = herald
        .config()
        .list_endpoints(authed(
            &tenant.token,
            pb::ListEndpointsRequest {
                page_size: 501,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(&too_big), "page_size");
    let control = herald
        .config()
        .list_endpoints(authed(
            &tenant.token,
            pb::ListEndpointsRequest {
                search: "abc\u{0}".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(&control), "search");

    // An allow-listed loopback receiver may use plain HTTP (tests, local dev).
    herald
        .create_endpoint(&tenant, spec("Local", "http://127.0.0.1:9/hook"))
        .await
        .unwrap();
}

async fn search_needs_three_characters(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    herald
        .create_endpoint(
            &tenant,
            spec("Billing Events", "https://billing.example.com/in"),
        )
        .await
        .unwrap();
    herald
        .create_endpoint(&tenant, spec("CRM", "https://crm.example.org/HOOKS"))
        .await
        .unwrap();
    herald
        .create_endpoint(
            &tenant,
            spec("Fifty_percent%", "https://other.example.net/x"),
        )
        .await
        .unwrap();
    let search = |text: &str| {
        let mut config = herald.config();
        let request = authed(
            &tenant.token,
            pb::ListEndpointsRequest {
                search: text.into(),
                ..Default::default()
            },
        );
        async move { config.list_endpoints(request).await }
    };
    let short = search("cr").await.unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument);
    assert_eq!(field_of(&short), "search");
    let names = |response: pb::ListEndpointsResponse| -> Vec<String> {
        response
            .endpoints
            .into_iter()
            .map(|endpoint| endpoint.spec.unwrap().name)
            .collect()
    };
    assert_eq!(names(search("crm").await.unwrap().into_inner()), ["CRM"]);
    assert_eq!(
        names(search("hooks").await.unwrap().into_inner()),
        ["CRM"],
        "URL matches, case-insensitively"
    );
    assert_eq!(
        names(search("BILLING").await.unwrap().into_inner()),
        ["Billing Events"]
    );
    assert_eq!(
        names(search("y_p").await.unwrap().into_inner()),
        ["Fifty_percent%"]
    );
    assert!(
        names(search("f_f").await.unwrap().into_inner()).is_empty(),
        "_ is literal, not a wildcard"
    );
    assert!(
        names(search("x%x").await.unwrap().into_inner()).is_empty(),
        "% is literal"
    );
}

async fn paging_is_stable_under_concurrent_inserts(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let creates = futures::stream::iter(0..1_000)
        .map(|index| {
            herald.create_endpoint(
                &tenant,
                spec(&format!("endpoint {index}"), "https://hooks.example.com/x"),
            )
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let original: BTreeSet<String> = creates
        .into_iter()
        .map(|created| created.unwrap().endpoint.unwrap().id)
        .collect();
    assert_eq!(original.len(), 1_000);

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut inserted = 0;
    loop {
        let page = herald
            .config()
            .list_endpoints(authed(
                &tenant.token,
                pb::ListEndpointsRequest {
                    page_size: 97,
                    page_token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.endpoints.into_iter().map(|endpoint| endpoint.id));
        // Someone keeps adding endpoints while we page.
        for _ in 0..3 {
            herald
                .create_endpoint(&tenant, spec("late", "https://hooks.example.com/late"))
                .await
                .unwrap();
            inserted += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no endpoint is returned twice");
    for id in &original {
        assert!(unique.contains(id), "{id} was skipped");
    }
    assert!(inserted > 0);
}

async fn tenants_are_isolated(backend: Backend) {
    let herald = start(backend).await;
    let acme = herald.tenant("Acme").await;
    let rival = herald.tenant("Rival").await;
    let endpoint = herald
        .create_endpoint(&acme, spec("Orders", "https://hooks.example.com/x"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let device = herald
        .config()
        .create_device(authed(
            &acme.token,
            pb::CreateDeviceRequest {
                channel: pb::Channel::Telegram.into(),
                name: "Bot".into(),
                external_id: "123456".into(),
                verification: Some(pb::DeviceVerification {
                    channel: Some(pb::device_verification::Channel::Telegram(
                        pb::TelegramVerification {
                            secret_token: "s3cret-Token".into(),
                        },
                    )),
                    configured: false,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();

    let mut config = herald.config();
    let id = || endpoint.id.clone();
    let token = &rival.token;
    let codes = vec![
        config
            .get_endpoint(authed(token, pb::GetEndpointRequest { endpoint_id: id() }))
            .await
            .unwrap_err()
            .code(),
        config
            .update_endpoint(authed(
                token,
                pb::UpdateEndpointRequest {
                    endpoint_id: id(),
                    spec: Some(spec("Stolen", "https://evil.example.com")),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .delete_endpoint(authed(
                token,
                pb::DeleteEndpointRequest { endpoint_id: id() },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .disable_endpoint(authed(
                token,
                pb::DisableEndpointRequest {
                    endpoint_id: id(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .enable_endpoint(authed(
                token,
                pb::EnableEndpointRequest { endpoint_id: id() },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .test_endpoint(authed(
                token,
                pb::TestEndpointRequest {
                    endpoint_id: id(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .rotate_endpoint_secret(authed(
                token,
                pb::RotateEndpointSecretRequest {
                    endpoint_id: id(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .get_endpoint_secret(authed(
                token,
                pb::GetEndpointSecretRequest { endpoint_id: id() },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .get_device(authed(
                token,
                pb::GetDeviceRequest {
                    device_id: device.id.clone(),
                },
            ))
            .await
            .unwrap_err()
            .code(),
        config
            .delete_device(authed(
                token,
                pb::DeleteDeviceRequest {
                    device_id: device.id.clone(),
                },
            ))
            .await
            .unwrap_err()
            .code(),
    ];
    assert!(
        codes.iter().all(|code| *code == Code::NotFound),
        "{codes:?}"
    );

    // Subscribing to another tenant's device is refused as unknown.
    let error = herald
        .create_endpoint(
            &rival,
            pb::EndpointSpec {
                device_ids: vec![device.id.clone()],
                ..spec("Sneaky", "https://hooks.example.com/x")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&error), "spec.device_ids[0]");

    assert_eq!(herald.endpoint_count(&rival).await, 0);
    let summary = config
        .get_summary(authed(token, pb::GetSummaryRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.endpoints_total, 0);

    // Tenant tokens cannot use the admin or service APIs.
    let admin = herald
        .admin()
        .list_tenants(authed(token, pb::ListTenantsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(admin.code(), Code::PermissionDenied);
    let watch = WatchServiceClient::new(herald.channel.clone())
        .watch(authed(token, pb::WatchRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(watch.code(), Code::PermissionDenied);
    let anonymous = config
        .get_summary(Request::new(pb::GetSummaryRequest {}))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong = config
        .get_summary(authed("hrld_not-a-real-token", pb::GetSummaryRequest {}))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
}

async fn secret_rotation_keeps_the_previous_secret_for_the_overlap(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let created = herald
        .create_endpoint(&tenant, spec("Orders", "https://hooks.example.com/x"))
        .await
        .unwrap();
    let endpoint_id = created.endpoint.unwrap().id;
    let mut config = herald.config();
    let rotated = config
        .rotate_endpoint_secret(authed(
            &tenant.token,
            pb::RotateEndpointSecretRequest {
                endpoint_id: endpoint_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.current, created.secret);
    assert_eq!(rotated.previous, created.secret);
    let expires = rotated.previous_expires_at.unwrap().seconds
        - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((24 * 3600 - 60..=24 * 3600).contains(&expires), "{expires}");
    let read = config
        .get_endpoint_secret(authed(
            &tenant.token,
            pb::GetEndpointSecretRequest {
                endpoint_id: endpoint_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, rotated);

    let own = config
        .rotate_endpoint_secret(authed(
            &tenant.token,
            pb::RotateEndpointSecretRequest {
                endpoint_id: endpoint_id.clone(),
                secret: "my-own-shared-secret".into(),
                overlap: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.current, "my-own-shared-secret");
    assert!(own.previous.is_empty() && own.previous_expires_at.is_none());
}

async fn next_change(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    loop {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !matches!(response.change, Some(Change::Heartbeat(_))) {
            return response;
        }
    }
}

async fn watch_resumes_from_a_revision(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let first = herald
        .create_endpoint(&tenant, spec("First", "https://hooks.example.com/1"))
        .await
        .unwrap();
    let mut watch = WatchServiceClient::new(herald.channel.clone());

    let mut stream = watch
        .watch(authed(SERVICE, pb::WatchRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        next_change(&mut stream).await.change,
        Some(Change::SnapshotStart(_))
    ));
    let mut snapshot_endpoints = Vec::new();
    let snapshot_revision = loop {
        let response = next_change(&mut stream).await;
        match response.change.unwrap() {
            Change::SnapshotEnd(_) => break response.revision,
            Change::Upsert(object) => {
                if let Some(Object::Endpoint(endpoint)) = object.object {
                    snapshot_endpoints.push(endpoint);
                }
            }
            other => panic!("unexpected {other:?} in a snapshot"),
        }
    };
    assert_eq!(snapshot_endpoints.len(), 1);
    assert_eq!(
        snapshot_endpoints[0].secrets.as_ref().unwrap().current,
        first.secret,
        "services get the secret"
    );

    let second = herald
        .create_endpoint(&tenant, spec("Second", "https://hooks.example.com/2"))
        .await
        .unwrap();
    let change = next_change(&mut stream).await;
    assert!(change.revision > snapshot_revision);
    let last_seen = change.revision;
    match change.change.unwrap() {
        Change::Upsert(pb::WatchedObject {
            object: Some(Object::Endpoint(endpoint)),
        }) => {
            assert_eq!(
                endpoint.endpoint.unwrap().id,
                second.endpoint.as_ref().unwrap().id
            );
        }
        other => panic!("expected the new endpoint, got {other:?}"),
    }
    drop(stream);

    // While disconnected: a change and a deletion.
    let first_id = first.endpoint.unwrap().id;
    herald
        .config()
        .disable_endpoint(authed(
            &tenant.token,
            pb::DisableEndpointRequest {
                endpoint_id: first_id.clone(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let second_id = second.endpoint.unwrap().id;
    herald
        .config()
        .delete_endpoint(authed(
            &tenant.token,
            pb::DeleteEndpointRequest {
                endpoint_id: second_id.clone(),
            },
        ))
        .await
        .unwrap();

    let mut resumed = watch
        .watch(authed(
            SERVICE,
            pb::WatchRequest {
                since_revision: last_seen,
                kinds: vec![pb::WatchedKind::Endpoint.into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let disabled = next_change(&mut resumed).await;
    assert!(disabled.revision > last_seen);
    match disabled.change.unwrap() {
        Change::Upsert(pb::WatchedObject {
            object: Some(Object::Endpoint(endpoint)),
        }) => {
            assert_eq!(
                endpoint.endpoint.unwrap().status(),
                pb::EndpointStatus::Disabled
            );
        }
        other => panic!("expected the disabled endpoint, got {other:?}"),
    }
    let deleted = next_change(&mut resumed).await;
    assert!(deleted.revision > disabled.revision);
    match deleted.change.unwrap() {
        Change::Delete(reference) => assert_eq!(reference.id, second_id),
        other => panic!("expected a deletion, got {other:?}"),
    }
}

fn attempt(tenant: &str, endpoint: &str, delivery: &str, number: u32) -> pb::Attempt {
    pb::Attempt {
        id: format!("att_{delivery}_{number}"),
        delivery_id: delivery.into(),
        event_id: herald_core::id::EventId::generate().to_string(),
        tenant_id: tenant.into(),
        endpoint_id: endpoint.into(),
        event_type: "message.received".into(),
        attempt: number,
        attempted_at: Some(herald_proto::timestamp_to_wire(
            time::OffsetDateTime::now_utc(),
        )),
        status: pb::AttemptStatus::Succeeded.into(),
        response_code: 200,
        response_body: bytes::Bytes::from_static(b"ok"),
        trigger: pb::DeliveryTrigger::Live.into(),
        ..Default::default()
    }
}

async fn attempt_records_are_stored_once(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(&tenant, spec("Orders", "https://hooks.example.com/x"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let tenant_id = herald_core::id::TenantId::parse(&tenant.id).unwrap();
    let endpoint_id = herald_core::id::EndpointId::parse(&endpoint.id).unwrap();
    let subject = herald
        .bus
        .topology()
        .attempt_subject(&tenant_id, &endpoint_id);
    let record = attempt(&tenant.id, &endpoint.id, "dlv_one", 1);
    // The same record three times under different message ids: redeliveries
    // from outside the bus's duplicate window.
    for copy in 0..3 {
        herald
            .bus
            .publish(
                subject.clone(),
                &format!("{}:{copy}", record.id),
                async_nats::HeaderMap::new(),
                record.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let other = attempt(&tenant.id, &endpoint.id, "dlv_two", 1);
    herald
        .bus
        .publish(
            subject,
            &other.id,
            async_nats::HeaderMap::new(),
            other.encode_to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let mut attempts = herald.attempts();
    let listed = herald_testkit_wait(|| {
        let mut attempts = attempts.clone();
        let request = authed(
            &tenant.token,
            pb::ListAttemptsRequest {
                endpoint_id: endpoint.id.clone(),
                ..Default::default()
            },
        );
        async move {
            let listed = attempts.list_attempts(request).await.unwrap().into_inner();
            (listed.attempts.len() >= 2).then_some(listed)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = attempts
        .list_attempts(authed(
            &tenant.token,
            pb::ListAttemptsRequest {
                endpoint_id: endpoint.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.attempts.len(), 2, "{again:?}");
    assert_eq!(listed.attempts.len(), 2);
    let one = attempts
        .get_attempt(authed(
            &tenant.token,
            pb::GetAttemptRequest {
                attempt_id: record.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.response_code, 200);
    assert_eq!(one.status(), pb::AttemptStatus::Succeeded);
    let summary = herald
        .config()
        .get_summary(authed(&tenant.token, pb::GetSummaryRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.deliveries_succeeded, 2);
}

async fn hardening_19_attempt_duration_keeps_microseconds(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(&tenant, spec("Orders", "https://hooks.example.com/x"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let tenant_id = herald_core::id::TenantId::parse(&tenant.id).unwrap();
    let endpoint_id = herald_core::id::EndpointId::parse(&endpoint.id).unwrap();
    let subject = herald
        .bus
        .topology()
        .attempt_subject(&tenant_id, &endpoint_id);
    // As the delivery service records them: a sub-millisecond answer and
    // one of a little over a millisecond (nanoseconds beyond the microsecond
    // are not kept).
    let durations = [
        ("dlv_fast", Duration::from_nanos(250_400)),
        ("dlv_slow", Duration::from_nanos(1_037_999)),
    ];
    for (delivery, duration) in durations {
        let mut record = attempt(&tenant.id, &endpoint.id, delivery, 1);
        record.duration = Some(prost_types::Duration::try_from(duration).unwrap());
        herald
            .bus
            .publish(
                subject.clone(),
                &record.id,
                async_nats::HeaderMap::new(),
                record.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let attempts = herald.attempts();
    for (delivery, expected_micros) in [("dlv_fast", 250), ("dlv_slow", 1_037)] {
        let stored = herald_testkit_wait(|| {
            let mut attempts = attempts.clone();
            let request = authed(
                &tenant.token,
                pb::GetAttemptRequest {
                    attempt_id: format!("att_{delivery}_1"),
                },
            );
            async move { attempts.get_attempt(request).await.ok() }
        })
        .await
        .into_inner();
        let duration = stored.duration.unwrap();
        assert_eq!(
            (duration.seconds, duration.nanos),
            (0, expected_micros * 1_000),
            "{delivery}"
        );
    }
}

/// Polls `check` until it returns `Some`, for up to ten seconds.
async fn herald_testkit_wait<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

/// Plays the delivery service's part on the bus: takes the test job and
/// publishes the attempt record a receiver answering `status` produces.
async fn answer_test_job(bus: &Bus, status: pb::AttemptStatus, code: u32) {
    let consumer = bus
        .consumer(herald_bus::ConsumerRole::Delivery)
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let job = pb::DeliveryJob::decode(message.payload.as_ref()).unwrap();
    assert!(job.test);
    assert_eq!(job.trigger(), pb::DeliveryTrigger::Test);
    assert_eq!(
        message
            .headers
            .as_ref()
            .unwrap()
            .get(headers::MESSAGE_ID)
            .unwrap()
            .as_str(),
        job.delivery_id
    );
    message.ack().await.unwrap();
    let event = job.event.unwrap();
    let tenant = herald_core::id::TenantId::parse(&event.tenant_id).unwrap();
    let endpoint = herald_core::id::EndpointId::parse(&job.endpoint_id).unwrap();
    let record = pb::Attempt {
        status: status.into(),
        response_code: code,
        test: true,
        trigger: pb::DeliveryTrigger::Test.into(),
        ..attempt(&event.tenant_id, &job.endpoint_id, &job.delivery_id, 1)
    };
    bus.publish(
        bus.topology().attempt_subject(&tenant, &endpoint),
        &record.id,
        async_nats::HeaderMap::new(),
        record.encode_to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

async fn test_endpoint_activates_on_a_2xx_attempt(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(&tenant, spec("Orders", "https://hooks.example.com/x"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let test = |timeout_seconds: i64| {
        let mut config = herald.config();
        let request = authed(
            &tenant.token,
            pb::TestEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                event_type: String::new(),
                timeout: Some(prost_types::Duration {
                    seconds: timeout_seconds,
                    nanos: 0,
                }),
            },
        );
        async move { config.test_endpoint(request).await }
    };

    // Nobody delivers: the caller learns so, and the endpoint stays pending.
    let timed_out = test(1).await.unwrap_err();
    assert_eq!(timed_out.code(), Code::DeadlineExceeded);
    assert!(
        timed_out.message().contains("delivery service"),
        "{}",
        timed_out.message()
    );
    // Drain the unanswered job so the next answer is for the next test.
    answer_test_job(&herald.bus, pb::AttemptStatus::Failed, 0).await;

    let (failed, ()) = tokio::join!(
        test(10),
        answer_test_job(&herald.bus, pb::AttemptStatus::Retrying, 500)
    );
    let failed = failed.unwrap().into_inner();
    assert_eq!(failed.attempt.unwrap().response_code, 500);
    assert_eq!(
        failed.endpoint.unwrap().status(),
        pb::EndpointStatus::PendingTest
    );

    let (passed, ()) = tokio::join!(
        test(10),
        answer_test_job(&herald.bus, pb::AttemptStatus::Succeeded, 201)
    );
    let passed = passed.unwrap().into_inner();
    assert_eq!(
        passed.endpoint.unwrap().status(),
        pb::EndpointStatus::Active
    );

    // Editing the URL needs a new test.
    let edited = herald
        .config()
        .update_endpoint(authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                spec: Some(pb::EndpointSpec {
                    url: "https://hooks.example.com/moved".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["url".into()],
                }),
                etag: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(edited.status(), pb::EndpointStatus::PendingTest);
}

async fn secrets_are_encrypted_at_rest(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let created = herald
        .create_endpoint(&tenant, spec("Orders", "https://hooks.example.com/x"))
        .await
        .unwrap();
    let row = herald
        .store
        .get_endpoint_by_id(&created.endpoint.unwrap().id)
        .await
        .unwrap()
        .unwrap();
    let plaintext = created.secret.as_bytes();
    assert!(
        !row.secret_ciphertext
            .windows(plaintext.len())
            .any(|window| window == plaintext)
    );
    assert!(
        !row.spec
            .windows(plaintext.len())
            .any(|window| window == plaintext)
    );
    let token_hash = herald
        .store
        .find_token_by_secret_hash(&herald_config::hash_token(&tenant.token))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        token_hash.secret_sha256, tenant.token,
        "tokens are stored hashed"
    );
}
