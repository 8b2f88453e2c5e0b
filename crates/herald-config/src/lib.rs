//! The config service: Herald's source of truth.
//!
//! It owns what customers configure (tenants, tokens, devices, endpoints,
//! custom event types) and the attempt log, and serves them over gRPC:
//! `AdminService`, `ConfigService`, `AttemptService`, and `WatchService`, the
//! stream Herald's other services keep their caches with. It consumes attempt
//! records from the bus into the log, and publishes test deliveries as jobs
//! for the delivery service, exactly like live ones.
//!
//! Rules about values (URLs, signing schemes, retry schedules, event types)
//! come from herald-core; storage from herald-store; subjects from
//! herald-bus. This crate is the API, its authentication and validation.

pub mod attempt_writer;
mod auth;
mod config;
mod convert;
mod endpoint;
mod error;
mod grpc;
mod metrics;
mod names;
mod paging;
mod recovery;
pub mod secrets;
mod state;
pub mod sweep;
mod validate;

use std::time::Duration;

use herald_proto::v1::{
    admin_service_server::AdminServiceServer, attempt_service_server::AttemptServiceServer,
    config_service_server::ConfigServiceServer, recovery_service_server::RecoveryServiceServer,
    watch_service_server::WatchServiceServer,
};
use herald_telemetry::server::RequestMetrics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::{
    auth::{TENANT_METADATA_KEY, hash_token},
    config::ConfigArgs,
    error::{FIELD_METADATA_KEY, RETRY_AFTER_METADATA_KEY},
    grpc::{AdminApi, AttemptApi, ConfigApi, MIN_SEARCH_CHARS, RecoveryApi},
    metrics::ConfigMetrics,
    state::{ConfigState, Settings},
};

/// The gRPC services this crate serves, by their full names.
pub const SERVICE_NAMES: [&str; 5] = [
    "herald.v1.AdminService",
    "herald.v1.ConfigService",
    "herald.v1.AttemptService",
    "herald.v1.RecoveryService",
    "herald.v1.WatchService",
];

/// How long a failed attempt writer waits before starting again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ConfigServiceError {
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the config gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Serves the config API on `listener`, and runs the attempt writer and the
/// retention sweep, until `shutdown` is cancelled. The database must be
/// migrated first ([`herald_store::Store::migrate`]).
///
/// Every call is counted in `requests` and traced, continuing the caller's
/// trace from its `traceparent` metadata.
pub async fn run(
    listener: TcpListener,
    state: ConfigState,
    requests: RequestMetrics,
    shutdown: CancellationToken,
) -> Result<(), ConfigServiceError> {
    run_with_http(
        listener,
        state,
        requests,
        tonic::service::Routes::default(),
        shutdown,
    )
    .await
}

/// [`run`], also serving the HTTP routes `http` (the JSON API and the
/// console) on the same listener: gRPC is routed by its `/package.Service/`
/// paths, so users need one address.
pub async fn run_with_http(
    listener: TcpListener,
    state: ConfigState,
    requests: RequestMetrics,
    http: tonic::service::Routes,
    shutdown: CancellationToken,
) -> Result<(), ConfigServiceError> {
    tokio::spawn(clamp_config_revision(state.clone()));
    tokio::spawn(keep_writing_attempts(state.clone(), shutdown.clone()));
    tokio::spawn(sweep::run(state.clone(), shutdown.clone()));
    tokio::spawn(recovery::resume_stalled_jobs(
        state.clone(),
        shutdown.clone(),
    ));

    let (health_reporter, health) = tonic_health::server::health_reporter();
    for name in SERVICE_NAMES {
        health_reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(auth::PeerLayer)
        .layer(requests.grpc_layer())
        .add_routes(herald_telemetry::ops::with_reflection(http)?)
        .add_service(health)
        .add_service(AdminServiceServer::new(grpc::AdminApi::new(state.clone())))
        .add_service(ConfigServiceServer::new(grpc::ConfigApi::new(
            state.clone(),
        )))
        .add_service(AttemptServiceServer::new(grpc::AttemptApi::new(
            state.clone(),
            shutdown.clone(),
        )))
        .add_service(RecoveryServiceServer::new(grpc::RecoveryApi::new(
            state.clone(),
            shutdown.clone(),
        )))
        .add_service(WatchServiceServer::new(grpc::WatchApi::new(
            state,
            shutdown.clone(),
        )))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// A configuration revision on the bus that the database has not reached
/// (it was restored or replaced) would hold every fanout back for good.
async fn clamp_config_revision(state: ConfigState) {
    let clamped = async {
        let config_revision = state
            .bus
            .config_revision()
            .await
            .map_err(|error| error.to_string())?;
        let seen = config_revision
            .current()
            .await
            .map_err(|error| error.to_string())?;
        let newest = state
            .store
            .current_revision()
            .await
            .map_err(|error| error.to_string())?;
        config_revision
            .lower(seen, u64::try_from(newest).unwrap_or_default())
            .await
            .map_err(|error| error.to_string())
    };
    if let Err(error) = clamped.await {
        tracing::warn!(%error, "cannot check the configuration revision on the bus");
    }
}

/// The attempt writer restarts after a failure (NATS restarting, say):
/// records wait on the bus meanwhile, so nothing is lost.
async fn keep_writing_attempts(state: ConfigState, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match attempt_writer::run(state.clone(), shutdown.clone()).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, "the attempt writer stopped; restarting");
                tokio::time::sleep(RESTART_DELAY).await;
            }
        }
    }
}
