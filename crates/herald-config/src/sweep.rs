//! Retention: old attempts and old change-log entries are deleted
//! periodically, by every replica (deleting is idempotent).

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
}
