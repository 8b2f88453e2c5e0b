//! The per-endpoint circuit breaker.
//!
//! After a run of consecutive failures the circuit opens: no delivery is
//! attempted until a cooldown passes, then exactly one probe is let through.
//! Its success closes the circuit; its failure reopens it for twice as long,
//! up to a ceiling. A dead receiver therefore sees a probe per cooldown
//! instead of every queued delivery, and its backlog waits outside the
//! delivery workers.
//!
//! Time is a `Duration` since any fixed origin, passed in by the caller.
//! Replicas that share one circuit (see [`Circuit::encode`]) use the Unix
//! epoch, so their clocks agree to within NTP's error.

use std::time::Duration;

/// When to open and how long to stay open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// The first cooldown; it doubles with every failed probe.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        CircuitPolicy {
            failure_threshold: 10,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// How long a probe may take to report before another one is allowed (a
/// probe whose worker stopped must not keep the circuit half-open forever).
const PROBE_DEADLINE: Duration = Duration::from_secs(120);
/// How long deliveries wait while a probe is out.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The length of [`Circuit::encode`]'s output.
pub const ENCODED_LEN: usize = 13;

/// Whole microseconds, saturating (a time past the year 586,000 is "never").
fn micros(time: Duration) -> u64 {
    u64::try_from(time.as_micros()).unwrap_or(u64::MAX)
}

/// What a delivery may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Send,
    /// Send: this delivery is the probe that decides whether to close.
    Probe,
    /// Do not send; ask again after this long.
    Wait(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Duration },
    HalfOpen { probe_started: Duration },
}

/// One endpoint's circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    state: State,
    /// Cooldowns served since the circuit last closed.
    openings: u32,
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit {
            state: State::Closed { failures: 0 },
            openings: 0,
        }
    }
}

impl Circuit {
    pub fn state(&self) -> CircuitState {
        match self.state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Closed with no failures: nothing worth remembering.
    pub fn is_pristine(&self) -> bool {
        self.state == State::Closed { failures: 0 }
    }

    pub fn admit(&mut self, now: Duration) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Send,
            State::Open { until } if now < until => Admission::Wait(until - now),
            State::HalfOpen { probe_started }
                if now.saturating_sub(probe_started) < PROBE_DEADLINE =>
            {
                Admission::Wait(PROBE_WAIT)
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                self.state = State::HalfOpen { probe_started: now };
                Admission::Probe
            }
        }
    }

    /// Reports how a delivery that was admitted ended. A success from any
    /// delivery closes the circuit: the receiver is evidently back.
    pub fn record(&mut self, policy: &CircuitPolicy, now: Duration, succeeded: bool) {
        if succeeded {
            *self = Circuit::default();
            return;
        }
        match self.state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= policy.failure_threshold.max(1) {
                    self.open(policy, now);
                } else {
                    self.state = State::Closed { failures };
                }
            }
            State::HalfOpen { .. } => self.open(policy, now),
            // Deliveries already in flight when it opened change nothing.
            State::Open { .. } => {}
        }
    }

    /// A circuit that has just opened after its threshold of failures: what
    /// a replica shares once its own run of failures reached the threshold.
    pub fn tripped(policy: &CircuitPolicy, now: Duration) -> Circuit {
        let mut circuit = Circuit::default();
        circuit.open(policy, now);
        circuit
    }

    /// The circuit as 13 bytes (state, its time or count, openings), for
    /// replicas that share it through a key-value store.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let (tag, value) = match self.state {
            State::Closed { failures } => (0_u8, u64::from(failures)),
            State::Open { until } => (1, micros(until)),
            State::HalfOpen { probe_started } => (2, micros(probe_started)),
        };
        let mut bytes = [0_u8; ENCODED_LEN];
        bytes[0] = tag;
        bytes[1..9].copy_from_slice(&value.to_be_bytes());
        bytes[9..].copy_from_slice(&self.openings.to_be_bytes());
        bytes
    }

    /// The circuit [`Circuit::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Circuit> {
        let bytes: &[u8; ENCODED_LEN] = bytes.try_into().ok()?;
        let value = u64::from_be_bytes(bytes[1..9].try_into().ok()?);
        let openings = u32::from_be_bytes(bytes[9..].try_into().ok()?);
        let state = match bytes[0] {
            0 => State::Closed {
                failures: u32::try_from(value).ok()?,
            },
            1 => State::Open {
                until: Duration::from_micros(value),
            },
            2 => State::HalfOpen {
                probe_started: Duration::from_micros(value),
            },
            _ => return None,
        };
        Some(Circuit { state, openings })
    }

    fn open(&mut self, policy: &CircuitPolicy, now: Duration) {
        let factor = 1_u32.checked_shl(self.openings.min(31)).unwrap_or(u32::MAX);
        let cooldown = policy
            .cooldown
            .saturating_mul(factor)
            .min(policy.max_cooldown);
        self.openings = self.openings.saturating_add(1);
        self.state = State::Open {
            until: now + cooldown,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CircuitPolicy = CircuitPolicy {
        failure_threshold: 3,
        cooldown: Duration::from_secs(30),
        max_cooldown: Duration::from_secs(100),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn failing(circuit: &mut Circuit, at: Duration, times: u32) {
        for _ in 0..times {
            assert_ne!(circuit.admit(at), Admission::Wait(Duration::ZERO));
            circuit.record(&POLICY, at, false);
        }
    }

    #[test]
    fn opens_after_the_threshold_and_lets_one_probe_through() {
        let mut circuit = Circuit::default();
        failing(&mut circuit, secs(0), 2);
        assert_eq!(circuit.state(), CircuitState::Closed);
        failing(&mut circuit, secs(1), 1);
        assert_eq!(circuit.state(), CircuitState::Open);
        assert_eq!(circuit.admit(secs(11)), Admission::Wait(secs(20)));
        assert_eq!(circuit.admit(secs(31)), Admission::Probe);
        assert_eq!(circuit.admit(secs(31)), Admission::Wait(PROBE_WAIT));
        circuit.record(&POLICY, secs(32), true);
        assert!(circuit.is_pristine());
        assert_eq!(circuit.admit(secs(32)), Admission::Send);
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_the_ceiling() {
        let mut circuit = Circuit::default();
        failing(&mut circuit, secs(0), 3);
        let mut now = secs(0);
        for expected in [30, 60, 100, 100] {
            assert_eq!(circuit.admit(now), Admission::Wait(secs(expected)));
            now += secs(expected);
            assert_eq!(circuit.admit(now), Admission::Probe);
            circuit.record(&POLICY, now, false);
        }
    }

    #[test]
    fn a_success_in_between_resets_the_count() {
        let mut circuit = Circuit::default();
        failing(&mut circuit, secs(0), 2);
        circuit.record(&POLICY, secs(0), true);
        failing(&mut circuit, secs(0), 2);
        assert_eq!(circuit.state(), CircuitState::Closed);
    }

    #[test]
    fn a_lost_probe_is_replaced_after_its_deadline() {
        let mut circuit = Circuit::default();
        failing(&mut circuit, secs(0), 3);
        assert_eq!(circuit.admit(secs(30)), Admission::Probe);
        assert_eq!(
            circuit.admit(secs(30) + PROBE_DEADLINE - secs(1)),
            Admission::Wait(PROBE_WAIT)
        );
        assert_eq!(circuit.admit(secs(30) + PROBE_DEADLINE), Admission::Probe);
    }

    #[test]
    fn a_tripped_circuit_is_open_for_the_first_cooldown() {
        let mut circuit = Circuit::tripped(&POLICY, secs(5));
        assert_eq!(circuit.state(), CircuitState::Open);
        assert_eq!(circuit.admit(secs(5)), Admission::Wait(secs(30)));
        assert_eq!(circuit.admit(secs(35)), Admission::Probe);
    }

    #[test]
    fn every_state_survives_encoding() {
        let mut half_open = Circuit::tripped(&POLICY, secs(1_700_000_000));
        assert_eq!(half_open.admit(secs(1_700_000_030)), Admission::Probe);
        let mut closed = Circuit::default();
        failing(&mut closed, secs(0), 2);
        for circuit in [
            Circuit::default(),
            closed,
            Circuit::tripped(&POLICY, secs(1_700_000_000)),
            half_open,
        ] {
            assert_eq!(Circuit::decode(&circuit.encode()), Some(circuit));
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            if let Some(circuit) = Circuit::decode(&bytes) {
                let encoded = circuit.encode();
                proptest::prop_assert_eq!(encoded.as_slice(), bytes.as_slice());
            }
        }
    }

    #[test]
    fn failures_reported_while_open_do_not_extend_it() {
        let mut circuit = Circuit::default();
        failing(&mut circuit, secs(0), 3);
        circuit.record(&POLICY, secs(10), false);
        assert_eq!(circuit.admit(secs(30)), Admission::Probe);
    }
}
