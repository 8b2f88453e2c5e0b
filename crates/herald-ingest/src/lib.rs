//! The ingest service: channel webhooks and the gRPC Publish API, verified,
//! normalised into herald-core's [`Event`](herald_core::event::Event) and
//! published to JetStream.
//!
//! One listener serves both: `POST /inbound/{waba,telegram,whatsapp}/{device_id}`
//! (and WABA's `GET` handshake), `herald.v1.IngestService`, gRPC health and
//! reflection.
//!
//! Design decisions:
//! - A webhook is answered 200 only once JetStream acknowledged every event
//!   of it (all published, then all acknowledgements awaited). If the bus
//!   does not answer, the receiver answers 503 and the channel retries.
//! - Every event's `Nats-Msg-Id` (its idempotency key) is deterministic from
//!   the source and scoped to the device: `waba:<device>:<wamid>:<received |
//!   status>`, `telegram:<device>:<update_id>`, `whatsapp:<device>:<message
//!   id>:received` or `…:<participant>:ack:<level>`. A retried webhook
//!   therefore adds only the events JetStream lacks, within the stream's
//!   duplicate window (`--duplicate-window`, default 1 h), and beyond it
//!   for the channel's retry horizon (`--dedupe-horizon-*`: WABA 7 days,
//!   Telegram and gateways 24 hours), through the keys each channel event
//!   claims in the `HERALD_DEDUPE` bucket before it is published. Publish API keys
//!   are `publish:<tenant>:<caller's key>`; an item without a key gets its
//!   event id, so retrying it makes a second event.
//! - Signatures are checked over the raw bytes before any parsing, in
//!   constant time; parsing is pure ([`waba::parse`], [`telegram::parse`],
//!   [`gateway::parse`]) and never panics (fuzzed).
//! - Until the Watch stream delivered a complete configuration every
//!   receiver answers 503 (Meta and Telegram retry), never a 404 for a
//!   device not learned yet.
//!
//! ## `data`
//!
//! Every channel event's `data` is one JSON object:
//!
//! ```json
//! {"message_id": "wamid.…", "chat_id": "…", "from": "16505551234", "to": "15550783881",
//!  "text": "Hi 👋", "status": "read", "edited": true, "field": "…",
//!  "original": { …the channel's object, byte for byte… },
//!  "metadata": { … }, "contacts": [ … ]}
//! ```
//!
//! Only `original` is always present; the others appear when the source has
//! them. `original` is the WABA `messages[i]` / `statuses[i]` object (or the
//! change's whole `value` for other fields), the whole Telegram update, or
//! the whole gateway envelope. WABA events also carry their change's
//! `metadata` and `contacts`. `chat_id` is Telegram's (a message id is unique
//! only within its chat); `field` names a WABA change that is not a message.
//! Publish API events carry the caller's `data` unchanged.

mod device_health;
mod events_api;
pub mod gateway;
mod grpc;
mod http;
mod metrics;
pub mod normalise;
mod publish;
mod quota;
mod receive;
pub mod telegram;
pub mod verify;
pub mod waba;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use herald_bus::Bus;
use herald_proto::v1::ingest_service_server::IngestServiceServer;
use herald_watch::ConfigCache;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

pub use crate::metrics::IngestMetrics;
use crate::{
    grpc::PublishApi,
    receive::{DedupeHorizons, Shared},
};

/// The ingest service's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Where channel webhooks (HTTP) and the Publish API (gRPC) are served.
    #[arg(long, env = "HERALD_INGEST_ADDR", default_value = "127.0.0.1:7080")]
    pub ingest_addr: SocketAddr,
    /// Largest webhook body accepted (Meta's own limit is 3 MiB).
    #[arg(long, env = "HERALD_INGEST_MAX_BODY_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How long a WABA event's key is remembered, so a webhook Meta retries
    /// makes no second event: Meta retries for up to 7 days.
    #[arg(long, env = "HERALD_DEDUPE_HORIZON_WABA", default_value = "7d", value_parser = parse_horizon)]
    pub dedupe_horizon_waba: Duration,
    /// The same for Telegram, which gives up on an update after about a day.
    #[arg(long, env = "HERALD_DEDUPE_HORIZON_TELEGRAM", default_value = "24h", value_parser = parse_horizon)]
    pub dedupe_horizon_telegram: Duration,
    /// The same for WhatsApp gateways (their webhook retries last hours).
    #[arg(long, env = "HERALD_DEDUPE_HORIZON_WHATSAPP", default_value = "24h", value_parser = parse_horizon)]
    pub dedupe_horizon_whatsapp: Duration,
    /// Events each tenant may have accepted per second by this replica
    /// (0: no quota), unless the tenant's own `events_per_second` quota
    /// says otherwise; over it webhooks get 429 with Retry-After and Publish
    /// items RESOURCE_EXHAUSTED.
    #[arg(long, env = "HERALD_TENANT_EVENTS_PER_SECOND", default_value_t = 0.0)]
    pub tenant_events_per_second: f64,
    /// Events a tenant may have accepted at once above that rate, unless
    /// its own `events_burst` quota says otherwise.
    #[arg(long, env = "HERALD_TENANT_EVENTS_BURST", default_value_t = 1000)]
    pub tenant_events_burst: u32,
}

impl IngestArgs {
    /// Defaults for a listener at `ingest_addr`: what the flags give when unset.
    pub fn for_addr(ingest_addr: SocketAddr) -> IngestArgs {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        IngestArgs {
            ingest_addr,
            max_body_bytes: 3 * 1024 * 1024,
            dedupe_horizon_waba: DAY.saturating_mul(7),
            dedupe_horizon_telegram: DAY,
            dedupe_horizon_whatsapp: DAY,
            tenant_events_per_second: 0.0,
            tenant_events_burst: 1000,
        }
    }
}

/// A retry horizon: a key expires in whole seconds, so at least one.
fn parse_horizon(value: &str) -> Result<Duration, String> {
    let horizon = humantime::parse_duration(value).map_err(|error| error.to_string())?;
    if horizon < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(horizon)
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the ingest listener failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("invalid --tenant-events-per-second: {0}")]
    Quota(#[from] herald_core::rate::RateLimitError),
}

/// Serves webhooks and the Publish API on `listener` until `shutdown`;
/// requests in flight finish first.
pub async fn run(
    listener: TcpListener,
    bus: Bus,
    cache: ConfigCache,
    synced: watch::Receiver<bool>,
    args: IngestArgs,
    metrics: IngestMetrics,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let health = Arc::new(device_health::HealthRecorder::default());
    // Stopped after the listener, so the last calls' counts are flushed.
    let stop_flushing = CancellationToken::new();
    let flusher = tokio::spawn(device_health::run(
        health.clone(),
        bus.device_health().await?,
        stop_flushing.clone(),
    ));
    let shared = Arc::new(Shared {
        dedupe: bus.dedupe_keys().await?,
        bus,
        cache,
        synced: synced.clone(),
        metrics,
        max_body_bytes: args.max_body_bytes,
        horizons: DedupeHorizons {
            waba: args.dedupe_horizon_waba,
            telegram: args.dedupe_horizon_telegram,
            whatsapp: args.dedupe_horizon_whatsapp,
        },
        quotas: quota::EventQuotas::new(args.tenant_events_per_second, args.tenant_events_burst)?,
        health,
    });
    let (reporter, health) = tonic_health::server::health_reporter();
    let grpc = herald_telemetry::ops::with_reflection(
        tonic::service::Routes::new(IngestServiceServer::new(PublishApi {
            shared: shared.clone(),
        }))
        .add_service(health),
    )?
    .into_axum_router()
    .layer(shared.metrics.requests.grpc_layer());
    tokio::spawn(follow_sync(synced, reporter, shutdown.clone()));
    tracing::info!(
        addr = %listener.local_addr()?,
        max_body_bytes = args.max_body_bytes,
        "ingest listening"
    );
    let routes = http::router(shared)
        .merge(grpc)
        .layer(axum::middleware::map_response(
            herald_telemetry::server::no_sniff,
        ));
    let served = axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    stop_flushing.cancel();
    if let Err(error) = flusher.await {
        tracing::warn!(%error, "the device health flusher failed");
    }
    Ok(served?)
}

/// gRPC health of `IngestService` follows whether a complete configuration
/// is held, like the receivers' 503s.
async fn follow_sync(
    mut synced: watch::Receiver<bool>,
    reporter: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) {
    loop {
        let serving = *synced.borrow_and_update();
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter
            .set_service_status(
                <IngestServiceServer<PublishApi> as tonic::server::NamedService>::NAME,
                status,
            )
            .await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = synced.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod parse_tests;
