//! A client of the config service's `Watch` stream.
//!
//! Ingest, fanout and delivery each keep what they need of the configuration
//! in memory, so no hot path waits on the config service. [`run`] holds the
//! stream open, reconnects with the last revision it applied (the config
//! service then sends only what was missed, or a fresh snapshot), and hands
//! every change to a [`WatchHandler`].
//!
//! A snapshot is applied as one unit: the handler sees `begin_snapshot`,
//! every object, then `end_snapshot`, and should swap in the new state only
//! at the end, so readers never see half a configuration.

mod cache;

use std::time::Duration;

use herald_proto::v1::{
    WatchRequest, WatchedKind, WatchedObject, WatchedRef, watch_response::Change,
    watch_service_client::WatchServiceClient,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Endpoint};

pub use crate::cache::{CacheHandler, ConfigCache, ConfigSnapshot};

/// Where the config service is and how to authenticate to it.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchConfig {
    /// The config service's gRPC address, or several replicas' addresses
    /// separated by commas: the stream moves to the next one when one
    /// fails. A single address that balances over replicas (a Kubernetes
    /// Service) works as well.
    #[arg(
        long,
        env = "HERALD_CONFIG_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    pub config_url: String,
}

/// Receives the configuration as the stream delivers it.
pub trait WatchHandler: Send + 'static {
    /// A snapshot starts: forget everything once it ends.
    fn begin_snapshot(&mut self);
    fn upsert(&mut self, object: WatchedObject);
    fn delete(&mut self, reference: WatchedRef);
    /// The snapshot is complete (swap it in).
    fn end_snapshot(&mut self);
    /// Everything up to `revision` has been applied (called after a
    /// snapshot and after each change).
    fn applied(&mut self, _revision: u64) {}
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid config service URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// Delay between reconnection attempts, doubling up to the maximum.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A stream silent for longer than this (the server heartbeats every 15 s)
/// is presumed dead and reopened.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// Follows the configuration until `shutdown`. `synced` turns true once a
/// complete configuration has been applied, and false while the stream is
/// down (the last known configuration stays in use meanwhile).
pub async fn run(
    config: WatchConfig,
    service_token: String,
    kinds: Vec<WatchedKind>,
    mut handler: impl WatchHandler,
    synced: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), WatchError> {
    let replicas = replicas(&config.config_url)?;
    let mut revision = 0_u64;
    let mut backoff = MIN_BACKOFF;
    let mut current = 0_usize;
    while !shutdown.is_cancelled() {
        let (url, endpoint) = &replicas[current];
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            outcome = follow(endpoint, &service_token, &kinds, &mut revision, &mut handler, &synced) => outcome,
        };
        // A stream that got as far as a complete configuration was healthy:
        // reconnect quickly rather than continuing an old backoff.
        if synced.send_replace(false) {
            backoff = MIN_BACKOFF;
        }
        match outcome {
            Ok(()) => tracing::info!(%url, "the Watch stream ended; reconnecting"),
            Err(error) => {
                tracing::warn!(%url, %error, "the Watch stream failed; reconnecting")
            }
        }
        // Every replica serves the same change log, so the next one resumes
        // where this one stopped; only a full round of failures backs off.
        current = (current + 1) % replicas.len();
        let pause = if current == 0 { backoff } else { MIN_BACKOFF };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        if current == 0 {
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    Ok(())
}

/// The config replicas of a comma-separated `--config-url`.
fn replicas(config_url: &str) -> Result<Vec<(String, Endpoint)>, WatchError> {
    let replicas: Vec<(String, Endpoint)> = config_url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            Endpoint::from_shared(url.to_owned())
                .map(|endpoint| {
                    let endpoint = endpoint
                        .connect_timeout(Duration::from_secs(5))
                        .tcp_nodelay(true);
                    (url.to_owned(), endpoint)
                })
                .map_err(|error| WatchError::InvalidUrl {
                    url: url.to_owned(),
                    reason: error.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    if replicas.is_empty() {
        return Err(WatchError::InvalidUrl {
            url: config_url.to_owned(),
            reason: "no address given".to_owned(),
        });
    }
    Ok(replicas)
}

async fn follow(
    endpoint: &Endpoint,
    service_token: &str,
    kinds: &[WatchedKind],
    revision: &mut u64,
    handler: &mut impl WatchHandler,
    synced: &watch::Sender<bool>,
) -> Result<(), tonic::Status> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut request = Request::new(WatchRequest {
        since_revision: *revision,
        kinds: kinds.iter().map(|kind| i32::from(*kind)).collect(),
    });
    let bearer = format!("Bearer {service_token}")
        .parse()
        .map_err(|_| tonic::Status::unauthenticated("the service token is not valid metadata"))?;
    request.metadata_mut().insert("authorization", bearer);
    let mut stream = WatchServiceClient::new(channel)
        .watch(request)
        .await?
        .into_inner();
    let mut in_snapshot = false;
    // Resuming from a revision: the configuration held is complete already.
    if *revision > 0 {
        synced.send_replace(true);
    }
    loop {
        let message = match tokio::time::timeout(SILENCE_LIMIT, stream.message()).await {
            Ok(message) => message?,
            Err(_) => {
                return Err(tonic::Status::deadline_exceeded(
                    "the Watch stream went silent",
                ));
            }
        };
        let Some(response) = message else {
            return Ok(());
        };
        match response.change {
            Some(Change::SnapshotStart(_)) => {
                in_snapshot = true;
                handler.begin_snapshot();
            }
            Some(Change::SnapshotEnd(_)) => {
                in_snapshot = false;
                handler.end_snapshot();
                *revision = response.revision;
                handler.applied(response.revision);
                synced.send_replace(true);
            }
            Some(Change::Upsert(object)) => {
                handler.upsert(object);
                if !in_snapshot {
                    *revision = response.revision;
                    handler.applied(response.revision);
                }
            }
            Some(Change::Delete(reference)) => {
                handler.delete(reference);
                if !in_snapshot {
                    *revision = response.revision;
                    handler.applied(response.revision);
                }
            }
            Some(Change::Heartbeat(_)) | None => {}
        }
    }
}
