//! Retry schedules: how long to wait before each retry of a failed delivery.
//!
//! Design decisions:
//! - A schedule is an explicit list of delays, not a formula: customers and
//!   support read "5 s, 25 s, 2 min" directly, and any backoff curve can be
//!   written out as a list. The default is Standard-Webhooks-like and short
//!   (three retries within three minutes); longer outages are covered by
//!   replays, not by holding deliveries for days.
//! - Randomness is an input: the caller passes a uniform sample in `[0, 1)`,
//!   so the schedule stays a pure function and tests pin exact values.
//! - Jitter is symmetric (±fraction) so the mean delay stays the scheduled one
//!   while retries from one outage spread out instead of arriving together.
//! - A `Retry-After` from the receiver replaces the scheduled delay, clamped to
//!   the schedule's own smallest and largest delays so a receiver can neither
//!   make Herald hammer it nor park a delivery for a year. It is not jittered:
//!   the receiver named a time, and jitter could retry before it. It never
//!   adds attempts: an exhausted schedule stays exhausted.

use std::time::Duration;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Most retries a schedule may have.
pub const MAX_RETRY_DELAYS: usize = 20;
/// Longest single delay.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest jitter fraction.
pub const MAX_JITTER_FRACTION: f64 = 0.5;

/// IMF-fixdate, the preferred HTTP date format (RFC 9110 section 5.6.7), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryScheduleError {
    /// More than [`MAX_RETRY_DELAYS`] delays.
    #[error("retry schedule has {count} delays, the limit is {MAX_RETRY_DELAYS}")]
    TooManyDelays {
        /// Number of delays given.
        count: usize,
    },
    /// A zero delay would retry in a tight loop.
    #[error("retry delay {position} is zero; every delay must be at least one millisecond")]
    ZeroDelay {
        /// 1-based position in the schedule.
        position: usize,
    },
    /// A delay longer than [`MAX_RETRY_DELAY`].
    #[error("retry delay {position} is {delay:?}, the limit is 24 hours")]
    DelayTooLong {
        /// 1-based position in the schedule.
        position: usize,
        /// The refused delay.
        delay: Duration,
    },
    /// A jitter fraction outside `0.0..=0.5`.
    #[error(
        "jitter fraction {fraction} is invalid: it must be between 0.0 and {MAX_JITTER_FRACTION}"
    )]
    InvalidJitter {
        /// The refused fraction.
        fraction: f64,
    },
}

/// Random spread applied to scheduled delays: a delay `d` becomes a value in
/// `[d × (1 − fraction), d × (1 + fraction)]`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Jitter(f64);

impl Jitter {
    /// No jitter.
    pub const NONE: Jitter = Jitter(0.0);

    /// Jitter of ±`fraction`, which must be in `0.0..=0.5`.
    pub fn fraction(fraction: f64) -> Result<Jitter, RetryScheduleError> {
        if (0.0..=MAX_JITTER_FRACTION).contains(&fraction) {
            Ok(Jitter(fraction))
        } else {
            Err(RetryScheduleError::InvalidJitter { fraction })
        }
    }

    /// The fraction.
    #[must_use]
    pub fn as_fraction(self) -> f64 {
        self.0
    }
}

/// A validated list of retry delays.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: Jitter,
}

impl Default for RetrySchedule {
    /// 5 s, 25 s, 120 s without jitter: four attempts in about two and a half
    /// minutes.
    fn default() -> Self {
        RetrySchedule {
            delays: vec![
                Duration::from_secs(5),
                Duration::from_secs(25),
                Duration::from_secs(120),
            ],
            jitter: Jitter::NONE,
        }
    }
}

impl RetrySchedule {
    /// A schedule of at most 20 delays, each above zero and at most 24 hours.
    /// An empty list means a single attempt and no retries.
    pub fn new(delays: Vec<Duration>, jitter: Jitter) -> Result<Self, RetryScheduleError> {
        if delays.len() > MAX_RETRY_DELAYS {
            return Err(RetryScheduleError::TooManyDelays {
                count: delays.len(),
            });
        }
        for (index, &delay) in delays.iter().enumerate() {
            if delay.is_zero() {
                return Err(RetryScheduleError::ZeroDelay {
                    position: index + 1,
                });
            }
            if delay > MAX_RETRY_DELAY {
                return Err(RetryScheduleError::DelayTooLong {
                    position: index + 1,
                    delay,
                });
            }
        }
        Ok(RetrySchedule { delays, jitter })
    }

    /// The delays, in order.
    #[must_use]
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The jitter.
    #[must_use]
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// Attempts a delivery gets in total: the first try plus one per delay.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).map_or(u32::MAX, |retries| retries.saturating_add(1))
    }

    /// How long to wait after attempt `attempts_made` (1-based: 1 is the first
    /// try) before the next one, or `None` when the schedule is exhausted and
    /// the delivery has failed.
    ///
    /// `retry_after` is the receiver's `Retry-After`, if any (see
    /// [`parse_retry_after`]). `jitter_sample` is a uniform random value in
    /// `[0, 1)`; 0.5 means no jitter, values outside the range are clamped and
    /// NaN counts as 0.5. With no attempt made yet the answer is zero: the
    /// first try is immediate.
    #[must_use]
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        jitter_sample: f64,
    ) -> Option<Duration> {
        let Some(index) = attempts_made.checked_sub(1) else {
            return Some(Duration::ZERO);
        };
        let scheduled = *self.delays.get(usize::try_from(index).ok()?)?;
        if let Some(requested) = retry_after {
            let shortest = self.delays.iter().min().copied().unwrap_or(scheduled);
            let longest = self.delays.iter().max().copied().unwrap_or(scheduled);
            return Some(requested.clamp(shortest, longest));
        }
        Some(self.apply_jitter(scheduled, jitter_sample))
    }

    fn apply_jitter(&self, delay: Duration, sample: f64) -> Duration {
        let sample = if sample.is_nan() {
            0.5
        } else {
            sample.clamp(0.0, 1.0)
        };
        let factor = 1.0 + self.jitter.0 * (2.0 * sample - 1.0);
        // The factor is within [0.5, 1.5] and the delay within 24 h, so the
        // conversion cannot fail; falling back to the unjittered delay keeps
        // that reasoning out of the panic path.
        Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(delay)
    }
}

/// Parses a `Retry-After` header value: delta-seconds (`120`) or an
/// IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date
/// in the past means "now" (zero); the date's weekday name is not cross-checked.
/// Returns `None` for anything else, including the obsolete RFC 850 and asctime
/// date forms, which no current server sends.
#[must_use]
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Only overflow can fail here; such a delay is "as long as possible",
        // and the schedule clamps it anyway.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = PrimitiveDateTime::parse(value, IMF_FIXDATE)
        .ok()?
        .assume_utc();
    let wait = date - now;
    if wait.is_negative() {
        Some(Duration::ZERO)
    } else {
        Duration::try_from(wait).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    #[test]
    fn default_schedule() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.delays(), [secs(5), secs(25), secs(120)]);
        assert_eq!(schedule.jitter(), Jitter::NONE);
        assert_eq!(schedule.max_attempts(), 4);
        assert_eq!(schedule.next_delay(1, None, 0.9), Some(secs(5)));
        assert_eq!(schedule.next_delay(2, None, 0.9), Some(secs(25)));
        assert_eq!(schedule.next_delay(3, None, 0.9), Some(secs(120)));
        assert_eq!(schedule.next_delay(4, None, 0.9), None);
        assert_eq!(schedule.next_delay(u32::MAX, None, 0.9), None);
        assert_eq!(schedule.next_delay(0, None, 0.9), Some(Duration::ZERO));
    }

    #[test]
    fn empty_schedule_means_one_attempt() {
        let schedule = RetrySchedule::new(vec![], Jitter::NONE).unwrap();
        assert_eq!(schedule.max_attempts(), 1);
        assert_eq!(schedule.next_delay(1, None, 0.5), None);
        assert_eq!(schedule.next_delay(1, Some(secs(3)), 0.5), None);
    }

    #[test]
    fn new_enforces_bounds() {
        assert!(RetrySchedule::new(vec![secs(1); MAX_RETRY_DELAYS], Jitter::NONE).is_ok());
        assert_eq!(
            RetrySchedule::new(vec![secs(1); MAX_RETRY_DELAYS + 1], Jitter::NONE),
            Err(RetryScheduleError::TooManyDelays { count: 21 })
        );
        assert!(RetrySchedule::new(vec![MAX_RETRY_DELAY], Jitter::NONE).is_ok());
        assert!(RetrySchedule::new(vec![Duration::from_nanos(1)], Jitter::NONE).is_ok());
        let too_long = MAX_RETRY_DELAY + Duration::from_nanos(1);
        let error = RetrySchedule::new(vec![secs(1), too_long], Jitter::NONE).unwrap_err();
        assert_eq!(
            error,
            RetryScheduleError::DelayTooLong {
                position: 2,
                delay: too_long
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("retry delay 2 is 86400.000000001s")
        );
        assert_eq!(
            RetrySchedule::new(vec![secs(1), secs(2), Duration::ZERO], Jitter::NONE),
            Err(RetryScheduleError::ZeroDelay { position: 3 })
        );
    }

    #[test]
    fn jitter_fraction_is_validated() {
        assert_eq!(Jitter::fraction(0.0).unwrap(), Jitter::NONE);
        assert_eq!(Jitter::fraction(0.5).unwrap().as_fraction(), 0.5);
        for bad in [-0.01, 0.51, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Jitter::fraction(bad),
                Err(RetryScheduleError::InvalidJitter { .. })
            ));
        }
        assert_eq!(
            Jitter::fraction(0.75).unwrap_err().to_string(),
            "jitter fraction 0.75 is invalid: it must be between 0.0 and 0.5"
        );
    }

    #[test]
    fn jitter_is_symmetric_around_the_scheduled_delay() {
        let schedule = RetrySchedule::new(vec![secs(100)], Jitter::fraction(0.2).unwrap()).unwrap();
        assert_eq!(schedule.next_delay(1, None, 0.0), Some(secs(80)));
        assert_eq!(schedule.next_delay(1, None, 0.5), Some(secs(100)));
        assert_eq!(schedule.next_delay(1, None, 0.75), Some(secs(110)));
        assert_eq!(schedule.next_delay(1, None, 1.0), Some(secs(120)));
        assert_eq!(schedule.next_delay(1, None, -3.0), Some(secs(80)));
        assert_eq!(schedule.next_delay(1, None, 7.0), Some(secs(120)));
        assert_eq!(schedule.next_delay(1, None, f64::NAN), Some(secs(100)));
    }

    #[test]
    fn retry_after_replaces_the_delay_within_the_schedule_bounds() {
        let schedule = RetrySchedule::new(
            vec![secs(10), secs(60), secs(30)],
            Jitter::fraction(0.5).unwrap(),
        )
        .unwrap();
        assert_eq!(schedule.next_delay(1, Some(secs(45)), 0.0), Some(secs(45)));
        assert_eq!(schedule.next_delay(1, Some(secs(1)), 0.0), Some(secs(10)));
        assert_eq!(
            schedule.next_delay(1, Some(Duration::ZERO), 0.0),
            Some(secs(10))
        );
        assert_eq!(
            schedule.next_delay(2, Some(secs(3600)), 0.0),
            Some(secs(60))
        );
        assert_eq!(
            schedule.next_delay(3, Some(Duration::MAX), 1.0),
            Some(secs(60))
        );
        assert_eq!(schedule.next_delay(4, Some(secs(20)), 0.0), None);
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = datetime!(2024-01-01 00:00 UTC);
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("007", now), Some(secs(7)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::MAX)
        );
        for bad in ["", " ", "-5", "+5", "1.5", "5s", "1e3", "12 13"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_dates() {
        let now = datetime!(2015-10-21 07:27:30 UTC);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 22 Oct 2015 07:27:30 GMT", now),
            Some(secs(86_400))
        );
        let with_fraction = datetime!(2015-10-21 07:27:59.25 UTC);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", with_fraction),
            Some(Duration::from_millis(750))
        );
        // The weekday name is redundant and not cross-checked: the date alone
        // is unambiguous, and falling back to the schedule over a server's
        // calendar slip would help no one.
        assert_eq!(
            parse_retry_after("Mon, 21 Oct 2015 07:28:00 GMT", now),
            Some(secs(30))
        );
        let other_offset = datetime!(2015-10-21 09:27:30 +02:00);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", other_offset),
            Some(secs(30))
        );
    }

    #[test]
    fn retry_after_refuses_other_date_forms() {
        let now = datetime!(2015-10-21 07:27:30 UTC);
        for bad in [
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed, 21 Oct 2015 07:28:00 +0000",
            "wed, 21 oct 2015 07:28:00 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 25:28:00 GMT",
            "2015-10-21T07:28:00Z",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn jittered_and_clamped_delays_stay_in_bounds(
            delay_millis in proptest::collection::vec(1u64..=86_400_000, 1..=MAX_RETRY_DELAYS),
            fraction in 0.0f64..=0.5,
            sample in 0.0f64..1.0,
            attempts_made in 1u32..=25,
            retry_after_millis in proptest::option::of(0u64..200_000_000),
        ) {
            let delays: Vec<Duration> =
                delay_millis.iter().copied().map(Duration::from_millis).collect();
            let jitter = Jitter::fraction(fraction).unwrap();
            let schedule = RetrySchedule::new(delays.clone(), jitter).unwrap();
            let retry_after = retry_after_millis.map(Duration::from_millis);
            let result = schedule.next_delay(attempts_made, retry_after, sample);
            let index = usize::try_from(attempts_made - 1).unwrap();
            match delays.get(index) {
                None => prop_assert_eq!(result, None),
                Some(&scheduled) => {
                    let result = result.unwrap();
                    let shortest = *delays.iter().min().unwrap();
                    let longest = *delays.iter().max().unwrap();
                    match retry_after {
                        Some(requested) => {
                            prop_assert!(result >= shortest && result <= longest);
                            prop_assert_eq!(result, requested.clamp(shortest, longest));
                        }
                        None => {
                            let spread = scheduled.as_secs_f64() * fraction;
                            let distance = (result.as_secs_f64() - scheduled.as_secs_f64()).abs();
                            prop_assert!(
                                distance <= spread + 1e-6,
                                "{result:?} vs {scheduled:?} ± {fraction}"
                            );
                        }
                    }
                }
            }
            prop_assert_eq!(schedule.max_attempts(), u32::try_from(delays.len()).unwrap() + 1);
        }

        #[test]
        fn parse_retry_after_never_panics(value in ".{0,40}") {
            let _ = parse_retry_after(&value, datetime!(2024-01-01 00:00 UTC));
        }
    }
}
