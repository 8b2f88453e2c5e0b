//! Every endpoint's circuit in this replica. Replicas keep their own: each
//! lets its own probe through, so a dead receiver sees one probe per replica
//! per cooldown, which is still a handful.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use herald_core::circuit::{Admission, Circuit, CircuitPolicy, CircuitState};

use crate::metrics::DeliveryMetrics;

#[derive(Debug)]
pub(crate) struct Circuits {
    policy: CircuitPolicy,
    origin: Instant,
    circuits: Mutex<HashMap<String, Circuit>>,
    metrics: DeliveryMetrics,
}

impl Circuits {
    pub(crate) fn new(policy: CircuitPolicy, metrics: DeliveryMetrics) -> Circuits {
        Circuits {
            policy,
            origin: Instant::now(),
            circuits: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    pub(crate) fn admit(&self, endpoint: &str) -> Admission {
        let now = self.origin.elapsed();
        let mut circuits = self.lock();
        match circuits.get_mut(endpoint) {
            Some(circuit) => circuit.admit(now),
            None => Admission::Send,
        }
    }

    /// How long until the circuit lets a delivery through (zero when a
    /// probe is due), or `None` when it is closed; changes nothing.
    pub(crate) fn wait(&self, endpoint: &str) -> Option<Duration> {
        let now = self.origin.elapsed();
        let mut circuit = self.lock().get(endpoint)?.clone();
        match circuit.admit(now) {
            Admission::Send => None,
            Admission::Probe => Some(Duration::ZERO),
            Admission::Wait(wait) => Some(wait),
        }
    }

    pub(crate) fn record(&self, endpoint: &str, succeeded: bool) {
        let now = self.origin.elapsed();
        let mut circuits = self.lock();
        let circuit = circuits.entry(endpoint.to_owned()).or_default();
        let was_closed = circuit.state() == CircuitState::Closed;
        circuit.record(&self.policy, now, succeeded);
        let is_closed = circuit.state() == CircuitState::Closed;
        if was_closed && !is_closed {
            self.metrics.circuit_opened();
            tracing::warn!(
                endpoint,
                "circuit opened: deliveries to this endpoint pause until a probe succeeds"
            );
        } else if !was_closed && is_closed {
            self.metrics.circuit_closed();
            tracing::info!(endpoint, "circuit closed: the endpoint answers again");
        }
        if circuit.is_pristine() {
            circuits.remove(endpoint);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Circuit>> {
        // Every change is a single call on one entry: the map stays
        // consistent even if a holder panicked.
        self.circuits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
