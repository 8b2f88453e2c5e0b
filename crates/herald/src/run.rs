//! Start-up, wiring and shutdown of the services a command runs.

use std::{path::Path, time::Duration};

use anyhow::Context;
use futures::FutureExt;
use herald_bus::Bus;
use herald_config::{ConfigArgs, ConfigState, Settings, secrets::MasterKey};
use herald_core::address::AllowList;
use herald_store::{Store, StoreOptions};
use herald_telemetry::{
    Readiness,
    ops::{self, OpsMetrics, OpsService},
};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    cli::{Command, CommonArgs},
    credentials::{self, Source},
};

/// How long a readiness probe waits for NATS or the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What a command runs besides the bus connection every service has.
struct Services {
    name: &'static str,
    common: CommonArgs,
    config: Option<(StoreOptions, ConfigArgs)>,
}

/// Runs `command` until SIGINT or SIGTERM.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let services = match command {
        Command::All(args) => Services {
            name: "all",
            common: args.common,
            config: Some((args.database.store_options(), args.config)),
        },
        Command::Config(args) => Services {
            name: "config",
            common: args.common,
            config: Some((args.database.store_options(), args.config)),
        },
        Command::Ingest(common) => Services {
            name: "ingest",
            common,
            config: None,
        },
        Command::Fanout(common) => Services {
            name: "fanout",
            common,
            config: None,
        },
        Command::Delivery(common) => Services {
            name: "delivery",
            common,
            config: None,
        },
    };
    let Services {
        name,
        common,
        config,
    } = services;
    common.validate()?;
    let allow_list = match &config {
        Some((_, args)) => Some(AllowList::parse(&args.allow_cidrs).map_err(|error| {
            anyhow::anyhow!("invalid --allow-cidrs / HERALD_ALLOW_CIDRS: {error}")
        })?),
        None => None,
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    let readiness = Readiness::new();
    start_ops(
        name,
        &common,
        readiness.clone(),
        shutdown.clone(),
        &mut tasks,
    )
    .await?;

    let bus = Bus::connect(&common.bus, &format!("herald-{name}")).await?;
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

    let (service_token, source) = credentials::resolve(
        common.service_token.as_deref(),
        &common.state_dir,
        "service.token",
        "service token",
        || credentials::generate_token("svc"),
    )?;
    log_credential("service token", &source);

    if let (Some((store_options, args)), Some(allow_list)) = (config, allow_list) {
        let store = Store::connect_with(&store_options).await?;
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
            readiness
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
        let settings =
            config_settings(&args, &common.state_dir, service_token.clone(), allow_list)?;
        let listener = TcpListener::bind(args.config_addr).await.with_context(|| {
            format!(
                "cannot listen on {} (--config-addr / HERALD_CONFIG_ADDR)",
                args.config_addr
            )
        })?;
        info!("config API (gRPC) listening on http://{}", args.config_addr);
        let state = ConfigState::new(store, bus.clone(), settings);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            herald_config::run(listener, state, shutdown)
                .await
                .context("the config service failed")
        });
    }

    readiness.mark_started().await;
    info!(service = name, "herald is running; Ctrl-C stops it");

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

fn config_settings(
    args: &ConfigArgs,
    state_dir: &Path,
    service_token: String,
    allow_list: AllowList,
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
        secret_overlap: args.secret_overlap,
        test_timeout: args.test_timeout,
        change_retention: args.change_retention,
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
    let mut registry = Registry::default();
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
