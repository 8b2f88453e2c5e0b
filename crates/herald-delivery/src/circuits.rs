//! Every endpoint's circuit, shared by all delivery replicas.
//!
//! An open or half-open circuit is one value in the `HERALD_CIRCUITS`
//! bucket, which every replica watches into memory, so admitting a delivery
//! reads memory only. The transitions that must happen once across replicas
//! are compare-and-set writes: taking the probe after a cooldown (one
//! replica wins it, so a dead receiver sees one probe per cooldown whatever
//! the number of replicas) and reopening after a failed probe. A success
//! deletes the value: the receiver is evidently back.
//!
//! Consecutive failures while the circuit is closed are counted by each
//! replica on its own, so a failing delivery costs no shared write; the
//! replica whose run of failures reaches the threshold opens the circuit for
//! everyone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures::StreamExt;
use herald_bus::async_nats::jetstream::kv;
use herald_core::circuit::{Admission, Circuit, CircuitPolicy, CircuitState};
use tokio_util::sync::CancellationToken;

use crate::metrics::DeliveryMetrics;

/// How long to wait before asking again when the bucket cannot be reached.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(1);

/// A shared circuit as last seen, with the bucket revision it was read at.
type Seen = (Circuit, u64);

#[derive(Debug)]
pub(crate) struct Circuits {
    policy: CircuitPolicy,
    bucket: kv::Store,
    shared: Arc<Mutex<HashMap<String, Seen>>>,
    /// This replica's run of failures per endpoint while its circuit is closed.
    failures: Mutex<HashMap<String, u32>>,
    metrics: DeliveryMetrics,
}

/// Why a compare-and-set write did not happen.
enum WriteError {
    /// Another replica changed the circuit first.
    Conflict,
    Unavailable(String),
}

impl Circuits {
    pub(crate) fn new(
        policy: CircuitPolicy,
        bucket: kv::Store,
        metrics: DeliveryMetrics,
    ) -> Circuits {
        Circuits {
            policy,
            bucket,
            shared: Arc::new(Mutex::new(HashMap::new())),
            failures: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Keeps the in-memory view of the bucket current until `stop`: every
    /// replica's changes arrive here within a round trip.
    pub(crate) async fn follow(&self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            match self.bucket.watch_with_history(">").await {
                Ok(mut entries) => loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        entry = entries.next() => match entry {
                            Some(Ok(entry)) => self.apply(&entry),
                            Some(Err(error)) => {
                                tracing::warn!(%error, "the shared circuits' watch failed; watching again");
                                break;
                            }
                            None => break,
                        },
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "cannot watch the shared circuits; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(UNAVAILABLE_BACKOFF) => {}
            }
        }
    }

    /// How long until the circuit lets a delivery through (zero when a
    /// probe is due), or `None` when it is closed; changes nothing.
    pub(crate) fn wait(&self, endpoint: &str) -> Option<Duration> {
        let (mut circuit, _) = self.seen(endpoint)?;
        match circuit.admit(now()) {
            Admission::Send => None,
            Admission::Probe => Some(Duration::ZERO),
            Admission::Wait(wait) => Some(wait),
        }
    }

    /// What a delivery to `endpoint` may do now.
    pub(crate) async fn admit(&self, endpoint: &str) -> Admission {
        loop {
            let Some((circuit, revision)) = self.seen(endpoint) else {
                return Admission::Send;
            };
            let mut next = circuit.clone();
            match next.admit(now()) {
                Admission::Probe => match self.write(endpoint, &next, Some(revision)).await {
                    Ok(()) => return Admission::Probe,
                    Err(WriteError::Conflict) => self.refresh(endpoint).await,
                    Err(WriteError::Unavailable(error)) => {
                        tracing::warn!(endpoint, %error, "cannot take the circuit's probe; asking again");
                        return Admission::Wait(UNAVAILABLE_BACKOFF);
                    }
                },
                admission => return admission,
            }
        }
    }

    /// Reports how an admitted delivery to `endpoint` ended.
    pub(crate) async fn record(&self, endpoint: &str, succeeded: bool) {
        if succeeded {
            lock(&self.failures).remove(endpoint);
            if self.seen(endpoint).is_some() {
                self.close(endpoint).await;
            }
            return;
        }
        loop {
            let written = match self.seen(endpoint) {
                None => {
                    if !self.run_reaches_threshold(endpoint) {
                        return;
                    }
                    self.write(endpoint, &Circuit::tripped(&self.policy, now()), None)
                        .await
                }
                Some((circuit, revision)) => {
                    let mut next = circuit.clone();
                    next.record(&self.policy, now(), false);
                    if next == circuit {
                        return;
                    }
                    self.write(endpoint, &next, Some(revision)).await
                }
            };
            match written {
                Ok(()) => {
                    tracing::warn!(
                        endpoint,
                        "circuit opened: deliveries to this endpoint pause until a probe succeeds"
                    );
                    return;
                }
                Err(WriteError::Conflict) => self.refresh(endpoint).await,
                Err(WriteError::Unavailable(error)) => {
                    // Not opening it costs more attempts on a failing
                    // receiver, never a lost delivery.
                    tracing::warn!(endpoint, %error, "cannot open the shared circuit");
                    return;
                }
            }
        }
    }

    /// Counts one more failure in this replica's run; true (and the run
    /// starts over) once it reaches the threshold.
    fn run_reaches_threshold(&self, endpoint: &str) -> bool {
        let mut failures = lock(&self.failures);
        let run = failures.entry(endpoint.to_owned()).or_default();
        *run = run.saturating_add(1);
        if *run >= self.policy.failure_threshold.max(1) {
            failures.remove(endpoint);
            true
        } else {
            false
        }
    }

    async fn close(&self, endpoint: &str) {
        match self.bucket.delete(endpoint).await {
            Ok(()) => {
                self.forget(endpoint);
                tracing::info!(endpoint, "circuit closed: the endpoint answers again");
            }
            Err(error) => {
                tracing::warn!(endpoint, %error, "cannot close the shared circuit; the next success tries again");
            }
        }
    }

    /// Writes `circuit` if the bucket still holds `expected` (`None`: no
    /// circuit), and keeps what was written.
    async fn write(
        &self,
        endpoint: &str,
        circuit: &Circuit,
        expected: Option<u64>,
    ) -> Result<(), WriteError> {
        let value = Bytes::copy_from_slice(&circuit.encode());
        let revision =
            match expected {
                Some(revision) => self
                    .bucket
                    .update(endpoint, value, revision)
                    .await
                    .map_err(|error| match error.kind() {
                        kv::UpdateErrorKind::WrongLastRevision => WriteError::Conflict,
                        _ => WriteError::Unavailable(error.to_string()),
                    })?,
                None => self.bucket.create(endpoint, value).await.map_err(|error| {
                    match error.kind() {
                        kv::CreateErrorKind::AlreadyExists => WriteError::Conflict,
                        _ => WriteError::Unavailable(error.to_string()),
                    }
                })?,
            };
        self.keep(endpoint, circuit.clone(), revision);
        Ok(())
    }

    /// Reads one circuit again after another replica changed it.
    async fn refresh(&self, endpoint: &str) {
        match self.bucket.entry(endpoint).await {
            Ok(Some(entry)) => self.apply(&entry),
            Ok(None) => self.forget(endpoint),
            Err(error) => {
                tracing::warn!(endpoint, %error, "cannot read the shared circuit");
                tokio::time::sleep(UNAVAILABLE_BACKOFF).await;
            }
        }
    }

    fn apply(&self, entry: &kv::Entry) {
        match entry.operation {
            kv::Operation::Put => match Circuit::decode(&entry.value) {
                Some(circuit) => self.keep(&entry.key, circuit, entry.revision),
                None => {
                    tracing::warn!(endpoint = %entry.key, "ignoring an unreadable shared circuit")
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                let mut shared = lock(&self.shared);
                if shared
                    .get(&entry.key)
                    .is_some_and(|(_, revision)| *revision < entry.revision)
                {
                    shared.remove(&entry.key);
                }
                self.metrics.circuits_open(shared.len());
            }
        }
    }

    /// Keeps `circuit` unless a newer revision is already known.
    fn keep(&self, endpoint: &str, circuit: Circuit, revision: u64) {
        let mut shared = lock(&self.shared);
        let newer = shared
            .get(endpoint)
            .is_none_or(|(_, known)| *known < revision);
        if newer {
            if circuit.state() == CircuitState::Closed {
                shared.remove(endpoint);
            } else {
                shared.insert(endpoint.to_owned(), (circuit, revision));
            }
        }
        self.metrics.circuits_open(shared.len());
    }

    fn forget(&self, endpoint: &str) {
        let mut shared = lock(&self.shared);
        shared.remove(endpoint);
        self.metrics.circuits_open(shared.len());
    }

    fn seen(&self, endpoint: &str) -> Option<Seen> {
        lock(&self.shared).get(endpoint).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is a single call on one entry: the map stays consistent
    // even if a holder panicked.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Replicas compare times in one shared circuit: the Unix epoch is their
/// common origin.
fn now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}
