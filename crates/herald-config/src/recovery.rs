//! Dead letters, and the server-side jobs that send deliveries again:
//! replay (one event), recovery (an endpoint's failures since a time) and
//! redrive (dead letters).
//!
//! Design decisions:
//! - Dead letters live only on the bus (one message per delivery in the
//!   dead-letter stream, kept for its retention), so they survive restarts
//!   without a second copy in the database; listing reads them directly.
//! - Jobs and their progress live in a JetStream key-value bucket, so any
//!   config replica can answer for a job and resume one whose replica died
//!   (a job that stops reporting progress is taken over).
//! - Re-sent deliveries keep their delivery id (so receivers deduplicate on
//!   `webhook-id`) and continue the attempt numbering. Each is published with
//!   a message id made of the job and the delivery, so a resumed job does not
//!   enqueue twice, and a dead letter is removed only after its delivery is
//!   back on the bus.
//! - An identical request made again while its job runs, or shortly after it
//!   finished, returns that job instead of sending everything again.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use herald_bus::{
    JobLane, JobPublish,
    async_nats::{
        HeaderMap,
        jetstream::{kv, message::StreamMessage},
    },
    headers,
};
use herald_core::{
    digest::hex,
    event::Event,
    id::{DeliveryId, EndpointId, EventId, TenantId},
    matching::{EndpointStatus as MatchStatus, subscription_matches},
};
use herald_proto::{
    timestamp_from_wire, timestamp_to_wire,
    v1::{
        self as pb, DeadLetter, DeliveryJob, DeliveryTrigger, ListDeadLettersRequest,
        ListDeadLettersResponse, RecoveryJob, RecoveryJobState,
    },
};
use herald_store::{AttemptFilter, EndpointFilter, EndpointRecord};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::{
    convert,
    error::{ApiError, ApiResult},
    paging,
    state::ConfigState,
};

/// An identical request within this long after its job finished returns
/// that job.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(600);
/// A running job whose progress is older than this is resumed elsewhere.
const STALLED_AFTER: Duration = Duration::from_secs(30);
/// How often a running job reports progress at the least.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often stalled jobs are looked for.
const STALL_SCAN: Duration = Duration::from_secs(10);
/// How often a watched job is read.
const WATCH_POLL: Duration = Duration::from_millis(200);
/// The most deliveries one recovery re-sends.
const MAX_RECOVERED: u64 = 100_000;
/// Dead letters examined for one page of a filtered listing; a page may be
/// short, with a token to go on.
const SCAN_PER_PAGE: usize = 5_000;
/// Attempts shown with each dead letter.
const ATTEMPTS_PER_DEAD_LETTER: u64 = 100;

/// What a job does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Work {
    Replay {
        event_id: String,
        /// Empty: every endpoint the event matches now.
        endpoint_id: String,
    },
    Recover {
        endpoint_id: String,
        since_micros: i64,
    },
    Redrive {
        delivery_ids: Vec<String>,
        all_of_endpoint: String,
    },
}

impl Work {
    fn trigger(&self) -> DeliveryTrigger {
        match self {
            Work::Replay { .. } => DeliveryTrigger::Replay,
            Work::Recover { .. } => DeliveryTrigger::Recover,
            Work::Redrive { .. } => DeliveryTrigger::Redrive,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// A job as kept in the bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredJob {
    id: String,
    tenant_id: String,
    work: Work,
    state: JobState,
    total: u64,
    enqueued: u64,
    skipped: u64,
    error: String,
    created_at_micros: i64,
    finished_at_micros: Option<i64>,
    heartbeat_micros: i64,
}

impl StoredJob {
    fn to_wire(&self) -> RecoveryJob {
        let timestamp = |micros: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
                .ok()
                .map(timestamp_to_wire)
        };
        RecoveryJob {
            id: self.id.clone(),
            kind: self.work.trigger().into(),
            state: match self.state {
                JobState::Running => RecoveryJobState::Running,
                JobState::Succeeded => RecoveryJobState::Succeeded,
                JobState::Failed => RecoveryJobState::Failed,
            }
            .into(),
            total: self.total,
            enqueued: self.enqueued,
            skipped: self.skipped,
            error: self.error.clone(),
            created_at: timestamp(self.created_at_micros),
            finished_at: self.finished_at_micros.and_then(timestamp),
        }
    }

    fn encode(&self) -> Bytes {
        // A struct of strings and integers always serialises.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

fn job_key(id: &str) -> String {
    format!("job.{id}")
}

fn request_key(tenant_id: &str, work: &Work) -> String {
    let mut hash = Sha256::new();
    hash.update(tenant_id.as_bytes());
    hash.update(serde_json::to_vec(work).unwrap_or_default());
    let digest = hash.finalize();
    format!("request.{}", hex(&digest))
}

fn now_micros() -> i64 {
    micros(OffsetDateTime::now_utc())
}

pub(crate) fn micros(moment: OffsetDateTime) -> i64 {
    i64::try_from(moment.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn new_job_id() -> ApiResult<String> {
    let mut bytes = [0_u8; 12];
    getrandom::fill(&mut bytes).map_err(|error| ApiError::Corrupt {
        what: "random source",
        reason: error.to_string(),
    })?;
    Ok(format!("rcv_{}", hex(&bytes)))
}

fn bus_error(error: impl ToString) -> ApiError {
    ApiError::Bus(herald_bus::BusError::Unavailable(error.to_string()))
}

fn parse_tenant(tenant_id: &str) -> ApiResult<TenantId> {
    TenantId::parse(tenant_id).map_err(|error| ApiError::Corrupt {
        what: "tenant id",
        reason: error.to_string(),
    })
}

/// A delivery to send again.
#[derive(Debug)]
struct Resend {
    delivery_id: String,
    endpoint_id: String,
    event: pb::Event,
    attempts_made: u32,
    /// The dead letter to remove once the delivery is back on the bus.
    dead_letter: Option<(String, u64)>,
    /// The trace the delivery belongs to, from the message it is re-sent from.
    trace: HeaderMap,
}

/// The trace context `message` carries.
fn trace_of(message: &StreamMessage) -> HeaderMap {
    let mut trace = HeaderMap::new();
    headers::copy_trace_context(Some(&message.headers), &mut trace);
    trace
}

impl ConfigState {
    // ---------------------------------------------------------------------
    // Dead letters
    // ---------------------------------------------------------------------

    pub async fn list_dead_letters(
        &self,
        tenant_id: &str,
        request: ListDeadLettersRequest,
    ) -> ApiResult<ListDeadLettersResponse> {
        let size = usize::try_from(paging::page_size(request.page_size)?).unwrap_or(usize::MAX);
        let tenant = parse_tenant(tenant_id)?;
        let topology = self.bus.topology();
        let filter = if request.endpoint_id.is_empty() {
            topology.tenant_dead_letters_filter(&tenant)
        } else {
            let endpoint = EndpointId::parse(&request.endpoint_id)
                .map_err(|error| ApiError::invalid("endpoint_id", error))?;
            topology.endpoint_dead_letters_filter(&tenant, &endpoint)
        };
        let bound = |field: &'static str, value: Option<prost_types::Timestamp>| {
            value
                .map(|value| timestamp_from_wire(field, Some(value)))
                .transpose()
                .map_err(|error| ApiError::invalid(field, error.reason))
        };
        let since = bound("since", request.since)?;
        let until = bound("until", request.until)?;
        let mut sequence = paging::decode_dead_letter_after(&request.page_token)?;

        let stream = topology.dead_letters_stream();
        let mut dead_letters = Vec::new();
        let mut next_page_token = String::new();
        for _ in 0..SCAN_PER_PAGE {
            let Some(message) = self
                .bus
                .next_message(&stream, filter.clone(), sequence)
                .await?
            else {
                break;
            };
            sequence = message.sequence.saturating_add(1);
            let Ok(dead_letter) = DeadLetter::decode(message.payload.as_ref()) else {
                tracing::warn!(subject = %message.subject, "skipping an unreadable dead letter");
                continue;
            };
            let dead_at = timestamp_from_wire("dead_at", dead_letter.dead_at).ok();
            let in_window = since.is_none_or(|since| dead_at.is_some_and(|at| at >= since))
                && until.is_none_or(|until| dead_at.is_some_and(|at| at < until));
            let type_matches = request.event_type.is_empty()
                || dead_letter
                    .event
                    .as_ref()
                    .is_some_and(|event| event.r#type == request.event_type);
            if in_window && type_matches {
                dead_letters.push(self.with_attempt_history(tenant_id, dead_letter).await?);
                if dead_letters.len() == size {
                    break;
                }
            }
        }
        // Another page exists when anything follows what was examined.
        if self
            .bus
            .next_message(&stream, filter, sequence)
            .await?
            .is_some()
        {
            next_page_token = paging::encode(&paging::DeadLetterPosition { sequence });
        }
        Ok(ListDeadLettersResponse {
            dead_letters,
            next_page_token,
        })
    }

    /// Every attempt of the dead letter's delivery, oldest first, from the
    /// attempt log (the dead letter itself holds only the last one).
    async fn with_attempt_history(
        &self,
        tenant_id: &str,
        mut dead_letter: DeadLetter,
    ) -> ApiResult<DeadLetter> {
        let Some(event_id) = dead_letter.event.as_ref().map(|event| event.id.clone()) else {
            return Ok(dead_letter);
        };
        let filter = AttemptFilter {
            endpoint_id: Some(dead_letter.endpoint_id.clone()),
            event_id: Some(event_id),
            ..AttemptFilter::default()
        };
        let mut attempts: Vec<pb::Attempt> = self
            .store
            .list_attempts(tenant_id, &filter, ATTEMPTS_PER_DEAD_LETTER, None)
            .await?
            .into_iter()
            .filter(|attempt| attempt.delivery_id == dead_letter.id)
            .map(convert::attempt)
            .collect();
        if !attempts.is_empty() {
            attempts.reverse();
            // The last attempt may not be in the log yet.
            if let Some(last) = dead_letter.attempts.last()
                && attempts.iter().all(|attempt| attempt.id != last.id)
            {
                attempts.push(last.clone());
            }
            dead_letter.attempts = attempts;
        }
        Ok(dead_letter)
    }

    /// The dead letter of one delivery, with its subject and sequence.
    async fn find_dead_letter(
        &self,
        tenant: &TenantId,
        delivery: &DeliveryId,
    ) -> ApiResult<Option<(StreamMessage, DeadLetter)>> {
        let topology = self.bus.topology();
        let message = self
            .bus
            .next_message(
                &topology.dead_letters_stream(),
                topology.delivery_dead_letter_filter(tenant, delivery),
                1,
            )
            .await?;
        Ok(message.and_then(|message| {
            DeadLetter::decode(message.payload.as_ref())
                .ok()
                .map(|dead_letter| (message, dead_letter))
        }))
    }

    pub async fn purge_dead_letters(
        &self,
        tenant_id: &str,
        delivery_ids: &[String],
        all_of_endpoint: &str,
    ) -> ApiResult<u64> {
        let tenant = parse_tenant(tenant_id)?;
        let topology = self.bus.topology();
        let stream = topology.dead_letters_stream();
        match selection(delivery_ids, all_of_endpoint)? {
            Selection::Endpoint(endpoint) => Ok(self
                .bus
                .purge_subject(
                    &stream,
                    topology.endpoint_dead_letters_filter(&tenant, &endpoint),
                    None,
                )
                .await?),
            Selection::Deliveries(deliveries) => {
                let mut purged = 0;
                for delivery in deliveries {
                    if let Some((message, _)) = self.find_dead_letter(&tenant, &delivery).await? {
                        purged += self
                            .bus
                            .purge_subject(
                                &stream,
                                message.subject.to_string(),
                                Some(message.sequence),
                            )
                            .await?;
                    }
                }
                Ok(purged)
            }
        }
    }

    // ---------------------------------------------------------------------
    // Jobs
    // ---------------------------------------------------------------------

    /// Checks the request, then starts its job, or returns the job of an
    /// identical recent request.
    pub(crate) async fn start_recovery(
        &self,
        tenant_id: &str,
        work: Work,
    ) -> ApiResult<RecoveryJob> {
        self.validate_work(tenant_id, &work).await?;
        let bucket = self.bus.recovery_jobs().await?;
        let request_key = request_key(tenant_id, &work);
        let previous = bucket.entry(&request_key).await.map_err(bus_error)?;
        if let Some(entry) = &previous
            && entry.operation == kv::Operation::Put
            && let Some(job) = self
                .load_job(&bucket, &String::from_utf8_lossy(&entry.value))
                .await?
            && recent(&job)
        {
            return Ok(job.to_wire());
        }
        let now = now_micros();
        let job = StoredJob {
            id: new_job_id()?,
            tenant_id: tenant_id.to_owned(),
            work,
            state: JobState::Running,
            total: 0,
            enqueued: 0,
            skipped: 0,
            error: String::new(),
            created_at_micros: now,
            finished_at_micros: None,
            heartbeat_micros: now,
        };
        let revision = bucket
            .put(job_key(&job.id), job.encode())
            .await
            .map_err(bus_error)?;
        let claimed = match &previous {
            Some(entry) => bucket
                .update(&request_key, Bytes::from(job.id.clone()), entry.revision)
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
            None => bucket
                .create(&request_key, Bytes::from(job.id.clone()))
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
        };
        if claimed.is_err() {
            // The same request arrived at the same moment and won: its job
            // is the one; this one never ran.
            bucket.delete(job_key(&job.id)).await.map_err(bus_error)?;
            let winner = bucket
                .get(&request_key)
                .await
                .map_err(bus_error)?
                .ok_or_else(|| bus_error("the concurrent request's job vanished"))?;
            return self
                .load_job(&bucket, &String::from_utf8_lossy(&winner))
                .await?
                .map(|job| job.to_wire())
                .ok_or_else(|| bus_error("the concurrent request's job vanished"));
        }
        let wire = job.to_wire();
        tokio::spawn(self.clone().run_job(bucket, job, revision));
        Ok(wire)
    }

    async fn validate_work(&self, tenant_id: &str, work: &Work) -> ApiResult<()> {
        let tenant = parse_tenant(tenant_id)?;
        let existing_endpoint = |field: &'static str, id: &str| {
            let id = id.to_owned();
            async move {
                EndpointId::parse(&id).map_err(|error| ApiError::invalid(field, error))?;
                self.store
                    .get_endpoint(tenant_id, &id)
                    .await?
                    .map(drop)
                    .ok_or_else(|| ApiError::not_found("endpoint", id))
            }
        };
        match work {
            Work::Replay {
                event_id,
                endpoint_id,
            } => {
                let event = EventId::parse(event_id)
                    .map_err(|error| ApiError::invalid("event_id", error))?;
                if !endpoint_id.is_empty() {
                    existing_endpoint("endpoint_id", endpoint_id).await?;
                }
                if self.bus.find_event(&tenant, &event).await?.is_none() {
                    return Err(ApiError::not_found("event", event_id.clone()));
                }
            }
            Work::Recover { endpoint_id, .. } => {
                if endpoint_id.is_empty() {
                    return Err(ApiError::invalid("endpoint_id", "is required"));
                }
                existing_endpoint("endpoint_id", endpoint_id).await?;
            }
            Work::Redrive {
                delivery_ids,
                all_of_endpoint,
            } => {
                if let Selection::Endpoint(_) = selection(delivery_ids, all_of_endpoint)? {
                    existing_endpoint("all_of_endpoint", all_of_endpoint).await?;
                }
            }
        }
        Ok(())
    }

    async fn load_job(&self, bucket: &kv::Store, id: &str) -> ApiResult<Option<StoredJob>> {
        let Some(value) = bucket.get(job_key(id)).await.map_err(bus_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(|error| ApiError::Corrupt {
                what: "recovery job",
                reason: error.to_string(),
            })
    }

    pub async fn get_recovery_job(&self, tenant_id: &str, id: &str) -> ApiResult<RecoveryJob> {
        let bucket = self.bus.recovery_jobs().await?;
        self.tenant_job(&bucket, tenant_id, id)
            .await
            .map(|job| job.to_wire())
    }

    async fn tenant_job(
        &self,
        bucket: &kv::Store,
        tenant_id: &str,
        id: &str,
    ) -> ApiResult<StoredJob> {
        let valid = id.starts_with("rcv_")
            && id.len() < 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ApiError::invalid("job_id", "not a recovery job id"));
        }
        self.load_job(bucket, id)
            .await?
            .filter(|job| job.tenant_id == tenant_id)
            .ok_or_else(|| ApiError::not_found("recovery job", id))
    }

    /// The job now, then every change, ending once it has finished.
    pub async fn watch_recovery_job(
        &self,
        tenant_id: &str,
        id: &str,
        shutdown: CancellationToken,
    ) -> ApiResult<impl Stream<Item = ApiResult<RecoveryJob>> + use<>> {
        let bucket = self.bus.recovery_jobs().await?;
        let first = self.tenant_job(&bucket, tenant_id, id).await?;
        let state = self.clone();
        let tenant_id = tenant_id.to_owned();
        let id = id.to_owned();
        Ok(async_stream::try_stream! {
            let mut last = first.to_wire();
            yield last.clone();
            let mut finished = first.state != JobState::Running;
            while !finished {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                }
                let job = state.tenant_job(&bucket, &tenant_id, &id).await?;
                finished = job.state != JobState::Running;
                let wire = job.to_wire();
                if wire != last {
                    last = wire.clone();
                    yield wire;
                }
            }
        })
    }

    /// Runs a job to its end, reporting progress into the bucket.
    async fn run_job(self, bucket: kv::Store, mut job: StoredJob, mut revision: u64) {
        let outcome = self.execute(&bucket, &mut job, &mut revision).await;
        job.state = match &outcome {
            Ok(()) => JobState::Succeeded,
            Err(error) => {
                job.error = error.to_string();
                JobState::Failed
            }
        };
        job.finished_at_micros = Some(now_micros());
        job.heartbeat_micros = now_micros();
        match bucket.put(job_key(&job.id), job.encode()).await {
            Ok(_) => tracing::info!(
                job = %job.id,
                total = job.total,
                enqueued = job.enqueued,
                skipped = job.skipped,
                error = %job.error,
                "recovery job finished"
            ),
            Err(error) => {
                tracing::warn!(job = %job.id, %error, "cannot store a finished recovery job; another replica will run it again");
            }
        }
    }

    async fn execute(
        &self,
        bucket: &kv::Store,
        job: &mut StoredJob,
        revision: &mut u64,
    ) -> ApiResult<()> {
        let plan = self.plan(job).await?;
        job.total = u64::try_from(plan.resends.len()).unwrap_or(u64::MAX) + plan.skipped;
        job.skipped = plan.skipped;
        job.enqueued = 0;
        self.report(bucket, job, revision).await?;
        let mut endpoints: HashMap<String, Option<EndpointRecord>> = HashMap::new();
        let mut reported = tokio::time::Instant::now();
        for resend in plan.resends {
            if !endpoints.contains_key(&resend.endpoint_id) {
                let record = self
                    .store
                    .get_endpoint(&job.tenant_id, &resend.endpoint_id)
                    .await?;
                endpoints.insert(resend.endpoint_id.clone(), record);
            }
            match endpoints.get(&resend.endpoint_id).and_then(Option::as_ref) {
                Some(endpoint) => {
                    self.enqueue(job, endpoint, &resend).await?;
                    job.enqueued += 1;
                }
                // Deleted meanwhile: nothing to send to; its dead letter stays
                // until purged or expired.
                None => job.skipped += 1,
            }
            if reported.elapsed() >= HEARTBEAT / 5 {
                self.report(bucket, job, revision).await?;
                reported = tokio::time::Instant::now();
            }
        }
        Ok(())
    }

    /// Stores progress, failing when another replica took the job over.
    async fn report(
        &self,
        bucket: &kv::Store,
        job: &mut StoredJob,
        revision: &mut u64,
    ) -> ApiResult<()> {
        job.heartbeat_micros = now_micros();
        *revision = bucket
            .update(job_key(&job.id), job.encode(), *revision)
            .await
            .map_err(|error| bus_error(format!("cannot report progress: {error}")))?;
        Ok(())
    }

    async fn enqueue(
        &self,
        job: &StoredJob,
        endpoint: &EndpointRecord,
        resend: &Resend,
    ) -> ApiResult<()> {
        let spec = convert::endpoint_spec(endpoint, self.key())?;
        let lane = if spec.ordering() == pb::Ordering::Fifo {
            JobLane::Fifo
        } else {
            JobLane::Pool
        };
        let endpoint_id = EndpointId::parse(&endpoint.id).map_err(|error| ApiError::Corrupt {
            what: "endpoint id",
            reason: error.to_string(),
        })?;
        let delivery = DeliveryJob {
            delivery_id: resend.delivery_id.clone(),
            event: Some(resend.event.clone()),
            endpoint_id: endpoint.id.clone(),
            endpoint_revision: u64::try_from(endpoint.revision).unwrap_or_default(),
            trigger: job.work.trigger().into(),
            attempts_made: resend.attempts_made,
            test: false,
            enqueued_at: Some(timestamp_to_wire(OffsetDateTime::now_utc())),
            recovery_job_id: job.id.clone(),
            schedule_position: 0,
            not_before: None,
        };
        let message = self
            .bus
            .topology()
            .job_message(
                &delivery,
                &endpoint_id,
                lane,
                JobPublish::Resend {
                    recovery_job: &job.id,
                },
            )
            .continuing(Some(&resend.trace));
        self.bus.send(message).await?.await.map_err(bus_error)?;
        if let Some((subject, sequence)) = &resend.dead_letter {
            self.bus
                .purge_subject(
                    &self.bus.topology().dead_letters_stream(),
                    subject.clone(),
                    Some(*sequence),
                )
                .await?;
        }
        Ok(())
    }

    /// What the job sends, and how many it cannot.
    async fn plan(&self, job: &StoredJob) -> ApiResult<Plan> {
        let tenant = parse_tenant(&job.tenant_id)?;
        let mut plan = Plan::default();
        match &job.work {
            Work::Replay {
                event_id,
                endpoint_id,
            } => {
                let event_id = EventId::parse(event_id)
                    .map_err(|error| ApiError::invalid("event_id", error))?;
                let Some((wire, trace)) = self.event_on_bus(&tenant, &event_id).await? else {
                    return Err(ApiError::not_found("event", event_id.to_string()));
                };
                let endpoints = if endpoint_id.is_empty() {
                    self.matching_endpoints(&job.tenant_id, &wire).await?
                } else {
                    vec![endpoint_id.clone()]
                };
                for endpoint_id in endpoints {
                    let endpoint = EndpointId::parse(&endpoint_id)
                        .map_err(|error| ApiError::invalid("endpoint_id", error))?;
                    let delivery_id = DeliveryId::for_event_endpoint(&event_id, &endpoint);
                    plan.resends.push(Resend {
                        attempts_made: self
                            .attempts_made(&job.tenant_id, &delivery_id, None)
                            .await?,
                        delivery_id: delivery_id.to_string(),
                        endpoint_id,
                        event: wire.clone(),
                        dead_letter: None,
                        trace: trace.clone(),
                    });
                }
            }
            Work::Recover {
                endpoint_id,
                since_micros,
            } => {
                let since =
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(*since_micros) * 1_000)
                        .map_err(|error| ApiError::invalid("since", error))?;
                let failed = self
                    .store
                    .failed_deliveries(&job.tenant_id, endpoint_id, since, MAX_RECOVERED)
                    .await?;
                for delivery in failed {
                    let Ok(delivery_id) = DeliveryId::parse(&delivery.delivery_id) else {
                        plan.skipped += 1;
                        continue;
                    };
                    let dead = self.find_dead_letter(&tenant, &delivery_id).await?;
                    let (found, dead_letter) = match dead {
                        Some((message, dead_letter)) => (
                            dead_letter.event.map(|event| (event, trace_of(&message))),
                            Some((message.subject.to_string(), message.sequence)),
                        ),
                        None => match EventId::parse(&delivery.event_id) {
                            Ok(event_id) => (self.event_on_bus(&tenant, &event_id).await?, None),
                            Err(_) => (None, None),
                        },
                    };
                    // Past the bus's retention the event is gone.
                    let Some((event, trace)) = found else {
                        plan.skipped += 1;
                        continue;
                    };
                    plan.resends.push(Resend {
                        delivery_id: delivery.delivery_id,
                        endpoint_id: endpoint_id.clone(),
                        event,
                        attempts_made: u32::try_from(delivery.last_attempt).unwrap_or(0),
                        dead_letter,
                        trace,
                    });
                }
            }
            Work::Redrive {
                delivery_ids,
                all_of_endpoint,
            } => {
                let dead_letters = match selection(delivery_ids, all_of_endpoint)? {
                    Selection::Deliveries(deliveries) => {
                        let mut found = Vec::new();
                        for delivery in deliveries {
                            match self.find_dead_letter(&tenant, &delivery).await? {
                                Some(dead) => found.push(dead),
                                // Already redriven, purged or expired.
                                None => plan.skipped += 1,
                            }
                        }
                        found
                    }
                    Selection::Endpoint(endpoint) => {
                        self.endpoint_dead_letters(&tenant, &endpoint).await?
                    }
                };
                for (message, dead_letter) in dead_letters {
                    let Some(event) = dead_letter.event else {
                        plan.skipped += 1;
                        continue;
                    };
                    let last = dead_letter
                        .attempts
                        .iter()
                        .map(|attempt| attempt.attempt)
                        .max();
                    let delivery_id =
                        DeliveryId::parse(&dead_letter.id).map_err(|error| ApiError::Corrupt {
                            what: "dead letter",
                            reason: error.to_string(),
                        })?;
                    plan.resends.push(Resend {
                        attempts_made: self
                            .attempts_made(&job.tenant_id, &delivery_id, last)
                            .await?,
                        delivery_id: dead_letter.id,
                        endpoint_id: dead_letter.endpoint_id,
                        event,
                        trace: trace_of(&message),
                        dead_letter: Some((message.subject.to_string(), message.sequence)),
                    });
                }
            }
        }
        Ok(plan)
    }

    /// Where a re-sent delivery's attempt numbering continues from.
    async fn attempts_made(
        &self,
        tenant_id: &str,
        delivery: &DeliveryId,
        known: Option<u32>,
    ) -> ApiResult<u32> {
        let logged = self
            .store
            .last_attempt_number(tenant_id, delivery.as_str())
            .await?
            .and_then(|attempt| u32::try_from(attempt).ok());
        Ok(logged.max(known).unwrap_or(0))
    }

    /// The event, and the trace it was accepted in.
    async fn event_on_bus(
        &self,
        tenant: &TenantId,
        event: &EventId,
    ) -> ApiResult<Option<(pb::Event, HeaderMap)>> {
        let Some(message) = self.bus.find_event(tenant, event).await? else {
            return Ok(None);
        };
        pb::Event::decode(message.payload.as_ref())
            .map(|event| Some((event, trace_of(&message))))
            .map_err(|error| ApiError::Corrupt {
                what: "event on the bus",
                reason: error.to_string(),
            })
    }

    /// The tenant's active endpoints that `event` matches now.
    async fn matching_endpoints(
        &self,
        tenant_id: &str,
        wire: &pb::Event,
    ) -> ApiResult<Vec<String>> {
        let event = Event::try_from(wire.clone()).map_err(|error| ApiError::Corrupt {
            what: "event on the bus",
            reason: error.to_string(),
        })?;
        let filter = EndpointFilter {
            status: Some("active".to_owned()),
            ..EndpointFilter::default()
        };
        let mut matched = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_endpoints(tenant_id, &filter, 500, after.as_deref())
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            for record in &page {
                let endpoint = convert::endpoint(record, self.key(), convert::HeaderValues::Shown)?;
                let endpoint_id =
                    EndpointId::parse(&record.id).map_err(|error| ApiError::Corrupt {
                        what: "endpoint id",
                        reason: error.to_string(),
                    })?;
                match herald_proto::endpoint_subscription(&endpoint) {
                    Ok(subscription)
                        if subscription_matches(
                            &endpoint_id,
                            &subscription,
                            MatchStatus::Active,
                            &event,
                        ) =>
                    {
                        matched.push(record.id.clone());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(endpoint = %record.id, %error, "skipping an unreadable endpoint in a replay");
                    }
                }
            }
        }
        Ok(matched)
    }

    async fn endpoint_dead_letters(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
    ) -> ApiResult<Vec<(StreamMessage, DeadLetter)>> {
        let topology = self.bus.topology();
        let stream = topology.dead_letters_stream();
        let filter = topology.endpoint_dead_letters_filter(tenant, endpoint);
        let mut found = Vec::new();
        let mut sequence = 1;
        while let Some(message) = self
            .bus
            .next_message(&stream, filter.clone(), sequence)
            .await?
        {
            sequence = message.sequence.saturating_add(1);
            if let Ok(dead_letter) = DeadLetter::decode(message.payload.as_ref()) {
                found.push((message, dead_letter));
            }
        }
        Ok(found)
    }
}

#[derive(Debug, Default)]
struct Plan {
    resends: Vec<Resend>,
    skipped: u64,
}

/// Which dead letters a redrive or purge names.
enum Selection {
    Deliveries(Vec<DeliveryId>),
    Endpoint(EndpointId),
}

/// Most dead letters a redrive or purge names one by one: a page of them.
/// A whole endpoint's dead letters are selected with `all_of_endpoint`.
pub const MAX_SELECTED_DELIVERIES: usize = crate::paging::MAX_PAGE_SIZE as usize;

fn selection(delivery_ids: &[String], all_of_endpoint: &str) -> ApiResult<Selection> {
    if delivery_ids.len() > MAX_SELECTED_DELIVERIES {
        return Err(ApiError::invalid(
            "delivery_ids",
            format!(
                "{} ids is over the maximum of {MAX_SELECTED_DELIVERIES}; use all_of_endpoint for a whole endpoint",
                delivery_ids.len()
            ),
        ));
    }
    match (delivery_ids.is_empty(), all_of_endpoint.is_empty()) {
        (true, true) => Err(ApiError::invalid(
            "delivery_ids",
            "name the dead letters, or set all_of_endpoint",
        )),
        (false, false) => Err(ApiError::invalid(
            "all_of_endpoint",
            "cannot be combined with delivery_ids",
        )),
        (false, true) => delivery_ids
            .iter()
            .map(|id| {
                DeliveryId::parse(id).map_err(|error| ApiError::invalid("delivery_ids", error))
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Selection::Deliveries),
        (true, false) => EndpointId::parse(all_of_endpoint)
            .map(Selection::Endpoint)
            .map_err(|error| ApiError::invalid("all_of_endpoint", error)),
    }
}

/// Running, or finished within the idempotency window.
fn recent(job: &StoredJob) -> bool {
    match job.finished_at_micros {
        None => job.state == JobState::Running,
        Some(finished) => {
            now_micros().saturating_sub(finished)
                < i64::try_from(IDEMPOTENCY_WINDOW.as_micros()).unwrap_or(i64::MAX)
        }
    }
}

/// Resumes jobs whose replica stopped reporting, until `shutdown`.
pub async fn resume_stalled_jobs(state: ConfigState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(STALL_SCAN) => {}
        }
        if let Err(error) = state.resume_stalled().await {
            tracing::warn!(%error, "cannot look for stalled recovery jobs");
        }
    }
}

impl ConfigState {
    async fn resume_stalled(&self) -> ApiResult<()> {
        let bucket = self.bus.recovery_jobs().await?;
        let mut keys = bucket.keys().await.map_err(bus_error)?;
        let stalled_after = i64::try_from(STALLED_AFTER.as_micros()).unwrap_or(i64::MAX);
        while let Some(key) = keys.next().await {
            let key = key.map_err(bus_error)?;
            if !key.starts_with("job.") {
                continue;
            }
            let Some(entry) = bucket.entry(&key).await.map_err(bus_error)? else {
                continue;
            };
            let Ok(mut job) = serde_json::from_slice::<StoredJob>(&entry.value) else {
                continue;
            };
            if job.state != JobState::Running
                || now_micros().saturating_sub(job.heartbeat_micros) < stalled_after
            {
                continue;
            }
            job.heartbeat_micros = now_micros();
            // Whoever updates first owns it.
            if let Ok(revision) = bucket.update(&key, job.encode(), entry.revision).await {
                tracing::info!(job = %job.id, "resuming a stalled recovery job");
                tokio::spawn(self.clone().run_job(bucket.clone(), job, revision));
            }
        }
        Ok(())
    }
}
