//! Endpoint secrets and custom header values: generated or the customer's
//! own, fitting the signing scheme, rotated with an overlap, sealed at rest
//! and masked for read-only tokens.

use herald_proto::v1::{
    self as pb, watch_response::Change, watch_service_client::WatchServiceClient,
    watched_object::Object,
};
use herald_testkit_stack::{Backend, ConfigStack, SERVICE_TOKEN, authed, endpoint_spec};
use prost::Message;
use tonic::Code;

use crate::{OWN_SECRET, activate, assert_invalid, next_change, secrets, spec_with_name};

on_both_databases!(
    secret_rotation_keeps_the_previous_secret_for_the_overlap,
    secrets_are_encrypted_at_rest,
    hardening_01_secrets_the_scheme_cannot_sign_with_are_refused_on_every_path,
    hardening_02_reserved_signature_headers_are_refused_naming_signature_header,
    hardening_03_custom_header_values_are_sealed_at_rest_and_masked_for_read_tokens,
);

async fn secret_rotation_keeps_the_previous_secret_for_the_overlap(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let created = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
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

async fn secrets_are_encrypted_at_rest(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let created = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
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

async fn hardening_01_secrets_the_scheme_cannot_sign_with_are_refused_on_every_path(
    backend: Backend,
) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let mut config = herald.config();
    let create = |scheme: pb::SigningScheme, secret: &str| {
        authed(
            &tenant.token,
            pb::CreateEndpointRequest {
                spec: Some(pb::EndpointSpec {
                    signing_scheme: scheme.into(),
                    ..endpoint_spec("Orders", "https://hooks.example.com/x")
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
    activate(&herald, &tenant, &active_id).await;
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
    let secrets = secrets(&herald, &tenant, &active_id).await;
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
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let hex = |header: &str| pb::EndpointSpec {
        signing_scheme: pb::SigningScheme::Sha256Hex.into(),
        signature_header: header.into(),
        ..endpoint_spec("Hex", "https://hooks.example.com/x")
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
                        ..endpoint_spec("Headers", "https://hooks.example.com/x")
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
    let herald = ConfigStack::start(backend).await;
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
                ..endpoint_spec("Orders", "https://hooks.example.com/x")
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
    let reader = herald.token(&tenant.id, pb::TokenScope::Read).await;
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
        .watch(authed(SERVICE_TOKEN, pb::WatchRequest::default()))
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
