//! Per-tenant quotas: how many events a tenant may have accepted per second.
//!
//! The rule is the endpoint rate limit's GCRA (`rate`), applied the other
//! way round: a request whose events do not all fit now is refused with the
//! time after which they would, instead of waiting. A request larger than
//! the burst is accepted when the bucket is full and leaves a debt the next
//! requests wait out, so a big webhook is never refused forever.

use std::time::Duration;

use crate::rate::{Micros, RateLimit};

/// What to do with a request of `count` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Accept, and store this TAT.
    Accept { tat: Micros },
    /// Refuse; the events would fit after this long.
    Refuse { retry_after: Duration },
}

/// Decides a request of `count` events at `now` against the tenant's `tat`
/// (0 when there is none yet).
pub fn admit(limit: &RateLimit, tat: Micros, now: Micros, count: u32) -> QuotaDecision {
    if count == 0 {
        return QuotaDecision::Accept { tat };
    }
    let reservation = limit.reserve(tat, now, count);
    let fitting = usize::try_from(count.min(limit.burst())).unwrap_or(1);
    let last_start = reservation
        .starts
        .get(fitting.saturating_sub(1))
        .copied()
        .unwrap_or(now);
    if last_start <= now {
        QuotaDecision::Accept {
            tat: reservation.tat,
        }
    } else {
        QuotaDecision::Refuse {
            retry_after: Duration::from_micros(last_start.saturating_sub(now).unsigned_abs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_accepted_then_the_rate_applies() {
        let limit = RateLimit::new(10.0, 5).unwrap();
        let now = 1_000_000;
        let QuotaDecision::Accept { tat } = admit(&limit, 0, now, 5) else {
            panic!("a full burst fits");
        };
        assert_eq!(
            admit(&limit, tat, now, 1),
            QuotaDecision::Refuse {
                retry_after: Duration::from_millis(100)
            }
        );
        let later = now + 100_000;
        assert!(matches!(
            admit(&limit, tat, later, 1),
            QuotaDecision::Accept { .. }
        ));
        assert_eq!(admit(&limit, tat, now, 0), QuotaDecision::Accept { tat });
    }

    #[test]
    fn a_request_larger_than_the_burst_waits_for_a_full_bucket_and_leaves_a_debt() {
        let limit = RateLimit::new(10.0, 5).unwrap();
        let now = 1_000_000;
        let QuotaDecision::Accept { tat } = admit(&limit, 0, now, 20) else {
            panic!("a full bucket takes it");
        };
        assert!(matches!(
            admit(&limit, tat, now + 1_000_000, 1),
            QuotaDecision::Refuse { .. }
        ));
        assert!(matches!(
            admit(&limit, tat, now + 2_000_000, 1),
            QuotaDecision::Accept { .. }
        ));
    }
}
