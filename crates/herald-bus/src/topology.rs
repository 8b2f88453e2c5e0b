use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    id::{DeliveryId, EndpointId, TenantId},
};

use crate::{BusConfig, BusError};

/// The names of every stream, subject and durable consumer, derived from a
/// namespace (`herald` by default).
///
/// | stream            | subjects                                          |
/// |-------------------|---------------------------------------------------|
/// | `HERALD_EVENTS`   | `herald.events.<tenant>.<channel>.<event type>`   |
/// | `HERALD_JOBS`     | `herald.jobs.<partition>.<endpoint>`              |
/// | `HERALD_ATTEMPTS` | `herald.attempts.<tenant>.<endpoint>`             |
/// | `HERALD_DEAD`     | `herald.dead.<tenant>.<endpoint>.<delivery>`      |
#[derive(Clone, Debug)]
pub struct Topology {
    namespace: String,
    job_partitions: u16,
}

/// The services that read from a stream through a durable consumer. Replicas
/// of one role share its consumer, so each message goes to one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerRole {
    /// Reads events, writes delivery jobs.
    Fanout,
    /// Reads delivery jobs, POSTs, writes attempt records.
    Delivery,
    /// The config service's writer of the attempt log.
    AttemptWriter,
}

impl ConsumerRole {
    pub fn durable_name(self) -> &'static str {
        match self {
            ConsumerRole::Fanout => "fanout",
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

    pub fn event_subject(
        &self,
        tenant: &TenantId,
        channel: Channel,
        event_type: &EventType,
    ) -> String {
        format!(
            "{}.events.{tenant}.{}.{}",
            self.namespace,
            channel.as_str(),
            event_type.as_str()
        )
    }

    /// Every event of one tenant, e.g. for a replay scan.
    pub fn tenant_events_filter(&self, tenant: &TenantId) -> String {
        format!("{}.events.{tenant}.>", self.namespace)
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

    pub fn job_subject(&self, endpoint: &EndpointId) -> String {
        format!(
            "{}.jobs.{}.{endpoint}",
            self.namespace,
            self.job_partition(endpoint)
        )
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

    pub(crate) fn consumer_stream(&self, role: ConsumerRole) -> String {
        match role {
            ConsumerRole::Fanout => self.events_stream(),
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
        };
        consumer::pull::Config {
            durable_name: Some(role.durable_name().to_owned()),
            description: Some(description.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait,
            max_ack_pending,
            max_deliver: -1,
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
        let tenant = TenantId::generate();
        let event_type = EventType::parse("message.received").unwrap();
        assert_eq!(
            topology.event_subject(&tenant, Channel::Waba, &event_type),
            format!("test-1.events.{tenant}.waba.message.received")
        );
    }

    #[test]
    fn an_endpoint_always_maps_to_the_same_partition() {
        let topology = Topology::new("herald", 16).unwrap();
        let endpoint = EndpointId::generate();
        let partition = topology.job_partition(&endpoint);
        assert!(partition < 16);
        assert_eq!(topology.job_partition(&endpoint), partition);
        assert!(
            topology
                .job_subject(&endpoint)
                .ends_with(&format!(".{partition}.{endpoint}"))
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
