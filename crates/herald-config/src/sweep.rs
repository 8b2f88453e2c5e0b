//! Periodic upkeep, by every replica (each step is idempotent): old
//! attempts and change-log entries are deleted, endpoints that have failed
//! for too long without a success are paused, and each tenant's oldest dead
//! letters beyond its quota are purged.

use herald_core::{id::TenantId, quota::TenantQuotas};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::{convert, state::ConfigState};

pub async fn run(state: ConfigState, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(state.settings.sweep_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        sweep_once(&state).await;
    }
}

pub async fn sweep_once(state: &ConfigState) {
    let now = OffsetDateTime::now_utc();
    match state
        .store
        .delete_attempts_before(now - state.settings.attempt_retention)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "deleted attempts past retention"),
        Err(error) => tracing::warn!(%error, "cannot delete old attempts"),
    }
    match state
        .store
        .prune_changes_before(now - state.settings.change_retention)
        .await
    {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "pruned the change log"),
        Err(error) => tracing::warn!(%error, "cannot prune the change log"),
    }
    if let Some(after) = state.settings.auto_disable_after {
        pause_failing_endpoints(state, now - after).await;
    }
    purge_dead_letters_over_quota(state).await;
}

/// Keeps each tenant's newest dead letters up to its `max_dead_letters`
/// (or the service's default): one JetStream purge per tenant with the
/// tenant's subject filter and `keep`, so the server drops the oldest first
/// and nothing is read here.
async fn purge_dead_letters_over_quota(state: &ConfigState) {
    let tenants = match state.store.all_tenants().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "cannot list tenants to enforce their dead-letter quotas");
            return;
        }
    };
    let topology = state.bus.topology();
    let stream = topology.dead_letters_stream();
    for tenant in tenants {
        let keep = TenantQuotas::try_from(&convert::tenant_quotas(&tenant.quotas))
            .unwrap_or_default()
            .dead_letters_kept(state.settings.max_dead_letters);
        if keep == 0 {
            continue;
        }
        let Ok(tenant_id) = TenantId::parse(&tenant.id) else {
            continue;
        };
        match state
            .bus
            .purge_keeping_newest(
                &stream,
                topology.tenant_dead_letters_filter(&tenant_id),
                keep,
            )
            .await
        {
            Ok(0) => {}
            Ok(purged) => {
                state.settings.metrics.dead_letters_purged(purged);
                tracing::info!(tenant = %tenant_id, purged, kept = keep, "purged the oldest dead letters over the tenant's quota");
            }
            Err(error) => {
                tracing::warn!(tenant = %tenant_id, %error, "cannot purge dead letters over the tenant's quota")
            }
        }
    }
}

async fn pause_failing_endpoints(state: &ConfigState, failing_before: OffsetDateTime) {
    let failing = match state.store.endpoints_failing_since(failing_before).await {
        Ok(failing) => failing,
        Err(error) => {
            tracing::warn!(%error, "cannot look for failing endpoints");
            return;
        }
    };
    for endpoint in failing {
        match state
            .pause_failing_endpoint(
                &endpoint.tenant_id,
                &endpoint.endpoint_id,
                endpoint.failing_since,
            )
            .await
        {
            Ok(Some(_)) => tracing::warn!(
                tenant = %endpoint.tenant_id,
                endpoint = %endpoint.endpoint_id,
                failing_since = %endpoint.failing_since,
                "endpoint paused automatically after failing without a success"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.endpoint_id, %error, "cannot pause a failing endpoint")
            }
        }
    }
}
