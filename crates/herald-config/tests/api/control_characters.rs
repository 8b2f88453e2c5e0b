//! Control characters are refused in every text field of every write.

use herald_proto::v1 as pb;
use herald_testkit_stack::{ADMIN_TOKEN, Backend, ConfigStack, Tenant, authed, endpoint_spec};

use tonic::Code;

use crate::{field_of, spec_with_name};

on_both_databases!(hardening_04_control_characters_are_refused_in_every_text_field,);

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
    herald: &ConfigStack,
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
    let base = || endpoint_spec("Orders", "https://hooks.example.com/x");
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
            .create_tenant(authed(ADMIN_TOKEN, pb::CreateTenantRequest { name: h() }))
            .await
            .map(drop),
        "UpdateTenant.tenant_id" => admin
            .update_tenant(authed(
                ADMIN_TOKEN,
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
                ADMIN_TOKEN,
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
                ADMIN_TOKEN,
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
            .revoke_token(authed(
                ADMIN_TOKEN,
                pb::RevokeTokenRequest { token_id: h() },
            ))
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
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "DeleteEventType.name" => config
            .delete_event_type(authed(token, pb::DeleteEventTypeRequest { name: h() }))
            .await
            .map(drop),
        "TestEndpoint.endpoint_id" | "TestEndpoint.event_type" | "TestEndpoint.device_id" => config
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
                    device_id: if case.ends_with("device_id") {
                        h()
                    } else {
                        String::new()
                    },
                },
            ))
            .await
            .map(drop),
        "ListAttempts.endpoint_id"
        | "ListAttempts.event_type"
        | "ListAttempts.event_id"
        | "ListAttempts.device_id" => {
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
                        device_id: field("device_id"),
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
    let herald = ConfigStack::start(backend).await;
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
        ("TestEndpoint.device_id", "device_id"),
        ("ListEndpoints.search", "search"),
        // Reads whose filters reach the database.
        ("ListAttempts.endpoint_id", "endpoint_id"),
        ("ListAttempts.event_type", "event_type"),
        ("ListAttempts.event_id", "event_id"),
        ("ListAttempts.device_id", "device_id"),
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
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}
