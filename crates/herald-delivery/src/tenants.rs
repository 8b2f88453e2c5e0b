//! Each tenant's share of a replica's delivery slots: its own
//! `max_in_flight_deliveries` quota when set (from the Watch-fed cache, so a
//! change applies to the next job), `--max-per-tenant` otherwise, always
//! within `--max-in-flight` (herald-core's `fairness::tenant_share`).

use std::sync::Arc;

use herald_core::fairness;
use herald_watch::ConfigCache;

use crate::limits::{EndpointLimits, EndpointSlot};

#[derive(Debug)]
pub(crate) struct TenantLimits {
    limits: Arc<EndpointLimits>,
    cache: ConfigCache,
    /// The replica's global slots, `--max-in-flight`.
    global: usize,
    /// The default share, `--max-per-tenant`.
    per_tenant: usize,
}

impl TenantLimits {
    pub(crate) fn new(cache: ConfigCache, global: usize, per_tenant: usize) -> TenantLimits {
        TenantLimits {
            limits: Arc::new(EndpointLimits::new(fairness::tenant_share(
                global, per_tenant,
            ))),
            cache,
            global,
            per_tenant,
        }
    }

    /// The tenant's share of the global slots now.
    pub(crate) fn share(&self, tenant: &str) -> usize {
        let own = self
            .cache
            .snapshot()
            .tenants
            .get(tenant)
            .and_then(|tenant| herald_proto::tenant_quotas(tenant).max_in_flight_deliveries())
            .and_then(|slots| usize::try_from(slots).ok());
        fairness::tenant_share(self.global, own.unwrap_or(self.per_tenant))
    }

    /// A claim on the tenant's slots, sized to its share now.
    pub(crate) fn slot(&self, tenant: &str) -> EndpointSlot {
        self.limits.slot_sized(tenant, self.share(tenant))
    }

    /// Jobs of the tenant holding or waiting for one of its slots now.
    pub(crate) fn queued(&self, tenant: &str) -> usize {
        self.limits.queued(tenant)
    }
}
