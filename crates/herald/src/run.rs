//! Start-up, wiring and shutdown of the services a command runs.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::Context;
use futures::FutureExt;
use herald_bus::{Bus, ConsumerRole};
use herald_config::{ConfigArgs, ConfigMetrics, ConfigState, Settings, secrets::MasterKey};
use herald_core::address::AllowList;
use herald_delivery::{DeliveryArgs, DeliveryMetrics, DeliverySettings};
use herald_fanout::{FanoutMetrics, Subscriptions};
use herald_ingest::{IngestArgs, IngestMetrics};
use herald_proto::v1::WatchedKind;
use herald_store::{Store, StoreOptions};
use herald_telemetry::{
    Readiness,
    ops::{self, OpsMetrics, OpsService},
    server::RequestMetrics,
};
use herald_watch::{ConfigCache, WatchConfig, WatchHandler};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    cli::{Command, CommonArgs},
    credentials::{self, Source},
    lag::{self, ConsumerLagMetrics},
};

/// How long a readiness probe waits for NATS or the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Which services a command runs, with their settings.
struct Plan {
    name: &'static str,
    common: CommonArgs,
    config: Option<(StoreOptions, ConfigArgs)>,
    /// Where the Watch stream comes from, for the services that follow it.
    watch: Option<WatchConfig>,
    fanout: bool,
    delivery: Option<DeliveryArgs>,
    ingest: Option<IngestArgs>,
}

impl Plan {
    fn new(command: Command) -> Plan {
        match command {
            Command::All(args) => {
                // In one process the config service is right here, and the
                // console's device setup points at this process's ingest.
                let config_url = format!("http://{}", local_address(args.config.config_addr));
                let mut config = args.config;
                config.public_ingest_url.get_or_insert_with(|| {
                    format!("http://{}", local_address(args.ingest.ingest_addr))
                });
                Plan {
                    name: "all",
                    common: args.common,
                    config: Some((args.database.store_options(), config)),
                    watch: Some(WatchConfig { config_url }),
                    fanout: true,
                    delivery: Some(args.delivery),
                    ingest: Some(args.ingest),
                }
            }
            Command::Config(args) => Plan {
                name: "config",
                common: args.common,
                config: Some((args.database.store_options(), args.config)),
                watch: None,
                fanout: false,
                delivery: None,
                ingest: None,
            },
            Command::Ingest(args) => Plan {
                name: "ingest",
                common: args.common,
                config: None,
                watch: Some(args.watch),
                fanout: false,
                delivery: None,
                ingest: Some(args.ingest),
            },
            Command::Fanout(args) => Plan {
                name: "fanout",
                common: args.common,
                config: None,
                watch: Some(args.watch),
                fanout: true,
                delivery: None,
                ingest: None,
            },
            Command::Delivery(args) => Plan {
                name: "delivery",
                common: args.common,
                config: None,
                watch: Some(args.watch),
                fanout: false,
                delivery: Some(args.delivery),
                ingest: None,
            },
        }
    }
}

impl Plan {
    /// The durable consumers this process reads from, whose lag it reports.
    fn consumer_roles(&self) -> Vec<ConsumerRole> {
        let mut roles = Vec::new();
        if self.fanout {
            roles.push(ConsumerRole::Fanout);
            roles.push(ConsumerRole::FanoutFifo);
        }
        if self.delivery.is_some() {
            roles.push(ConsumerRole::Delivery);
        }
        if self.config.is_some() {
            roles.push(ConsumerRole::AttemptWriter);
        }
        roles
    }
}

/// The address to reach a listener bound to `address` from this machine.
fn local_address(address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    }
}

/// Runs `command` until SIGINT or SIGTERM.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let mut plan = Plan::new(command);
    if let Some((_, config)) = &mut plan.config
        && let Some(url) = config.public_ingest_url.as_deref()
    {
        let checked = herald_console::public_ingest_url(url).with_context(|| {
            format!("invalid --public-ingest-url / HERALD_PUBLIC_INGEST_URL {url:?}: must be an http(s) URL without query or fragment")
        })?;
        config.public_ingest_url = Some(checked);
    }
    let common = &plan.common;
    common.validate()?;
    let allow_list = AllowList::parse(&common.allow_cidrs)
        .map_err(|error| anyhow::anyhow!("invalid --allow-cidrs / HERALD_ALLOW_CIDRS: {error}"))?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    // Metrics are registered before the ops listener takes the registry.
    let mut registry = Registry::default();
    let requests = RequestMetrics::register(&mut registry);
    let lag_metrics = ConsumerLagMetrics::register(&mut registry);
    let fanout_metrics = plan.fanout.then(|| FanoutMetrics::register(&mut registry));
    let ingest_metrics = plan
        .ingest
        .is_some()
        .then(|| IngestMetrics::register(&mut registry, requests.clone()));
    let delivery_metrics = plan
        .delivery
        .is_some()
        .then(|| DeliveryMetrics::register(&mut registry));
    let config_metrics = if plan.config.is_some() {
        ConfigMetrics::register(&mut registry)
    } else {
        ConfigMetrics::default()
    };
    let readiness = Readiness::new();
    start_ops(
        plan.name,
        common,
        registry,
        readiness.clone(),
        shutdown.clone(),
        &mut tasks,
    )
    .await?;

    let bus = Bus::connect(&common.bus, &format!("herald-{}", plan.name)).await?;
    bus.ensure_streams()
        .await
        .context("cannot set up the JetStream streams")?;
    info!(
        url = %common.bus.url,
        server_version = %bus.server_version(),
        namespace = %common.bus.namespace,
        "connected to NATS; streams are set up"
    );
    {
        let bus = bus.clone();
        readiness
            .add_check("nats", move || {
                let bus = bus.clone();
                async move {
                    bus.ping(PING_TIMEOUT)
                        .await
                        .map_err(|error| error.to_string())
                }
                .boxed()
            })
            .await;
    }

    // Ready only once every consumer has a pull standing: a replicated
    // consumer answers nothing until its leader is elected.
    for role in plan.consumer_roles() {
        let bus = bus.clone();
        readiness
            .add_check(format!("{} consumer", role.durable_name()), move || {
                let pulling = bus.is_pulling(role);
                async move {
                    if pulling {
                        Ok(())
                    } else {
                        Err("not pulling from JetStream yet".to_owned())
                    }
                }
                .boxed()
            })
            .await;
    }

    let (service_token, source) = credentials::resolve(
        common.service_token.as_deref(),
        &common.state_dir,
        "service.token",
        "service token",
        || credentials::generate_token("svc"),
    )?;
    log_credential("service token", &source);

    tokio::spawn(lag::sample(
        bus.clone(),
        plan.consumer_roles(),
        lag_metrics,
        shutdown.clone(),
    ));

    if let Some((store_options, args)) = &plan.config {
        start_config(
            store_options,
            args,
            common,
            ConfigContext {
                bus: &bus,
                service_token: &service_token,
                allow_list: &allow_list,
                readiness: &readiness,
                requests: &requests,
                metrics: config_metrics,
                shutdown: &shutdown,
            },
            &mut tasks,
        )
        .await?;
    }

    if let (Some(watch_config), Some(metrics)) = (&plan.watch, fanout_metrics) {
        let subscriptions = Subscriptions::new();
        let synced = follow_configuration(
            "fanout",
            watch_config,
            &service_token,
            vec![WatchedKind::Endpoint],
            subscriptions.handler(),
            &readiness,
            &shutdown,
            &mut tasks,
        )
        .await;
        let (bus, shutdown) = (bus.clone(), shutdown.clone());
        tasks.spawn(async move {
            herald_fanout::run(bus, subscriptions, synced, metrics, shutdown)
                .await
                .context("the fanout service failed")
        });
    }

    if let (Some(watch_config), Some(args), Some(metrics)) =
        (&plan.watch, &plan.delivery, delivery_metrics)
    {
        let cache = ConfigCache::new();
        let synced = follow_configuration(
            "delivery",
            watch_config,
            &service_token,
            vec![WatchedKind::Endpoint, WatchedKind::Tenant],
            cache.handler(),
            &readiness,
            &shutdown,
            &mut tasks,
        )
        .await;
        let settings = DeliverySettings {
            args: args.clone(),
            allow_list: allow_list.clone(),
        };
        let (bus, shutdown) = (bus.clone(), shutdown.clone());
        tasks.spawn(async move {
            herald_delivery::run(bus, cache, synced, settings, metrics, shutdown)
                .await
                .context("the delivery service failed")
        });
    }

    if let (Some(watch_config), Some(args), Some(metrics)) =
        (&plan.watch, &plan.ingest, ingest_metrics)
    {
        let listener = TcpListener::bind(args.ingest_addr).await.with_context(|| {
            format!(
                "cannot listen on {} (--ingest-addr / HERALD_INGEST_ADDR)",
                args.ingest_addr
            )
        })?;
        info!(
            "ingest listening on http://{} (channel webhooks under /inbound/, gRPC Publish)",
            args.ingest_addr
        );
        let cache = ConfigCache::new();
        let synced = follow_configuration(
            "ingest",
            watch_config,
            &service_token,
            vec![
                WatchedKind::Device,
                WatchedKind::Token,
                WatchedKind::EventType,
                WatchedKind::Tenant,
            ],
            cache.handler(),
            &readiness,
            &shutdown,
            &mut tasks,
        )
        .await;
        let (bus, args, shutdown) = (bus.clone(), args.clone(), shutdown.clone());
        tasks.spawn(async move {
            herald_ingest::run(listener, bus, cache, synced, args, metrics, shutdown)
                .await
                .context("the ingest service failed")
        });
    }

    readiness.mark_started().await;
    info!(service = plan.name, "herald is running; Ctrl-C stops it");

    // The first task to end (all of them on shutdown, or one failing) ends
    // the process: a half-running Herald should restart, not limp on.
    let outcome = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        Some(joined) = tasks.join_next() => joined.context("a service task panicked").and_then(|result| result),
    };
    shutdown.cancel();
    info!("shutting down");
    while let Some(joined) = tasks.join_next().await {
        joined.context("a service task panicked")??;
    }
    outcome
}

/// What every in-process service shares.
struct ConfigContext<'a> {
    bus: &'a Bus,
    service_token: &'a str,
    allow_list: &'a AllowList,
    readiness: &'a Readiness,
    requests: &'a RequestMetrics,
    metrics: ConfigMetrics,
    shutdown: &'a CancellationToken,
}

async fn start_config(
    store_options: &StoreOptions,
    args: &ConfigArgs,
    common: &CommonArgs,
    context: ConfigContext<'_>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let store = Store::connect_with(store_options).await?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    info!(
        backend = store.backend_name(),
        url = %herald_store::redact_password(&store_options.url),
        schema = store_options.schema.as_deref().unwrap_or("(default)"),
        "connected to the database; migrations are applied"
    );
    {
        let store = store.clone();
        context
            .readiness
            .add_check("database", move || {
                let store = store.clone();
                async move {
                    store
                        .ping(PING_TIMEOUT)
                        .await
                        .map_err(|error| error.to_string())
                }
                .boxed()
            })
            .await;
    }
    let settings = config_settings(
        args,
        &common.state_dir,
        context.service_token.to_owned(),
        context.allow_list.clone(),
        context.metrics,
    )?;
    let public_ingest_url = args.public_ingest_url.clone();
    let listener = TcpListener::bind(args.config_addr).await.with_context(|| {
        format!(
            "cannot listen on {} (--config-addr / HERALD_CONFIG_ADDR)",
            args.config_addr
        )
    })?;
    info!(
        "config API listening on http://{} (gRPC, the JSON API under /api/v1, the console under /console)",
        args.config_addr
    );
    let state = ConfigState::new(store, context.bus.clone(), settings);
    let (requests, shutdown) = (context.requests.clone(), context.shutdown.clone());
    let backend = herald_api::Backend::new(state.clone(), shutdown.clone())
        .with_public_ingest_url(public_ingest_url.as_deref());
    let http = herald_api::router(backend.clone())
        .merge(herald_console::router(
            backend,
            state.key().clone(),
            public_ingest_url,
        ))
        .layer(requests.http_layer());
    tasks.spawn(async move {
        herald_config::run_with_http(listener, state, requests, http.into(), shutdown)
            .await
            .context("the config service failed")
    });
    Ok(())
}

/// Keeps `handler` fed from the Watch stream, and makes the process ready
/// only while it holds a complete configuration.
#[allow(clippy::too_many_arguments)]
async fn follow_configuration(
    service: &'static str,
    watch_config: &WatchConfig,
    service_token: &str,
    kinds: Vec<WatchedKind>,
    handler: impl WatchHandler,
    readiness: &Readiness,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<anyhow::Result<()>>,
) -> watch::Receiver<bool> {
    let (synced_sender, synced) = watch::channel(false);
    let check_synced = synced.clone();
    let url = watch_config.config_url.clone();
    readiness
        .add_check(format!("{service} configuration"), move || {
            let synced = *check_synced.borrow();
            let url = url.clone();
            async move {
                if synced {
                    Ok(())
                } else {
                    Err(format!("waiting for the configuration from {url}"))
                }
            }
            .boxed()
        })
        .await;
    let (watch_config, service_token, shutdown) = (
        watch_config.clone(),
        service_token.to_owned(),
        shutdown.clone(),
    );
    tasks.spawn(async move {
        herald_watch::run(
            watch_config,
            service_token,
            kinds,
            handler,
            synced_sender,
            shutdown,
        )
        .await
        .context("cannot follow the configuration")
    });
    synced
}

fn config_settings(
    args: &ConfigArgs,
    state_dir: &Path,
    service_token: String,
    allow_list: AllowList,
    metrics: ConfigMetrics,
) -> anyhow::Result<Settings> {
    let (admin_token, source) = credentials::resolve(
        args.admin_token.as_deref(),
        state_dir,
        "admin.token",
        "admin token",
        || credentials::generate_token("admin"),
    )?;
    log_credential("admin token", &source);
    let (master_key, source) = credentials::resolve(
        args.master_key.as_deref(),
        state_dir,
        "master.key",
        "master key",
        || MasterKey::generate_base64().map_err(anyhow::Error::from),
    )?;
    log_credential("master key", &source);
    let master_key = MasterKey::from_base64(&master_key)
        .map_err(|error| anyhow::anyhow!("invalid --master-key / HERALD_MASTER_KEY: {error}"))?;
    Ok(Settings {
        admin_token,
        service_token,
        master_key,
        allow_list,
        attempt_retention: args.attempt_retention,
        sweep_interval: args.retention_sweep_interval,
        auto_disable_after: Some(args.auto_disable_after).filter(|after| !after.is_zero()),
        secret_overlap: args.secret_overlap,
        test_timeout: args.test_timeout,
        change_retention: args.change_retention,
        max_dead_letters: args.max_dead_letters,
        metrics,
        trusted_proxies: args
            .trusted_proxies
            .iter()
            .map(|cidr| cidr.trim())
            .filter(|cidr| !cidr.is_empty())
            .map(|cidr| {
                cidr.parse::<ipnet::IpNet>()
                    .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "invalid --trusted-proxies / HERALD_TRUSTED_PROXIES: {cidr:?} is not an address or CIDR"
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?,
    })
}

fn log_credential(what: &str, source: &Source) {
    match source {
        Source::Configured => info!("{what}: from configuration"),
        Source::File(path) => info!("{what}: read from {}", path.display()),
        Source::Generated(path) => info!(
            "{what}: generated into {} (configure it explicitly in production)",
            path.display()
        ),
    }
}

async fn start_ops(
    name: &str,
    common: &CommonArgs,
    mut registry: Registry,
    readiness: Readiness,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(common.ops_addr).await.with_context(|| {
        format!(
            "cannot listen on {} (--ops-addr / HERALD_OPS_ADDR)",
            common.ops_addr
        )
    })?;
    let address = listener
        .local_addr()
        .context("cannot read the ops listener's address")?;
    let metrics = OpsMetrics::register(&mut registry, name);
    info!(
        "ops listening on http://{address} (/healthz, /readyz, /metrics, gRPC health and reflection)"
    );
    let service = OpsService {
        readiness,
        registry,
        metrics,
        grpc_service_names: Vec::new(),
    };
    tasks.spawn(async move {
        ops::serve(listener, service, shutdown)
            .await
            .context("the ops listener failed")
    });
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                futures::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = futures::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    shutdown.cancel();
}
