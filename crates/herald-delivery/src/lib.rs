//! The delivery service: consumes delivery jobs, signs and POSTs them to
//! their endpoints, and publishes one attempt record per try.
//!
//! Design decisions:
//! - Retries wait in JetStream. A failed job moves to its endpoint's held
//!   lane, due after the schedule's delay (a FIFO lane's head is negatively
//!   acknowledged with the delay instead), so the wait survives every
//!   process restarting and no timer lives in memory. The attempt number is
//!   the job's `attempts_made` plus JetStream's delivery count (one, in a
//!   held lane, where every message is one try).
//! - The shared pool holds only work this replica can do soon: it is pulled
//!   with flow control, and a job whose endpoint cannot take it soon (open
//!   circuit, full slots, spent rate) moves to the endpoint's held lane, so
//!   one tenant's backlog never stops another tenant's deliveries.
//! - A job is settled only after its attempt record is acknowledged by the
//!   bus: a crash in between repeats the attempt, it never loses the record.
//! - The endpoint, its secrets and its status come from the Watch-fed cache
//!   when the job runs, not when it was made, so rotations and disables apply
//!   to queued jobs and to retries.
//! - Circuits are shared by every replica (see `circuits`): one probe per
//!   cooldown reaches a dead receiver, however many replicas there are.
//! - Concurrency is bounded three times: per endpoint, per tenant, then
//!   globally. A job first waits for its endpoint's permit, then its
//!   tenant's, and only then takes a global one, so a slow endpoint or a
//!   busy tenant holds at most its own share of global permits and never
//!   starves the others. The pull loop itself never waits on an endpoint.
//! - Every connection goes only to an address the SSRF classifier approved:
//!   names are resolved once by a resolver that drops refused addresses, and
//!   IP literals (which skip resolvers) are checked before sending.

mod attempt;
mod circuits;
mod client;
mod held;
mod job;
mod lanes;
mod limits;
mod metrics;
mod pool;
mod rate;
mod spans;
mod tenants;
mod transform;

use std::{sync::Arc, time::Duration};

use herald_bus::{Bus, ConsumerRole};
use herald_core::{address::AllowList, circuit::CircuitPolicy, transform::Limits};
use herald_watch::ConfigCache;
use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    circuits::Circuits, client::Sender, job::Context, limits::EndpointLimits, rate::RateLimiter,
    tenants::TenantLimits,
};
pub use crate::{client::ClientError, metrics::DeliveryMetrics};

/// Pool jobs a replica takes beyond its global slots: jobs waiting a
/// moment for an endpoint slot, or on their way to a held lane.
const POOL_MARGIN: usize = 64;
/// How long shutdown waits for NATS to confirm the last acknowledgements.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The delivery service's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct DeliveryArgs {
    /// Most requests in flight at once across all endpoints.
    #[arg(long, env = "HERALD_DELIVERY_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Most requests in flight to one endpoint, so a slow endpoint cannot take every slot.
    #[arg(long, env = "HERALD_DELIVERY_MAX_PER_ENDPOINT", default_value_t = 32)]
    pub max_per_endpoint: usize,
    /// Most requests in flight for one tenant's endpoints together, so one
    /// tenant cannot take every slot; a tenant's own
    /// `max_in_flight_deliveries` quota replaces it.
    #[arg(long, env = "HERALD_DELIVERY_MAX_PER_TENANT", default_value_t = 256)]
    pub max_per_tenant: usize,
    /// TCP+TLS connect timeout.
    #[arg(id = "delivery_connect_timeout", long = "connect-timeout", env = "HERALD_DELIVERY_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: std::time::Duration,
    /// Consecutive failures that open an endpoint's circuit.
    #[arg(long, env = "HERALD_CIRCUIT_FAILURES", default_value_t = 10)]
    pub circuit_failures: u32,
    /// How long an open circuit waits before its first probe; it doubles
    /// with every failed probe.
    #[arg(long, env = "HERALD_CIRCUIT_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub circuit_cooldown: Duration,
    /// The longest cooldown.
    #[arg(long, env = "HERALD_CIRCUIT_MAX_COOLDOWN", default_value = "10m", value_parser = humantime::parse_duration)]
    pub circuit_max_cooldown: Duration,
    /// Threads that run endpoints' transformations (each keeps the
    /// programs it ran compiled).
    #[arg(long, env = "HERALD_DELIVERY_TRANSFORM_THREADS", default_value_t = 2)]
    pub transform_threads: usize,
}

/// Everything [`run`] needs besides its connections.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub args: DeliveryArgs,
    /// Networks deliveries may reach although they are not public.
    pub allow_list: AllowList,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("invalid {flag}: {reason}")]
    InvalidSetting { flag: &'static str, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] client::ClientError),
    #[error(transparent)]
    Transform(#[from] herald_transform::StartError),
    #[error(transparent)]
    Bus(#[from] herald_bus::BusError),
    #[error("cannot consume delivery jobs: {0}")]
    Consume(String),
    #[error("the configuration Watch stream stopped before the first complete configuration")]
    NeverSynced,
}

impl DeliverySettings {
    fn validate(&self) -> Result<(), DeliveryError> {
        for (flag, value) in [
            ("--max-in-flight", self.args.max_in_flight),
            ("--max-per-endpoint", self.args.max_per_endpoint),
            ("--max-per-tenant", self.args.max_per_tenant),
        ] {
            if !(1..=Semaphore::MAX_PERMITS).contains(&value) {
                return Err(DeliveryError::InvalidSetting {
                    flag,
                    reason: format!("{value} is not between 1 and {}", Semaphore::MAX_PERMITS),
                });
            }
        }
        if self.args.circuit_failures == 0 {
            return Err(DeliveryError::InvalidSetting {
                flag: "--circuit-failures",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.args.circuit_cooldown.is_zero()
            || self.args.circuit_max_cooldown < self.args.circuit_cooldown
        {
            return Err(DeliveryError::InvalidSetting {
                flag: "--circuit-cooldown",
                reason: "must be longer than zero and at most --circuit-max-cooldown".to_owned(),
            });
        }
        if !(1..=64).contains(&self.args.transform_threads) {
            return Err(DeliveryError::InvalidSetting {
                flag: "--transform-threads",
                reason: format!("{} is not between 1 and 64", self.args.transform_threads),
            });
        }
        if self.args.connect_timeout.is_zero() {
            return Err(DeliveryError::InvalidSetting {
                flag: "--connect-timeout",
                reason: "must be longer than zero".to_owned(),
            });
        }
        Ok(())
    }
}

/// Delivers jobs until `shutdown`, once `synced` says the cache holds a
/// complete configuration (before that, every endpoint would look deleted).
///
/// On shutdown it stops pulling, lets requests already in flight finish
/// (each is bounded by its timeout) and settles them, hands jobs that had
/// not started back to JetStream, and returns.
pub async fn run(
    bus: Bus,
    cache: ConfigCache,
    mut synced: watch::Receiver<bool>,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
    shutdown: CancellationToken,
) -> Result<(), DeliveryError> {
    settings.validate()?;
    let sender = Sender::new(&settings.args, settings.allow_list.clone())?;
    let transforms =
        herald_transform::Engine::start(settings.args.transform_threads, Limits::default())?;
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        result = synced.wait_for(|synced| *synced) => {
            if result.is_err() {
                return if shutdown.is_cancelled() { Ok(()) } else { Err(DeliveryError::NeverSynced) };
            }
        }
    }
    let consumer = bus.consumer(ConsumerRole::Delivery).await?;
    let rate_limits = bus.rate_limits().await?;
    let circuit_bucket = bus.circuits().await?;
    let handbacks = bus.handbacks().await?;
    let (held_lanes, lanes_to_start) = held::HeldLanes::new(bus.backlog().await?);
    let progress_every = progress_interval(&consumer);
    tracing::info!(
        endpoints = cache.snapshot().endpoints.len(),
        max_in_flight = settings.args.max_in_flight,
        max_per_endpoint = settings.args.max_per_endpoint,
        "configuration loaded; delivering"
    );

    // A child token, so a consumer failure stops this service's jobs without
    // cancelling the caller's token.
    let stop = shutdown.child_token();
    let tenants = TenantLimits::new(
        cache.clone(),
        settings.args.max_in_flight,
        settings.args.max_per_tenant,
    );
    let context = Arc::new(Context {
        bus: bus.clone(),
        cache,
        sender,
        metrics: metrics.clone(),
        global: Semaphore::new(settings.args.max_in_flight),
        endpoints: Arc::new(EndpointLimits::new(settings.args.max_per_endpoint)),
        tenants,
        circuits: Circuits::new(
            CircuitPolicy {
                failure_threshold: settings.args.circuit_failures,
                cooldown: settings.args.circuit_cooldown,
                max_cooldown: settings.args.circuit_max_cooldown,
            },
            circuit_bucket,
            metrics.clone(),
        ),
        rate_limiter: RateLimiter::new(rate_limits),
        handbacks,
        held: held_lanes,
        transforms,
        stop: stop.clone(),
    });
    let circuits = tokio::spawn({
        let context = context.clone();
        let stop = stop.clone();
        async move { context.circuits.follow(stop).await }
    });
    let lanes = tokio::spawn(lanes::run(context.clone(), stop.clone()));
    tokio::spawn(lanes::sample_backlog(context.clone(), stop.clone()));
    let held_lanes = tokio::spawn(held::run(context.clone(), lanes_to_start, stop.clone()));
    // Only as many pool jobs as this replica can work on soon: the rest
    // stay in the stream for any replica (see pool.rs).
    let mut messages = pool::pull(
        &bus,
        consumer,
        settings.args.max_in_flight.saturating_add(POOL_MARGIN),
        stop.clone(),
    );
    let mut jobs = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            Some(finished) = jobs.join_next(), if !jobs.is_empty() => report_panic(finished),
            message = messages.recv() => match message {
                Some((message, intake)) => {
                    let context = context.clone();
                    jobs.spawn(async move {
                        job::handle(context, message, progress_every, job::Source::Pool).await;
                        drop(intake);
                    });
                }
                None => break Err(DeliveryError::Consume("the consumer stream ended".to_owned())),
            },
        }
    };

    // Dropping the stream stops pulling; jobs already handed out finish below.
    drop(messages);
    if !jobs.is_empty() {
        tracing::info!(jobs = jobs.len(), "draining delivery jobs");
    }
    // Jobs that had not started watch this token and hand themselves back.
    stop.cancel();
    while let Some(finished) = jobs.join_next().await {
        report_panic(finished);
    }
    report_panic(lanes.await);
    report_panic(circuits.await);
    report_panic(held_lanes.await);
    // Acknowledgements are buffered publishes: flush them before the caller
    // closes the connection. A flush waits for the server, so with NATS
    // down it would hold the shutdown forever.
    match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, bus.client().flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot flush the last acknowledgements; those jobs will be redelivered");
        }
        Err(_) => {
            tracing::warn!(timeout = ?FINAL_FLUSH_TIMEOUT, "NATS did not confirm the last acknowledgements; those jobs will be redelivered");
        }
    }
    outcome
}

/// How often a job of `consumer` in progress extends its ack wait: three
/// times per ack wait leave room for a slow NATS round trip before the job
/// would be redelivered.
pub(crate) fn progress_interval(
    consumer: &herald_bus::async_nats::jetstream::consumer::PullConsumer,
) -> Duration {
    (consumer.cached_info().config.ack_wait / 3).max(Duration::from_millis(100))
}

fn report_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        tracing::error!(%error, "a delivery task panicked; its job will be redelivered");
    }
}
