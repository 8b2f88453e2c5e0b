//! Endpoint rate limits as a generic cell rate algorithm (GCRA).
//!
//! The whole state of a limit is one number, the theoretical arrival time
//! (TAT) of the next delivery, so replicas can share it with a single
//! compare-and-set. A delivery over the rate is not refused: it reserves the
//! next free slot and waits for it, so the limit shapes traffic without
//! failing anything.

use std::time::Duration;

/// Microseconds since the Unix epoch, the clock the shared state is kept in.
pub type Micros = i64;

/// A valid rate limit: deliveries per second, with a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    interval: Micros,
    burst: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate_limit.per_second must be a positive number of deliveries per second")]
    NotPositive,
    #[error("rate_limit.per_second must be at most 1000000")]
    TooFast,
}

/// Deliveries reserved together, and the shared state after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The TAT to store.
    pub tat: Micros,
    /// When each delivery may start, in order.
    pub starts: Vec<Micros>,
}

impl RateLimit {
    /// `burst` 0 means 1: one delivery at a time, evenly spaced.
    pub fn new(per_second: f64, burst: u32) -> Result<RateLimit, RateLimitError> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(RateLimitError::NotPositive);
        }
        if per_second > 1_000_000.0 {
            return Err(RateLimitError::TooFast);
        }
        Ok(RateLimit {
            interval: ((1_000_000.0 / per_second).round() as Micros).max(1),
            burst: burst.max(1),
        })
    }

    /// The time between two deliveries at the sustained rate.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval.unsigned_abs())
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How many deliveries a replica reserves at once: about 10 ms worth,
    /// so fast limits cost one shared update per chunk rather than one per
    /// delivery, and slow ones stay exact.
    pub fn chunk(&self) -> u32 {
        let per_10ms = (10_000 / self.interval).clamp(1, i64::from(self.burst));
        u32::try_from(per_10ms).unwrap_or(1)
    }

    /// Reserves `count` deliveries at `now` against the shared `tat` (0 when
    /// there is none yet).
    pub fn reserve(&self, tat: Micros, now: Micros, count: u32) -> Reservation {
        let tolerance = self.interval.saturating_mul(i64::from(self.burst - 1));
        let first = tat.max(now);
        let starts = (0..i64::from(count))
            .map(|index| {
                let cell = first.saturating_add(self.interval.saturating_mul(index));
                now.max(cell.saturating_sub(tolerance))
            })
            .collect();
        Reservation {
            tat: first.saturating_add(self.interval.saturating_mul(i64::from(count))),
            starts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_rates_are_refused() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(RateLimit::new(bad, 1), Err(RateLimitError::NotPositive));
        }
        assert_eq!(RateLimit::new(2e6, 1), Err(RateLimitError::TooFast));
        assert_eq!(RateLimit::new(50.0, 0).unwrap().burst(), 1);
    }

    #[test]
    fn without_burst_deliveries_are_evenly_spaced() {
        let limit = RateLimit::new(50.0, 1).unwrap();
        assert_eq!(limit.interval(), Duration::from_millis(20));
        let now = 1_000_000;
        let first = limit.reserve(0, now, 1);
        assert_eq!(first.starts, [now]);
        let second = limit.reserve(first.tat, now, 3);
        assert_eq!(second.starts, [now + 20_000, now + 40_000, now + 60_000]);
        assert_eq!(second.tat, now + 80_000);
    }

    #[test]
    fn a_burst_starts_at_once_then_the_rate_applies() {
        let limit = RateLimit::new(10.0, 5).unwrap();
        let now = 5_000_000;
        let reserved = limit.reserve(0, now, 7);
        assert_eq!(
            reserved.starts,
            [now, now, now, now, now, now + 100_000, now + 200_000]
        );
    }

    #[test]
    fn idle_time_refills_the_burst_but_no_more() {
        let limit = RateLimit::new(10.0, 3).unwrap();
        let drained = limit.reserve(0, 0, 3);
        // Long after, the old TAT is in the past: a full burst again.
        let later = limit.reserve(drained.tat, 60_000_000, 4);
        assert_eq!(
            later.starts,
            [60_000_000, 60_000_000, 60_000_000, 60_100_000]
        );
    }

    #[test]
    fn any_sequence_of_reservations_keeps_the_rate() {
        // Over a long window the number of starts never exceeds
        // burst + window / interval, however requests are chunked.
        let limit = RateLimit::new(50.0, 10).unwrap();
        let mut tat = 0;
        let mut starts = Vec::new();
        let mut now = 0;
        for step in 0..2_000_i64 {
            now += (step * 7_919) % 13_000;
            let reserved = limit.reserve(tat, now, u32::try_from(step % 4 + 1).unwrap());
            tat = reserved.tat;
            starts.extend(reserved.starts);
        }
        starts.sort_unstable();
        for (index, start) in starts.iter().enumerate() {
            let window_end = start + 1_000_000;
            let in_window = starts[index..]
                .iter()
                .take_while(|s| **s < window_end)
                .count();
            assert!(in_window <= 10 + 50, "{in_window} starts in one second");
        }
    }

    #[test]
    fn chunks_grow_with_the_rate_within_the_burst() {
        assert_eq!(RateLimit::new(50.0, 100).unwrap().chunk(), 1);
        assert_eq!(RateLimit::new(5_000.0, 100).unwrap().chunk(), 50);
        assert_eq!(RateLimit::new(5_000.0, 8).unwrap().chunk(), 8);
    }
}
