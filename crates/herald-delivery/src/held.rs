//! Held lanes: where an endpoint's jobs wait while it cannot take them, out
//! of the shared pool (see herald-core's `fairness`).
//!
//! - A pool job whose endpoint cannot take it soon is republished to the
//!   endpoint's held lane, keeping its attempt number and its place in the
//!   retry schedule, and only then acknowledged in the pool. Its message id
//!   derives from the pool message's stream sequence, so a repeated move
//!   (the acknowledgement was lost) is stored once.
//! - A failed attempt with a retry moves the same way, with the time it may
//!   be tried again; the lane waits for that time with a delayed `nak`,
//!   which holds a place in that endpoint's lane only.
//! - Moving for lack of capacity marks the endpoint as backlogged in a
//!   key-value bucket, so fanout sends its new jobs straight to the lane
//!   instead of queueing them in the pool ahead of other tenants' jobs.
//! - Every replica pulls every lane that has jobs, only as many as its
//!   endpoint can take now, so a lane's backlog stays in the stream.
//!
//! In a held lane every message is one try: the lane's own delivery count
//! (raised by the waits) is not an attempt count.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt;
use herald_bus::{
    BACKLOG_MARK_TTL, JobLane, Pull,
    async_nats::jetstream::{Message, consumer::PullConsumer, kv},
};
use herald_core::{
    fairness::{EndpointLoad, HoldReason},
    id::EndpointId,
    rate::RateLimit,
};
use herald_proto::{timestamp_to_wire, v1::DeliveryJob};
use herald_watch::ConfigCache;
use prost::Message as _;
use time::OffsetDateTime;
use tokio::{
    sync::mpsc,
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

use crate::job::{self, Context, Source};

/// How long a lane waits for its consumer's counts or a backlog mark.
const STATE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the stream is asked which held lanes have jobs.
const DISCOVERY: Duration = Duration::from_secs(2);
/// How long a lane waits for a job before it looks at its endpoint's room
/// and its own emptiness again.
const LANE_WAIT: Duration = Duration::from_secs(1);
/// How long a lane's pull may stay unread before it is dropped.
const LANE_PAUSE: Duration = Duration::from_secs(1);
/// How long a lane waits before asking again whether its endpoint can take
/// more.
const CAPACITY_POLL: Duration = Duration::from_millis(20);
/// A lane that received nothing for this long checks whether it is empty.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// How often a running lane refreshes its endpoint's backlog mark.
const MARK_REFRESH: Duration = Duration::from_secs(10);
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Tries of one move before the job falls back to waiting where it is.
const MOVE_TRIES: u32 = 3;

/// Where a moved job stands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holding {
    /// Attempts made before its next one.
    pub attempts_made: u32,
    /// Tries of its retry schedule made.
    pub schedule_position: u32,
    /// Not to be tried before this time.
    pub not_before: Option<OffsetDateTime>,
    /// Moved for lack of capacity (marks the endpoint backlogged), or
    /// `None` for a retry.
    pub reason: Option<HoldReason>,
}

/// The held lanes' shared state: the backlog marks this replica made and
/// the lanes to start at once.
#[derive(Debug)]
pub(crate) struct HeldLanes {
    backlog: kv::Store,
    marked: Mutex<HashMap<EndpointId, Instant>>,
    start: mpsc::UnboundedSender<EndpointId>,
}

impl HeldLanes {
    pub(crate) fn new(backlog: kv::Store) -> (HeldLanes, mpsc::UnboundedReceiver<EndpointId>) {
        let (start, started) = mpsc::unbounded_channel();
        (
            HeldLanes {
                backlog,
                marked: Mutex::new(HashMap::new()),
                start,
            },
            started,
        )
    }

    /// Marks the endpoint as backlogged unless this replica did recently.
    async fn mark(&self, endpoint: &EndpointId) {
        let due = {
            let mut marked = self
                .marked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            match marked.get(endpoint) {
                Some(at) if now.duration_since(*at) < BACKLOG_MARK_TTL / 3 => false,
                _ => {
                    marked.insert(*endpoint, now);
                    true
                }
            }
        };
        if due {
            // A mark is an optimisation: it is not waited on while the
            // bucket elects a leader.
            match tokio::time::timeout(
                STATE_TIMEOUT,
                self.backlog.put(endpoint.as_str(), Bytes::new()),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%endpoint, %error, "cannot mark an endpoint as backlogged; its new jobs still go through the pool")
                }
                Err(_) => {
                    tracing::warn!(%endpoint, "marking an endpoint as backlogged got no answer; its new jobs still go through the pool")
                }
            }
        }
    }
}

/// The endpoint's load in this replica.
pub(crate) fn load(
    context: &Context,
    endpoint: &EndpointId,
    tenant: &str,
    rate_limit: Option<RateLimit>,
) -> EndpointLoad {
    EndpointLoad {
        queued: context.endpoints.queued(endpoint.as_str()),
        slots: context.endpoints.per_endpoint(),
        rate_interval: rate_limit.map(|limit| limit.interval()),
        circuit_wait: context.circuits.wait(endpoint.as_str()),
        tenant_queued: context.tenants.queued(tenant),
        tenant_slots: context.tenants.share(tenant),
    }
}

/// Republishes the job of `message` to its endpoint's held lane as
/// `holding` says and waits for the bus to store it. The caller then
/// acknowledges `message`.
pub(crate) async fn hold(
    context: &Context,
    message: &Message,
    endpoint: &EndpointId,
    holding: Holding,
) -> Result<(), String> {
    let sequence = message
        .info()
        .map_err(|error| error.to_string())?
        .stream_sequence;
    let mut job =
        DeliveryJob::decode(message.payload.as_ref()).map_err(|error| error.to_string())?;
    job.attempts_made = holding.attempts_made;
    job.schedule_position = holding.schedule_position;
    job.not_before = holding.not_before.map(timestamp_to_wire);
    let payload = Bytes::from(job.encode_to_vec());
    let subject = context.bus.topology().job_subject(endpoint, JobLane::Held);
    let message_id = format!("held.{}.{sequence}", job.delivery_id);
    let mut last_error = String::new();
    for try_number in 1..=MOVE_TRIES {
        // The original headers keep the job's trace and routing headers.
        let headers = message.headers.clone().unwrap_or_default();
        let stored = match context
            .bus
            .publish(subject.clone(), &message_id, headers, payload.clone())
            .await
        {
            Ok(acknowledgement) => acknowledgement.await.map(drop).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match stored {
            Ok(()) => {
                context
                    .metrics
                    .held(holding.reason.map_or("retry", HoldReason::as_str));
                if holding.reason.is_some() {
                    context.held.mark(endpoint).await;
                }
                // The lane starts here at once; other replicas find it.
                let _ = context.held.start.send(*endpoint);
                return Ok(());
            }
            Err(error) => last_error = error,
        }
        if try_number < MOVE_TRIES {
            tokio::time::sleep(Duration::from_millis(200) * try_number).await;
        }
    }
    Err(last_error)
}

/// Runs a lane for every endpoint whose held lane has jobs, until `stop`,
/// then waits for the lanes' jobs in progress to settle.
pub(crate) async fn run(
    context: Arc<Context>,
    mut started: mpsc::UnboundedReceiver<EndpointId>,
    stop: CancellationToken,
) {
    let mut lanes: HashMap<EndpointId, JoinHandle<()>> = HashMap::new();
    let mut discovery = tokio::time::interval(DISCOVERY);
    loop {
        lanes.retain(|_, lane| !lane.is_finished());
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(endpoint) = started.recv() => {
                lanes
                    .entry(endpoint)
                    .or_insert_with(|| spawn_lane(&context, endpoint, &stop));
            }
            _ = discovery.tick() => match tokio::time::timeout(DISCOVERY, context.bus.held_lane_endpoints()).await {
                Ok(Ok(endpoints)) => {
                    for endpoint in endpoints {
                        lanes
                            .entry(endpoint)
                            .or_insert_with(|| spawn_lane(&context, endpoint, &stop));
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot list the held lanes; retrying"),
                Err(_) => tracing::warn!("listing the held lanes got no answer; retrying"),
            },
        }
    }
    for (_, lane) in lanes {
        if let Err(error) = lane.await {
            tracing::error!(%error, "a held lane panicked; its jobs will be redelivered");
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

async fn run_lane(context: Arc<Context>, endpoint: EndpointId, stop: CancellationToken) {
    let mut jobs = JoinSet::new();
    while !stop.is_cancelled() {
        match pull_lane(&context, &endpoint, &stop, &mut jobs).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(%endpoint, %error, "held lane failed; restarting it");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                }
            }
        }
    }
    // Jobs that had not started watch the stop token and hand themselves back.
    while let Some(finished) = jobs.join_next().await {
        report_panic(finished);
    }
}

/// Pulls the lane while the endpoint can take work; returns once stopped or
/// once the lane is empty.
///
/// The pull is [`Bus::pull`]'s (idle heartbeats, a lost request replaced
/// within seconds), read one job at a time while the endpoint has room. It
/// asks for more only as it is read, so at most one and a half of its
/// batches wait here; a pull left unread for [`LANE_PAUSE`] (an open
/// circuit, full slots) is dropped, so the jobs it holds go back to the
/// lane before their ack wait runs out unextended.
async fn pull_lane(
    context: &Arc<Context>,
    endpoint: &EndpointId,
    stop: &CancellationToken,
    jobs: &mut JoinSet<()>,
) -> Result<(), String> {
    let mut consumer = context
        .bus
        .held_consumer(endpoint)
        .await
        .map_err(|error| error.to_string())?;
    let progress_every = crate::progress_interval(&consumer);
    let mut pull: Option<Pull> = None;
    let mut full_since: Option<Instant> = None;
    let mut last_received = Instant::now();
    let mut last_mark = Instant::now();
    loop {
        while let Some(finished) = jobs.try_join_next() {
            report_panic(finished);
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        let tenant = endpoint_tenant(&context.cache, endpoint);
        let mut load = load(
            context,
            endpoint,
            &tenant,
            rate_limit(&context.cache, endpoint),
        );
        // Jobs just handed out may not hold their slot yet.
        load.queued = load.queued.max(jobs.len());
        if let Some(wait) = load.circuit_wait.filter(|wait| !wait.is_zero()) {
            pull = None;
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
            }
            continue;
        }
        // A due probe is one job; the circuit admits one anyway.
        let capacity = if load.circuit_wait.is_some() {
            usize::from(jobs.is_empty())
        } else {
            load.lane_capacity()
        };
        if capacity == 0 {
            if full_since.get_or_insert_with(Instant::now).elapsed() >= LANE_PAUSE {
                pull = None;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                Some(finished) = jobs.join_next(), if !jobs.is_empty() => report_panic(finished),
                _ = tokio::time::sleep(CAPACITY_POLL) => {}
            }
            continue;
        }
        full_since = None;
        if last_received.elapsed() >= IDLE_CHECK && jobs.is_empty() {
            if lane_counts(&mut consumer).await == Some((0, 0)) {
                tracing::debug!(%endpoint, "held lane empty");
                return Ok(());
            }
            last_received = Instant::now();
        }
        if last_mark.elapsed() >= MARK_REFRESH {
            last_mark = Instant::now();
            if lane_counts(&mut consumer)
                .await
                .is_some_and(|(pending, _)| pending > load.slots as u64)
            {
                context.held.mark(endpoint).await;
            }
        }
        // Sized by the room now, so a slow rate never has jobs waiting here
        // for long.
        let messages = pull.get_or_insert_with(|| context.bus.pull(consumer.clone(), capacity));
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(message) => {
                    last_received = Instant::now();
                    jobs.spawn(job::handle(context.clone(), message, progress_every, Source::Held));
                }
                None => return Err("the lane's pull ended".to_owned()),
            },
            // Reap finished jobs meanwhile so the set stays small.
            Some(finished) = jobs.join_next(), if !jobs.is_empty() => report_panic(finished),
            // Look at the endpoint's room and the lane's emptiness again.
            _ = tokio::time::sleep(LANE_WAIT) => {}
        }
    }
}

/// The lane's jobs waiting and handed out, or `None` when the consumer does
/// not answer at once (it is electing a leader): the lane goes on pulling
/// meanwhile rather than wait on the answer.
async fn lane_counts(consumer: &mut PullConsumer) -> Option<(u64, u64)> {
    match tokio::time::timeout(STATE_TIMEOUT, consumer.info()).await {
        Ok(Ok(info)) => Some((
            info.num_pending,
            u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX),
        )),
        Ok(Err(error)) => {
            tracing::debug!(%error, "cannot read a held lane's counts");
            None
        }
        Err(_) => None,
    }
}

fn report_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        tracing::error!(%error, "a held job panicked; it will be redelivered");
    }
}

/// The tenant owning the endpoint (empty when the cache no longer has it:
/// its jobs are then skipped quickly).
fn endpoint_tenant(cache: &ConfigCache, endpoint: &EndpointId) -> String {
    cache
        .snapshot()
        .endpoints
        .get(endpoint.as_str())
        .and_then(|watched| watched.endpoint.as_ref())
        .map(|endpoint| endpoint.tenant_id.clone())
        .unwrap_or_default()
}

/// The endpoint's rate limit, when it has one.
pub(crate) fn rate_limit(cache: &ConfigCache, endpoint: &EndpointId) -> Option<RateLimit> {
    let snapshot = cache.snapshot();
    let settings = snapshot.endpoint_settings.get(endpoint.as_str())?;
    settings.as_ref().as_ref().ok()?.rate_limit
}
