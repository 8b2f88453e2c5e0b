//! The config service in process, on a real database and a real
//! nats-server, and the builders tests create their tenants, tokens and
//! endpoints with.

use std::{net::SocketAddr, path::Path, time::Duration};

use herald_bus::{Bus, BusConfig};
use herald_config::{ConfigState, Settings, secrets::MasterKey};
use herald_core::address::AllowList;
use herald_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    attempt_service_client::AttemptServiceClient, config_service_client::ConfigServiceClient,
    recovery_service_client::RecoveryServiceClient, watch_service_client::WatchServiceClient,
};
use herald_store::{Store, StoreOptions};
use herald_testkit::NatsServer;
use herald_watch::{ConfigCache, WatchConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::authed;

/// The admin token of every [`ConfigStack`].
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The service token of every [`ConfigStack`] (Watch, attempt records).
pub const SERVICE_TOKEN: &str = "test-service-token";

/// The database a [`ConfigStack`] stores its configuration in.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh schema in the PostgreSQL test database.
    Postgres,
}

impl Backend {
    /// A fresh database of this kind; a SQLite file lives in `dir`.
    pub fn store_options(self, dir: &Path) -> StoreOptions {
        match self {
            Backend::Sqlite => StoreOptions {
                url: format!("sqlite:{}", dir.join("herald.db").display()),
                schema: None,
            },
            Backend::Postgres => StoreOptions {
                url: herald_testkit::postgres_url(),
                schema: Some(herald_testkit::fresh_postgres_schema()),
            },
        }
    }
}

/// The config service, served in process on a free port with its own
/// nats-server (streams created) and database (migrated); stopped when
/// dropped.
#[derive(Debug)]
pub struct ConfigStack {
    pub addr: SocketAddr,
    /// A connected channel to the service.
    pub channel: Channel,
    pub store: Store,
    pub bus: Bus,
    /// The service's state, for what a test drives directly (a sweep).
    pub state: ConfigState,
    pub nats: NatsServer,
    /// Cancelled on drop; services a test starts beside the config
    /// service (Watch caches, delivery, ingest) stop with it.
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for ConfigStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl ConfigStack {
    pub async fn start(backend: Backend) -> ConfigStack {
        let dir = tempfile::tempdir().unwrap();
        let options = backend.store_options(dir.path());
        Self::start_in(dir, &options).await
    }

    /// On the database `options` names, for a test that reaches it another
    /// way (through a proxy it can cut).
    pub async fn start_on(options: &StoreOptions) -> ConfigStack {
        Self::start_in(tempfile::tempdir().unwrap(), options).await
    }

    async fn start_in(dir: tempfile::TempDir, options: &StoreOptions) -> ConfigStack {
        let nats = NatsServer::start();
        let store = Store::connect_with(options).await.unwrap();
        store.migrate().await.unwrap();
        let bus = Bus::connect(&BusConfig::for_url(nats.url()), "test")
            .await
            .unwrap();
        bus.ensure_streams().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let state = ConfigState::new(store.clone(), bus.clone(), settings());
        tokio::spawn(herald_config::run(
            listener,
            state.clone(),
            herald_telemetry::server::RequestMetrics::default(),
            shutdown.clone(),
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        ConfigStack {
            addr,
            channel,
            store,
            bus,
            state,
            nats,
            shutdown,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    pub fn config(&self) -> ConfigServiceClient<Channel> {
        ConfigServiceClient::new(self.channel.clone())
    }

    pub fn attempts(&self) -> AttemptServiceClient<Channel> {
        AttemptServiceClient::new(self.channel.clone())
    }

    pub fn recovery(&self) -> RecoveryServiceClient<Channel> {
        RecoveryServiceClient::new(self.channel.clone())
    }

    pub fn watch(&self) -> WatchServiceClient<Channel> {
        WatchServiceClient::new(self.channel.clone())
    }

    /// A configuration cache fed by the Watch stream, as the services keep
    /// one (of `kinds`; every kind when empty), and whether it has applied a
    /// complete configuration. It follows the stream until the stack stops.
    pub fn watch_cache(&self, kinds: Vec<pb::WatchedKind>) -> (ConfigCache, watch::Receiver<bool>) {
        let cache = ConfigCache::new();
        let (synced_sender, synced) = watch::channel(false);
        tokio::spawn(herald_watch::run(
            WatchConfig {
                config_url: self.url(),
            },
            SERVICE_TOKEN.to_owned(),
            kinds,
            cache.handler(),
            synced_sender,
            self.shutdown.clone(),
        ));
        (cache, synced)
    }

    /// A new tenant named `name` and a tenant-scoped token for it.
    pub async fn tenant(&self, name: &str) -> Tenant {
        create_tenant(&self.channel, ADMIN_TOKEN, name).await
    }

    /// A new token of `scope` for the tenant.
    pub async fn token(&self, tenant_id: &str, scope: pb::TokenScope) -> String {
        create_token(&self.channel, ADMIN_TOKEN, tenant_id, scope).await
    }

    pub async fn create_endpoint(
        &self,
        tenant: &Tenant,
        spec: pb::EndpointSpec,
    ) -> Result<pb::CreateEndpointResponse, tonic::Status> {
        self.config()
            .create_endpoint(authed(
                &tenant.token,
                pb::CreateEndpointRequest {
                    spec: Some(spec),
                    secret: String::new(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// How many endpoints the tenant has, over every page.
    pub async fn endpoint_count(&self, tenant: &Tenant) -> usize {
        let mut count = 0;
        let mut page_token = String::new();
        loop {
            let page = self
                .config()
                .list_endpoints(authed(
                    &tenant.token,
                    pb::ListEndpointsRequest {
                        page_size: 500,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            count += page.endpoints.len();
            if page.next_page_token.is_empty() {
                return count;
            }
            page_token = page.next_page_token;
        }
    }
}

/// The settings of every [`ConfigStack`]: loopback receivers allowed, a
/// fresh master key, and sweeps too rare to run during a test.
fn settings() -> Settings {
    Settings {
        admin_token: ADMIN_TOKEN.to_owned(),
        service_token: SERVICE_TOKEN.to_owned(),
        master_key: MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap(),
        allow_list: AllowList::parse("127.0.0.0/8").unwrap(),
        attempt_retention: Duration::from_secs(30 * 24 * 3600),
        sweep_interval: Duration::from_secs(3600),
        auto_disable_after: None,
        secret_overlap: Duration::from_secs(24 * 3600),
        test_timeout: Duration::from_secs(10),
        change_retention: Duration::from_secs(7 * 24 * 3600),
        trusted_proxies: Vec::new(),
        max_dead_letters: 100_000,
        metrics: herald_config::ConfigMetrics::default(),
    }
}

/// A tenant and a tenant-scoped token of it.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub token: String,
}

/// Creates tenant `name` and a tenant-scoped token for it through the admin
/// API of the config service behind `channel`.
pub async fn create_tenant(channel: &Channel, admin_token: &str, name: &str) -> Tenant {
    let tenant = AdminServiceClient::new(channel.clone())
        .create_tenant(authed(
            admin_token,
            pb::CreateTenantRequest { name: name.into() },
        ))
        .await
        .unwrap()
        .into_inner();
    let token = create_token(channel, admin_token, &tenant.id, pb::TokenScope::Tenant).await;
    Tenant {
        id: tenant.id,
        token,
    }
}

/// A new token of `scope` for tenant `tenant_id`, without expiry.
pub async fn create_token(
    channel: &Channel,
    admin_token: &str,
    tenant_id: &str,
    scope: pb::TokenScope,
) -> String {
    AdminServiceClient::new(channel.clone())
        .create_token(authed(
            admin_token,
            pb::CreateTokenRequest {
                tenant_id: tenant_id.to_owned(),
                name: "test".into(),
                scope: scope.into(),
                ttl: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret
}

/// An endpoint named `name` at `url` receiving every event, with the
/// service's defaults for everything else.
pub fn endpoint_spec(name: &str, url: &str) -> pb::EndpointSpec {
    pb::EndpointSpec {
        name: name.into(),
        url: url.into(),
        ..Default::default()
    }
}
