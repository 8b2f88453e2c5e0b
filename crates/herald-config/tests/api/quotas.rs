//! Per-tenant quotas: set by the admin, checked, carried by Watch, and the
//! dead-letter quota's sweep.

use herald_bus::{Bus, async_nats};
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, watch_response::Change,
    watch_service_client::WatchServiceClient, watched_object::Object,
};
use herald_testkit_stack::{ADMIN_TOKEN, Backend, ConfigStack, SERVICE_TOKEN, Tenant, authed};
use prost::Message;
use tonic::{Code, transport::Channel};

use crate::next_change;

on_both_databases!(
    topology_08_tenant_quotas_are_set_by_the_admin_and_checked,
    topology_09_the_dead_letter_quota_purges_the_oldest_first,
);

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
    let harness = ConfigStack::start(backend).await;
    let tenant = harness.tenant("Acme").await;
    let mut admin = harness.admin();
    let read = |admin: &mut AdminServiceClient<Channel>| {
        let mut admin = admin.clone();
        let tenant_id = tenant.id.clone();
        async move {
            admin
                .get_tenant(authed(ADMIN_TOKEN, pb::GetTenantRequest { tenant_id }))
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
        .update_tenant(authed(ADMIN_TOKEN, set_quotas(&tenant.id, wanted)))
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
            ADMIN_TOKEN,
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
            ADMIN_TOKEN,
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
            .update_tenant(authed(ADMIN_TOKEN, set_quotas(&tenant.id, bad)))
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
            SERVICE_TOKEN,
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
            ADMIN_TOKEN,
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

async fn dead_letter_ids(harness: &ConfigStack, tenant: &Tenant) -> Vec<String> {
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
    let harness = ConfigStack::start(backend).await;
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
        .update_tenant(authed(
            ADMIN_TOKEN,
            set_quotas(&capped.id, quotas(0.0, 0, 0, 3)),
        ))
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
