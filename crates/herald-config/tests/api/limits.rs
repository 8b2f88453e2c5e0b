//! What a client sends that the service cannot take: tampered page tokens,
//! huge ttls, malformed protobuf, unparsable tenants, overlong lists.

use std::time::Duration;

use herald_proto::v1::{self as pb, watch_service_client::WatchServiceClient};
use herald_testkit_stack::{
    ADMIN_TOKEN, Backend, ConfigStack, SERVICE_TOKEN, authed, endpoint_spec,
};
use tonic::Code;

use crate::field_of;

on_both_databases!(
    hardening_05_tampered_page_tokens_and_huge_ttls_are_invalid_arguments,
    hardening_07_an_unparsable_herald_tenant_is_an_invalid_argument,
);

async fn hardening_05_tampered_page_tokens_and_huge_ttls_are_invalid_arguments(backend: Backend) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let herald = ConfigStack::start(backend).await;
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
                ADMIN_TOKEN,
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
            ADMIN_TOKEN,
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
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    for named in [
        "not-a-tenant",
        "org_",
        "ORG_0000",
        "ep_01jbz3k6n6t1d5f2a8cxkq9r7w",
    ] {
        let mut request = authed(ADMIN_TOKEN, pb::ListEndpointsRequest::default());
        request
            .metadata_mut()
            .insert(herald_config::TENANT_METADATA_KEY, named.parse().unwrap());
        let status = herald.config().list_endpoints(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{named}: {status:?}");
        assert_eq!(field_of(&status), herald_config::TENANT_METADATA_KEY);
        let mut request = authed(ADMIN_TOKEN, pb::TailAttemptsRequest::default());
        request
            .metadata_mut()
            .insert(herald_config::TENANT_METADATA_KEY, named.parse().unwrap());
        let status = herald.attempts().tail_attempts(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{named}: {status:?}");
    }
    let mut request = authed(ADMIN_TOKEN, pb::ListEndpointsRequest::default());
    request.metadata_mut().insert(
        herald_config::TENANT_METADATA_KEY,
        tenant.id.parse().unwrap(),
    );
    herald.config().list_endpoints(request).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_06_a_malformed_protobuf_request_is_an_invalid_argument() {
    let herald = ConfigStack::start(Backend::Sqlite).await;
    let tenant = herald.tenant("Acme").await;
    // Field 1 (endpoint_id), length 2, then bytes that are not UTF-8.
    let malformed = [0x0a, 0x02, 0xff, 0xfe];
    for (path, token) in [
        (
            "/herald.v1.ConfigService/GetEndpoint",
            tenant.token.as_str(),
        ),
        ("/herald.v1.AdminService/GetTenant", ADMIN_TOKEN),
        (
            "/herald.v1.AttemptService/ListAttempts",
            tenant.token.as_str(),
        ),
        (
            "/herald.v1.RecoveryService/RedriveDeadLetters",
            tenant.token.as_str(),
        ),
        ("/herald.v1.WatchService/Watch", SERVICE_TOKEN),
    ] {
        let status = herald_testkit::raw_grpc_call(herald.channel.clone(), path, token, &malformed)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_11_id_lists_are_capped() {
    let herald = ConfigStack::start(Backend::Sqlite).await;
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
                ..endpoint_spec("Orders", "https://hooks.example.com/x")
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
                ..endpoint_spec("Orders", "https://hooks.example.com/x")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(too_many_devices.code(), Code::InvalidArgument);
    assert_eq!(field_of(&too_many_devices), "spec.device_ids");

    let status = WatchServiceClient::new(herald.channel.clone())
        .watch(authed(
            SERVICE_TOKEN,
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
