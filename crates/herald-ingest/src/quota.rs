//! Each tenant's events-accepted-per-second quota, kept per ingest replica
//! (the rule is herald-core's `quota`): a webhook over it is answered 429
//! with `Retry-After` (channels retry it), a Publish item `RESOURCE_EXHAUSTED`.
//! The rate and burst are the tenant's own where set (from the Watch-fed
//! cache, so a change applies to the next request), the flags' otherwise.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use herald_core::{
    id::TenantId,
    quota::{QuotaDecision, TenantQuotas, admit},
    rate::{Micros, RateLimit, RateLimitError},
};
use time::OffsetDateTime;

/// Tenants tracked before the ones with a full bucket are forgotten.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug)]
pub(crate) struct EventQuotas {
    /// The default rate; 0 means no quota for tenants without their own.
    per_second: f64,
    burst: u32,
    tats: Mutex<HashMap<TenantId, Micros>>,
}

impl EventQuotas {
    /// The defaults: `per_second` 0 means no quota.
    pub(crate) fn new(per_second: f64, burst: u32) -> Result<EventQuotas, RateLimitError> {
        if per_second != 0.0 {
            RateLimit::new(per_second, burst)?;
        }
        Ok(EventQuotas {
            per_second,
            burst,
            tats: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `count` events from the tenant's quota (`own`, over the
    /// defaults), or says how long to wait before they would fit.
    pub(crate) fn take(
        &self,
        tenant: &TenantId,
        own: &TenantQuotas,
        count: usize,
    ) -> Result<(), Duration> {
        // Both the defaults and the tenant's values were checked, so the
        // limit always builds.
        let Ok(Some(limit)) = own.events_limit(self.per_second, self.burst) else {
            return Ok(());
        };
        let now = now_micros();
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let mut tats = self.lock();
        let tat = tats.get(tenant).copied().unwrap_or_default();
        match admit(&limit, tat, now, count) {
            QuotaDecision::Accept { tat } => {
                if tats.len() > PRUNE_ABOVE {
                    tats.retain(|_, tat| *tat > now);
                }
                tats.insert(*tenant, tat);
                Ok(())
            }
            QuotaDecision::Refuse { retry_after } => Err(retry_after),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, Micros>> {
        // Every change is one insert or retain: consistent even after a
        // holder panicked.
        self.tats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now_micros() -> Micros {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    Micros::try_from(now).unwrap_or(Micros::MAX)
}

/// `Retry-After` in whole seconds, at least one.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}
