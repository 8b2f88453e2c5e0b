//! What every handler shares.

use std::{sync::Arc, time::Duration};

use herald_bus::{Bus, DeviceHealthBook, async_nats::jetstream::kv};
use herald_core::{
    address::AllowList,
    circuit::{Circuit, CircuitState},
};
use herald_proto::v1::{Device, Endpoint};
use herald_store::Store;
use time::OffsetDateTime;
use tokio::sync::{Notify, OnceCell};

use crate::{
    auth::Authenticator, convert, endpoint::TenantCatalog, error::ApiResult,
    metrics::ConfigMetrics, secrets::MasterKey,
};

/// How long a read of devices or endpoints waits for each part of their
/// health.
const HEALTH_WAIT: Duration = Duration::from_secs(1);

/// Runs `read`, of information beside the configuration (health), for at
/// most [`HEALTH_WAIT`]; whether it completed. A failure or a timeout is
/// logged naming `what`, and the caller answers without it.
async fn read_beside<E: std::fmt::Display>(
    what: &str,
    read: impl Future<Output = Result<(), E>>,
) -> bool {
    match tokio::time::timeout(HEALTH_WAIT, read).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, what, "cannot read it; answering without it");
            false
        }
        Err(_) => {
            tracing::warn!(what, "not read in time; answering without it");
            false
        }
    }
}

/// The config service's resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Creates tenants and their tokens.
    pub admin_token: String,
    /// What Herald's own services present to call `Watch`.
    pub service_token: String,
    /// Encrypts secrets at rest.
    pub master_key: MasterKey,
    /// Addresses endpoints may use despite the SSRF rules (and over plain HTTP).
    pub allow_list: AllowList,
    /// Attempts older than this are deleted.
    pub attempt_retention: Duration,
    /// How often retention (and auto-disable) is enforced.
    pub sweep_interval: Duration,
    /// An endpoint that has failed without a single success this long is
    /// paused; `None` never pauses.
    pub auto_disable_after: Option<Duration>,
    /// How long a rotated-out secret stays valid by default.
    pub secret_overlap: Duration,
    /// How long `TestEndpoint` waits for the delivery service by default.
    pub test_timeout: Duration,
    /// Change-log entries older than this are pruned; a watcher further
    /// behind gets a fresh snapshot.
    pub change_retention: Duration,
    /// Reverse proxies (the ingress controller) whose `X-Forwarded-For`
    /// names the client that failed authentication; empty trusts none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Dead letters a tenant keeps unless its own quota says otherwise;
    /// the sweep purges the oldest beyond it. 0 keeps them all.
    pub max_dead_letters: u64,
    pub metrics: ConfigMetrics,
}

#[derive(Clone, Debug)]
pub struct ConfigState {
    pub store: Store,
    pub bus: Bus,
    pub auth: Authenticator,
    pub settings: Arc<Settings>,
    /// Woken after every committed configuration change, so Watch streams
    /// served by this replica see it at once (others poll).
    pub changed: Arc<Notify>,
    /// Opened on first use: reading devices must work while the bus is
    /// still electing the bucket's leader.
    device_health: Arc<OnceCell<DeviceHealthBook>>,
    /// Delivery's shared circuits, read for endpoints' health.
    circuits: Arc<OnceCell<kv::Store>>,
}

impl ConfigState {
    pub fn new(store: Store, bus: Bus, settings: Settings) -> ConfigState {
        let auth = Authenticator::new(
            settings.admin_token.clone(),
            settings.service_token.clone(),
            store.clone(),
        );
        let auth = auth.trusting_proxies(settings.trusted_proxies.clone());
        ConfigState {
            store,
            bus,
            auth,
            settings: Arc::new(settings),
            changed: Arc::new(Notify::new()),
            device_health: Arc::new(OnceCell::new()),
            circuits: Arc::new(OnceCell::new()),
        }
    }

    /// Fills in each endpoint's health: its attempts' figures from the log
    /// in one query, and the circuit of each endpoint that failed lately
    /// (a closed circuit is not stored). Health is information beside the
    /// configuration: what cannot be read within [`HEALTH_WAIT`] is
    /// left out, and the endpoints are answered without it.
    pub async fn with_endpoint_health(&self, tenant_id: &str, endpoints: &mut [Endpoint]) {
        let ids: Vec<String> = endpoints
            .iter()
            .map(|endpoint| endpoint.id.clone())
            .collect();
        let now = OffsetDateTime::now_utc();
        let read = async {
            let activity = self
                .store
                .endpoint_activity(tenant_id, &ids, now - time::Duration::DAY)
                .await?;
            for endpoint in endpoints.iter_mut() {
                if let Some(activity) = activity.get(&endpoint.id) {
                    endpoint.health = Some(convert::endpoint_health(activity));
                }
            }
            Ok::<_, herald_store::StoreError>(())
        };
        if !read_beside("endpoints' activity", read).await {
            return;
        }
        let circuits = async {
            let bucket = self
                .circuits
                .get_or_try_init(|| self.bus.circuits())
                .await?;
            let failing: Vec<&mut Endpoint> = endpoints
                .iter_mut()
                .filter(|endpoint| {
                    endpoint
                        .health
                        .as_ref()
                        .is_some_and(|health| health.consecutive_failures > 0)
                })
                .collect();
            let states = futures::future::join_all(
                failing
                    .iter()
                    .map(|endpoint| bucket.get(endpoint.id.as_str())),
            )
            .await;
            for (endpoint, state) in failing.into_iter().zip(states) {
                let state = state
                    .map_err(|error| herald_bus::BusError::Unavailable(error.to_string()))?
                    .and_then(|value| Circuit::decode(&value))
                    .map_or(CircuitState::Closed, |circuit| circuit.state());
                if let Some(health) = endpoint.health.as_mut() {
                    health.set_circuit(convert::circuit_state(state));
                }
            }
            Ok::<_, herald_bus::BusError>(())
        };
        read_beside("circuits", circuits).await;
    }

    /// Fills in each device's inbound health from the shared records. The
    /// records are information beside the configuration: one that cannot be
    /// read within [`HEALTH_WAIT`] is left out, and the devices are
    /// answered without it.
    pub async fn with_health(&self, devices: &mut [Device]) {
        let read = async {
            let book = self
                .device_health
                .get_or_try_init(|| self.bus.device_health())
                .await?;
            let now = OffsetDateTime::now_utc();
            let records =
                futures::future::join_all(devices.iter().map(|device| book.get(&device.id))).await;
            for (device, record) in devices.iter_mut().zip(records) {
                device.health = record?.map(|health| (&health.summary(now)).into());
            }
            Ok::<_, herald_bus::BusError>(())
        };
        read_beside("device health", read).await;
    }

    pub fn key(&self) -> &MasterKey {
        &self.settings.master_key
    }

    pub fn notify_changed(&self) {
        self.changed.notify_waiters();
    }

    pub fn catalog<'a>(&'a self, tenant_id: &'a str) -> StoreCatalog<'a> {
        StoreCatalog {
            store: &self.store,
            tenant_id,
        }
    }
}

/// The tenant's devices and custom types, as endpoint validation sees them.
#[derive(Debug)]
pub struct StoreCatalog<'a> {
    store: &'a Store,
    tenant_id: &'a str,
}

impl TenantCatalog for StoreCatalog<'_> {
    async fn missing_devices(&self, ids: &[String]) -> ApiResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.missing_devices(self.tenant_id, ids).await?)
    }

    async fn is_registered_type(&self, name: &str) -> ApiResult<bool> {
        Ok(self
            .store
            .get_event_type(self.tenant_id, name)
            .await?
            .is_some())
    }
}
