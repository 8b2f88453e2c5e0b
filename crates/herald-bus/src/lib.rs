//! Herald's JetStream topology.
//!
//! This is the only crate that knows stream names, subjects, durable consumer
//! names and message header names. Services ask it for a subject or a
//! consumer and never spell one themselves, so the table in ARCHITECTURE.md
//! and the code cannot drift apart.
//!
//! Setup is idempotent: [`Bus::connect`] followed by [`Bus::ensure_streams`]
//! creates every stream, or updates it to the configured limits, on every
//! start of every service.

mod config;
mod counters;
mod dedupe;
mod device_health;
mod error;
pub mod headers;
mod message;
mod pull;
mod topology;

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::PullConsumer,
    context::PublishAckFuture,
    kv,
    message::StreamMessage,
    publish::PublishAck,
    stream::{self, DirectGetErrorKind},
};
use bytes::Bytes;
use futures::{FutureExt, StreamExt, TryStreamExt, stream::FuturesOrdered};
use herald_core::id::{EndpointId, EventId, TenantId};
use std::future::Future;

pub use crate::config::BusConfig;
pub use crate::counters::{ConfigRevision, Handbacks};
pub use crate::dedupe::{Claim, DedupeKeys};
pub use crate::device_health::DeviceHealthBook;
pub use crate::error::BusError;
pub use crate::message::JobPublish;
pub use crate::pull::Pull;
pub use crate::topology::{
    BACKLOG_MARK_TTL, ConsumerRole, FIFO_FANOUT_ACK_WAIT, FIFO_FANOUT_BATCH,
    FIFO_FANOUT_PIN_TIMEOUT, HELD_MAX_ACK_PENDING, JobLane, Topology,
};
pub use async_nats;

/// The oldest NATS server Herald runs against: 2.10 brought the stream and
/// consumer features (multiple filter subjects, create-or-update actions) the
/// topology relies on, 2.11 the per-key TTLs of the deduplication bucket.
pub const MINIMUM_SERVER_VERSION: (u64, u64) = (2, 11);

/// Most publishes of one [`Bus::publish_all`] awaiting their
/// acknowledgement at once: enough to keep the connection busy, and a small
/// share of async-nats's 5,000, which all callers of a process share.
pub const MAX_PENDING_ACKS: usize = 512;

/// One message for [`Bus::publish_all`].
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub subject: String,
    /// `Nats-Msg-Id`: the stream stores one message per id within its
    /// duplicate window.
    pub message_id: String,
    pub headers: async_nats::HeaderMap,
    pub payload: Bytes,
}

/// A connection to NATS with JetStream, and the topology it serves.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    topology: Topology,
    config: BusConfig,
    /// Which consumers of this process pull now, for readiness.
    pulling: pull::PullingConsumers,
}

/// First and longest wait between two tries of a setup request.
const SETUP_RETRY_FIRST: Duration = Duration::from_millis(100);
const SETUP_RETRY_LONGEST: Duration = Duration::from_secs(2);
/// How long one setup request may go unanswered before it is sent again.
const SETUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

impl Bus {
    /// Connects, failing fast (within `connect_timeout`) when the server is
    /// unreachable, and refuses servers older than [`MINIMUM_SERVER_VERSION`].
    pub async fn connect(config: &BusConfig, client_name: &str) -> Result<Bus, BusError> {
        let topology = Topology::new(&config.namespace, config.job_partitions)?;
        let servers = config.servers()?;
        let client = async_nats::ConnectOptions::new()
            .name(client_name)
            .connection_timeout(config.connect_timeout)
            .connect(servers)
            .await
            .map_err(|source| BusError::Connect {
                url: config.url.clone(),
                source,
            })?;
        let version = client.server_info().version;
        if !version_at_least(&version, MINIMUM_SERVER_VERSION) {
            return Err(BusError::ServerTooOld {
                url: config.url.clone(),
                version,
            });
        }
        let jetstream = jetstream::new(client.clone());
        Ok(Bus {
            client,
            jetstream,
            topology,
            config: config.clone(),
            pulling: pull::PullingConsumers::default(),
        })
    }

    /// Creates every stream, or updates an existing one to the configured
    /// limits. Safe to run concurrently from every service on every start:
    /// each request is retried until `--nats-setup-timeout`, as a fresh
    /// cluster times requests out until its leaders are elected and
    /// concurrent creations of the same stream can refuse each other.
    pub async fn ensure_streams(&self) -> Result<(), BusError> {
        for stream in self.topology.stream_configs(&self.config) {
            let name = stream.name.clone();
            self.retry_setup(&name, || {
                self.jetstream
                    .create_or_update_stream(stream.clone())
                    .map(|result| result.map(drop))
            })
            .await
            .map_err(|source| BusError::Stream {
                stream: name,
                source,
            })?;
        }
        for bucket in self.topology.bucket_configs(&self.config) {
            let name = bucket.bucket.clone();
            self.retry_setup(&name, || {
                self.jetstream
                    .create_or_update_key_value(bucket.clone())
                    .map(|result| result.map(drop))
            })
            .await
            .map_err(|error| BusError::Bucket {
                bucket: name,
                reason: error.to_string(),
            })?;
        }
        Ok(())
    }

    /// Runs one setup request until it succeeds or `--nats-setup-timeout`
    /// has passed, backing off between tries; the last error is returned.
    async fn retry_setup<T, E, F, Fut>(&self, what: &str, mut request: F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.setup_timeout;
        let mut wait = SETUP_RETRY_FIRST;
        loop {
            // A request the cluster sits on (its leaders not yet elected) is
            // asked again rather than waited on for the client's full
            // timeout; every setup request is idempotent.
            // The last try waits for the client's own timeout and error.
            if tokio::time::Instant::now() + SETUP_REQUEST_TIMEOUT >= deadline {
                return request().await;
            }
            let Ok(answer) = tokio::time::timeout(SETUP_REQUEST_TIMEOUT, request()).await else {
                tracing::warn!(%what, timeout = ?SETUP_REQUEST_TIMEOUT, "a JetStream setup request got no answer; asking again");
                continue;
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(error) if tokio::time::Instant::now() + wait >= deadline => return Err(error),
                Err(error) => {
                    tracing::warn!(%what, %error, retry_in = ?wait, "JetStream setup failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(SETUP_RETRY_LONGEST);
                }
            }
        }
    }

    /// The shared rate limiter state (created by [`Bus::ensure_streams`]).
    pub async fn rate_limits(&self) -> Result<kv::Store, BusError> {
        self.bucket(self.topology.rate_limit_bucket()).await
    }

    /// Open circuits shared by delivery replicas (created by [`Bus::ensure_streams`]).
    pub async fn circuits(&self) -> Result<kv::Store, BusError> {
        self.bucket(self.topology.circuit_bucket()).await
    }

    /// Endpoints marked as backlogged (created by [`Bus::ensure_streams`]).
    pub async fn backlog(&self) -> Result<kv::Store, BusError> {
        self.bucket(self.topology.backlog_bucket()).await
    }

    /// Replay, recovery and redrive jobs (created by [`Bus::ensure_streams`]).
    pub async fn recovery_jobs(&self) -> Result<kv::Store, BusError> {
        self.bucket(self.topology.recovery_bucket()).await
    }

    /// Claims of channel idempotency keys (created by [`Bus::ensure_streams`]).
    pub async fn dedupe_keys(&self) -> Result<DedupeKeys, BusError> {
        let bucket = self.topology.dedupe_bucket();
        Ok(DedupeKeys {
            store: self.bucket(bucket.clone()).await?,
            bucket,
        })
    }

    /// Devices' inbound health records (created by [`Bus::ensure_streams`]).
    pub async fn device_health(&self) -> Result<DeviceHealthBook, BusError> {
        Ok(DeviceHealthBook {
            store: self.bucket(self.topology.device_health_bucket()).await?,
        })
    }

    /// The configuration revision fanout must have applied (created by
    /// [`Bus::ensure_streams`]).
    pub async fn config_revision(&self) -> Result<ConfigRevision, BusError> {
        Ok(ConfigRevision::new(
            self.bucket(self.topology.config_bucket()).await?,
        ))
    }

    /// Hand-back counts of delivery jobs (created by [`Bus::ensure_streams`]).
    pub async fn handbacks(&self) -> Result<Handbacks, BusError> {
        Ok(Handbacks::new(
            self.bucket(self.topology.handback_bucket()).await?,
        ))
    }

    async fn bucket(&self, name: String) -> Result<kv::Store, BusError> {
        self.jetstream
            .get_key_value(&name)
            .await
            .map_err(|error| BusError::Bucket {
                bucket: name,
                reason: error.to_string(),
            })
    }

    /// Creates (or updates) the consumer of one FIFO endpoint's lane.
    pub async fn fifo_consumer(&self, endpoint: &EndpointId) -> Result<PullConsumer, BusError> {
        let stream_name = self.topology.jobs_stream();
        let consumer_config = self.topology.fifo_consumer_config(endpoint, &self.config);
        let consumer_name = consumer_config.durable_name.clone().unwrap_or_default();
        self.jetstream
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|source| BusError::GetStream {
                stream: stream_name.clone(),
                source,
            })?
            .create_consumer(consumer_config)
            .await
            .map_err(|source| BusError::Consumer {
                stream: stream_name,
                consumer: consumer_name,
                source,
            })
    }

    /// Creates (or updates) the consumer of one endpoint's held lane.
    pub async fn held_consumer(&self, endpoint: &EndpointId) -> Result<PullConsumer, BusError> {
        let stream_name = self.topology.jobs_stream();
        let consumer_config = self.topology.held_consumer_config(endpoint, &self.config);
        let consumer_name = consumer_config.durable_name.clone().unwrap_or_default();
        self.stream_handle(&stream_name)
            .await?
            .create_consumer(consumer_config)
            .await
            .map_err(|source| BusError::Consumer {
                stream: stream_name,
                consumer: consumer_name,
                source,
            })
    }

    /// The endpoints whose held lane holds jobs now, by the stream's own
    /// subject counts (so a lane is found even when its consumer expired).
    pub async fn held_lane_endpoints(&self) -> Result<Vec<EndpointId>, BusError> {
        use futures::TryStreamExt;
        let stream_name = self.topology.jobs_stream();
        let read_error = |reason: String| BusError::Read {
            stream: stream_name.clone(),
            reason,
        };
        let subjects: Vec<(String, usize)> = self
            .stream_handle(&stream_name)
            .await?
            .info_with_subjects(self.topology.held_lanes_filter())
            .await
            .map_err(|error| read_error(error.to_string()))?
            .try_collect()
            .await
            .map_err(|error| read_error(error.to_string()))?;
        Ok(subjects
            .iter()
            .filter(|(_, count)| *count > 0)
            .filter_map(|(subject, _)| self.topology.held_lane_endpoint(subject))
            .collect())
    }

    /// The endpoints that have a FIFO lane consumer now.
    pub async fn fifo_consumer_endpoints(&self) -> Result<Vec<EndpointId>, BusError> {
        let stream_name = self.topology.jobs_stream();
        let names: Vec<String> = self
            .stream_handle(&stream_name)
            .await?
            .consumer_names()
            .try_collect()
            .await
            .map_err(|error| BusError::Read {
                stream: stream_name,
                reason: error.to_string(),
            })?;
        Ok(names
            .iter()
            .filter_map(|name| self.topology.fifo_consumer_endpoint(name))
            .collect())
    }

    /// How much waits in the FIFO lanes, from the stream's per-subject
    /// counts and, for each lane with jobs, its oldest message.
    pub async fn fifo_backlog(&self) -> Result<FifoBacklog, BusError> {
        let stream_name = self.topology.jobs_stream();
        let read_error = |reason: String| BusError::Read {
            stream: stream_name.clone(),
            reason,
        };
        let stream = self.stream_handle(&stream_name).await?;
        let lanes: Vec<(String, usize)> = stream
            .info_with_subjects(self.topology.fifo_lanes_filter())
            .await
            .map_err(|error| read_error(error.to_string()))?
            .try_collect()
            .await
            .map_err(|error| read_error(error.to_string()))?;
        let mut backlog = FifoBacklog::default();
        for (subject, jobs) in lanes.into_iter().filter(|(_, jobs)| *jobs > 0) {
            backlog.lanes = backlog.lanes.saturating_add(1);
            backlog.jobs = backlog
                .jobs
                .saturating_add(u64::try_from(jobs).unwrap_or(u64::MAX));
            if let Some(oldest) = self.next_message(&stream_name, subject, 1).await? {
                backlog.oldest_job = Some(match backlog.oldest_job {
                    Some(older) if older <= oldest.time => older,
                    _ => oldest.time,
                });
            }
        }
        Ok(backlog)
    }

    /// Deletes a drained FIFO lane's consumer; already gone is fine.
    pub async fn delete_fifo_consumer(&self, endpoint: &EndpointId) -> Result<(), BusError> {
        let stream_name = self.topology.jobs_stream();
        let name = self.topology.fifo_consumer_name(endpoint);
        match self
            .stream_handle(&stream_name)
            .await?
            .delete_consumer(&name)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.to_string().contains("not found") => Ok(()),
            Err(error) => Err(BusError::Read {
                stream: stream_name,
                reason: format!("cannot delete consumer {name}: {error}"),
            }),
        }
    }

    /// The event with this id, if the tenant has it and the stream still
    /// holds it (events are kept for the configured retention).
    pub async fn find_event(
        &self,
        tenant: &TenantId,
        event: &EventId,
    ) -> Result<Option<StreamMessage>, BusError> {
        self.next_message(
            &self.topology.events_stream(),
            self.topology.event_filter(tenant, event),
            1,
        )
        .await
    }

    /// The first message at or after `sequence` whose subject matches
    /// `filter`, read directly from the stream (no consumer).
    pub async fn next_message(
        &self,
        stream_name: &str,
        filter: String,
        sequence: u64,
    ) -> Result<Option<StreamMessage>, BusError> {
        let read_error = |reason: String| BusError::Read {
            stream: stream_name.to_owned(),
            reason,
        };
        let stream = self.stream_handle(stream_name).await?;
        match stream
            .direct_get_next_for_subject(filter, Some(sequence.max(1)))
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(error) => Err(read_error(error.to_string())),
        }
    }

    /// How many messages of a stream match `filter`, counted by the server
    /// (through a short-lived consumer) without reading them.
    pub async fn count_messages(&self, stream_name: &str, filter: String) -> Result<u64, BusError> {
        let read_error = |reason: String| BusError::Read {
            stream: stream_name.to_owned(),
            reason,
        };
        let stream = self.stream_handle(stream_name).await?;
        let mut counter: PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: filter,
                ack_policy: jetstream::consumer::AckPolicy::None,
                memory_storage: true,
                // Removed by the server even if the delete below is lost.
                inactive_threshold: Duration::from_secs(10),
                ..Default::default()
            })
            .await
            .map_err(|error| read_error(error.to_string()))?;
        let pending = counter
            .info()
            .await
            .map_err(|error| read_error(error.to_string()))?
            .num_pending;
        let name = counter.cached_info().name.clone();
        if let Err(error) = stream.delete_consumer(&name).await {
            tracing::debug!(%error, "cannot delete a counting consumer; the server removes it when idle");
        }
        Ok(pending)
    }

    /// Removes the messages matching `subject`, or only those up to and
    /// including `up_to`, so a newer message on the same subject survives.
    pub async fn purge_subject(
        &self,
        stream_name: &str,
        subject: String,
        up_to: Option<u64>,
    ) -> Result<u64, BusError> {
        let stream = self.stream_handle(stream_name).await?;
        let purge = stream.purge().filter(subject.clone());
        let purged = match up_to {
            Some(sequence) => purge.sequence(sequence.saturating_add(1)).await,
            None => purge.await,
        };
        purged
            .map(|response| response.purged)
            .map_err(|error| BusError::Purge {
                stream: stream_name.to_owned(),
                subject,
                reason: error.to_string(),
            })
    }

    /// Purges the oldest messages matching `subject` (wildcards allowed)
    /// beyond the newest `keep`; returns how many were purged.
    pub async fn purge_keeping_newest(
        &self,
        stream_name: &str,
        subject: String,
        keep: u64,
    ) -> Result<u64, BusError> {
        let stream = self.stream_handle(stream_name).await?;
        stream
            .purge()
            .filter(subject.clone())
            .keep(keep)
            .await
            .map(|response| response.purged)
            .map_err(|error| BusError::Purge {
                stream: stream_name.to_owned(),
                subject,
                reason: error.to_string(),
            })
    }

    async fn stream_handle(&self, stream_name: &str) -> Result<stream::Stream<()>, BusError> {
        self.jetstream
            .get_stream_no_info(stream_name)
            .await
            .map_err(|source| BusError::GetStream {
                stream: stream_name.to_owned(),
                source,
            })
    }

    /// Creates (or updates) the durable pull consumer a role reads from.
    pub async fn consumer(&self, role: ConsumerRole) -> Result<PullConsumer, BusError> {
        let stream_name = self.topology.consumer_stream(role);
        let consumer_config = self.topology.consumer_config(role, &self.config);
        let consumer_name = consumer_config.durable_name.clone().unwrap_or_default();
        let stream = self
            .retry_setup(&stream_name, || {
                self.jetstream.get_stream_no_info(&stream_name)
            })
            .await
            .map_err(|source| BusError::GetStream {
                stream: stream_name.clone(),
                source,
            })?;
        self.retry_setup(&consumer_name, || {
            stream.create_consumer(consumer_config.clone())
        })
        .await
        .map_err(|source| BusError::Consumer {
            stream: stream_name,
            consumer: consumer_name,
            source,
        })
    }

    /// The consumer's messages, pulled with a short expiry and idle
    /// heartbeats, `batch` at a time, pulled again after a short pause
    /// whenever a pull fails (no responders while a leader is elected, a
    /// missed heartbeat, a reconnect), so a consumer never idles while its
    /// stream has work. Every consumer of Herald reads through this.
    pub fn pull(&self, consumer: PullConsumer, batch: usize) -> Pull {
        Pull::new(consumer, batch, self.pulling.clone())
    }

    /// Tells readiness whether a reader that pulls on its own (not through
    /// [`Bus::pull`]) has a pull standing on a role's consumer.
    pub fn report_pulling(&self, role: ConsumerRole, pulling: bool) {
        if let Ok(mut consumers) = self.pulling.lock() {
            consumers.insert(role.durable_name().to_owned(), pulling);
        }
    }

    /// Whether this process's reader of a role's consumer has a pull
    /// standing now (readiness: a service is ready only once it pulls).
    pub fn is_pulling(&self, role: ConsumerRole) -> bool {
        self.pulling
            .lock()
            .map(|pulling| pulling.get(role.durable_name()).copied().unwrap_or(false))
            .unwrap_or(false)
    }

    /// Publishes with `Nats-Msg-Id` set, so a retried publish inside the
    /// stream's duplicate window is stored once. The returned future resolves
    /// to JetStream's acknowledgement. To pipeline many publishes use
    /// [`Bus::publish_all`]: holding more than a few thousand of these
    /// futures unawaited stalls every publish of the process.
    ///
    /// The message carries the current span's trace context (unless
    /// `headers` has one), so whoever consumes it continues the trace.
    pub async fn publish(
        &self,
        subject: String,
        message_id: &str,
        mut headers: async_nats::HeaderMap,
        payload: Bytes,
    ) -> Result<PublishAckFuture, BusError> {
        headers.insert(headers::MESSAGE_ID, message_id);
        headers::inject_current_trace(&mut headers);
        self.jetstream
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|source| BusError::Publish { subject, source })
    }

    /// Publishes one message built by the topology (`event_message`,
    /// `job_message`, `attempt_message`, `dead_letter_message`).
    pub async fn send(&self, message: Outgoing) -> Result<PublishAckFuture, BusError> {
        self.publish(
            message.subject,
            &message.message_id,
            message.headers,
            message.payload,
        )
        .await
    }

    /// How far a role's durable consumer is behind, from JetStream's
    /// consumer info. `Ok(None)` while the consumer does not exist yet.
    pub async fn consumer_lag(&self, role: ConsumerRole) -> Result<Option<ConsumerLag>, BusError> {
        let stream = self.topology.consumer_stream(role);
        let handle = self
            .jetstream
            .get_stream_no_info(&stream)
            .await
            .map_err(|source| BusError::GetStream {
                stream: stream.clone(),
                source,
            })?;
        match handle.consumer_info(role.durable_name()).await {
            Ok(info) => Ok(Some(ConsumerLag {
                stream,
                pending: info.num_pending,
                ack_pending: u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX),
            })),
            Err(error)
                if error.kind()
                    == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(error) => Err(BusError::Unavailable(error.to_string())),
        }
    }

    /// Publishes every message in order, pipelined, and returns JetStream's
    /// acknowledgement (or the error) of each, in the same order.
    ///
    /// async-nats lets 5,000 acknowledgements per connection be awaited at
    /// once and makes the next publish wait for one of them to arrive. A
    /// caller that publishes everything before awaiting any acknowledgement
    /// therefore stalls for good past 5,000 messages, and several callers
    /// holding a few thousand each stall one another. Here at most
    /// [`MAX_PENDING_ACKS`] await their acknowledgement at a time, and they
    /// are polled while the next publish waits, so the permits always come
    /// back.
    pub async fn publish_all(&self, messages: Vec<Outgoing>) -> Vec<Result<PublishAck, BusError>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut pending = FuturesOrdered::new();
        for message in messages {
            while pending.len() >= MAX_PENDING_ACKS {
                if let Some(result) = pending.next().await {
                    results.push(result);
                }
            }
            let subject = message.subject.clone();
            let publish = self.publish(
                message.subject,
                &message.message_id,
                message.headers,
                message.payload,
            );
            tokio::pin!(publish);
            let published = loop {
                tokio::select! {
                    published = &mut publish => break published,
                    Some(result) = pending.next(), if !pending.is_empty() => results.push(result),
                }
            };
            pending.push_back(
                async move {
                    published?
                        .await
                        .map_err(|source| BusError::Publish { subject, source })
                }
                .boxed(),
            );
        }
        while let Some(result) = pending.next().await {
            results.push(result);
        }
        results
    }

    /// Answers whether NATS and JetStream respond now; used by readiness.
    pub async fn ping(&self, timeout: Duration) -> Result<(), BusError> {
        let check = async {
            self.client
                .flush()
                .await
                .map_err(|error| BusError::Unavailable(error.to_string()))?;
            self.jetstream
                .query_account()
                .await
                .map_err(|error| BusError::Unavailable(error.to_string()))?;
            Ok(())
        };
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| BusError::Unavailable(format!("no answer within {timeout:?}")))?
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The server's version string, e.g. `2.15.1`.
    pub fn server_version(&self) -> String {
        self.client.server_info().version
    }
}

/// What waits in the FIFO lanes, all lanes together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FifoBacklog {
    /// Lanes with at least one job.
    pub lanes: u64,
    /// Jobs in every lane, each lane's job in progress included.
    pub jobs: u64,
    /// When the oldest of them was enqueued.
    pub oldest_job: Option<time::OffsetDateTime>,
}

/// A durable consumer's backlog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerLag {
    /// The stream the consumer reads.
    pub stream: String,
    /// Messages not yet delivered to the consumer.
    pub pending: u64,
    /// Messages delivered and not yet acknowledged (in progress, or waiting
    /// for a retry).
    pub ack_pending: u64,
}

fn version_at_least(version: &str, (major, minor): (u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|part| part.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(found_major), Some(found_minor)) => (found_major, found_minor) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::version_at_least;

    #[test]
    fn server_versions_are_compared_numerically() {
        for (version, expected) in [
            ("2.10.0", false),
            ("2.11.0", true),
            ("2.15.1", true),
            ("v2.11.3", true),
            ("3.0.0", true),
            ("2.9.10", false),
            ("2.2.0", false),
            ("2.11.0-beta.1", true),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(version_at_least(version, (2, 11)), expected, "{version}");
        }
    }
}
