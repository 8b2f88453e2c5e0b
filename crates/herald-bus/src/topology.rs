use std::time::Duration;

use async_nats::jetstream::{consumer, kv, stream};
use herald_core::{
    event::Event,
    id::{DeliveryId, EndpointId, EventId, TenantId},
};

use crate::{BusConfig, BusError};

/// The names of every stream, subject and durable consumer, derived from a
/// namespace (`herald` by default).
///
/// | stream            | subjects                                                 |
/// |-------------------|----------------------------------------------------------|
/// | `HERALD_EVENTS`   | `herald.events.<tenant>.<event>.<channel>.<event type>`  |
/// | `HERALD_JOBS`     | `herald.jobs.pool.<partition>.<endpoint>`, `herald.jobs.fifo.<endpoint>`, `herald.jobs.held.<endpoint>` |
/// | `HERALD_ATTEMPTS` | `herald.attempts.<tenant>.<endpoint>`                    |
/// | `HERALD_DEAD`     | `herald.dead.<tenant>.<endpoint>.<delivery>`             |
///
/// Key-value buckets: `HERALD_RATE` (shared rate limiter state, one key per
/// endpoint), `HERALD_RECOVERY` (replay, recovery and redrive jobs),
/// `HERALD_DEDUPE` (channel idempotency keys for their retry horizon),
/// `HERALD_CONFIG` (the newest configuration revision fanout must have
/// applied), `HERALD_HANDBACKS` (how often a job was handed back unsent),
/// `HERALD_BACKLOG` (endpoints whose jobs go to their held lane, one key per
/// endpoint, expiring unless refreshed) and `HERALD_DEVICE_HEALTH` (each
/// device's inbound calls, events and verification failures, one key per
/// device).
#[derive(Clone, Debug)]
pub struct Topology {
    namespace: String,
    job_partitions: u16,
}

/// The services that read from a stream through a durable consumer. Replicas
/// of one role share its consumer, so each message goes to one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerRole {
    /// Reads events, writes delivery jobs for the pool.
    Fanout,
    /// Reads events in stream order, one replica at a time (the pinned
    /// client of [`FIFO_FANOUT_GROUP`]), and writes the jobs of FIFO lanes.
    FanoutFifo,
    /// Reads delivery jobs, POSTs, writes attempt records.
    Delivery,
    /// The config service's writer of the attempt log.
    AttemptWriter,
}

const FIFO_CONSUMER_PREFIX: &str = "fifo-";
const HELD_CONSUMER_PREFIX: &str = "held-";

/// How long an endpoint stays marked as backlogged unless delivery marks it
/// again; delivery refreshes a mark well within it while the backlog lasts.
pub const BACKLOG_MARK_TTL: Duration = Duration::from_secs(30);
/// How long a device's health record outlives its last update.
pub const DEVICE_HEALTH_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Jobs of one held lane handed out and not yet settled, waiting retries
/// included: enough for any endpoint's concurrency, small enough that a
/// lane never holds much in memory.
pub const HELD_MAX_ACK_PENDING: i64 = 256;

/// The priority group of [`ConsumerRole::FanoutFifo`]: the server hands its
/// events to one pinned client at a time.
pub const FIFO_FANOUT_GROUP: &str = "ordered";

/// Most events the ordered fanout has handed out and not acknowledged: one
/// batch. A replica that dies with a batch leaves nothing beyond it handed
/// out, so the next pinned replica gets that batch again first, in order.
pub const FIFO_FANOUT_BATCH: usize = 200;

/// How soon events handed to a replica that stopped go to the next one.
pub const FIFO_FANOUT_ACK_WAIT: Duration = Duration::from_secs(5);
/// How long the pinned replica may go without pulling before another one is
/// pinned; its pulls expire well within it.
pub const FIFO_FANOUT_PIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Which part of the jobs stream a job is published to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobLane {
    /// Delivered concurrently by every replica.
    Pool,
    /// Delivered one at a time, in order.
    Fifo,
    /// The endpoint cannot take work soon (open circuit, full slots, spent
    /// rate) or its jobs wait out retry delays: they wait here, pulled only
    /// while the endpoint can take them, out of the pool's way.
    Held,
}

impl ConsumerRole {
    pub fn durable_name(self) -> &'static str {
        match self {
            ConsumerRole::Fanout => "fanout",
            ConsumerRole::FanoutFifo => "fanout-fifo",
            ConsumerRole::Delivery => "delivery",
            ConsumerRole::AttemptWriter => "attempt-writer",
        }
    }
}

impl Topology {
    /// A namespace is one NATS subject token that also makes a valid stream
    /// name: lowercase letters, digits, `_` and `-`, at most 32 characters.
    pub fn new(namespace: &str, job_partitions: u16) -> Result<Topology, BusError> {
        let invalid = |reason| BusError::Namespace {
            namespace: namespace.to_owned(),
            reason,
        };
        if namespace.is_empty() || namespace.len() > 32 {
            return Err(invalid("must be 1 to 32 characters"));
        }
        if !namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "only lowercase letters, digits, '_' and '-' are allowed",
            ));
        }
        Ok(Topology {
            namespace: namespace.to_owned(),
            job_partitions: job_partitions.max(1),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn events_stream(&self) -> String {
        self.stream_name("EVENTS")
    }

    pub fn jobs_stream(&self) -> String {
        self.stream_name("JOBS")
    }

    pub fn attempts_stream(&self) -> String {
        self.stream_name("ATTEMPTS")
    }

    pub fn dead_letters_stream(&self) -> String {
        self.stream_name("DEAD")
    }

    /// The event id is a subject token so replay can fetch one event
    /// directly, without scanning the stream.
    pub fn event_subject(&self, event: &Event) -> String {
        format!(
            "{}.events.{}.{}.{}.{}",
            self.namespace,
            event.tenant_id,
            event.id,
            event.channel.as_str(),
            event.event_type.as_str()
        )
    }

    /// The one event with this id, if it belongs to the tenant.
    pub fn event_filter(&self, tenant: &TenantId, event: &EventId) -> String {
        format!("{}.events.{tenant}.{event}.>", self.namespace)
    }

    pub fn job_partitions(&self) -> u16 {
        self.job_partitions
    }

    /// Jobs for one endpoint always land in the same partition, so a single
    /// owner of that partition sees them in publish order.
    pub fn job_partition(&self, endpoint: &EndpointId) -> u16 {
        let hash = endpoint
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        (hash % u64::from(self.job_partitions)) as u16
    }

    /// Where a job for `endpoint` goes: FIFO endpoints have a lane of their
    /// own, read one job at a time; every other job shares the pool.
    pub fn job_subject(&self, endpoint: &EndpointId, lane: JobLane) -> String {
        match lane {
            JobLane::Pool => format!(
                "{}.jobs.pool.{}.{endpoint}",
                self.namespace,
                self.job_partition(endpoint)
            ),
            JobLane::Fifo => format!("{}.jobs.fifo.{endpoint}", self.namespace),
            JobLane::Held => format!("{}.jobs.held.{endpoint}", self.namespace),
        }
    }

    /// Every FIFO lane's subject.
    pub fn fifo_lanes_filter(&self) -> String {
        format!("{}.jobs.fifo.*", self.namespace)
    }

    /// Every held lane's subjects.
    pub fn held_lanes_filter(&self) -> String {
        format!("{}.jobs.held.>", self.namespace)
    }

    /// The endpoint whose held lane a subject is, if it is one.
    pub fn held_lane_endpoint(&self, subject: &str) -> Option<EndpointId> {
        let endpoint = subject
            .strip_prefix(&self.namespace)?
            .strip_prefix(".jobs.held.")?;
        EndpointId::parse(endpoint).ok()
    }

    /// The durable consumer that reads one endpoint's held lane.
    pub fn held_consumer_name(&self, endpoint: &EndpointId) -> String {
        format!("{HELD_CONSUMER_PREFIX}{endpoint}")
    }

    /// The durable consumer that reads one FIFO endpoint's lane.
    pub fn fifo_consumer_name(&self, endpoint: &EndpointId) -> String {
        format!("{FIFO_CONSUMER_PREFIX}{endpoint}")
    }

    /// The endpoint whose FIFO lane a consumer reads, if it is one.
    pub fn fifo_consumer_endpoint(&self, consumer: &str) -> Option<EndpointId> {
        EndpointId::parse(consumer.strip_prefix(FIFO_CONSUMER_PREFIX)?).ok()
    }

    pub fn rate_limit_bucket(&self) -> String {
        self.stream_name("RATE")
    }

    pub fn circuit_bucket(&self) -> String {
        self.stream_name("CIRCUITS")
    }

    pub fn recovery_bucket(&self) -> String {
        self.stream_name("RECOVERY")
    }

    pub fn dedupe_bucket(&self) -> String {
        self.stream_name("DEDUPE")
    }

    pub fn config_bucket(&self) -> String {
        self.stream_name("CONFIG")
    }

    pub fn handback_bucket(&self) -> String {
        self.stream_name("HANDBACKS")
    }

    pub fn backlog_bucket(&self) -> String {
        self.stream_name("BACKLOG")
    }

    pub fn device_health_bucket(&self) -> String {
        self.stream_name("DEVICE_HEALTH")
    }

    pub fn attempt_subject(&self, tenant: &TenantId, endpoint: &EndpointId) -> String {
        format!("{}.attempts.{tenant}.{endpoint}", self.namespace)
    }

    /// Every attempt record of one tenant, e.g. for a live tail.
    pub fn tenant_attempts_filter(&self, tenant: &TenantId) -> String {
        format!("{}.attempts.{tenant}.*", self.namespace)
    }

    pub fn dead_letter_subject(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        delivery: &DeliveryId,
    ) -> String {
        format!("{}.dead.{tenant}.{endpoint}.{delivery}", self.namespace)
    }

    /// Every dead letter of one endpoint.
    pub fn endpoint_dead_letters_filter(&self, tenant: &TenantId, endpoint: &EndpointId) -> String {
        format!("{}.dead.{tenant}.{endpoint}.*", self.namespace)
    }

    /// One delivery's dead letter, whichever endpoint it was for.
    pub fn delivery_dead_letter_filter(&self, tenant: &TenantId, delivery: &DeliveryId) -> String {
        format!("{}.dead.{tenant}.*.{delivery}", self.namespace)
    }

    /// Every dead letter of one tenant.
    pub fn tenant_dead_letters_filter(&self, tenant: &TenantId) -> String {
        format!("{}.dead.{tenant}.*.*", self.namespace)
    }

    fn stream_name(&self, suffix: &str) -> String {
        format!(
            "{}_{suffix}",
            self.namespace.to_ascii_uppercase().replace('-', "_")
        )
    }

    fn all_subjects(&self, kind: &str) -> String {
        format!("{}.{kind}.>", self.namespace)
    }

    pub(crate) fn stream_configs(&self, config: &BusConfig) -> Vec<stream::Config> {
        let storage = if config.memory_storage {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        };
        let base =
            |name: String, subjects: String, max_age: Duration, description: &str| stream::Config {
                name,
                subjects: vec![subjects],
                max_age,
                storage,
                num_replicas: usize::from(config.replicas),
                duplicate_window: config.duplicate_window.min(max_age),
                description: Some(description.to_owned()),
                allow_direct: true,
                ..Default::default()
            };
        vec![
            base(
                self.events_stream(),
                self.all_subjects("events"),
                config.event_retention,
                "Canonical events accepted by ingest; kept for replay",
            ),
            stream::Config {
                // Each job is consumed once; retries are redeliveries of the
                // same message, so the work queue keeps only what is pending.
                retention: stream::RetentionPolicy::WorkQueue,
                ..base(
                    self.jobs_stream(),
                    self.all_subjects("jobs"),
                    config.event_retention,
                    "Delivery jobs, one per event and matching endpoint",
                )
            },
            base(
                self.attempts_stream(),
                self.all_subjects("attempts"),
                config.attempt_stream_retention,
                "Delivery attempt records on their way to the attempt log",
            ),
            stream::Config {
                // One message per delivery: a repeated dead-lettering of the
                // same delivery replaces the previous one.
                max_messages_per_subject: 1,
                ..base(
                    self.dead_letters_stream(),
                    self.all_subjects("dead"),
                    config.dead_letter_retention,
                    "Deliveries that exhausted their retry schedule",
                )
            },
        ]
    }

    pub(crate) fn bucket_configs(&self, config: &BusConfig) -> Vec<kv::Config> {
        let storage = if config.memory_storage {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        };
        vec![
            kv::Config {
                bucket: self.rate_limit_bucket(),
                description: "Rate limiter state shared by delivery replicas".to_owned(),
                history: 1,
                // An idle endpoint's state is worthless after a while: its
                // bucket is full again.
                max_age: Duration::from_secs(3600),
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.circuit_bucket(),
                description: "Open and half-open circuits shared by delivery replicas".to_owned(),
                history: 1,
                // The longest cooldown is minutes: a circuit nobody touched
                // for a day is stale, and a missing one is closed.
                max_age: Duration::from_secs(24 * 3600),
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.backlog_bucket(),
                description: "Endpoints whose new jobs go straight to their held lane".to_owned(),
                history: 1,
                // A mark nobody refreshes (the backlog drained, or delivery
                // stopped) expires by itself.
                max_age: BACKLOG_MARK_TTL,
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.recovery_bucket(),
                description: "Replay, recovery and redrive jobs and their progress".to_owned(),
                history: 1,
                max_age: config.dead_letter_retention,
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.dedupe_bucket(),
                description: "Channel idempotency keys, each kept for its channel's retry horizon"
                    .to_owned(),
                history: 1,
                // Every key expires by its own TTL; this turns per-key TTLs
                // on (the markers of removed keys live a second).
                limit_markers: Some(Duration::from_secs(1)),
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.config_bucket(),
                description: "The newest configuration revision that fanout must have applied"
                    .to_owned(),
                history: 1,
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.device_health_bucket(),
                description: "Each device's inbound calls, events and verification failures"
                    .to_owned(),
                history: 1,
                // Long enough that a device whose channel went quiet still
                // shows when it last called.
                max_age: DEVICE_HEALTH_RETENTION,
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
            kv::Config {
                bucket: self.handback_bucket(),
                description: "How often each delivery job was handed back without an attempt"
                    .to_owned(),
                history: 1,
                // A job lives no longer than the jobs stream keeps it.
                max_age: config.event_retention,
                storage,
                num_replicas: usize::from(config.replicas),
                ..Default::default()
            },
        ]
    }

    pub(crate) fn consumer_stream(&self, role: ConsumerRole) -> String {
        match role {
            ConsumerRole::Fanout | ConsumerRole::FanoutFifo => self.events_stream(),
            ConsumerRole::Delivery => self.jobs_stream(),
            ConsumerRole::AttemptWriter => self.attempts_stream(),
        }
    }

    pub(crate) fn consumer_config(
        &self,
        role: ConsumerRole,
        config: &BusConfig,
    ) -> consumer::pull::Config {
        let (ack_wait, max_ack_pending, description) = match role {
            ConsumerRole::Fanout => (
                Duration::from_secs(30),
                10_000,
                "Matches events to endpoints and publishes delivery jobs",
            ),
            // Workers report progress on every job they hold, so this is
            // how soon a crashed worker's jobs go to another one.
            ConsumerRole::Delivery => (
                config.delivery_ack_wait,
                20_000,
                "POSTs delivery jobs to endpoints",
            ),
            ConsumerRole::AttemptWriter => (
                Duration::from_secs(30),
                10_000,
                "Writes attempt records into the attempt log",
            ),
            // The pinned replica reports progress while a batch waits on a
            // lane, so this is how soon a dead replica's batch moves on.
            ConsumerRole::FanoutFifo => (
                FIFO_FANOUT_ACK_WAIT,
                i64::try_from(FIFO_FANOUT_BATCH).unwrap_or(i64::MAX),
                "Publishes the jobs of FIFO lanes in the order events were accepted",
            ),
        };
        let ordered = role == ConsumerRole::FanoutFifo;
        consumer::pull::Config {
            durable_name: Some(role.durable_name().to_owned()),
            description: Some(description.to_owned()),
            // A work queue allows no two consumers with overlapping filters:
            // the pool's excludes every FIFO lane.
            filter_subject: if role == ConsumerRole::Delivery {
                format!("{}.jobs.pool.>", self.namespace)
            } else {
                String::new()
            },
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait,
            max_ack_pending,
            max_deliver: -1,
            priority_policy: if ordered {
                consumer::PriorityPolicy::PinnedClient
            } else {
                consumer::PriorityPolicy::None
            },
            priority_groups: if ordered {
                vec![FIFO_FANOUT_GROUP.to_owned()]
            } else {
                Vec::new()
            },
            priority_timeout: if ordered {
                FIFO_FANOUT_PIN_TIMEOUT
            } else {
                Duration::ZERO
            },
            ..Default::default()
        }
    }

    /// One endpoint's held lane: every replica pulls it while the endpoint
    /// can take work, so its backlog waits in the stream, never in the
    /// pool's unacknowledged set. Idle lanes' consumers are removed by the
    /// server; the jobs stay in the work queue and a new consumer starts at
    /// the oldest.
    pub(crate) fn held_consumer_config(
        &self,
        endpoint: &EndpointId,
        config: &BusConfig,
    ) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.held_consumer_name(endpoint)),
            description: Some(format!("Held lane of endpoint {endpoint}")),
            filter_subject: self.job_subject(endpoint, JobLane::Held),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: config.delivery_ack_wait,
            max_ack_pending: HELD_MAX_ACK_PENDING,
            max_deliver: -1,
            inactive_threshold: Duration::from_secs(3600),
            ..Default::default()
        }
    }

    /// One FIFO endpoint's lane: one job outstanding at a time, so the lane
    /// is delivered in publish order whichever replica pulls, and a failing
    /// head (negatively acknowledged with its retry delay) holds the rest.
    /// Forgotten by the server once no replica has pulled for a day; the
    /// jobs stay in the work queue and a new consumer starts at the oldest.
    pub(crate) fn fifo_consumer_config(
        &self,
        endpoint: &EndpointId,
        config: &BusConfig,
    ) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.fifo_consumer_name(endpoint)),
            description: Some(format!("FIFO lane of endpoint {endpoint}")),
            filter_subject: self.job_subject(endpoint, JobLane::Fifo),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            // Short, as delivery extends it while it works on the job: a
            // lost acknowledgement or a crashed worker holds the lane
            // this long, not the pool's ack wait.
            ack_wait: config.fifo_ack_wait,
            max_ack_pending: 1,
            max_deliver: -1,
            inactive_threshold: Duration::from_secs(24 * 3600),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_must_be_one_subject_token() {
        for bad in [
            "",
            "Herald",
            "her.ald",
            "her ald",
            "a>",
            "*",
            &"x".repeat(33),
        ] {
            assert!(Topology::new(bad, 16).is_err(), "{bad:?} accepted");
        }
        for good in ["herald", "t-1", "test_42"] {
            assert!(Topology::new(good, 16).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn stream_names_are_uppercase_and_subjects_are_namespaced() {
        let topology = Topology::new("test-1", 16).unwrap();
        assert_eq!(topology.events_stream(), "TEST_1_EVENTS");
        assert_eq!(topology.dead_letters_stream(), "TEST_1_DEAD");
        let now = time::OffsetDateTime::now_utc();
        let event = Event {
            id: EventId::generate(),
            tenant_id: TenantId::generate(),
            channel: herald_core::channel::Channel::Waba,
            device_id: None,
            event_type: herald_core::catalog::EventType::parse("message.received").unwrap(),
            occurred_at: now,
            received_at: now,
            source_ref: None,
            idempotency_key: "key".to_owned(),
            data: serde_json::value::RawValue::from_string("{}".to_owned()).unwrap(),
        };
        let subject = topology.event_subject(&event);
        assert_eq!(
            subject,
            format!(
                "test-1.events.{}.{}.waba.message.received",
                event.tenant_id, event.id
            )
        );
        let filter = topology.event_filter(&event.tenant_id, &event.id);
        assert!(subject.starts_with(filter.trim_end_matches('>')));
    }

    #[test]
    fn an_endpoint_always_maps_to_the_same_partition() {
        let topology = Topology::new("herald", 16).unwrap();
        let endpoint = EndpointId::generate();
        let partition = topology.job_partition(&endpoint);
        assert!(partition < 16);
        assert_eq!(topology.job_partition(&endpoint), partition);
        assert_eq!(
            topology.job_subject(&endpoint, JobLane::Pool),
            format!("herald.jobs.pool.{partition}.{endpoint}")
        );
        assert_eq!(
            topology.job_subject(&endpoint, JobLane::Fifo),
            format!("herald.jobs.fifo.{endpoint}")
        );
        let held = topology.job_subject(&endpoint, JobLane::Held);
        assert_eq!(held, format!("herald.jobs.held.{endpoint}"));
        assert_eq!(topology.held_lane_endpoint(&held), Some(endpoint));
        assert_eq!(
            topology.held_lane_endpoint(&topology.job_subject(&endpoint, JobLane::Pool)),
            None
        );
    }

    #[test]
    fn partitions_spread_endpoints() {
        let topology = Topology::new("herald", 16).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            seen.insert(topology.job_partition(&EndpointId::generate()));
        }
        assert_eq!(seen.len(), 16);
    }
}
