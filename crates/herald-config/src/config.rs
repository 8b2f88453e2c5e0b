use std::{net::SocketAddr, time::Duration};

/// The config service's command-line and environment settings.
#[derive(Clone, Debug, clap::Args)]
pub struct ConfigArgs {
    /// Where the config gRPC API listens.
    #[arg(long, env = "HERALD_CONFIG_ADDR", default_value = "127.0.0.1:7070")]
    pub config_addr: SocketAddr,

    /// The ingest service's address as channels (Meta, Telegram, gateways)
    /// reach it, e.g. `https://hooks.example.com`: the console's device setup
    /// shows webhook URLs under it. `herald all` defaults to its own ingest
    /// address; unset, the console guesses its own host on port 7080.
    #[arg(long, env = "HERALD_PUBLIC_INGEST_URL")]
    pub public_ingest_url: Option<String>,

    /// The admin token (creates tenants and tokens). When unset, one is
    /// generated into `<state dir>/admin.token` on first start.
    #[arg(long, env = "HERALD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// 32 bytes, base64: encrypts secrets at rest. When unset, one is
    /// generated into `<state dir>/master.key` on first start; production sets it.
    #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Delete attempts older than this.
    #[arg(long, env = "HERALD_ATTEMPT_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub attempt_retention: Duration,

    /// How often retention runs.
    #[arg(long, env = "HERALD_RETENTION_SWEEP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub retention_sweep_interval: Duration,

    /// How long a rotated-out signing secret stays valid by default.
    #[arg(long, env = "HERALD_SECRET_OVERLAP", default_value = "24h", value_parser = humantime::parse_duration)]
    pub secret_overlap: Duration,

    /// How long TestEndpoint waits for the delivery service by default.
    #[arg(long, env = "HERALD_TEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub test_timeout: Duration,

    /// Keep configuration change-log entries this long; a watcher that was
    /// away longer gets a fresh snapshot.
    #[arg(long, env = "HERALD_CHANGE_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub change_retention: Duration,

    /// Pause an endpoint (status `failing`, its queued deliveries to the dead
    /// letters) once it has failed this long without a single success; 0
    /// never pauses.
    #[arg(long, env = "HERALD_AUTO_DISABLE_AFTER", default_value = "5d", value_parser = humantime::parse_duration)]
    pub auto_disable_after: Duration,

    /// Dead letters a tenant keeps unless its own `max_dead_letters` quota
    /// says otherwise: every sweep (`--retention-sweep-interval`) purges the
    /// oldest beyond it. 0 keeps them all (until the stream's retention).
    #[arg(long, env = "HERALD_MAX_DEAD_LETTERS", default_value_t = 100_000)]
    pub max_dead_letters: u64,

    /// Reverse proxies in front of the console and the JSON API (CIDRs,
    /// comma-separated): failed authentications through them are throttled
    /// by the client address they append to `X-Forwarded-For`, not by
    /// theirs. Empty trusts no proxy.
    #[arg(
        long,
        env = "HERALD_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,
}
