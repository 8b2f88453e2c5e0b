//! Endpoints through the config API: their lifecycle, validation, search,
//! paging and activation by a test delivery.

use std::collections::BTreeSet;

use futures::StreamExt;
use herald_proto::v1 as pb;
use herald_testkit_stack::{Backend, ConfigStack, authed, endpoint_spec};
use tonic::Code;

use crate::{answer_test_job, field_of};

on_both_databases!(
    endpoint_lifecycle,
    bad_input_names_the_field_and_writes_nothing,
    search_needs_three_characters,
    paging_is_stable_under_concurrent_inserts,
    test_endpoint_activates_on_a_2xx_attempt,
    test_on_save_tests_creates_and_delivery_affecting_updates,
);

async fn endpoint_lifecycle(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
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
                ..endpoint_spec("Orders", "https://hooks.example.com/herald")
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
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let cases: Vec<(pb::EndpointSpec, &str)> = vec![
        (
            endpoint_spec("Plain", "http://hooks.example.com/x"),
            "spec.url",
        ),
        (endpoint_spec("Private", "https://10.0.0.1/x"), "spec.url"),
        (
            endpoint_spec("Metadata", "https://169.254.169.254/latest"),
            "spec.url",
        ),
        (
            endpoint_spec("", "https://hooks.example.com/x"),
            "spec.name",
        ),
        (
            endpoint_spec(&"n".repeat(201), "https://hooks.example.com/x"),
            "spec.name",
        ),
        (
            endpoint_spec("Nul\u{0}byte", "https://hooks.example.com/x"),
            "spec.name",
        ),
        (
            pb::EndpointSpec {
                description: "nul\u{0}".into(),
                ..endpoint_spec("Described", "https://hooks.example.com/x")
            },
            "spec.description",
        ),
        (
            pb::EndpointSpec {
                event_types: vec!["message.received".into(), "made.up".into()],
                ..endpoint_spec("Types", "https://hooks.example.com/x")
            },
            "spec.event_types[1]",
        ),
        (
            pb::EndpointSpec {
                device_ids: vec![herald_core::id::DeviceId::generate().to_string()],
                ..endpoint_spec("Devices", "https://hooks.example.com/x")
            },
            "spec.device_ids[0]",
        ),
        (
            pb::EndpointSpec {
                headers: [("webhook-signature".to_owned(), "forged".to_owned())].into(),
                ..endpoint_spec("Headers", "https://hooks.example.com/x")
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
        .create_endpoint(&tenant, endpoint_spec("Local", "http://127.0.0.1:9/hook"))
        .await
        .unwrap();
}

async fn search_needs_three_characters(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Billing Events", "https://billing.example.com/in"),
        )
        .await
        .unwrap();
    herald
        .create_endpoint(
            &tenant,
            endpoint_spec("CRM", "https://crm.example.org/HOOKS"),
        )
        .await
        .unwrap();
    herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Fifty_percent%", "https://other.example.net/x"),
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
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let creates = futures::stream::iter(0..1_000)
        .map(|index| {
            herald.create_endpoint(
                &tenant,
                endpoint_spec(&format!("endpoint {index}"), "https://hooks.example.com/x"),
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
                .create_endpoint(
                    &tenant,
                    endpoint_spec("late", "https://hooks.example.com/late"),
                )
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

async fn test_endpoint_activates_on_a_2xx_attempt(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
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
                ..Default::default()
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

async fn test_on_save_tests_creates_and_delivery_affecting_updates(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let spec = pb::EndpointSpec {
        test_on_save: true,
        ..endpoint_spec("Orders", "https://hooks.example.com/x")
    };
    let mut config = herald.config();
    let (created, ()) = tokio::join!(
        config.create_endpoint(authed(
            &tenant.token,
            pb::CreateEndpointRequest {
                spec: Some(spec),
                secret: String::new(),
            },
        )),
        answer_test_job(&herald.bus, pb::AttemptStatus::Succeeded, 200)
    );
    let created = created.unwrap().into_inner();
    let test = created.test.expect("the create answer carries the test");
    assert_eq!(test.attempt.unwrap().response_code, 200);
    let endpoint = created.endpoint.unwrap();
    assert_eq!(endpoint.status(), pb::EndpointStatus::Active);
    assert!(endpoint.spec.as_ref().unwrap().test_on_save);

    let update = |url: &str, name: &str, paths: &[&str]| {
        let mut config = herald.config();
        let request = authed(
            &tenant.token,
            pb::UpdateEndpointRequest {
                endpoint_id: endpoint.id.clone(),
                spec: Some(pb::EndpointSpec {
                    url: url.into(),
                    name: name.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|path| (*path).to_owned()).collect(),
                }),
                etag: String::new(),
            },
        );
        async move { config.update_endpoint(request).await }
    };
    // A new URL is tested at once: the receiver's 201 keeps it active.
    let (moved, ()) = tokio::join!(
        update("https://hooks.example.com/moved", "", &["url"]),
        answer_test_job(&herald.bus, pb::AttemptStatus::Succeeded, 201)
    );
    assert_eq!(
        moved.unwrap().into_inner().status(),
        pb::EndpointStatus::Active
    );
    // A failing test leaves it pending, as any edit of the URL does.
    let (failed, ()) = tokio::join!(
        update("https://hooks.example.com/again", "", &["url"]),
        answer_test_job(&herald.bus, pb::AttemptStatus::Retrying, 500)
    );
    assert_eq!(
        failed.unwrap().into_inner().status(),
        pb::EndpointStatus::PendingTest
    );
    // A rename changes nothing the receiver sees: no test (none is
    // answered here, so one would time out).
    let renamed = update("", "Orders v2", &["name"])
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.spec.unwrap().name, "Orders v2");
}
