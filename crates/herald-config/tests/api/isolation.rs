//! One tenant can neither see nor touch another's configuration, and
//! tenant tokens reach no admin or service API.

use herald_proto::v1::{self as pb, watch_service_client::WatchServiceClient};
use herald_testkit_stack::{Backend, ConfigStack, authed, endpoint_spec};
use tonic::{Code, Request};

use crate::field_of;

on_both_databases!(tenants_are_isolated,);

async fn tenants_are_isolated(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let acme = herald.tenant("Acme").await;
    let rival = herald.tenant("Rival").await;
    let endpoint = herald
        .create_endpoint(
            &acme,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
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
                    spec: Some(endpoint_spec("Stolen", "https://evil.example.com")),
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
                ..endpoint_spec("Sneaky", "https://hooks.example.com/x")
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
