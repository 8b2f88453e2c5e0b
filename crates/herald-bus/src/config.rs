use std::time::Duration;

/// How to reach NATS and how the streams are sized. Every service takes the
/// same settings, so any of them can create or update the streams.
#[derive(Clone, Debug, clap::Args)]
pub struct BusConfig {
    /// NATS server URL (2.11 or newer, with JetStream enabled).
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,

    /// Prefix of every subject and stream, so several Herald installations
    /// (or test runs) can share one NATS server.
    #[arg(
        long = "bus-namespace",
        env = "HERALD_BUS_NAMESPACE",
        default_value = "herald"
    )]
    pub namespace: String,

    /// How long to wait for NATS when connecting before giving up.
    #[arg(long = "nats-connect-timeout", env = "HERALD_NATS_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Replication factor of every stream (3 on a three-node JetStream cluster).
    #[arg(long = "stream-replicas", env = "HERALD_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,

    /// Keep events on the bus this long, so they can be replayed.
    #[arg(long = "event-retention", env = "HERALD_EVENT_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub event_retention: Duration,

    /// A publish repeating a message id inside this window is stored once.
    #[arg(long = "duplicate-window", env = "HERALD_DUPLICATE_WINDOW", default_value = "1h", value_parser = humantime::parse_duration)]
    pub duplicate_window: Duration,

    /// Keep dead letters this long.
    #[arg(long = "dead-letter-retention", env = "HERALD_DEAD_LETTER_RETENTION", default_value = "14d", value_parser = humantime::parse_duration)]
    pub dead_letter_retention: Duration,

    /// Keep attempt records on the bus this long; the database keeps the log.
    #[arg(long = "attempt-stream-retention", env = "HERALD_ATTEMPT_STREAM_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub attempt_stream_retention: Duration,

    /// Delivery jobs are spread over this many subject partitions by endpoint,
    /// so per-endpoint order can be owned by one consumer at a time.
    #[arg(long = "job-partitions", env = "HERALD_JOB_PARTITIONS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub job_partitions: u16,

    /// How long a delivery job may go unacknowledged before JetStream hands
    /// it to another worker. Workers extend it while a job is in progress,
    /// so it bounds how long a crashed worker's jobs wait, not how long a
    /// request may take.
    #[arg(long = "delivery-ack-wait", env = "HERALD_DELIVERY_ACK_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub delivery_ack_wait: Duration,

    /// Keep streams in memory instead of files (tests and benchmarks only).
    #[arg(long = "stream-memory-storage", env = "HERALD_STREAM_MEMORY_STORAGE")]
    pub memory_storage: bool,
}

impl BusConfig {
    /// Defaults for a server at `url`: what the flags give when unset.
    pub fn for_url(url: impl Into<String>) -> BusConfig {
        BusConfig {
            url: url.into(),
            namespace: "herald".to_owned(),
            connect_timeout: Duration::from_secs(5),
            replicas: 1,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(3600),
            dead_letter_retention: Duration::from_secs(14 * 24 * 3600),
            attempt_stream_retention: Duration::from_secs(24 * 3600),
            job_partitions: 16,
            delivery_ack_wait: Duration::from_secs(30),
            memory_storage: false,
        }
    }
}
