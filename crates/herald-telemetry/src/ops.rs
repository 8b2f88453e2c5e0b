//! The operations listener every Herald process serves: `/healthz`
//! (liveness), `/readyz` (readiness), `/metrics` (Prometheus text), and on the
//! same port `grpc.health.v1.Health` and gRPC reflection.
//!
//! HTTP and gRPC share the port because gRPC requests are routed by path
//! (`/grpc.health.v1.Health/Check`), so one probe target serves both kinds of
//! health checker.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::text::encode,
    metrics::{family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::Readiness;

/// How often readiness is re-evaluated for gRPC health and the gauges.
const READINESS_INTERVAL: Duration = Duration::from_secs(1);

/// Metrics the ops listener itself maintains.
#[derive(Clone, Debug, Default)]
pub struct OpsMetrics {
    ready: Gauge,
    check_passing: Family<Vec<(String, String)>, Gauge>,
}

impl OpsMetrics {
    /// Registers `herald_build_info`, `herald_ready` and
    /// `herald_readiness_check` in `registry`.
    pub fn register(registry: &mut Registry, service: &str) -> OpsMetrics {
        let metrics = OpsMetrics::default();
        registry.register(
            "herald_build",
            "Herald build information",
            Info::new(vec![
                ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("service".to_owned(), service.to_owned()),
            ]),
        );
        registry.register(
            "herald_ready",
            "1 when the process is ready for traffic",
            metrics.ready.clone(),
        );
        registry.register(
            "herald_readiness_check",
            "1 while the named readiness check passes",
            metrics.check_passing.clone(),
        );
        metrics
    }
}

/// What the ops listener serves.
#[derive(Debug)]
pub struct OpsService {
    pub readiness: Readiness,
    pub registry: Registry,
    pub metrics: OpsMetrics,
    /// gRPC service names whose health follows readiness, besides the
    /// server-wide `""`.
    pub grpc_service_names: Vec<String>,
}

#[derive(Clone)]
struct HttpState {
    readiness: Readiness,
    registry: Arc<Registry>,
}

/// Errors starting the ops listener.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("ops listener failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the ops endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    service: OpsService,
    shutdown: CancellationToken,
) -> Result<(), OpsError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let grpc = with_reflection(tonic::service::Routes::new(health))?.into_axum_router();

    let state = HttpState {
        readiness: service.readiness.clone(),
        registry: Arc::new(service.registry),
    };
    let http = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);

    tokio::spawn(follow_readiness(
        service.readiness,
        service.metrics,
        reporter,
        service.grpc_service_names,
        shutdown.clone(),
    ));

    axum::serve(listener, http.merge(grpc))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// `routes` and gRPC reflection, in both versions clients speak: `v1` and
/// `v1alpha` (older grpcurl, grpcio's tools and most Python clients). Every
/// port that serves reflection serves it through this.
pub fn with_reflection(
    routes: tonic::service::Routes,
) -> Result<tonic::service::Routes, tonic_reflection::server::Error> {
    Ok(routes
        .add_service(reflection_builder().build_v1()?)
        .add_service(reflection_builder().build_v1alpha()?))
}

/// Reflection lists Herald's own services, the health service and both
/// reflection services, whichever version is asked.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(herald_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"alive"}"#,
    )
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let report = state.readiness.evaluate().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        report.to_json().to_string(),
    )
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {error}"),
        ),
    }
}

/// Keeps gRPC health and the readiness gauges in step with the checks, so a
/// gRPC health watcher learns of a lost dependency within a second.
async fn follow_readiness(
    readiness: Readiness,
    metrics: OpsMetrics,
    reporter: HealthReporter,
    service_names: Vec<String>,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(READINESS_INTERVAL);
    let mut started = std::pin::pin!(readiness.started());
    let mut waiting_for_start = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
            _ = &mut started, if waiting_for_start => waiting_for_start = false,
        }
        let report = readiness.evaluate().await;
        let status = if report.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        metrics.ready.set(i64::from(report.is_ready()));
        for check in &report.checks {
            metrics
                .check_passing
                .get_or_create(&vec![("check".to_owned(), check.name.clone())])
                .set(i64::from(check.error.is_none()));
        }
        reporter.set_service_status("", status).await;
        for name in &service_names {
            reporter.set_service_status(name, status).await;
        }
    }
    // A draining process stops taking traffic before its listener closes.
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in &service_names {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
}
