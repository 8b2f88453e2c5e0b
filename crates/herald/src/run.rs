//! Start-up, wiring and shutdown of the services a command runs.

use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use herald_bus::Bus;
use herald_store::Store;
use herald_telemetry::{
    Readiness,
    ops::{self, OpsMetrics, OpsService},
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{Command, CommonArgs};

/// How long a readiness probe waits for NATS or the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `command` until SIGINT or SIGTERM.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let (name, common, database_url) = match command {
        Command::All(args) => ("all", args.common, Some(args.database.database_url)),
        Command::Config(args) => ("config", args.common, Some(args.database.database_url)),
        Command::Ingest(common) => ("ingest", common, None),
        Command::Fanout(common) => ("fanout", common, None),
        Command::Delivery(common) => ("delivery", common, None),
    };
    common.validate()?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let readiness = Readiness::new();
    let ops_task = start_ops(name, &common, readiness.clone(), shutdown.clone()).await?;

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

    if let Some(database_url) = database_url {
        let store = Store::connect(&database_url).await?;
        info!(
            backend = store.backend_name(),
            url = %herald_store::redact_password(&database_url),
            "connected to the database"
        );
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

    readiness.mark_started().await;
    info!(service = name, "herald is running; Ctrl-C stops it");

    shutdown.cancelled().await;
    info!("shutting down");
    ops_task
        .await
        .context("the ops listener task panicked")?
        .context("the ops listener failed")?;
    Ok(())
}

async fn start_ops(
    name: &str,
    common: &CommonArgs,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), ops::OpsError>>> {
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
    Ok(tokio::spawn(ops::serve(listener, service, shutdown)))
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
