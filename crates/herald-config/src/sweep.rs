//! Periodic upkeep, by every replica (each step is idempotent): old
//! attempts and change-log entries are deleted, and endpoints that have
//! failed for too long without a success are paused.

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::state::ConfigState;

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
