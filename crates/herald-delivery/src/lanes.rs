//! FIFO lanes: every FIFO endpoint's jobs have a subject and a consumer of
//! their own that hands out one job at a time (see herald-bus). Every
//! replica pulls every lane; the server gives the single outstanding job to
//! one of them, so order holds across replicas and restarts. A lane's head
//! that fails is negatively acknowledged with its retry delay and comes back
//! before anything behind it; once it is delivered or dead-lettered the
//! next one follows.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use herald_core::{endpoint::Ordering, id::EndpointId};
use herald_watch::ConfigCache;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::job::{self, Context};

/// How often the set of FIFO endpoints is compared with the running lanes.
const RESCAN: Duration = Duration::from_millis(500);
/// How often a lane whose endpoint stopped being FIFO checks whether it is
/// drained.
const DRAIN_CHECK: Duration = Duration::from_secs(5);
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often the lanes' backlog is sampled for the metrics.
const BACKLOG_SAMPLE: Duration = Duration::from_secs(5);

/// Runs a lane for every FIFO endpoint until `stop`, then waits for the
/// lanes' jobs in progress to settle.
pub(crate) async fn run(context: Arc<Context>, stop: CancellationToken) {
    let mut lanes: HashMap<EndpointId, JoinHandle<()>> = HashMap::new();
    for endpoint in existing_lanes(&context).await {
        lanes.insert(endpoint, spawn_lane(&context, endpoint, &stop));
    }
    loop {
        lanes.retain(|_, lane| !lane.is_finished());
        for endpoint in fifo_endpoints(&context.cache) {
            lanes
                .entry(endpoint)
                .or_insert_with(|| spawn_lane(&context, endpoint, &stop));
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
    for (_, lane) in lanes {
        if let Err(error) = lane.await {
            tracing::error!(%error, "a FIFO lane panicked; its job will be redelivered");
        }
    }
}

/// Samples what waits in the FIFO lanes until `stop`. Every replica reports
/// the same lanes, so dashboards take the maximum across replicas.
pub(crate) async fn sample_backlog(context: Arc<Context>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(BACKLOG_SAMPLE);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match context.bus.fifo_backlog().await {
            Ok(backlog) => {
                let age = backlog
                    .oldest_job
                    .and_then(|oldest| {
                        Duration::try_from(time::OffsetDateTime::now_utc() - oldest).ok()
                    })
                    .unwrap_or_default();
                context
                    .metrics
                    .fifo_backlog(backlog.lanes, backlog.jobs, age);
            }
            // Readiness reports NATS trouble; the gauges keep their last
            // value meanwhile.
            Err(error) => tracing::debug!(%error, "cannot sample the FIFO lanes' backlog"),
        }
    }
}

fn spawn_lane(
    context: &Arc<Context>,
    endpoint: EndpointId,
    stop: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run_lane(context.clone(), endpoint, stop.clone()))
}

fn is_fifo(cache: &ConfigCache, endpoint: &EndpointId) -> bool {
    cache
        .snapshot()
        .endpoint_settings
        .get(endpoint.as_str())
        .is_some_and(|settings| {
            settings
                .as_ref()
                .as_ref()
                .is_ok_and(|settings| settings.ordering == Ordering::Fifo)
        })
}

fn fifo_endpoints(cache: &ConfigCache) -> Vec<EndpointId> {
    cache
        .snapshot()
        .endpoint_settings
        .values()
        .filter_map(|settings| settings.as_ref().as_ref().ok())
        .filter(|settings| settings.ordering == Ordering::Fifo)
        .map(|settings| settings.id)
        .collect()
}

/// Lanes left from before: an endpoint that stopped being FIFO while no
/// replica ran still has jobs in its lane, which must drain.
async fn existing_lanes(context: &Context) -> Vec<EndpointId> {
    match context.bus.fifo_consumer_endpoints().await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            tracing::warn!(%error, "cannot list existing FIFO lanes; lanes of current FIFO endpoints still run");
            Vec::new()
        }
    }
}

async fn run_lane(context: Arc<Context>, endpoint: EndpointId, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match pull_lane(&context, &endpoint, &stop).await {
            Ok(LaneEnd::Stopped) => return,
            Ok(LaneEnd::Drained) => {
                tracing::info!(%endpoint, "FIFO lane drained and closed");
                return;
            }
            Err(error) => {
                tracing::warn!(%endpoint, %error, "FIFO lane failed; restarting it");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                }
            }
        }
    }
}

enum LaneEnd {
    Stopped,
    /// The endpoint is no longer FIFO and its lane is empty.
    Drained,
}

async fn pull_lane(
    context: &Arc<Context>,
    endpoint: &EndpointId,
    stop: &CancellationToken,
) -> Result<LaneEnd, String> {
    let mut consumer = context
        .bus
        .fifo_consumer(endpoint)
        .await
        .map_err(|error| error.to_string())?;
    let progress_every = crate::progress_interval(&consumer);
    let mut messages = context.bus.pull(consumer.clone(), 1);
    let mut drain_check = tokio::time::interval(DRAIN_CHECK);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(LaneEnd::Stopped),
            message = messages.next() => match message {
                // One job at a time: the next pull waits for this settlement.
                Some(message) => job::handle(context.clone(), message, progress_every, job::Source::Fifo).await,
                None => return Err("the lane's message stream ended".to_owned()),
            },
            _ = drain_check.tick() => {
                if is_fifo(&context.cache, endpoint) {
                    continue;
                }
                let info = consumer.info().await.map_err(|error| error.to_string())?;
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    drop(messages);
                    context.bus.delete_fifo_consumer(endpoint).await.map_err(|error| error.to_string())?;
                    return Ok(LaneEnd::Drained);
                }
            }
        }
    }
}
