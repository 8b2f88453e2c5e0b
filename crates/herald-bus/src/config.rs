use std::time::Duration;

use crate::BusError;

/// How to reach NATS and how the streams are sized. Every service takes the
/// same settings, so any of them can create or update the streams.
#[derive(Clone, Debug, clap::Args)]
pub struct BusConfig {
    /// NATS server URL (2.11 or newer, with JetStream enabled), or several
    /// separated by commas or spaces (as the nats CLI takes them); the
    /// scheme may be left out (`nats://` is assumed). Herald connects to any
    /// that answers and fails over between them.
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

    /// How long start-up keeps retrying to create or update the streams,
    /// buckets and consumers before giving up. A fresh cluster elects its
    /// leaders meanwhile, and several services set up at once.
    #[arg(long = "nats-setup-timeout", env = "HERALD_NATS_SETUP_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub setup_timeout: Duration,

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
    /// so it bounds how long a crashed worker's jobs wait (and jobs a lost
    /// pull request was sent), not how long a request may take.
    #[arg(long = "delivery-ack-wait", env = "HERALD_DELIVERY_ACK_WAIT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub delivery_ack_wait: Duration,

    /// How long a FIFO lane's job may go unacknowledged before JetStream
    /// hands it to another worker. Workers extend it while a job is in
    /// progress; a lane has one job out at a time, so this is how long a
    /// crashed worker (or a lost acknowledgement) stops the lane.
    #[arg(long = "fifo-ack-wait", env = "HERALD_FIFO_ACK_WAIT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub fifo_ack_wait: Duration,

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
            setup_timeout: Duration::from_secs(60),
            replicas: 1,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(3600),
            dead_letter_retention: Duration::from_secs(14 * 24 * 3600),
            attempt_stream_retention: Duration::from_secs(24 * 3600),
            job_partitions: 16,
            delivery_ack_wait: Duration::from_secs(5),
            fifo_ack_wait: Duration::from_secs(5),
            memory_storage: false,
        }
    }
}

impl BusConfig {
    /// The servers of `--nats-url`: separated by commas (spaces around them
    /// are ignored), each with or without a scheme (`nats://` is assumed),
    /// as the nats CLI reads `NATS_URL`.
    pub fn servers(&self) -> Result<Vec<async_nats::ServerAddr>, BusError> {
        server_list(&self.url)
    }
}

fn server_list(url: &str) -> Result<Vec<async_nats::ServerAddr>, BusError> {
    let invalid = |server: &str, reason: String| BusError::InvalidUrl {
        url: server.to_owned(),
        reason,
    };
    let servers: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .collect();
    if servers.is_empty() {
        return Err(invalid(url, "no server given".to_owned()));
    }
    servers
        .into_iter()
        .map(|server| {
            if server.contains(char::is_whitespace) {
                return Err(invalid(
                    server,
                    "separate servers with commas; an address has no spaces".to_owned(),
                ));
            }
            server
                .parse::<async_nats::ServerAddr>()
                .map_err(|error| invalid(server, error.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::server_list;

    #[test]
    fn a_server_list_is_split_like_the_nats_cli_does() {
        for (url, expected) in [
            ("nats://127.0.0.1:4222", vec!["nats://127.0.0.1:4222"]),
            (
                "nats://a:4222,nats://b:4223",
                vec!["nats://a:4222", "nats://b:4223"],
            ),
            (
                " nats://a:4222 , b:4223,tls://c:4224 ",
                vec!["nats://a:4222", "nats://b:4223", "tls://c:4224"],
            ),
            ("a", vec!["nats://a:4222"]),
        ] {
            let servers: Vec<String> = server_list(url)
                .unwrap()
                .iter()
                .map(|server| {
                    let scheme = server.as_url_str().split("://").next().unwrap_or_default();
                    format!("{scheme}://{}:{}", server.host(), server.port())
                })
                .collect();
            assert_eq!(servers, expected, "{url}");
        }
        for bad in [
            "",
            " , ",
            "http://a:4222",
            "nats://a:notaport",
            "not a url",
            "nats://a:4222 nats://b:4222",
        ] {
            assert!(server_list(bad).is_err(), "{bad:?} accepted");
        }
    }
}
