use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::sync::{Notify, RwLock};

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The named checks that decide whether a process is ready for traffic.
///
/// A process is not ready until it calls [`Readiness::mark_started`] (after
/// connecting and setting up everything it needs), and after that only while
/// every registered check passes.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<RwLock<Inner>>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    started: bool,
    checks: Vec<(String, CheckFn)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Readiness").finish_non_exhaustive()
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    pub name: String,
    pub error: Option<String>,
}

/// Every check's result at one moment.
#[derive(Clone, Debug)]
pub struct ReadinessReport {
    pub started: bool,
    pub checks: Vec<CheckOutcome>,
}

impl ReadinessReport {
    pub fn is_ready(&self) -> bool {
        self.started && self.checks.iter().all(|check| check.error.is_none())
    }

    pub fn to_json(&self) -> serde_json::Value {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|check| {
                let value = match &check.error {
                    None => serde_json::Value::from("ok"),
                    Some(error) => serde_json::Value::from(error.as_str()),
                };
                (check.name.clone(), value)
            })
            .collect();
        serde_json::json!({
            "status": if self.is_ready() { "ready" } else { "not ready" },
            "started": self.started,
            "checks": checks,
        })
    }
}

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Registers a check; `check` is called on every evaluation.
    pub async fn add_check<F>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        self.inner
            .write()
            .await
            .checks
            .push((name.into(), Arc::new(check)));
    }

    /// Says that start-up finished; until then the process is not ready.
    pub async fn mark_started(&self) {
        self.inner.write().await.started = true;
        self.changed.notify_waiters();
    }

    /// Resolves when start-up finishes, so followers need not wait for their
    /// next poll to report the process ready.
    pub async fn started(&self) {
        let notified = self.changed.notified();
        if self.inner.read().await.started {
            return;
        }
        notified.await;
    }

    /// Runs every check concurrently, each bounded by a timeout.
    pub async fn evaluate(&self) -> ReadinessReport {
        let (started, checks) = {
            let inner = self.inner.read().await;
            (inner.started, inner.checks.clone())
        };
        let outcomes =
            futures::future::join_all(checks.into_iter().map(|(name, check)| async move {
                let error = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
                };
                CheckOutcome { name, error }
            }))
            .await;
        ReadinessReport {
            started,
            checks: outcomes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn not_ready_until_started_and_every_check_passes() {
        let readiness = Readiness::new();
        assert!(!readiness.evaluate().await.is_ready());
        readiness.add_check("ok", || async { Ok(()) }.boxed()).await;
        assert!(!readiness.evaluate().await.is_ready());
        readiness.mark_started().await;
        assert!(readiness.evaluate().await.is_ready());
        readiness
            .add_check("down", || {
                async { Err("connection refused".to_owned()) }.boxed()
            })
            .await;
        let report = readiness.evaluate().await;
        assert!(!report.is_ready());
        assert_eq!(report.to_json()["checks"]["down"], "connection refused");
        assert_eq!(report.to_json()["checks"]["ok"], "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_fails_after_the_timeout() {
        let readiness = Readiness::new();
        readiness.mark_started().await;
        readiness
            .add_check("hangs", || futures::future::pending().boxed())
            .await;
        let report = readiness.evaluate().await;
        assert!(!report.is_ready());
        assert!(
            report.checks[0]
                .error
                .as_deref()
                .unwrap()
                .contains("no answer")
        );
    }
}
