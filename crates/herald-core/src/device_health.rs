//! A device's inbound health: when its channel last called, how many events
//! it brought in the last day and how many calls were refused for failing
//! verification, with the last refusal's reason. It is what tells a user at
//! once that the secret they pasted on the channel's side is wrong.
//!
//! Every ingest replica counts what it saw since its last flush (a delta)
//! and merges it into the shared record; merging adds the hour counts and
//! keeps the later timestamps, so deltas merge in any order and from any
//! number of replicas to the same result. Counts are kept per hour for the
//! last [`WINDOW_HOURS`] hours, so "the last 24 hours" means the current hour
//! and the 23 whole hours before it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Hours of counts kept and summed.
pub const WINDOW_HOURS: i64 = 24;
/// Longest refusal reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 200;

const SECONDS_PER_HOUR: i64 = 3600;

/// One device's record (or one replica's delta of it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    /// Unix seconds of the last call that reached the device's route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_webhook_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_refusal: Option<Refusal>,
    /// Ascending by hour, within the window of the newest hour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hours: Vec<HourCounts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Refusal {
    at: i64,
    reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct HourCounts {
    /// Unix hours (seconds / 3600).
    hour: i64,
    #[serde(default)]
    events: u64,
    #[serde(default)]
    refusals: u64,
}

/// What the API shows of a record at a given moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthSummary {
    pub last_webhook_at: Option<OffsetDateTime>,
    pub events_24h: u64,
    pub verification_failures_24h: u64,
    /// When the last verification failure happened and why.
    pub last_refusal: Option<(OffsetDateTime, String)>,
}

impl DeviceHealth {
    /// Whether nothing was recorded (a delta not worth flushing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last_webhook_at.is_none() && self.last_refusal.is_none() && self.hours.is_empty()
    }

    /// A call reached the device's route (whatever its outcome).
    pub fn webhook(&mut self, at: OffsetDateTime) {
        let at = at.unix_timestamp();
        self.last_webhook_at = Some(self.last_webhook_at.map_or(at, |last| last.max(at)));
    }

    /// `events` events from one call were accepted.
    pub fn accepted(&mut self, at: OffsetDateTime, events: u64) {
        self.add_hour(HourCounts {
            hour: unix_hour(at.unix_timestamp()),
            events,
            refusals: 0,
        });
    }

    /// A call was refused because it failed the channel's verification.
    pub fn refused(&mut self, at: OffsetDateTime, reason: &str) {
        let at = at.unix_timestamp();
        self.add_hour(HourCounts {
            hour: unix_hour(at),
            events: 0,
            refusals: 1,
        });
        self.keep_refusal(Refusal {
            at,
            reason: reason.chars().take(MAX_REASON_CHARS).collect(),
        });
    }

    /// Adds `other` (a delta, or another record) into this record.
    pub fn merge(&mut self, other: &DeviceHealth) {
        if let Some(at) = other.last_webhook_at {
            self.last_webhook_at = Some(self.last_webhook_at.map_or(at, |last| last.max(at)));
        }
        if let Some(refusal) = &other.last_refusal {
            self.keep_refusal(refusal.clone());
        }
        for counts in &other.hours {
            self.add_hour(*counts);
        }
    }

    /// The record as of `now`.
    #[must_use]
    pub fn summary(&self, now: OffsetDateTime) -> HealthSummary {
        let first_hour = unix_hour(now.unix_timestamp()).saturating_sub(WINDOW_HOURS - 1);
        let recent = self.hours.iter().filter(|counts| counts.hour >= first_hour);
        let (events_24h, verification_failures_24h) =
            recent.fold((0_u64, 0_u64), |(events, refusals), counts| {
                (
                    events.saturating_add(counts.events),
                    refusals.saturating_add(counts.refusals),
                )
            });
        HealthSummary {
            last_webhook_at: self.last_webhook_at.and_then(from_unix),
            events_24h,
            verification_failures_24h,
            last_refusal: self
                .last_refusal
                .as_ref()
                .and_then(|refusal| Some((from_unix(refusal.at)?, refusal.reason.clone()))),
        }
    }

    fn keep_refusal(&mut self, refusal: Refusal) {
        // The later one wins; on a tie the reason decides, so that merging
        // in any order gives the same record.
        let newer = match &self.last_refusal {
            None => true,
            Some(kept) => (refusal.at, &refusal.reason) > (kept.at, &kept.reason),
        };
        if newer {
            self.last_refusal = Some(refusal);
        }
    }

    fn add_hour(&mut self, counts: HourCounts) {
        match self
            .hours
            .binary_search_by_key(&counts.hour, |kept| kept.hour)
        {
            Ok(index) => {
                let kept = &mut self.hours[index];
                kept.events = kept.events.saturating_add(counts.events);
                kept.refusals = kept.refusals.saturating_add(counts.refusals);
            }
            Err(index) => self.hours.insert(index, counts),
        }
        if let Some(newest) = self.hours.last().map(|kept| kept.hour) {
            let first_kept = newest.saturating_sub(WINDOW_HOURS - 1);
            self.hours.retain(|kept| kept.hour >= first_kept);
        }
    }
}

fn unix_hour(seconds: i64) -> i64 {
    seconds.div_euclid(SECONDS_PER_HOUR)
}

fn from_unix(seconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    const NOON: i64 = 1_764_072_000;

    #[test]
    fn a_summary_counts_the_last_24_hours_only() {
        let mut health = DeviceHealth::default();
        health.accepted(at(NOON - 30 * 3600), 7);
        health.accepted(at(NOON - 2 * 3600), 3);
        health.accepted(at(NOON), 2);
        health.refused(at(NOON - 60), "X-Hub-Signature-256 does not match the body");
        health.webhook(at(NOON));
        let summary = health.summary(at(NOON + 10));
        assert_eq!(summary.events_24h, 5);
        assert_eq!(summary.verification_failures_24h, 1);
        assert_eq!(summary.last_webhook_at, Some(at(NOON)));
        assert_eq!(
            summary.last_refusal,
            Some((
                at(NOON - 60),
                "X-Hub-Signature-256 does not match the body".to_owned()
            ))
        );
        assert_eq!(health.summary(at(NOON + 25 * 3600)).events_24h, 0);
    }

    #[test]
    fn old_hours_are_dropped_as_new_ones_arrive() {
        let mut health = DeviceHealth::default();
        for hour in 0..100 {
            health.accepted(at(NOON + hour * 3600), 1);
        }
        assert_eq!(health.hours.len(), 24);
        assert_eq!(health.summary(at(NOON + 99 * 3600)).events_24h, 24);
    }

    #[test]
    fn long_reasons_are_cut() {
        let mut health = DeviceHealth::default();
        health.refused(at(NOON), &"x".repeat(1000));
        let (_, reason) = health.summary(at(NOON)).last_refusal.unwrap();
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
    }

    #[test]
    fn a_record_survives_its_json_form() {
        let mut health = DeviceHealth::default();
        health.webhook(at(NOON));
        health.accepted(at(NOON), 4);
        health.refused(at(NOON), "bad secret token");
        let json = serde_json::to_vec(&health).unwrap();
        assert_eq!(
            serde_json::from_slice::<DeviceHealth>(&json).unwrap(),
            health
        );
        assert!(
            serde_json::from_slice::<DeviceHealth>(b"{}")
                .unwrap()
                .is_empty()
        );
    }

    fn delta() -> impl Strategy<Value = DeviceHealth> {
        let step = (
            0_i64..48 * 3600,
            0_u64..5,
            proptest::bool::ANY,
            "[a-c]{0,3}",
        );
        proptest::collection::vec(step, 0..8).prop_map(|steps| {
            let mut health = DeviceHealth::default();
            for (offset, events, refused, reason) in steps {
                let moment = at(NOON + offset);
                health.webhook(moment);
                health.accepted(moment, events);
                if refused {
                    health.refused(moment, &reason);
                }
            }
            health
        })
    }

    proptest! {
        #[test]
        fn merging_deltas_in_any_order_gives_one_record(deltas in proptest::collection::vec(delta(), 0..5)) {
            let mut forward = DeviceHealth::default();
            for delta in &deltas {
                forward.merge(delta);
            }
            let mut backward = DeviceHealth::default();
            for delta in deltas.iter().rev() {
                backward.merge(delta);
            }
            let now = at(NOON + 48 * 3600);
            prop_assert_eq!(forward.summary(now), backward.summary(now));
            prop_assert_eq!(forward.last_webhook_at, backward.last_webhook_at);
            prop_assert_eq!(forward.last_refusal, backward.last_refusal);
        }
    }
}
