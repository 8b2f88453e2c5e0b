//! One delivery job, from its message to its settlement: wait for a slot,
//! look the endpoint up, sign and send (or skip), record the attempt, then
//! acknowledge or schedule the retry.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use herald_bus::{
    Bus, Handbacks,
    async_nats::jetstream::{AckKind, Message},
};
use herald_core::{
    circuit::Admission,
    endpoint::EndpointSettings,
    envelope::stored_body,
    event::Event,
    id::{AttemptId, DeliveryId, EndpointId, IdError},
    matching::{EndpointStatus, subscribed_name},
    preset::shape,
    rate::RateLimit,
    retry::RetrySchedule,
    signing::delivery_headers,
};
use herald_proto::{
    WireError, timestamp_from_wire, timestamp_to_wire,
    v1::{Attempt, AttemptStatus, DeadLetter, DeliveryJob},
};
use herald_watch::{ConfigCache, ConfigSnapshot};
use prost::Message as _;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    attempt::{record_url, redacted_headers},
    circuits::Circuits,
    client::{self, Response, Sender},
    held::{self, HeldLanes, Holding},
    limits::EndpointLimits,
    metrics::{DeliveryMetrics, Outcome},
    rate::RateLimiter,
    spans,
    tenants::TenantLimits,
    transform::{self, Unshaped},
};

/// How long an attempt record the bus refuses is offered again before the
/// job is handed back (and the request repeated).
const RECORD_PATIENCE: Duration = Duration::from_secs(15);
/// How long one offer of the record waits for the bus's confirmation. A
/// publish sent to a stream leader that just died is never confirmed; the
/// client would wait its whole request timeout, holding the endpoint's FIFO
/// lane, before the record is offered again (same message id, so a record
/// that did land is not stored twice).
const RECORD_ACK_WAIT: Duration = Duration::from_secs(2);
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_LONGEST: Duration = Duration::from_secs(1);
/// How long a fresh job waits for the cache to catch up with the endpoint
/// revision it was made for (a test of an endpoint created a moment ago, a
/// disable that fanout saw first). Usually the Watch stream is milliseconds
/// behind; past this the job runs with what the cache has.
const CONFIG_GRACE: Duration = Duration::from_secs(5);
const CONFIG_POLL: Duration = Duration::from_millis(50);

/// What every job task shares.
#[derive(Debug)]
pub(crate) struct Context {
    pub bus: Bus,
    pub cache: ConfigCache,
    pub sender: Sender,
    pub metrics: DeliveryMetrics,
    pub global: Semaphore,
    pub endpoints: Arc<EndpointLimits>,
    /// Per tenant: the same limits keyed by tenant id, sized by its quota.
    pub tenants: TenantLimits,
    pub circuits: Circuits,
    pub rate_limiter: RateLimiter,
    /// How often each job was handed back without an attempt.
    pub handbacks: Handbacks,
    pub held: HeldLanes,
    /// Runs endpoints' transformations.
    pub transforms: herald_transform::Engine,
    /// Cancelled at shutdown: jobs that have not started hand themselves back.
    pub stop: CancellationToken,
}

/// Where a job was pulled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The shared pool: a job its endpoint cannot take soon, or a retry,
    /// moves to the endpoint's held lane.
    Pool,
    /// A FIFO lane: everything waits in place, in order.
    Fifo,
    /// An endpoint's held lane: each message is one try.
    Held,
}

/// What JetStream is told about a job.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Settlement {
    /// Delivered, finally failed or skipped, and recorded.
    Ack,
    /// Failed and recorded; deliver again after the delay.
    Retry(Duration),
    /// Not started before shutdown: hand it back at once.
    Release,
    /// Not due yet (a held retry): hand it back to be delivered again after
    /// the delay, without an attempt.
    Wait(Duration),
    /// Can never be delivered.
    Terminate,
    /// The attempt record was not stored: say nothing, so the ack wait
    /// expires and the attempt is repeated rather than lost.
    Redeliver,
}

#[derive(Debug, thiserror::Error)]
enum InvalidJob {
    #[error("cannot read the JetStream delivery count: {0}")]
    Info(String),
    #[error("the payload is not a DeliveryJob: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("invalid delivery_id: {0}")]
    DeliveryId(#[source] IdError),
    #[error("invalid endpoint_id: {0}")]
    EndpointId(#[source] IdError),
    #[error("the job has no event")]
    NoEvent,
    #[error(transparent)]
    Event(#[from] WireError),
}

impl Decided {
    fn succeeded(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }
}

/// Runs one job to its settlement, in the span of this attempt, reporting
/// progress this often (its consumer's ack wait decides).
pub(crate) async fn handle(
    context: Arc<Context>,
    message: Message,
    progress_every: Duration,
    source: Source,
) {
    let span = spans::attempt(&message);
    settle(context, message, progress_every, source)
        .instrument(span)
        .await
}

async fn settle(context: Arc<Context>, message: Message, progress_every: Duration, source: Source) {
    let (settlement, handed_back) = match Job::decode(&message, source) {
        Ok(mut job) => {
            let handed_back = job.discount_handbacks(&context.handbacks).await;
            let settlement =
                with_progress(&message, progress_every, job.process(&context, &message)).await;
            (settlement, handed_back)
        }
        Err(error) => {
            // Redelivering it would fail the same way forever.
            tracing::error!(subject = %message.subject, %error, "terminating an invalid delivery job");
            (Settlement::Terminate, false)
        }
    };
    let sequence = message.info().map(|info| info.stream_sequence).ok();
    let result = match settlement {
        Settlement::Ack => message.ack().await,
        Settlement::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
        Settlement::Release => {
            // JetStream counts this delivery; the job's attempt numbers must
            // not. A held lane's message is one try whatever its count.
            if source != Source::Held
                && let Some(sequence) = sequence
                && let Err(error) = context.handbacks.add(sequence).await
            {
                tracing::warn!(subject = %message.subject, %error, "cannot count a hand-back; the job's next attempt number skips one");
            }
            message.ack_with(AckKind::Nak(None)).await
        }
        Settlement::Wait(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
        Settlement::Terminate => message.ack_with(AckKind::Term).await,
        Settlement::Redeliver => Ok(()),
    };
    if let Err(error) = result {
        tracing::warn!(subject = %message.subject, %error, "cannot settle a delivery job; JetStream redelivers it after the ack wait");
        return;
    }
    if handed_back
        && matches!(settlement, Settlement::Ack | Settlement::Terminate)
        && let Some(sequence) = sequence
        && let Err(error) = context.handbacks.forget(sequence).await
    {
        // The bucket's age limit removes it later.
        tracing::debug!(%error, "cannot forget a settled job's hand-backs");
    }
}

/// Drives `work` while telling JetStream the job is still being worked on,
/// so a job waiting longer than the ack wait for a slot is not redelivered
/// to another worker meanwhile.
async fn with_progress<F: Future>(message: &Message, every: Duration, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticks.tick() => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::warn!(subject = %message.subject, %error, "cannot extend a delivery job's ack wait");
                }
            }
        }
    }
}

/// A decoded job and the number of this attempt.
#[derive(Debug)]
struct Job {
    delivery_id: DeliveryId,
    endpoint_id: EndpointId,
    event: Event,
    /// The event as it arrived, for a dead letter.
    wire_event: herald_proto::v1::Event,
    /// 1 for the first try; a redriven or recovered delivery goes on
    /// counting from the attempts it made before.
    attempt: u32,
    /// 1 for the first try since this job was enqueued: where the retry
    /// schedule stands.
    attempt_in_job: u32,
    /// Whether JetStream delivered this message before (a retry, or a
    /// hand-back at shutdown).
    redelivered: bool,
    /// The job message's place in its stream, which keys its hand-backs.
    stream_sequence: u64,
    endpoint_revision: u64,
    enqueued_at: Option<OffsetDateTime>,
    /// A held retry is not tried before this time.
    not_before: Option<OffsetDateTime>,
    trigger: i32,
    test: bool,
    source: Source,
}

/// An attempt record and what follows once it is stored.
#[derive(Debug)]
struct Decided {
    attempt: Attempt,
    outcome: Outcome,
    /// Deliver again after this long.
    retry_in: Option<Duration>,
}

impl Job {
    fn decode(message: &Message, source: Source) -> Result<Job, InvalidJob> {
        let info = message
            .info()
            .map_err(|error| InvalidJob::Info(error.to_string()))?;
        let (delivered, stream_sequence) = (info.delivered, info.stream_sequence);
        let wire = DeliveryJob::decode(message.payload.as_ref())?;
        let wire_event = wire.event.ok_or(InvalidJob::NoEvent)?;
        let event = Event::try_from(wire_event.clone())?;
        // The delivery count is 1 on first delivery and grows with every
        // redelivery, retries included. A held lane's message is one try
        // (a retry moves on as a new message); its count grows with waits.
        let deliveries = match source {
            Source::Held => 1,
            Source::Pool | Source::Fifo => u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
        };
        Ok(Job {
            delivery_id: DeliveryId::parse(&wire.delivery_id).map_err(InvalidJob::DeliveryId)?,
            endpoint_id: EndpointId::parse(&wire.endpoint_id).map_err(InvalidJob::EndpointId)?,
            event,
            wire_event,
            attempt: wire.attempts_made.saturating_add(deliveries),
            attempt_in_job: wire.schedule_position.saturating_add(deliveries),
            redelivered: deliveries > 1,
            stream_sequence,
            endpoint_revision: wire.endpoint_revision,
            // Only used to bound a wait; a bad value means "no wait budget known".
            enqueued_at: wire
                .enqueued_at
                .and_then(|at| timestamp_from_wire("enqueued_at", Some(at)).ok()),
            not_before: wire
                .not_before
                .and_then(|at| timestamp_from_wire("not_before", Some(at)).ok()),
            trigger: wire.trigger,
            test: wire.test,
            source,
        })
    }

    /// Takes the deliveries that were hand-backs (a shutdown before the job
    /// started) out of the attempt numbers. Whether there were any.
    async fn discount_handbacks(&mut self, handbacks: &Handbacks) -> bool {
        // Only a redelivered job can have been handed back.
        if !self.redelivered {
            return false;
        }
        let count = match handbacks.count(self.stream_sequence).await {
            Ok(count) => u32::try_from(count).unwrap_or(u32::MAX),
            Err(error) => {
                tracing::warn!(delivery = %self.delivery_id, %error, "cannot read the job's hand-backs; its attempt number may skip");
                return false;
            }
        };
        if count == 0 {
            return false;
        }
        self.attempt = self.attempt.saturating_sub(count).max(1);
        self.attempt_in_job = self.attempt_in_job.saturating_sub(count).max(1);
        true
    }

    async fn process(&self, context: &Context, message: &Message) -> Settlement {
        let span = tracing::Span::current();
        span.record("herald.delivery.id", self.delivery_id.as_str());
        span.record("herald.attempt", self.attempt);
        span.record("herald.test", self.test);
        // Checked before the circuit, which a due probe would take.
        if let Some(wait) = self.not_due() {
            return Settlement::Wait(wait);
        }
        if !self.await_config(&context.cache, &context.stop).await {
            return Settlement::Release;
        }
        if self.hold_if_busy(context, message).await {
            return Settlement::Ack;
        }
        // A test is its owner asking for one answer now: it neither waits
        // for the circuit nor counts against the rate.
        if !self.test && !self.await_circuit(context).await {
            return Settlement::Release;
        }
        let slot = context.endpoints.slot(self.endpoint_id.as_str());
        // The endpoint's permit first, then its rate, then its tenant's: a
        // job holds a global permit only once it can actually send. A job
        // counts towards its tenant only once its endpoint can take it.
        let permits = async {
            let endpoint = slot.acquire().await.ok()?;
            if let Some(limit) = self.rate_limit(&context.cache).filter(|_| !self.test)
                && !context
                    .rate_limiter
                    .wait_turn(self.endpoint_id.as_str(), limit, &context.stop)
                    .await
            {
                return None;
            }
            let tenant = context
                .tenants
                .slot(self.event.tenant_id.as_str())
                .acquire_owned()
                .await
                .ok()?;
            let global = context.global.acquire().await.ok()?;
            Some((endpoint, tenant, global))
        };
        let _permits = tokio::select! {
            biased;
            _ = context.stop.cancelled() => return Settlement::Release,
            permits = permits => match permits {
                Some(permits) => permits,
                None => return Settlement::Release,
            },
        };

        // Looked up after the wait, so a disable or rotation made meanwhile applies.
        let snapshot = context.cache.snapshot();
        let decided = match self.sendable(&snapshot) {
            Ok(settings) => match self.deliver(context, settings).await {
                Ok(decided) => {
                    // A test's failure says nothing new about a receiver the
                    // circuit tracks; its success does.
                    if !self.test || decided.succeeded() {
                        context
                            .circuits
                            .record(self.endpoint_id.as_str(), decided.succeeded())
                            .await;
                    }
                    decided
                }
                // Never sent: it says nothing about the receiver.
                Err(unsent) => unsent,
            },
            Err(Unsendable::DeadLetter { reason, url }) => {
                self.not_sent(AttemptStatus::Dead, Outcome::Dead, reason, url)
            }
            Err(Unsendable::Skip { reason, url }) => {
                self.not_sent(AttemptStatus::Skipped, Outcome::Skipped, reason, url)
            }
            Err(Unsendable::Unusable { reason }) => self.failed(
                self.attempt_record(OffsetDateTime::now_utc()),
                &RetrySchedule::default(),
                None,
                reason,
            ),
            Err(Unsendable::ForeignEndpoint { tenant }) => {
                tracing::error!(
                    delivery = %self.delivery_id,
                    endpoint = %self.endpoint_id,
                    event_tenant = %self.event.tenant_id,
                    endpoint_tenant = %tenant,
                    "terminating a delivery job whose endpoint belongs to another tenant"
                );
                return Settlement::Terminate;
            }
        };
        match self.record(context, decided).await {
            Settlement::Retry(delay) if self.source != Source::Fifo => {
                self.retry_in_lane(context, message, delay).await
            }
            settlement => settlement,
        }
    }

    /// How long a held retry still has to wait.
    fn not_due(&self) -> Option<Duration> {
        let not_before = self.not_before?;
        Duration::try_from(not_before - OffsetDateTime::now_utc())
            .ok()
            .filter(|wait| !wait.is_zero())
    }

    /// Moves a pool job whose endpoint cannot take it soon to the
    /// endpoint's held lane, where it keeps its attempt number. True when
    /// it moved (the pool message is then acknowledged); a failed move
    /// leaves it waiting here, as before held lanes.
    async fn hold_if_busy(&self, context: &Context, message: &Message) -> bool {
        if self.source != Source::Pool || self.test {
            return false;
        }
        let load = held::load(
            context,
            &self.endpoint_id,
            self.event.tenant_id.as_str(),
            self.rate_limit(&context.cache),
        );
        let Some(reason) = load.hold_reason() else {
            return false;
        };
        let holding = Holding {
            // This delivery of the pool message was not an attempt.
            attempts_made: self.attempt.saturating_sub(1),
            schedule_position: self.attempt_in_job.saturating_sub(1),
            not_before: None,
            reason: Some(reason),
        };
        match held::hold(context, message, &self.endpoint_id, holding).await {
            Ok(()) => {
                tracing::debug!(delivery = %self.delivery_id, endpoint = %self.endpoint_id, reason = reason.as_str(), "moved to the held lane");
                true
            }
            Err(error) => {
                tracing::warn!(delivery = %self.delivery_id, endpoint = %self.endpoint_id, %error, "cannot move a job to its held lane; it waits in the pool");
                false
            }
        }
    }

    /// Moves a failed attempt's retry to the endpoint's held lane, due after
    /// `delay`, so it waits outside the shared pool.
    async fn retry_in_lane(
        &self,
        context: &Context,
        message: &Message,
        delay: Duration,
    ) -> Settlement {
        let not_before = time::Duration::try_from(delay)
            .ok()
            .and_then(|delay| OffsetDateTime::now_utc().checked_add(delay));
        let holding = Holding {
            attempts_made: self.attempt,
            schedule_position: self.attempt_in_job,
            not_before,
            reason: None,
        };
        match held::hold(context, message, &self.endpoint_id, holding).await {
            Ok(()) => Settlement::Ack,
            Err(error) => {
                // Waiting in place keeps the schedule; in a held lane the
                // next try then repeats this attempt's number.
                tracing::warn!(delivery = %self.delivery_id, %error, "cannot move a retry to its held lane; it waits where it is");
                Settlement::Retry(delay)
            }
        }
    }

    /// Waits while the endpoint's circuit is open, holding the job (and
    /// extending its ack wait) without a worker slot. False when stopped.
    async fn await_circuit(&self, context: &Context) -> bool {
        loop {
            match context.circuits.admit(self.endpoint_id.as_str()).await {
                Admission::Send | Admission::Probe => return true,
                Admission::Wait(wait) => {
                    // Spread the wake-ups so a closing circuit is not met by
                    // the whole backlog at once.
                    let wait = wait.mul_f64(1.0 + jitter_sample() * 0.1);
                    tokio::select! {
                        _ = context.stop.cancelled() => return false,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The endpoint's rate limit, when it has a valid one.
    fn rate_limit(&self, cache: &ConfigCache) -> Option<RateLimit> {
        held::rate_limit(cache, &self.endpoint_id)
    }

    /// Waits until the cache holds the endpoint at the revision the job was
    /// made for, at most until [`CONFIG_GRACE`] after the job was enqueued.
    /// A job enqueued long ago (a backlog, a retry) does not wait: the cache
    /// has long caught up, so a missing endpoint really is deleted. False
    /// when stopped meanwhile.
    async fn await_config(&self, cache: &ConfigCache, stop: &CancellationToken) -> bool {
        let age = self
            .enqueued_at
            .map(|enqueued_at| OffsetDateTime::now_utc() - enqueued_at)
            .and_then(|age| Duration::try_from(age).ok())
            .unwrap_or_default();
        let deadline = Instant::now() + CONFIG_GRACE.saturating_sub(age);
        loop {
            let current = cache
                .snapshot()
                .endpoints
                .get(self.endpoint_id.as_str())
                .and_then(|watched| watched.endpoint.as_ref())
                .is_some_and(|endpoint| endpoint.revision >= self.endpoint_revision);
            if current || Instant::now() >= deadline {
                return true;
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(CONFIG_POLL) => {}
            }
        }
    }

    /// The endpoint's settings, if this job may be sent to it now.
    fn sendable<'a>(
        &self,
        snapshot: &'a ConfigSnapshot,
    ) -> Result<&'a EndpointSettings, Unsendable> {
        let id = self.endpoint_id.as_str();
        let Some(converted) = snapshot.endpoint_settings.get(id) else {
            return Err(Unsendable::Skip {
                reason: format!("endpoint {} was deleted", self.endpoint_id),
                url: String::new(),
            });
        };
        let settings = match converted.as_ref() {
            Ok(settings) => settings,
            Err(error) => {
                let tenant = snapshot
                    .endpoints
                    .get(id)
                    .and_then(|watched| watched.endpoint.as_ref())
                    .map(|endpoint| endpoint.tenant_id.clone())
                    .unwrap_or_default();
                if tenant != self.event.tenant_id.as_str() {
                    return Err(Unsendable::ForeignEndpoint { tenant });
                }
                return Err(Unsendable::Unusable {
                    reason: format!(
                        "endpoint {} cannot be delivered to: {error}",
                        self.endpoint_id
                    ),
                });
            }
        };
        if settings.tenant_id != self.event.tenant_id {
            return Err(Unsendable::ForeignEndpoint {
                tenant: settings.tenant_id.to_string(),
            });
        }
        // A test goes to any endpoint that exists: its owner tests a paused
        // or failing endpoint before turning it back on.
        let url = || record_url(settings.url.as_str());
        let refusal = match settings.status {
            EndpointStatus::Active => None,
            _ if self.test => None,
            // Paused, by its owner or after failing for too long: what is
            // still queued (retries included) is kept, in the dead letters,
            // for a redrive once it is back.
            EndpointStatus::Failing => {
                return Err(Unsendable::DeadLetter {
                    reason: format!(
                        "endpoint {} is failing and was paused automatically",
                        self.endpoint_id
                    ),
                    url: url(),
                });
            }
            EndpointStatus::Disabled => {
                return Err(Unsendable::DeadLetter {
                    reason: format!("endpoint {} is disabled", self.endpoint_id),
                    url: url(),
                });
            }
            EndpointStatus::PendingTest => {
                Some("is pending its test (only test deliveries go to it)")
            }
        };
        match refusal {
            None => Ok(settings),
            Some(refusal) => Err(Unsendable::Skip {
                reason: format!("endpoint {} {refusal}", self.endpoint_id),
                url: url(),
            }),
        }
    }

    /// The attempt's record once sent, or `Err` with the record of a
    /// delivery its endpoint's transformation stopped before sending.
    async fn deliver(
        &self,
        context: &Context,
        settings: &EndpointSettings,
    ) -> Result<Decided, Decided> {
        let attempted_at = OffsetDateTime::now_utc();
        let schedule = &settings.retry;
        let mut attempt = self.attempt_record(attempted_at);
        attempt.url = record_url(settings.url.as_str());
        let request = match self.prepare(context, settings, attempted_at).await {
            Ok(request) => request,
            Err(Unprepared::Unsigned(error)) => {
                return Ok(self.failed(attempt, schedule, None, error));
            }
            Err(Unprepared::Shaping(unshaped)) => return Err(self.unshaped(attempt, unshaped)),
        };
        attempt.request_headers =
            redacted_headers(&request.headers, &settings.scheme, &settings.headers);
        attempt.request_body = Bytes::copy_from_slice(stored_body(&request.body));
        attempt.request_body_size = u64::try_from(request.body.len()).unwrap_or(u64::MAX);

        let started = Instant::now();
        let response = {
            let _in_flight = context.metrics.in_flight();
            context.sender.send(request).await
        };
        let duration = started.elapsed();
        context.metrics.attempt_took(duration);
        attempt.duration = prost_types::Duration::try_from(duration).ok();

        Ok(match response {
            Response::Answered {
                status,
                retry_after,
                excerpt,
            } => {
                attempt.response_code = u32::from(status);
                attempt.response_body = Bytes::from(excerpt);
                if (200..300).contains(&status) {
                    attempt.status = AttemptStatus::Succeeded.into();
                    Decided {
                        attempt,
                        outcome: Outcome::Succeeded,
                        retry_in: None,
                    }
                } else {
                    let error = if (300..400).contains(&status) {
                        format!("endpoint answered HTTP {status}; redirects are not followed")
                    } else {
                        format!("endpoint answered HTTP {status}")
                    };
                    self.failed(attempt, schedule, retry_after, error)
                }
            }
            Response::NoAnswer { error } => self.failed(attempt, schedule, None, error),
        })
    }

    /// The request to send; an error says why it cannot be sent.
    async fn prepare(
        &self,
        context: &Context,
        settings: &EndpointSettings,
        now: OffsetDateTime,
    ) -> Result<client::Request, Unprepared> {
        // An alias subscriber gets the event under the name it subscribed
        // to; a preset names events its own way, from Herald's name.
        let renamed = subscribed_name(&settings.event_types, &self.event).map(|event_type| Event {
            event_type,
            ..self.event.clone()
        });
        let event = match (settings.preset, &renamed) {
            (None, Some(renamed)) => renamed,
            _ => &self.event,
        };
        // The preset's body (Herald's envelope without one), reshaped by the
        // endpoint's transformation if it has one (never with a preset): what
        // is sent is what gets signed.
        let preset = shape(settings.preset, event, self.test);
        let shaped = transform::shape(
            &context.transforms,
            settings,
            event,
            &self.delivery_id,
            preset.body,
        )
        .await
        .map_err(Unprepared::Shaping)?;
        let mut headers = delivery_headers(
            &settings.scheme,
            &settings.secrets.signing(now),
            &self.delivery_id,
            event,
            now.unix_timestamp(),
            &shaped.body,
            env!("CARGO_PKG_VERSION"),
        )
        .map_err(|error| Unprepared::Unsigned(error.to_string()))?;
        headers.extend(preset.headers);
        let body = shaped.apply(&mut headers);
        headers.extend(
            settings
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Ok(client::Request {
            url: settings.url.clone(),
            headers,
            body,
            timeout: settings.timeout,
        })
    }

    /// The record of a delivery its endpoint's transformation stopped: a
    /// cancel is skipped; a failure is dead at once (the program would fail
    /// the same way again), so it can be redriven once the program is
    /// fixed. A test is only failed.
    fn unshaped(&self, mut attempt: Attempt, unshaped: Unshaped) -> Decided {
        let (status, outcome, error) = match unshaped {
            Unshaped::Cancelled(reason) => (AttemptStatus::Skipped, Outcome::Skipped, reason),
            Unshaped::Failed(error) if self.test => {
                (AttemptStatus::Failed, Outcome::Failed, error.to_string())
            }
            Unshaped::Failed(error) => (AttemptStatus::Dead, Outcome::Dead, error.to_string()),
        };
        attempt.status = status.into();
        attempt.error = error;
        Decided {
            attempt,
            outcome,
            retry_in: None,
        }
    }

    /// A failed attempt: retrying when the schedule has a next delay, else
    /// dead (a test is only failed: nobody redrives a test).
    fn failed(
        &self,
        mut attempt: Attempt,
        schedule: &RetrySchedule,
        retry_after: Option<Duration>,
        error: String,
    ) -> Decided {
        attempt.error = error;
        // A test shows its caller one answer; retrying it would only send
        // more test deliveries nobody waits for.
        let next = if self.test {
            None
        } else {
            schedule.next_delay(self.attempt_in_job, retry_after, jitter_sample())
        };
        match next {
            Some(delay) => {
                attempt.status = AttemptStatus::Retrying.into();
                attempt.next_attempt_at = time::Duration::try_from(delay)
                    .ok()
                    .and_then(|delay| OffsetDateTime::now_utc().checked_add(delay))
                    .map(timestamp_to_wire);
                Decided {
                    attempt,
                    outcome: Outcome::Retrying,
                    retry_in: Some(delay),
                }
            }
            None if self.test => {
                attempt.status = AttemptStatus::Failed.into();
                Decided {
                    attempt,
                    outcome: Outcome::Failed,
                    retry_in: None,
                }
            }
            None => {
                attempt.status = AttemptStatus::Dead.into();
                Decided {
                    attempt,
                    outcome: Outcome::Dead,
                    retry_in: None,
                }
            }
        }
    }

    /// The record of a job that was not sent, and why.
    fn not_sent(
        &self,
        status: AttemptStatus,
        outcome: Outcome,
        reason: String,
        url: String,
    ) -> Decided {
        let mut attempt = self.attempt_record(OffsetDateTime::now_utc());
        attempt.status = status.into();
        attempt.error = reason;
        attempt.url = url;
        Decided {
            attempt,
            outcome,
            retry_in: None,
        }
    }

    /// The fields every attempt record of this job shares.
    fn attempt_record(&self, attempted_at: OffsetDateTime) -> Attempt {
        Attempt {
            id: AttemptId::for_delivery(&self.delivery_id, self.attempt).to_string(),
            delivery_id: self.delivery_id.to_string(),
            event_id: self.event.id.to_string(),
            tenant_id: self.event.tenant_id.to_string(),
            endpoint_id: self.endpoint_id.to_string(),
            device_id: self
                .event
                .device_id
                .map(|device| device.to_string())
                .unwrap_or_default(),
            event_type: self.event.event_type.as_str().to_owned(),
            attempt: self.attempt,
            attempted_at: Some(timestamp_to_wire(attempted_at)),
            trigger: self.trigger,
            test: self.test,
            ..Attempt::default()
        }
    }

    /// Publishes the attempt record and waits for the bus to store it, then
    /// says how to settle the job.
    async fn record(&self, context: &Context, decided: Decided) -> Settlement {
        let (bus, metrics) = (&context.bus, &context.metrics);
        let Decided {
            attempt,
            outcome,
            retry_in,
        } = decided;
        if outcome == Outcome::Dead
            && let Err(error) = self.dead_letter(bus, &attempt).await
        {
            tracing::warn!(
                delivery = %self.delivery_id,
                %error,
                "cannot store a dead letter; the job will be redelivered and the attempt repeated"
            );
            return Settlement::Redeliver;
        }
        let message =
            bus.topology()
                .attempt_message(&attempt, &self.event.tenant_id, &self.endpoint_id);
        // A record the bus cannot store now (its stream electing a leader)
        // is sent again for a while, under the same message id, rather than
        // the request: giving up means POSTing again.
        let patience = tokio::time::Instant::now() + RECORD_PATIENCE;
        let mut wait = RECORD_RETRY_FIRST;
        let stored = loop {
            let stored = match bus.send(message.clone()).await {
                Ok(acknowledgement) => {
                    match tokio::time::timeout(RECORD_ACK_WAIT, acknowledgement).await {
                        Ok(stored) => stored.map(drop).map_err(|error| error.to_string()),
                        Err(_) => Err(format!(
                            "the bus did not confirm within {} s",
                            RECORD_ACK_WAIT.as_secs()
                        )),
                    }
                }
                Err(error) => Err(error.to_string()),
            };
            if stored.is_ok() || tokio::time::Instant::now() + wait >= patience {
                break stored;
            }
            tokio::select! {
                _ = context.stop.cancelled() => break stored,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = wait.saturating_mul(2).min(RECORD_RETRY_LONGEST);
        };
        if let Err(error) = stored {
            tracing::warn!(
                delivery = %self.delivery_id,
                attempt = self.attempt,
                %error,
                "cannot record a delivery attempt; the job will be redelivered and the attempt repeated"
            );
            return Settlement::Redeliver;
        }
        metrics.recorded(outcome, &attempt, self.event.received_at);
        spans::recorded(&attempt);
        let status = attempt.status().as_str_name();
        if outcome == Outcome::Succeeded {
            tracing::debug!(delivery = %self.delivery_id, endpoint = %self.endpoint_id, attempt = self.attempt, status, code = attempt.response_code, "delivered");
        } else {
            tracing::info!(delivery = %self.delivery_id, endpoint = %self.endpoint_id, attempt = self.attempt, status, code = attempt.response_code, error = %attempt.error, "delivery attempt did not succeed");
        }
        match retry_in {
            Some(delay) => Settlement::Retry(delay),
            None => Settlement::Ack,
        }
    }
}

impl Job {
    /// Stores the delivery in the dead letters, replacing an older dead
    /// letter of the same delivery, and waits for the bus to keep it.
    async fn dead_letter(&self, bus: &Bus, last: &Attempt) -> Result<(), String> {
        let dead_letter = DeadLetter {
            id: self.delivery_id.to_string(),
            tenant_id: self.event.tenant_id.to_string(),
            endpoint_id: self.endpoint_id.to_string(),
            event: Some(self.wire_event.clone()),
            dead_at: last.attempted_at,
            // The config service adds every earlier attempt from the log.
            attempts: vec![last.clone()],
            reason: last.error.clone(),
        };
        let message = bus.topology().dead_letter_message(
            &dead_letter,
            &self.event.tenant_id,
            &self.endpoint_id,
            &self.delivery_id,
            &last.id,
        );
        bus.send(message)
            .await
            .map_err(|error| error.to_string())?
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }
}

/// Why a request could not be made.
#[derive(Debug)]
enum Unprepared {
    /// It cannot be signed (the endpoint has no usable secret).
    Unsigned(String),
    /// The endpoint's transformation cancelled it or failed.
    Shaping(Unshaped),
}

/// Why a job is not sent.
#[derive(Debug)]
enum Unsendable {
    /// Recorded as a dead attempt and kept in the dead letters.
    DeadLetter { reason: String, url: String },
    /// Recorded as a skipped attempt.
    Skip { reason: String, url: String },
    /// The job names another tenant's endpoint: a bug or a forged job.
    ForeignEndpoint { tenant: String },
    /// The endpoint's settings do not convert (the config service never
    /// stores such an endpoint): a failed attempt on the default schedule.
    Unusable { reason: String },
}

/// A uniform sample in `[0, 1)` for the schedule's jitter. Without
/// randomness the midpoint (no jitter) is still a valid delay.
fn jitter_sample() -> f64 {
    // 53 random bits fill an f64 mantissa exactly.
    getrandom::u64().map_or(0.5, |bits| (bits >> 11) as f64 / (1_u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_samples_are_in_range() {
        for _ in 0..1000 {
            let sample = jitter_sample();
            assert!((0.0..1.0).contains(&sample), "{sample}");
        }
    }
}
