//! When a delivery job leaves the shared pool for its endpoint's held lane,
//! and how much of a held lane a delivery replica takes at once.
//!
//! The pool is shared by every tenant: a job in it that cannot be worked on
//! soon (its endpoint's circuit is open, its slots are taken with others
//! already waiting, its rate is spent) would hold a place everyone needs.
//! Such a job moves to its endpoint's own lane, which is pulled only while
//! the endpoint can take work, so one endpoint's backlog only ever delays
//! that endpoint.

use std::time::Duration;

/// How far ahead counts as "soon": a job that would start later than this
/// is held instead.
pub const SOON: Duration = Duration::from_secs(1);
/// Jobs that may wait in a replica for one endpoint's slot beyond its
/// concurrency before more of its jobs are held: enough to keep the slots
/// busy while the next ones are pulled, few enough to be negligible.
pub const MAX_WAITING: usize = 8;

/// One endpoint's situation in one delivery replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointLoad {
    /// Jobs of this endpoint holding or waiting for one of its slots.
    pub queued: usize,
    /// The endpoint's concurrency (slots).
    pub slots: usize,
    /// The interval of its rate limit, if it has one.
    pub rate_interval: Option<Duration>,
    /// How long until its circuit lets a delivery through, if it is open.
    pub circuit_wait: Option<Duration>,
    /// Jobs of the endpoint's tenant holding or waiting for one of the
    /// tenant's slots.
    pub tenant_queued: usize,
    /// The tenant's share of the replica's global slots.
    pub tenant_slots: usize,
}

/// A tenant's share of a replica's global slots: `per_tenant`, between one
/// and all of them.
pub fn tenant_share(global: usize, per_tenant: usize) -> usize {
    per_tenant.clamp(1, global.max(1))
}

/// Why a job is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    CircuitOpen,
    SlotsFull,
    RateSpent,
    /// The tenant has its share of the slots taken and as many waiting.
    TenantBusy,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::CircuitOpen => "circuit_open",
            HoldReason::SlotsFull => "slots_full",
            HoldReason::RateSpent => "rate_spent",
            HoldReason::TenantBusy => "tenant_busy",
        }
    }
}

impl EndpointLoad {
    /// Whether one more job for this endpoint should leave the pool, and why.
    pub fn hold_reason(&self) -> Option<HoldReason> {
        if self.circuit_wait.is_some_and(|wait| !wait.is_zero()) {
            return Some(HoldReason::CircuitOpen);
        }
        if self.queued >= self.slots.saturating_add(MAX_WAITING) {
            return Some(HoldReason::SlotsFull);
        }
        if self.rate_backlog() > SOON {
            return Some(HoldReason::RateSpent);
        }
        if self.tenant_queued >= self.tenant_room() {
            return Some(HoldReason::TenantBusy);
        }
        None
    }

    /// How many more jobs a held lane may hand this replica now: what fills
    /// the free slots and the few that may wait for one, and no more than
    /// the rate lets start soon.
    pub fn lane_capacity(&self) -> usize {
        if self.circuit_wait.is_some_and(|wait| !wait.is_zero()) {
            return 0;
        }
        // A few beyond the slots keep them busy while the next pull is made.
        let by_slots = self
            .slots
            .saturating_add(MAX_WAITING)
            .saturating_sub(self.queued)
            .min(self.tenant_room().saturating_sub(self.tenant_queued));
        match self.rate_interval {
            Some(interval) if !interval.is_zero() => {
                let soon = usize::try_from(SOON.as_micros() / interval.as_micros().max(1))
                    .unwrap_or(usize::MAX)
                    .max(1);
                by_slots.min(soon.saturating_sub(self.queued))
            }
            _ => by_slots,
        }
    }

    /// A tenant's jobs in a replica: its share of the slots busy and as
    /// many ready to follow.
    fn tenant_room(&self) -> usize {
        self.tenant_slots.saturating_mul(2)
    }

    /// How long the jobs already queued keep the rate busy.
    fn rate_backlog(&self) -> Duration {
        self.rate_interval.map_or(Duration::ZERO, |interval| {
            interval.saturating_mul(u32::try_from(self.queued).unwrap_or(u32::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(queued: usize) -> EndpointLoad {
        EndpointLoad {
            queued,
            slots: 4,
            rate_interval: None,
            circuit_wait: None,
            tenant_queued: queued,
            tenant_slots: 100,
        }
    }

    #[test]
    fn a_tenant_keeps_to_its_share() {
        let busy = EndpointLoad {
            tenant_queued: 200,
            ..load(0)
        };
        assert_eq!(busy.hold_reason(), Some(HoldReason::TenantBusy));
        assert_eq!(busy.lane_capacity(), 0);
        let nearly = EndpointLoad {
            tenant_queued: 198,
            ..load(0)
        };
        assert_eq!(nearly.hold_reason(), None);
        assert_eq!(nearly.lane_capacity(), 2);
        assert_eq!(tenant_share(512, 256), 256);
        assert_eq!(tenant_share(512, 10_000), 512);
        assert_eq!(tenant_share(1, 256), 1);
        assert_eq!(tenant_share(8, 0), 1);
    }

    #[test]
    fn a_job_is_held_only_when_its_endpoint_cannot_take_it_soon() {
        assert_eq!(load(0).hold_reason(), None);
        assert_eq!(load(4 + MAX_WAITING - 1).hold_reason(), None);
        assert_eq!(
            load(4 + MAX_WAITING).hold_reason(),
            Some(HoldReason::SlotsFull)
        );
        let open = EndpointLoad {
            circuit_wait: Some(Duration::from_millis(1)),
            ..load(0)
        };
        assert_eq!(open.hold_reason(), Some(HoldReason::CircuitOpen));
        let probe_due = EndpointLoad {
            circuit_wait: Some(Duration::ZERO),
            ..load(0)
        };
        assert_eq!(probe_due.hold_reason(), None);
        let slow_rate = EndpointLoad {
            rate_interval: Some(Duration::from_millis(400)),
            ..load(2)
        };
        assert_eq!(slow_rate.hold_reason(), None, "800 ms of rate ahead");
        let spent = EndpointLoad {
            queued: 3,
            ..slow_rate
        };
        assert_eq!(spent.hold_reason(), Some(HoldReason::RateSpent));
    }

    #[test]
    fn a_lane_fills_free_slots_within_what_the_rate_starts_soon() {
        assert_eq!(load(0).lane_capacity(), 4 + MAX_WAITING);
        assert_eq!(load(3).lane_capacity(), 1 + MAX_WAITING);
        assert_eq!(load(4 + MAX_WAITING).lane_capacity(), 0);
        let open = EndpointLoad {
            circuit_wait: Some(Duration::from_secs(3)),
            ..load(0)
        };
        assert_eq!(open.lane_capacity(), 0);
        let slow = EndpointLoad {
            rate_interval: Some(Duration::from_secs(2)),
            ..load(0)
        };
        assert_eq!(slow.lane_capacity(), 1, "one job at a time");
        assert_eq!(
            EndpointLoad { queued: 1, ..slow }.lane_capacity(),
            0,
            "the next waits until this one started"
        );
        let fast = EndpointLoad {
            rate_interval: Some(Duration::from_millis(100)),
            ..load(0)
        };
        assert_eq!(fast.lane_capacity(), 10, "what starts within a second");
    }
}
