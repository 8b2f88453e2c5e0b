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
/// A Standard Webhooks secret of a customer's own (24 bytes).
const OWN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Harness {
    addr: SocketAddr,
    channel: Channel,
    store: Store,
    bus: Bus,
    state: ConfigState,
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
    start_on(&options, dir).await
}

async fn start_on(options: &StoreOptions, dir: tempfile::TempDir) -> Harness {
    let nats = NatsServer::start();
    let store = Store::connect_with(options).await.unwrap();
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
        trusted_proxies: Vec::new(),
        max_dead_letters: 100_000,
        metrics: herald_config::ConfigMetrics::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = ConfigState::new(store.clone(), bus.clone(), settings);
    tokio::spawn(herald_config::run(
        listener,
        state.clone(),
        herald_telemetry::server::RequestMetrics::default(),
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Harness {
        addr,
        channel,
        store,
        bus,
        state,
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
    hardening_01_secrets_the_scheme_cannot_sign_with_are_refused_on_every_path,
    hardening_02_reserved_signature_headers_are_refused_naming_signature_header,
    hardening_03_custom_header_values_are_sealed_at_rest_and_masked_for_read_tokens,
    hardening_04_control_characters_are_refused_in_every_text_field,
    hardening_05_tampered_page_tokens_and_huge_ttls_are_invalid_arguments,
    hardening_07_an_unparsable_herald_tenant_is_an_invalid_argument,
    hardening_19_attempt_duration_keeps_microseconds,
    topology_08_tenant_quotas_are_set_by_the_admin_and_checked,
    topology_09_the_dead_letter_quota_purges_the_oldest_first,
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
                secret: OWN_SECRET.into(),
                overlap: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.current, OWN_SECRET);
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

fn assert_invalid(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    field: &str,
) -> tonic::Status {
    let error = result.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
    assert_eq!(field_of(&error), field, "{error:?}");
    assert!(error.message().starts_with(field), "{}", error.message());
    error
}

impl Harness {
    async fn read_token(&self, tenant: &Tenant) -> String {
        self.admin()
            .create_token(authed(
                ADMIN,
                pb::CreateTokenRequest {
                    tenant_id: tenant.id.clone(),
                    name: "dashboard".into(),
                    scope: pb::TokenScope::Read.into(),
                    ttl: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    async fn activate(&self, tenant: &Tenant, endpoint_id: &str) {
        let mut config = self.config();
        let request = authed(
            &tenant.token,
            pb::TestEndpointRequest {
                endpoint_id: endpoint_id.to_owned(),
                event_type: String::new(),
                timeout: Some(prost_types::Duration {
                    seconds: 10,
                    nanos: 0,
                }),
            },
        );
        let (tested, ()) = tokio::join!(
            config.test_endpoint(request),
            answer_test_job(&self.bus, pb::AttemptStatus::Succeeded, 200)
        );
        assert_eq!(
            tested.unwrap().into_inner().endpoint.unwrap().status(),
            pb::EndpointStatus::Active
        );
    }

    async fn secrets(&self, tenant: &Tenant, endpoint_id: &str) -> pb::EndpointSecrets {
        self.config()
            .get_endpoint_secret(authed(
                &tenant.token,
                pb::GetEndpointSecretRequest {
                    endpoint_id: endpoint_id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

async fn hardening_01_secrets_the_scheme_cannot_sign_with_are_refused_on_every_path(
    backend: Backend,
) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let mut config = herald.config();
    let create = |scheme: pb::SigningScheme, secret: &str| {
        authed(
            &tenant.token,
            pb::CreateEndpointRequest {
                spec: Some(pb::EndpointSpec {
                    signing_scheme: scheme.into(),
                    ..spec("Orders", "https://hooks.example.com/x")
                }),
                secret: secret.into(),
            },
        )
    };

    // Create: the default scheme is Standard Webhooks, which signs only with
    // whsec_ secrets of 24 to 64 bytes.
    for secret in ["my-plain-secret-123", "whsec_AAAA", "whsec_not*base64"] {
        let error = assert_invalid(
            config
                .create_endpoint(create(pb::SigningScheme::Unspecified, secret))
                .await,
            "secret",
        );
        assert!(
            error.message().contains("whsec_<base64 of 24 to 64 bytes>"),
            "{}",
            error.message()
        );
        assert_invalid(
            config
                .create_endpoint(create(pb::SigningScheme::Standard, secret))
                .await,
            "secret",
        );
    }
    assert_eq!(herald.endpoint_count(&tenant).await, 0);
    config
        .create_endpoint(create(pb::SigningScheme::Standard, OWN_SECRET))
        .await
        .unwrap();

    // Update: switching a shared-secret endpoint with a plain secret to the
    // standard scheme would leave it unable to sign.
    let shared = config
        .create_endpoint(create(
            pb::SigningScheme::SharedSecret,
            "my-plain-secret-123",
        ))
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    let to_standard = |endpoint_id: &str| {
        authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint_id.to_owned(),
                spec: Some(pb::EndpointSpec {
                    signing_scheme: pb::SigningScheme::Standard.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["signing_scheme".into()],
                }),
                etag: String::new(),
            },
        )
    };
    let error = assert_invalid(
        config.update_endpoint(to_standard(&shared.id)).await,
        "spec.signing_scheme",
    );
    assert!(error.message().contains("rotate"), "{}", error.message());
    let unchanged = config
        .get_endpoint(authed(
            &tenant.token,
            pb::GetEndpointRequest {
                endpoint_id: shared.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unchanged.spec.unwrap().signing_scheme(),
        pb::SigningScheme::SharedSecret
    );
    // Rotating to a whsec_ secret first (no overlap) makes the switch possible.
    config
        .rotate_endpoint_secret(authed(
            &tenant.token,
            pb::RotateEndpointSecretRequest {
                endpoint_id: shared.id.clone(),
                secret: OWN_SECRET.into(),
                overlap: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap();
    config
        .update_endpoint(to_standard(&shared.id))
        .await
        .unwrap();

    // Rotate on an active endpoint: a plain secret would send live traffic
    // to retries and dead letters.
    let active = config
        .create_endpoint(create(pb::SigningScheme::Standard, ""))
        .await
        .unwrap()
        .into_inner();
    let active_id = active.endpoint.unwrap().id;
    herald.activate(&tenant, &active_id).await;
    assert_invalid(
        config
            .rotate_endpoint_secret(authed(
                &tenant.token,
                pb::RotateEndpointSecretRequest {
                    endpoint_id: active_id.clone(),
                    secret: "plain".into(),
                    overlap: None,
                },
            ))
            .await,
        "secret",
    );
    let secrets = herald.secrets(&tenant, &active_id).await;
    assert_eq!(secrets.current, active.secret, "nothing was rotated");
    assert!(secrets.previous.is_empty());

    // sha256-hex and shared-secret sign with any secret string.
    for scheme in [
        pb::SigningScheme::Sha256Hex,
        pb::SigningScheme::SharedSecret,
    ] {
        config
            .create_endpoint(create(scheme, "my-plain-secret-123"))
            .await
            .unwrap();
    }
}

async fn hardening_02_reserved_signature_headers_are_refused_naming_signature_header(
    backend: Backend,
) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let hex = |header: &str| pb::EndpointSpec {
        signing_scheme: pb::SigningScheme::Sha256Hex.into(),
        signature_header: header.into(),
        ..spec("Hex", "https://hooks.example.com/x")
    };
    for header in [
        "traceparent",
        "TraceState",
        "webhook-signature",
        "Webhook-Id",
        "Content-Type",
        "content-length",
        "Host",
        "X-Herald-Event",
        "x-herald-whatever",
        "X-Idempotency-Key",
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    ] {
        let error = assert_invalid(
            herald.create_endpoint(&tenant, hex(header)).await,
            "spec.signature_header",
        );
        assert!(error.message().contains("reserved"), "{}", error.message());
        // The same names are refused as custom headers.
        assert_invalid(
            herald
                .create_endpoint(
                    &tenant,
                    pb::EndpointSpec {
                        headers: [(header.to_owned(), "x".to_owned())].into(),
                        ..spec("Headers", "https://hooks.example.com/x")
                    },
                )
                .await,
            "spec.headers",
        );
    }
    // A malformed header name is about the header too.
    assert_invalid(
        herald.create_endpoint(&tenant, hex("X Sig")).await,
        "spec.signature_header",
    );
    assert_eq!(herald.endpoint_count(&tenant).await, 0);

    // Setting a reserved name on an existing endpoint is refused the same way.
    let endpoint = herald
        .create_endpoint(&tenant, hex("X-Acme-Signature"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    assert_invalid(
        herald
            .config()
            .update_endpoint(authed(
                &tenant.token,
                pb::UpdateEndpointRequest {
                    endpoint_id: endpoint.id.clone(),
                    spec: Some(pb::EndpointSpec {
                        signature_header: "traceparent".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["signature_header".into()],
                    }),
                    etag: String::new(),
                },
            ))
            .await,
        "spec.signature_header",
    );
    // Herald's own default stays valid.
    herald
        .create_endpoint(&tenant, hex("X-Herald-Signature"))
        .await
        .unwrap();
}

/// The stored form of an endpoint before header values were sealed.
#[derive(Clone, PartialEq, prost::Message)]
struct LegacyStoredEndpoint {
    #[prost(message, optional, tag = "1")]
    spec: Option<pb::EndpointSpec>,
    #[prost(enumeration = "pb::EndpointStatus", tag = "2")]
    resume_status: i32,
}

async fn hardening_03_custom_header_values_are_sealed_at_rest_and_masked_for_read_tokens(
    backend: Backend,
) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let bearer = "Bearer eyJhbGciOiJIUzI1NiJ9.s3cr3t-payload";
    let api_key = "sk_live_0123456789abcd";
    let created = herald
        .create_endpoint(
            &tenant,
            pb::EndpointSpec {
                headers: [
                    ("Authorization".to_owned(), bearer.to_owned()),
                    ("X-Api-Key".to_owned(), api_key.to_owned()),
                    ("X-Team".to_owned(), "ops".to_owned()),
                ]
                .into(),
                ..spec("Orders", "https://hooks.example.com/x")
            },
        )
        .await
        .unwrap();
    let endpoint = created.endpoint.unwrap();
    assert_eq!(
        endpoint.spec.as_ref().unwrap().headers["X-Api-Key"],
        api_key
    );

    // At rest, no value is readable.
    let row = herald
        .store
        .get_endpoint_by_id(&endpoint.id)
        .await
        .unwrap()
        .unwrap();
    for value in [bearer, api_key, "s3cr3t"] {
        assert!(
            !row.spec
                .windows(value.len())
                .any(|window| window == value.as_bytes()),
            "{value} is stored in plain text"
        );
    }
    let legacy = LegacyStoredEndpoint::decode(row.spec.as_slice()).unwrap();
    assert!(legacy.spec.unwrap().headers.is_empty());

    let get = |token: &str, endpoint_id: &str| {
        let mut config = herald.config();
        let request = authed(
            token,
            pb::GetEndpointRequest {
                endpoint_id: endpoint_id.to_owned(),
            },
        );
        async move { config.get_endpoint(request).await.unwrap().into_inner() }
    };
    let list = |token: &str| {
        let mut config = herald.config();
        let request = authed(token, pb::ListEndpointsRequest::default());
        async move { config.list_endpoints(request).await.unwrap().into_inner() }
    };

    // Full-scope tokens (and the admin) see the values; read-only tokens see
    // them masked.
    let full = get(&tenant.token, &endpoint.id).await.spec.unwrap().headers;
    assert_eq!(full["Authorization"], bearer);
    assert_eq!(full["X-Api-Key"], api_key);
    let reader = herald.read_token(&tenant).await;
    let masked = get(&reader, &endpoint.id).await.spec.unwrap().headers;
    assert_eq!(masked["Authorization"], "Bearer ****");
    assert_eq!(masked["X-Api-Key"], "****abcd");
    assert_eq!(masked["X-Team"], "****");
    let listed = list(&reader).await.endpoints[0]
        .spec
        .clone()
        .unwrap()
        .headers;
    assert_eq!(listed, masked);
    let listed = list(&tenant.token).await.endpoints[0]
        .spec
        .clone()
        .unwrap()
        .headers;
    assert_eq!(listed, full);

    // Herald's own services get the values to send.
    let mut watch = WatchServiceClient::new(herald.channel.clone())
        .watch(authed(SERVICE, pb::WatchRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let watched = loop {
        let response = next_change(&mut watch).await;
        if let Some(Change::Upsert(object)) = response.change
            && let Some(Object::Endpoint(watched)) = object.object
        {
            break watched.endpoint.unwrap();
        }
    };
    assert_eq!(watched.spec.unwrap().headers["X-Api-Key"], api_key);

    // Edits keep them sealed; an edit of another field keeps them.
    let renamed = herald
        .config()
        .update_endpoint(authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                spec: Some(pb::EndpointSpec {
                    name: "Renamed".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
                etag: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.spec.unwrap().headers, full);

    // A row written before header values were sealed still loads, and the
    // next write seals it.
    let legacy_headers: std::collections::HashMap<String, String> =
        [("X-Api-Key".to_owned(), "legacy-key-0123456789".to_owned())].into();
    let mut legacy_row = herald
        .store
        .get_endpoint_by_id(&endpoint.id)
        .await
        .unwrap()
        .unwrap();
    let mut spec = endpoint.spec.clone().unwrap();
    spec.headers = legacy_headers.clone();
    legacy_row.spec = LegacyStoredEndpoint {
        spec: Some(spec),
        resume_status: pb::EndpointStatus::PendingTest.into(),
    }
    .encode_to_vec();
    herald
        .store
        .update_endpoint(&legacy_row, None)
        .await
        .unwrap();
    assert_eq!(
        get(&tenant.token, &endpoint.id).await.spec.unwrap().headers,
        legacy_headers
    );
    assert_eq!(
        get(&reader, &endpoint.id).await.spec.unwrap().headers["X-Api-Key"],
        "****6789"
    );
    herald
        .config()
        .update_endpoint(authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                spec: Some(pb::EndpointSpec {
                    description: "sealed now".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["description".into()],
                }),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let resealed = herald
        .store
        .get_endpoint_by_id(&endpoint.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !resealed
            .spec
            .windows(b"legacy-key".len())
            .any(|window| window == b"legacy-key")
    );
    assert_eq!(
        get(&tenant.token, &endpoint.id).await.spec.unwrap().headers,
        legacy_headers
    );

    // A sealed blob copied into another endpoint's row does not open there.
    let other = herald
        .create_endpoint(&tenant, spec_with_name("Other"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let mut other_row = herald
        .store
        .get_endpoint_by_id(&other.id)
        .await
        .unwrap()
        .unwrap();
    other_row.spec = resealed.spec.clone();
    herald
        .store
        .update_endpoint(&other_row, None)
        .await
        .unwrap();
    let error = herald
        .config()
        .get_endpoint(authed(
            &tenant.token,
            pb::GetEndpointRequest {
                endpoint_id: other.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Internal, "{error:?}");
    assert!(!error.message().contains("legacy-key"));
}

fn spec_with_name(name: &str) -> pb::EndpointSpec {
    spec(name, "https://hooks.example.com/x")
}

/// Strings that must never reach a text column: NUL (PostgreSQL refuses it
/// with a 500), a terminal escape sequence, C1's NEL, DEL, lone C0 controls.
const HOSTILE: [&str; 6] = [
    "a\u{0}b",
    "\u{1b}[31mred\u{1b}[0m",
    "next\u{85}line",
    "del\u{7f}ete",
    "bell\u{7}",
    "form\u{c}feed",
];

/// Every text field of every create and update RPC, by the field its error
/// must name: each case builds its request with `hostile` in that field and
/// sends it.
async fn send_hostile(
    herald: &Harness,
    tenant: &Tenant,
    ids: &Ids,
    case: &str,
    hostile: &str,
) -> Result<(), tonic::Status> {
    let h = || hostile.to_owned();
    let mut admin = herald.admin();
    let mut config = herald.config();
    let token = tenant.token.as_str();
    let mask = |paths: &[&str]| {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|path| (*path).to_owned()).collect(),
        })
    };
    let endpoint = |spec: pb::EndpointSpec, secret: String| pb::CreateEndpointRequest {
        spec: Some(spec),
        secret,
    };
    let base = || spec("Orders", "https://hooks.example.com/x");
    let update_endpoint =
        |endpoint_id: String, spec: pb::EndpointSpec, paths: &[&str]| pb::UpdateEndpointRequest {
            endpoint_id,
            spec: Some(spec),
            update_mask: mask(paths),
            etag: String::new(),
        };
    let gateway = |name: String, external_id: String, hmac_key: String| pb::CreateDeviceRequest {
        channel: pb::Channel::Whatsapp.into(),
        name,
        external_id,
        verification: Some(pb::DeviceVerification {
            channel: Some(pb::device_verification::Channel::Whatsapp(
                pb::GatewayVerification { hmac_key },
            )),
            configured: false,
        }),
    };
    let waba = |app_secret: String, verify_token: String| pb::CreateDeviceRequest {
        channel: pb::Channel::Waba.into(),
        name: "Line".into(),
        external_id: "106540352242922".into(),
        verification: Some(pb::DeviceVerification {
            channel: Some(pb::device_verification::Channel::Waba(
                pb::WabaVerification {
                    app_secret,
                    verify_token,
                },
            )),
            configured: false,
        }),
    };
    let update_device = |device_id: String, name: String, external_id: String, paths: &[&str]| {
        pb::UpdateDeviceRequest {
            device_id,
            name,
            external_id,
            verification: None,
            update_mask: mask(paths),
            etag: String::new(),
        }
    };
    match case {
        "CreateTenant.name" => admin
            .create_tenant(authed(ADMIN, pb::CreateTenantRequest { name: h() }))
            .await
            .map(drop),
        "UpdateTenant.tenant_id" => admin
            .update_tenant(authed(
                ADMIN,
                pb::UpdateTenantRequest {
                    tenant_id: h(),
                    name: "Acme".into(),
                    etag: String::new(),
                    quotas: None,
                },
            ))
            .await
            .map(drop),
        "UpdateTenant.name" => admin
            .update_tenant(authed(
                ADMIN,
                pb::UpdateTenantRequest {
                    tenant_id: tenant.id.clone(),
                    name: h(),
                    etag: String::new(),
                    quotas: None,
                },
            ))
            .await
            .map(drop),
        "CreateToken.tenant_id" | "CreateToken.name" => admin
            .create_token(authed(
                ADMIN,
                pb::CreateTokenRequest {
                    tenant_id: if case.ends_with("tenant_id") {
                        h()
                    } else {
                        tenant.id.clone()
                    },
                    name: if case.ends_with(".name") {
                        h()
                    } else {
                        "ci".into()
                    },
                    scope: pb::TokenScope::Read.into(),
                    ttl: None,
                },
            ))
            .await
            .map(drop),
        "RevokeToken.token_id" => admin
            .revoke_token(authed(ADMIN, pb::RevokeTokenRequest { token_id: h() }))
            .await
            .map(drop),
        "CreateDevice.name" => config
            .create_device(authed(token, gateway(h(), String::new(), String::new())))
            .await
            .map(drop),
        "CreateDevice.external_id" => config
            .create_device(authed(token, gateway("Line".into(), h(), String::new())))
            .await
            .map(drop),
        "CreateDevice.verification.whatsapp.hmac_key" => config
            .create_device(authed(token, gateway("Line".into(), String::new(), h())))
            .await
            .map(drop),
        "CreateDevice.verification.waba.app_secret" => config
            .create_device(authed(token, waba(h(), "verify".into())))
            .await
            .map(drop),
        "CreateDevice.verification.waba.verify_token" => config
            .create_device(authed(token, waba("secret".into(), h())))
            .await
            .map(drop),
        "UpdateDevice.device_id" => config
            .update_device(authed(
                token,
                update_device(h(), "Line".into(), String::new(), &["name"]),
            ))
            .await
            .map(drop),
        "UpdateDevice.name" => config
            .update_device(authed(
                token,
                update_device(ids.device.clone(), h(), String::new(), &["name"]),
            ))
            .await
            .map(drop),
        "UpdateDevice.external_id" => config
            .update_device(authed(
                token,
                update_device(ids.device.clone(), "Line".into(), h(), &["external_id"]),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.name" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        name: h(),
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.description" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        description: h(),
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.url" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        url: format!("https://hooks.example.com/{hostile}"),
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.signature_header" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        signing_scheme: pb::SigningScheme::Sha256Hex.into(),
                        signature_header: h(),
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.headers" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        headers: [("X-Api-Key".to_owned(), h())].into(),
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.event_types[0]" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        event_types: vec![h()],
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.spec.device_ids[0]" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        device_ids: vec![h()],
                        ..base()
                    },
                    String::new(),
                ),
            ))
            .await
            .map(drop),
        "CreateEndpoint.secret" => config
            .create_endpoint(authed(
                token,
                endpoint(
                    pb::EndpointSpec {
                        signing_scheme: pb::SigningScheme::SharedSecret.into(),
                        ..base()
                    },
                    h(),
                ),
            ))
            .await
            .map(drop),
        "UpdateEndpoint.endpoint_id" => config
            .update_endpoint(authed(token, update_endpoint(h(), base(), &["name"])))
            .await
            .map(drop),
        "UpdateEndpoint.spec.name" => config
            .update_endpoint(authed(
                token,
                update_endpoint(
                    ids.endpoint.clone(),
                    pb::EndpointSpec {
                        name: h(),
                        ..base()
                    },
                    &["name"],
                ),
            ))
            .await
            .map(drop),
        "UpdateEndpoint.spec.description" => config
            .update_endpoint(authed(
                token,
                update_endpoint(
                    ids.endpoint.clone(),
                    pb::EndpointSpec {
                        description: h(),
                        ..base()
                    },
                    &["description"],
                ),
            ))
            .await
            .map(drop),
        "UpdateEndpoint.spec.headers" => config
            .update_endpoint(authed(
                token,
                update_endpoint(
                    ids.endpoint.clone(),
                    pb::EndpointSpec {
                        headers: [("Authorization".to_owned(), format!("Bearer {hostile}"))].into(),
                        ..base()
                    },
                    &["headers"],
                ),
            ))
            .await
            .map(drop),
        "UpdateEndpoint.etag" => config
            .update_endpoint(authed(
                token,
                pb::UpdateEndpointRequest {
                    etag: h(),
                    ..update_endpoint(ids.endpoint.clone(), base(), &["name"])
                },
            ))
            .await
            .map(drop),
        "DisableEndpoint.endpoint_id" | "DisableEndpoint.reason" => config
            .disable_endpoint(authed(
                token,
                pb::DisableEndpointRequest {
                    endpoint_id: if case.ends_with("endpoint_id") {
                        h()
                    } else {
                        ids.endpoint.clone()
                    },
                    reason: if case.ends_with("reason") {
                        h()
                    } else {
                        String::new()
                    },
                },
            ))
            .await
            .map(drop),
        "EnableEndpoint.endpoint_id" => config
            .enable_endpoint(authed(
                token,
                pb::EnableEndpointRequest { endpoint_id: h() },
            ))
            .await
            .map(drop),
        "DeleteEndpoint.endpoint_id" => config
            .delete_endpoint(authed(
                token,
                pb::DeleteEndpointRequest { endpoint_id: h() },
            ))
            .await
            .map(drop),
        "RotateEndpointSecret.endpoint_id" | "RotateEndpointSecret.secret" => config
            .rotate_endpoint_secret(authed(
                token,
                pb::RotateEndpointSecretRequest {
                    endpoint_id: if case.ends_with("endpoint_id") {
                        h()
                    } else {
                        ids.endpoint.clone()
                    },
                    secret: if case.ends_with("secret") {
                        format!("whsec_{hostile}")
                    } else {
                        String::new()
                    },
                    overlap: None,
                },
            ))
            .await
            .map(drop),
        "RegisterEventType.name" | "RegisterEventType.description" => config
            .register_event_type(authed(
                token,
                pb::RegisterEventTypeRequest {
                    name: if case.ends_with("name") {
                        format!("order.{hostile}")
                    } else {
                        "order.shipped".into()
                    },
                    description: if case.ends_with("description") {
                        format!("Shipped.\n{hostile}")
                    } else {
                        String::new()
                    },
                    sample_data: Default::default(),
                },
            ))
            .await
            .map(drop),
        "DeleteEventType.name" => config
            .delete_event_type(authed(token, pb::DeleteEventTypeRequest { name: h() }))
            .await
            .map(drop),
        "TestEndpoint.endpoint_id" | "TestEndpoint.event_type" => config
            .test_endpoint(authed(
                token,
                pb::TestEndpointRequest {
                    endpoint_id: if case.ends_with("endpoint_id") {
                        h()
                    } else {
                        ids.endpoint.clone()
                    },
                    event_type: if case.ends_with("event_type") {
                        h()
                    } else {
                        String::new()
                    },
                    timeout: None,
                },
            ))
            .await
            .map(drop),
        "ListAttempts.endpoint_id" | "ListAttempts.event_type" | "ListAttempts.event_id" => {
            let field = |name: &str| {
                if case.ends_with(name) {
                    h()
                } else {
                    String::new()
                }
            };
            herald
                .attempts()
                .list_attempts(authed(
                    token,
                    pb::ListAttemptsRequest {
                        endpoint_id: field("endpoint_id"),
                        event_type: field("event_type"),
                        event_id: field("event_id"),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop)
        }
        "GetAttempt.attempt_id" => herald
            .attempts()
            .get_attempt(authed(token, pb::GetAttemptRequest { attempt_id: h() }))
            .await
            .map(drop),
        "ListEndpoints.search" => config
            .list_endpoints(authed(
                token,
                pb::ListEndpointsRequest {
                    search: format!("abc{hostile}"),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        other => panic!("unknown case {other}"),
    }
}

struct Ids {
    device: String,
    endpoint: String,
}

async fn hardening_04_control_characters_are_refused_in_every_text_field(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let device = herald
        .config()
        .create_device(authed(
            &tenant.token,
            pb::CreateDeviceRequest {
                channel: pb::Channel::Whatsapp.into(),
                name: "Line".into(),
                external_id: String::new(),
                verification: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let endpoint = herald
        .create_endpoint(&tenant, spec_with_name("Orders"))
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let ids = Ids {
        device: device.id,
        endpoint: endpoint.id.clone(),
    };
    // The case, then the field its error names.
    let cases: &[(&str, &str)] = &[
        ("CreateTenant.name", "name"),
        ("UpdateTenant.tenant_id", "tenant_id"),
        ("UpdateTenant.name", "name"),
        ("CreateToken.tenant_id", "tenant_id"),
        ("CreateToken.name", "name"),
        ("RevokeToken.token_id", "token_id"),
        ("CreateDevice.name", "name"),
        ("CreateDevice.external_id", "external_id"),
        (
            "CreateDevice.verification.whatsapp.hmac_key",
            "verification.whatsapp.hmac_key",
        ),
        (
            "CreateDevice.verification.waba.app_secret",
            "verification.waba.app_secret",
        ),
        (
            "CreateDevice.verification.waba.verify_token",
            "verification.waba.verify_token",
        ),
        ("UpdateDevice.device_id", "device_id"),
        ("UpdateDevice.name", "name"),
        ("UpdateDevice.external_id", "external_id"),
        ("CreateEndpoint.spec.name", "spec.name"),
        ("CreateEndpoint.spec.description", "spec.description"),
        ("CreateEndpoint.spec.url", "spec.url"),
        (
            "CreateEndpoint.spec.signature_header",
            "spec.signature_header",
        ),
        ("CreateEndpoint.spec.headers", "spec.headers"),
        ("CreateEndpoint.spec.event_types[0]", "spec.event_types[0]"),
        ("CreateEndpoint.spec.device_ids[0]", "spec.device_ids[0]"),
        ("CreateEndpoint.secret", "secret"),
        ("UpdateEndpoint.endpoint_id", "endpoint_id"),
        ("UpdateEndpoint.spec.name", "spec.name"),
        ("UpdateEndpoint.spec.description", "spec.description"),
        ("UpdateEndpoint.spec.headers", "spec.headers"),
        ("UpdateEndpoint.etag", "etag"),
        ("DisableEndpoint.endpoint_id", "endpoint_id"),
        ("DisableEndpoint.reason", "reason"),
        ("EnableEndpoint.endpoint_id", "endpoint_id"),
        ("DeleteEndpoint.endpoint_id", "endpoint_id"),
        ("RotateEndpointSecret.endpoint_id", "endpoint_id"),
        ("RotateEndpointSecret.secret", "secret"),
        ("RegisterEventType.name", "name"),
        ("RegisterEventType.description", "description"),
        ("DeleteEventType.name", "name"),
        ("TestEndpoint.endpoint_id", "endpoint_id"),
        ("TestEndpoint.event_type", "event_type"),
        ("ListEndpoints.search", "search"),
        // Reads whose filters reach the database.
        ("ListAttempts.endpoint_id", "endpoint_id"),
        ("ListAttempts.event_type", "event_type"),
        ("ListAttempts.event_id", "event_id"),
        ("GetAttempt.attempt_id", "attempt_id"),
    ];
    for hostile in HOSTILE {
        for (case, field) in cases {
            let error = send_hostile(&herald, &tenant, &ids, case, hostile)
                .await
                .expect_err(case);
            assert_eq!(
                error.code(),
                Code::InvalidArgument,
                "{case} with {hostile:?}: {error:?}"
            );
            assert_eq!(
                field_of(&error),
                *field,
                "{case} with {hostile:?}: {error:?}"
            );
            assert!(
                !error.message().contains(hostile),
                "{case}: the message echoes the control character"
            );
        }
    }

    // Nothing was written: the stored configuration is as it was.
    let read = herald
        .config()
        .get_endpoint(authed(
            &tenant.token,
            pb::GetEndpointRequest {
                endpoint_id: endpoint.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.status(), pb::EndpointStatus::PendingTest);
    assert_eq!(read.spec, endpoint.spec);
    assert_eq!(herald.endpoint_count(&tenant).await, 1);

    // Line breaks and tabs are fine where people write prose.
    herald
        .config()
        .register_event_type(authed(
            &tenant.token,
            pb::RegisterEventTypeRequest {
                name: "order.shipped".into(),
                description: "Shipped.\r\nSee\tthe docs.".into(),
                sample_data: Default::default(),
            },
        ))
        .await
        .unwrap();
}

async fn hardening_05_tampered_page_tokens_and_huge_ttls_are_invalid_arguments(backend: Backend) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let tampered = [
        URL_SAFE_NO_PAD
            .encode(br#"{"at_micros":170141183460469231731687303715884105727,"id":"att_x"}"#),
        URL_SAFE_NO_PAD.encode(br#"{"at_micros":-9223372036854775808000,"id":"att_x"}"#),
        URL_SAFE_NO_PAD.encode(br#"{"at_micros":"x","id":7}"#),
        URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]),
        "%%%".to_owned(),
    ];
    for page_token in tampered {
        let status = herald
            .attempts()
            .list_attempts(authed(
                &tenant.token,
                pb::ListAttemptsRequest {
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{page_token}: {status:?}"
        );
        assert_eq!(field_of(&status), "page_token");
    }
    let status = herald
        .config()
        .list_endpoints(authed(
            &tenant.token,
            pb::ListEndpointsRequest {
                page_token: URL_SAFE_NO_PAD.encode(b"[1,2,3]"),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_of(&status), "page_token");

    for seconds in [1_i64 << 62, i64::MAX, 400 * 366 * 24 * 3600 * 100] {
        let status = herald
            .admin()
            .create_token(authed(
                ADMIN,
                pb::CreateTokenRequest {
                    tenant_id: tenant.id.clone(),
                    name: "forever".into(),
                    scope: pb::TokenScope::Tenant.into(),
                    ttl: Some(prost_types::Duration { seconds, nanos: 0 }),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{seconds}: {status:?}"
        );
        assert_eq!(field_of(&status), "ttl");
    }
    // The service is still there, and a long but representable ttl works.
    herald
        .admin()
        .create_token(authed(
            ADMIN,
            pb::CreateTokenRequest {
                tenant_id: tenant.id.clone(),
                name: "decade".into(),
                scope: pb::TokenScope::Read.into(),
                ttl: Some(prost_types::Duration {
                    seconds: 10 * 366 * 24 * 3600,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap();
}

async fn hardening_07_an_unparsable_herald_tenant_is_an_invalid_argument(backend: Backend) {
    let herald = start(backend).await;
    let tenant = herald.tenant("Acme").await;
    for named in [
        "not-a-tenant",
        "org_",
        "ORG_0000",
        "ep_01jbz3k6n6t1d5f2a8cxkq9r7w",
    ] {
        let mut request = authed(ADMIN, pb::ListEndpointsRequest::default());
        request
            .metadata_mut()
            .insert(herald_config::TENANT_METADATA_KEY, named.parse().unwrap());
        let status = herald.config().list_endpoints(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{named}: {status:?}");
        assert_eq!(field_of(&status), herald_config::TENANT_METADATA_KEY);
        let mut request = authed(ADMIN, pb::TailAttemptsRequest::default());
        request
            .metadata_mut()
            .insert(herald_config::TENANT_METADATA_KEY, named.parse().unwrap());
        let status = herald.attempts().tail_attempts(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{named}: {status:?}");
    }
    let mut request = authed(ADMIN, pb::ListEndpointsRequest::default());
    request.metadata_mut().insert(
        herald_config::TENANT_METADATA_KEY,
        tenant.id.parse().unwrap(),
    );
    herald.config().list_endpoints(request).await.unwrap();
}

/// A TCP proxy to PostgreSQL that can be cut, as a network failure or a
/// stopped server would cut the config service's connections.
struct CuttableProxy {
    addr: SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl CuttableProxy {
    async fn start(upstream: String) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CuttableProxy { addr, tasks }
    }

    /// Closes the listener and every connection through it.
    async fn cut(mut self) {
        self.tasks.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_09_a_database_outage_answers_unavailable() {
    let direct = herald_testkit::postgres_url();
    let parsed = url::Url::parse(&direct).unwrap();
    let upstream = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let proxy = CuttableProxy::start(upstream).await;
    let mut through_proxy = parsed.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(proxy.addr.port())).unwrap();
    let options = StoreOptions {
        url: through_proxy.to_string(),
        schema: Some(herald_testkit::fresh_postgres_schema()),
    };
    let herald = start_on(&options, tempfile::tempdir().unwrap()).await;
    let tenant = herald.tenant("Acme").await;
    proxy.cut().await;

    let status = herald
        .config()
        .list_endpoints(authed(&tenant.token, pb::ListEndpointsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = herald
        .admin()
        .list_tenants(authed(ADMIN, pb::ListTenantsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_06_a_malformed_protobuf_request_is_an_invalid_argument() {
    let herald = start(Backend::Sqlite).await;
    let tenant = herald.tenant("Acme").await;
    // Field 1 (endpoint_id), length 2, then bytes that are not UTF-8.
    let malformed = [0x0a, 0x02, 0xff, 0xfe];
    for (path, token) in [
        (
            "/herald.v1.ConfigService/GetEndpoint",
            tenant.token.as_str(),
        ),
        ("/herald.v1.AdminService/GetTenant", ADMIN),
        (
            "/herald.v1.AttemptService/ListAttempts",
            tenant.token.as_str(),
        ),
        (
            "/herald.v1.RecoveryService/RedriveDeadLetters",
            tenant.token.as_str(),
        ),
        ("/herald.v1.WatchService/Watch", SERVICE),
    ] {
        let status = herald_testkit::raw_grpc_call(herald.channel.clone(), path, token, &malformed)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_10_failed_authentications_are_throttled_per_address() {
    let herald = start(Backend::Sqlite).await;
    let tenant = herald.tenant("Acme").await;
    // The guesser connects from another loopback address than everyone else.
    let guesser = tonic::transport::Endpoint::from_shared(format!("http://{}", herald.addr))
        .unwrap()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .connect()
        .await
        .unwrap();
    let mut guessing = ConfigServiceClient::new(guesser);
    let summary = || pb::GetSummaryRequest {};
    for attempt in 0..10 {
        let status = guessing
            .get_summary(authed(&format!("hrld_guess{attempt}"), summary()))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{attempt}: {status:?}"
        );
    }
    let throttled = guessing
        .get_summary(authed("hrld_guess10", summary()))
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "{throttled:?}");
    let retry_after: u64 = throttled
        .metadata()
        .get(herald_config::RETRY_AFTER_METADATA_KEY)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Even the right token is not confirmed while the address is throttled.
    let status = guessing
        .get_summary(authed(&tenant.token, summary()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Other clients are not affected, neither their successes nor their failures.
    herald
        .config()
        .get_summary(authed(&tenant.token, summary()))
        .await
        .unwrap();
    let status = herald
        .config()
        .get_summary(authed("hrld_typo", summary()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // After the wait, the address has one more try.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    guessing
        .get_summary(authed(&tenant.token, summary()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_11_id_lists_are_capped() {
    let herald = start(Backend::Sqlite).await;
    let tenant = herald.tenant("Acme").await;
    let mut recovery =
        pb::recovery_service_client::RecoveryServiceClient::new(herald.channel.clone());
    let unknown: Vec<String> = (0..5_000)
        .map(|_| herald_core::id::DeliveryId::generate().to_string())
        .collect();
    let started = std::time::Instant::now();
    let status = recovery
        .redrive_dead_letters(authed(
            &tenant.token,
            pb::RedriveDeadLettersRequest {
                delivery_ids: unknown.clone(),
                use_current_endpoint: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_of(&status), "delivery_ids");
    assert!(status.message().contains("500"), "{}", status.message());
    assert!(started.elapsed() < Duration::from_secs(2));
    let status = recovery
        .purge_dead_letters(authed(
            &tenant.token,
            pb::PurgeDeadLettersRequest {
                delivery_ids: unknown[..501].to_vec(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_of(&status), "delivery_ids");

    let too_many_types = herald
        .create_endpoint(
            &tenant,
            pb::EndpointSpec {
                event_types: (0..1_001).map(|index| format!("custom.t{index}")).collect(),
                ..spec("Orders", "https://hooks.example.com/x")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(too_many_types.code(), Code::InvalidArgument);
    assert_eq!(field_of(&too_many_types), "spec.event_types");
    let too_many_devices = herald
        .create_endpoint(
            &tenant,
            pb::EndpointSpec {
                device_ids: (0..1_001)
                    .map(|_| herald_core::id::DeviceId::generate().to_string())
                    .collect(),
                ..spec("Orders", "https://hooks.example.com/x")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(too_many_devices.code(), Code::InvalidArgument);
    assert_eq!(field_of(&too_many_devices), "spec.device_ids");

    let status = WatchServiceClient::new(herald.channel.clone())
        .watch(authed(
            SERVICE,
            pb::WatchRequest {
                kinds: vec![pb::WatchedKind::Endpoint.into(); 17],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_of(&status), "kinds");
}

fn quotas(
    events_per_second: f64,
    events_burst: u32,
    max_in_flight_deliveries: u32,
    max_dead_letters: u64,
) -> pb::TenantQuotas {
    pb::TenantQuotas {
        events_per_second,
        events_burst,
        max_in_flight_deliveries,
        max_dead_letters,
    }
}

fn set_quotas(tenant_id: &str, quotas: pb::TenantQuotas) -> pb::UpdateTenantRequest {
    pb::UpdateTenantRequest {
        tenant_id: tenant_id.to_owned(),
        quotas: Some(quotas),
        ..Default::default()
    }
}

async fn topology_08_tenant_quotas_are_set_by_the_admin_and_checked(backend: Backend) {
    let harness = start(backend).await;
    let tenant = harness.tenant("Acme").await;
    let mut admin = harness.admin();
    let read = |admin: &mut AdminServiceClient<Channel>| {
        let mut admin = admin.clone();
        let tenant_id = tenant.id.clone();
        async move {
            admin
                .get_tenant(authed(ADMIN, pb::GetTenantRequest { tenant_id }))
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert_eq!(
        read(&mut admin).await.quotas,
        Some(pb::TenantQuotas::default()),
        "a new tenant takes every default"
    );

    let wanted = quotas(2.5, 10, 16, 1_000);
    let updated = admin
        .update_tenant(authed(ADMIN, set_quotas(&tenant.id, wanted)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.quotas, Some(wanted));
    assert_eq!(updated.name, "Acme", "no name keeps the name");
    let stored = read(&mut admin).await;
    assert_eq!(stored.quotas, Some(wanted));

    // A rename without quotas keeps them; the etag still guards.
    let renamed = admin
        .update_tenant(authed(
            ADMIN,
            pb::UpdateTenantRequest {
                tenant_id: tenant.id.clone(),
                name: "Acme Inc".into(),
                etag: stored.etag.clone(),
                quotas: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.quotas, Some(wanted));
    let stale = admin
        .update_tenant(authed(
            ADMIN,
            pb::UpdateTenantRequest {
                etag: stored.etag,
                ..set_quotas(&tenant.id, quotas(1.0, 0, 0, 0))
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    // Only the admin token sets them.
    let denied = admin
        .update_tenant(authed(
            &tenant.token,
            set_quotas(&tenant.id, quotas(1_000.0, 0, 0, 0)),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(read(&mut admin).await.quotas, Some(wanted));

    // Out-of-range values are InvalidArgument naming the field, and change nothing.
    for (bad, field) in [
        (quotas(-1.0, 0, 0, 0), "quotas.events_per_second"),
        (quotas(f64::NAN, 0, 0, 0), "quotas.events_per_second"),
        (quotas(f64::INFINITY, 0, 0, 0), "quotas.events_per_second"),
        (quotas(2e6, 0, 0, 0), "quotas.events_per_second"),
        (quotas(1.0, 2_000_000, 0, 0), "quotas.events_burst"),
        (
            quotas(1.0, 1, u32::MAX, 0),
            "quotas.max_in_flight_deliveries",
        ),
        (quotas(1.0, 1, 1, u64::MAX), "quotas.max_dead_letters"),
    ] {
        let status = admin
            .update_tenant(authed(ADMIN, set_quotas(&tenant.id, bad)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(
            status
                .metadata()
                .get("herald-field")
                .unwrap()
                .to_str()
                .unwrap(),
            field
        );
        assert!(status.message().contains(field), "{status:?}");
    }
    assert_eq!(read(&mut admin).await.quotas, Some(wanted));

    // Watch carries them to ingest and delivery.
    let mut watch = WatchServiceClient::new(harness.channel.clone())
        .watch(authed(
            SERVICE,
            pb::WatchRequest {
                kinds: vec![pb::WatchedKind::Tenant.into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let watched = loop {
        if let Some(Change::Upsert(pb::WatchedObject {
            object: Some(Object::Tenant(watched)),
        })) = next_change(&mut watch).await.change
            && watched.id == tenant.id
        {
            break watched;
        }
    };
    assert_eq!(watched.quotas, Some(wanted));

    // All zero returns every quota to the default.
    let cleared = admin
        .update_tenant(authed(
            ADMIN,
            set_quotas(&tenant.id, pb::TenantQuotas::default()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.quotas, Some(pb::TenantQuotas::default()));
}

async fn publish_dead_letter(bus: &Bus, tenant: &str, endpoint: &str, number: usize) -> String {
    use herald_core::id::{DeliveryId, EndpointId, TenantId};
    let tenant_id = TenantId::parse(tenant).unwrap();
    let endpoint_id = EndpointId::parse(endpoint).unwrap();
    let delivery = DeliveryId::generate();
    let dead_letter = pb::DeadLetter {
        id: delivery.to_string(),
        tenant_id: tenant.to_owned(),
        endpoint_id: endpoint.to_owned(),
        reason: format!("dead letter {number}"),
        ..Default::default()
    };
    bus.publish(
        bus.topology()
            .dead_letter_subject(&tenant_id, &endpoint_id, &delivery),
        delivery.as_ref(),
        async_nats::HeaderMap::new(),
        dead_letter.encode_to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    delivery.to_string()
}

async fn dead_letter_ids(harness: &Harness, tenant: &Tenant) -> Vec<String> {
    herald_proto::v1::recovery_service_client::RecoveryServiceClient::new(harness.channel.clone())
        .list_dead_letters(authed(
            &tenant.token,
            pb::ListDeadLettersRequest {
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .dead_letters
        .into_iter()
        .map(|dead_letter| dead_letter.id)
        .collect()
}

async fn topology_09_the_dead_letter_quota_purges_the_oldest_first(backend: Backend) {
    let harness = start(backend).await;
    let capped = harness.tenant("Capped").await;
    let other = harness.tenant("Other").await;
    let endpoint = || herald_core::id::EndpointId::generate().to_string();
    let (first, second) = (endpoint(), endpoint());
    let mut published = Vec::new();
    for number in 0..8 {
        // Two endpoints, interleaved: the cap is the tenant's, across them.
        let on = if number % 2 == 0 { &first } else { &second };
        published.push(publish_dead_letter(&harness.bus, &capped.id, on, number).await);
    }
    let elsewhere = endpoint();
    let mut others = Vec::new();
    for number in 0..5 {
        others.push(publish_dead_letter(&harness.bus, &other.id, &elsewhere, number).await);
    }

    harness
        .admin()
        .update_tenant(authed(ADMIN, set_quotas(&capped.id, quotas(0.0, 0, 0, 3))))
        .await
        .unwrap();
    herald_config::sweep::sweep_once(&harness.state).await;

    assert_eq!(
        dead_letter_ids(&harness, &capped).await,
        published[5..],
        "the newest three are kept"
    );
    assert_eq!(
        dead_letter_ids(&harness, &other).await,
        others,
        "the default (100,000) keeps all of another tenant's"
    );
    assert_eq!(
        harness.state.settings.metrics.dead_letters_purged_total(),
        5
    );

    // Within the quota, a sweep purges nothing more.
    herald_config::sweep::sweep_once(&harness.state).await;
    assert_eq!(dead_letter_ids(&harness, &capped).await.len(), 3);
    assert_eq!(
        harness.state.settings.metrics.dead_letters_purged_total(),
        5
    );
}
