//! What the config service counts. Labels are bounded on purpose: no
//! tenant ids, which would make one series per customer.

use prometheus_client::{metrics::counter::Counter, registry::Registry};

/// The config service's metrics; clones share the same series. The default
/// is unregistered (counted, never exported).
#[derive(Clone, Debug, Default)]
pub struct ConfigMetrics {
    dead_letters_purged: Counter,
}

impl ConfigMetrics {
    pub fn register(registry: &mut Registry) -> ConfigMetrics {
        let metrics = ConfigMetrics::default();
        registry.register(
            "herald_dead_letters_purged_over_quota",
            "Dead letters purged, oldest first, because their tenant kept more than its max_dead_letters quota",
            metrics.dead_letters_purged.clone(),
        );
        metrics
    }

    pub(crate) fn dead_letters_purged(&self, purged: u64) {
        self.dead_letters_purged.inc_by(purged);
    }

    /// Dead letters purged over quota since start.
    pub fn dead_letters_purged_total(&self) -> u64 {
        self.dead_letters_purged.get()
    }
}
