//! Per-tenant quotas: how many events a tenant may have accepted per second,
//! how many of its deliveries may be in flight, how many dead letters it
//! keeps; each either set on the tenant or left to the service's default.
//!
//! The events rule is the endpoint rate limit's GCRA (`rate`), applied the
//! other way round: a request whose events do not all fit now is refused
//! with the time after which they would, instead of waiting. A request
//! larger than the burst is accepted when the bucket is full and leaves a
//! debt the next requests wait out, so a big webhook is never refused forever.

use std::time::Duration;

use crate::rate::{Micros, RateLimit, RateLimitError};

/// Most events per second a tenant's quota may allow: the rate limiter's
/// own bound.
pub const MAX_EVENTS_PER_SECOND: f64 = 1_000_000.0;
/// Largest burst a tenant's events quota may allow.
pub const MAX_EVENTS_BURST: u32 = 1_000_000;
/// Most deliveries a tenant may have in flight in one delivery replica: far
/// beyond any replica's global slots, so only a typo is refused.
pub const MAX_IN_FLIGHT_DELIVERIES: u32 = 1_000_000;
/// Most dead letters a tenant may keep.
pub const MAX_DEAD_LETTERS: u64 = 1_000_000_000;

/// A tenant's own quotas; `None` leaves a quota to the service's default.
///
/// Built only by [`TenantQuotas::new`], so every value set is in range.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenantQuotas {
    events_per_second: Option<f64>,
    events_burst: Option<u32>,
    max_in_flight_deliveries: Option<u32>,
    max_dead_letters: Option<u64>,
}

/// A quota value out of range; `field` is its name under `quotas.`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TenantQuotaError {
    pub field: &'static str,
    pub reason: String,
}

impl TenantQuotas {
    /// Checks the wire values, where 0 means "the service's default".
    pub fn new(
        events_per_second: f64,
        events_burst: u32,
        max_in_flight_deliveries: u32,
        max_dead_letters: u64,
    ) -> Result<TenantQuotas, TenantQuotaError> {
        let invalid = |field: &'static str, reason: String| TenantQuotaError { field, reason };
        let events_per_second = if events_per_second == 0.0 {
            None
        } else if !events_per_second.is_finite() || events_per_second < 0.0 {
            return Err(invalid(
                "quotas.events_per_second",
                "must be a positive number of events per second, or 0 for the default".into(),
            ));
        } else if events_per_second > MAX_EVENTS_PER_SECOND {
            return Err(invalid(
                "quotas.events_per_second",
                format!("must be at most {MAX_EVENTS_PER_SECOND}"),
            ));
        } else {
            Some(events_per_second)
        };
        let bounded = |field: &'static str, value: u64, max: u64| {
            if value > max {
                Err(invalid(field, format!("must be at most {max}")))
            } else {
                Ok((value != 0).then_some(value))
            }
        };
        let narrow = |value: Option<u64>| value.and_then(|value| u32::try_from(value).ok());
        Ok(TenantQuotas {
            events_per_second,
            events_burst: narrow(bounded(
                "quotas.events_burst",
                events_burst.into(),
                MAX_EVENTS_BURST.into(),
            )?),
            max_in_flight_deliveries: narrow(bounded(
                "quotas.max_in_flight_deliveries",
                max_in_flight_deliveries.into(),
                MAX_IN_FLIGHT_DELIVERIES.into(),
            )?),
            max_dead_letters: bounded(
                "quotas.max_dead_letters",
                max_dead_letters,
                MAX_DEAD_LETTERS,
            )?,
        })
    }

    pub fn events_per_second(&self) -> Option<f64> {
        self.events_per_second
    }

    pub fn events_burst(&self) -> Option<u32> {
        self.events_burst
    }

    pub fn max_in_flight_deliveries(&self) -> Option<u32> {
        self.max_in_flight_deliveries
    }

    pub fn max_dead_letters(&self) -> Option<u64> {
        self.max_dead_letters
    }

    /// The tenant's events limit: its own rate and burst where set, the
    /// service's (`default_per_second` 0: no quota) otherwise.
    pub fn events_limit(
        &self,
        default_per_second: f64,
        default_burst: u32,
    ) -> Result<Option<RateLimit>, RateLimitError> {
        let per_second = self.events_per_second.unwrap_or(default_per_second);
        if per_second == 0.0 {
            return Ok(None);
        }
        RateLimit::new(per_second, self.events_burst.unwrap_or(default_burst)).map(Some)
    }

    /// The tenant's dead letters kept, its own or the service's default.
    pub fn dead_letters_kept(&self, default: u64) -> u64 {
        self.max_dead_letters.unwrap_or(default)
    }
}

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
    fn zero_leaves_each_quota_to_the_default() {
        let quotas = TenantQuotas::new(0.0, 0, 0, 0).unwrap();
        assert_eq!(quotas, TenantQuotas::default());
        assert_eq!(quotas.events_limit(0.0, 100).unwrap(), None);
        assert_eq!(
            quotas.events_limit(10.0, 5).unwrap(),
            Some(RateLimit::new(10.0, 5).unwrap())
        );
        assert_eq!(quotas.dead_letters_kept(100_000), 100_000);
    }

    #[test]
    fn a_tenants_own_values_override_the_default() {
        let quotas = TenantQuotas::new(2.5, 7, 16, 500).unwrap();
        assert_eq!(
            quotas.events_limit(0.0, 1000).unwrap(),
            Some(RateLimit::new(2.5, 7).unwrap())
        );
        assert_eq!(quotas.max_in_flight_deliveries(), Some(16));
        assert_eq!(quotas.dead_letters_kept(100_000), 500);
        let burst_only = TenantQuotas::new(0.0, 3, 0, 0).unwrap();
        assert_eq!(
            burst_only.events_limit(10.0, 1000).unwrap(),
            Some(RateLimit::new(10.0, 3).unwrap())
        );
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        for (value, field) in [
            (
                TenantQuotas::new(f64::NAN, 0, 0, 0),
                "quotas.events_per_second",
            ),
            (
                TenantQuotas::new(f64::INFINITY, 0, 0, 0),
                "quotas.events_per_second",
            ),
            (TenantQuotas::new(-1.0, 0, 0, 0), "quotas.events_per_second"),
            (TenantQuotas::new(2e6, 0, 0, 0), "quotas.events_per_second"),
            (
                TenantQuotas::new(1.0, MAX_EVENTS_BURST + 1, 0, 0),
                "quotas.events_burst",
            ),
            (
                TenantQuotas::new(1.0, 1, u32::MAX, 0),
                "quotas.max_in_flight_deliveries",
            ),
            (
                TenantQuotas::new(1.0, 1, 1, u64::MAX),
                "quotas.max_dead_letters",
            ),
        ] {
            assert_eq!(value.unwrap_err().field, field);
        }
    }

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
