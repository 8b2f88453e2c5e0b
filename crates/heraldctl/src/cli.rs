//! The command tree.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

#[derive(Debug, Parser)]
#[command(name = "heraldctl", version, about = "Herald from the command line")]
pub struct Cli {
    /// The config service's gRPC address [default: from `heraldctl login`, else http://127.0.0.1:7070].
    #[arg(long, env = "HERALD_ADDR", global = true)]
    pub addr: Option<String>,
    /// The ingest service's gRPC address, for `events publish` [default: http://127.0.0.1:7080].
    #[arg(long, env = "HERALD_INGEST_URL", global = true)]
    pub ingest_addr: Option<String>,
    /// A tenant token [default: the one `heraldctl login` saved].
    #[arg(long, env = "HERALD_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// The admin token, for `tenants` and `tokens` [default: --token, else the saved one].
    #[arg(
        long,
        env = "HERALD_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// With the admin token: the tenant to act on.
    #[arg(long, env = "HERALD_TENANT", global = true)]
    pub tenant: Option<String>,
    /// How results are printed.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save the address and token for later commands.
    Login {
        /// The token to save (else --token / HERALD_TOKEN).
        #[arg(long = "with-token")]
        with_token: Option<String>,
    },
    /// Tenants (admin token: --admin-token / HERALD_ADMIN_TOKEN).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// API tokens (admin token: --admin-token / HERALD_ADMIN_TOKEN).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Devices: the tenant's channel lines.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Endpoints: where Herald delivers.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// Event types: the catalog (with labels, channels and data schemas)
    /// and the tenant's custom types.
    #[command(subcommand, name = "event-types")]
    EventTypes(EventTypesCommand),
    /// Endpoints by status and deliveries in the last 24 hours.
    Summary,
    /// Transformations: programs that reshape an endpoint's deliveries.
    #[command(subcommand)]
    Transformations(TransformationsCommand),
    /// The attempt log.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Publish events through the ingest service, or send one again.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Send an endpoint's failed and dead deliveries since a time again.
    Recover(RecoverArgs),
    /// Dead letters: deliveries that used up their retries.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Replay, recovery and redrive jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Check a received webhook's signature locally (Standard Webhooks).
    Verify(VerifyArgs),
    /// Every service's gRPC health.
    Health,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventTypesCommand {
    /// Every type: name, label, the channels that produce it, whether it
    /// has a schema.
    List(PageArgs),
    /// Register a custom event type.
    Register {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// An example `data` (JSON, or @file).
        #[arg(long)]
        sample: Option<String>,
        /// The JSON Schema of `data` (JSON, or @file), enforced on publish.
        #[arg(long)]
        schema: Option<String>,
    },
    /// Delete a custom event type.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    Create {
        name: String,
    },
    List(PageArgs),
    /// One tenant, with its quotas.
    Get {
        tenant_id: String,
    },
    /// The tenant's own quotas (0 or unset: the service's default).
    #[command(subcommand)]
    Quotas(QuotasCommand),
}

#[derive(Debug, Subcommand)]
pub enum QuotasCommand {
    /// Change the quotas named; the others keep their value. 0 returns a
    /// quota to the service's default.
    Set {
        tenant_id: String,
        /// Events ingest accepts per second (webhooks over it get 429).
        #[arg(long)]
        events_per_second: Option<f64>,
        /// Events accepted at once above the rate.
        #[arg(long)]
        events_burst: Option<u32>,
        /// Deliveries in flight per delivery replica.
        #[arg(long)]
        max_in_flight_deliveries: Option<u32>,
        /// Dead letters kept; the oldest beyond are purged.
        #[arg(long)]
        max_dead_letters: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    Create {
        /// The tenant the token belongs to.
        #[arg(long = "for")]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "tenant")]
        scope: Scope,
        /// Lifetime, e.g. `90d`; no expiry when unset.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    List {
        #[arg(long = "for")]
        tenant: String,
        #[arg(long)]
        include_revoked: bool,
    },
    Revoke {
        token_id: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Scope {
    Tenant,
    Publish,
    Read,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChannelName {
    Whatsapp,
    Telegram,
    Waba,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Register a channel line, with the material that verifies its webhooks.
    ///
    /// Each channel needs its own flags:
    ///   waba      --app-secret (Meta app secret) and --verify-token (the
    ///             hub.verify_token you give Meta); --external-id is the
    ///             phone_number_id
    ///   telegram  --secret-token (1-256 of A-Z a-z 0-9 _ -, the
    ///             secret_token of setWebhook); --external-id is the bot id
    ///   whatsapp  --hmac-key (optional, the gateway's HMAC key);
    ///             --external-id is the gateway session
    ///
    /// The channel then posts to the ingest service at
    /// /inbound/<channel>/<device id>.
    #[command(verbatim_doc_comment)]
    Create {
        #[arg(long, value_enum)]
        channel: ChannelName,
        #[arg(long)]
        name: String,
        /// WABA phone_number_id, Telegram bot id, gateway session.
        #[arg(long)]
        external_id: String,
        #[command(flatten)]
        verification: VerificationArgs,
    },
    List(PageArgs),
    Get {
        device_id: String,
    },
    Update {
        device_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        external_id: Option<String>,
    },
    Delete {
        device_id: String,
    },
}

#[derive(Debug, Args)]
pub struct VerificationArgs {
    /// WABA (required): the Meta app secret, the key of X-Hub-Signature-256.
    #[arg(long)]
    pub app_secret: Option<String>,
    /// WABA (required): the token Meta echoes in the hub.verify_token handshake.
    #[arg(long)]
    pub verify_token: Option<String>,
    /// Telegram (required): the secret token Telegram sends in
    /// X-Telegram-Bot-Api-Secret-Token.
    #[arg(long)]
    pub secret_token: Option<String>,
    /// WhatsApp gateway (optional): the HMAC key of X-Webhook-Hmac.
    #[arg(long)]
    pub hmac_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct PageArgs {
    /// Follow page tokens to the end.
    #[arg(long)]
    pub all: bool,
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    #[arg(long, default_value = "")]
    pub page_token: String,
}

/// Names as every output prints them (`sha256_hex`); the dashed spelling
/// is accepted too.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SchemeName {
    Standard,
    #[value(alias = "sha256-hex")]
    Sha256Hex,
    /// `<header>: <hex>` without a prefix.
    Hex,
    #[value(alias = "shared-secret")]
    SharedSecret,
}

/// Names as every output prints them (`pending_test`).
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum StatusName {
    #[value(alias = "pending-test")]
    PendingTest,
    Active,
    Disabled,
    Failing,
}

#[derive(Debug, Args)]
pub struct EndpointFields {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Comma-separated event types; none means all.
    #[arg(long, value_delimiter = ',')]
    pub events: Option<Vec<String>>,
    /// Comma-separated device ids; none means all.
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<String>>,
    /// Payload contract: kirisan, kaanha or kapso; `""` for Herald's own
    /// envelope. It fixes the signing scheme and header.
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long, value_enum)]
    pub scheme: Option<SchemeName>,
    /// Signature header for sha256-hex and hex.
    #[arg(long)]
    pub signature_header: Option<String>,
    /// Request timeout, e.g. `10s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Delays between tries, comma-separated (`5s,25s,2m`); `none` for a
    /// single try, `default` for Herald's schedule.
    #[arg(long, value_parser = parse_retry)]
    pub retry: Option<Retry>,
    /// A file holding the endpoint's transformation (JavaScript); an empty
    /// file removes it.
    #[arg(long)]
    pub transformation_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TransformationsCommand {
    /// Run a program once against an event, with nothing sent: prints the
    /// body, headers and event type it would send, its cancel, or its error.
    Simulate {
        /// The program (JavaScript, `function handler(webhook) {...}`).
        #[arg(long)]
        code_file: std::path::PathBuf,
        /// A catalog event type whose sample is the event.
        #[arg(
            long,
            conflicts_with = "event_file",
            required_unless_present = "event_file"
        )]
        event_type: Option<String>,
        /// A file holding the envelope Herald would send, as JSON.
        #[arg(long)]
        event_file: Option<std::path::PathBuf>,
        /// The endpoint URL the program sees.
        #[arg(long)]
        url: Option<String>,
    },
}

/// An endpoint's retry schedule as `--retry` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    Default,
    /// The delays after the first try, none for a single try.
    Delays(Vec<Duration>),
}

fn parse_retry(value: &str) -> Result<Retry, String> {
    match value {
        "default" => Ok(Retry::Default),
        "none" => Ok(Retry::Delays(Vec::new())),
        delays => delays
            .split(',')
            .map(|delay| {
                humantime::parse_duration(delay.trim())
                    .map_err(|error| format!("{delay:?}: {error}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Retry::Delays),
    }
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    Create {
        #[command(flatten)]
        fields: EndpointFields,
        /// A secret of your own; a `whsec_` one is generated otherwise. The
        /// standard scheme needs `whsec_` + the base64 of 24 to 64 bytes.
        #[arg(long)]
        secret: Option<String>,
    },
    List {
        /// Name or URL contains (at least 3 characters).
        #[arg(long)]
        search: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusName>,
        #[command(flatten)]
        page: PageArgs,
    },
    Get {
        endpoint_id: String,
    },
    Update {
        endpoint_id: String,
        #[command(flatten)]
        fields: EndpointFields,
    },
    Delete {
        endpoint_id: String,
    },
    Enable {
        endpoint_id: String,
    },
    Disable {
        endpoint_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Send a test delivery; a 200 or 201 makes the endpoint active, anything
    /// else exits 1 with the reason.
    Test {
        endpoint_id: String,
        #[arg(long)]
        event_type: Option<String>,
        /// The device the sample comes from (its id and channel); none by default.
        #[arg(long)]
        device: Option<String>,
    },
    RotateSecret {
        endpoint_id: String,
        /// How long the previous secret stays valid, e.g. `24h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        overlap: Option<Duration>,
    },
    Secret {
        endpoint_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    List {
        #[command(flatten)]
        filter: LogFilter,
        /// Only attempts newer than this, e.g. `2h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        #[command(flatten)]
        page: PageArgs,
    },
    Get {
        attempt_id: String,
    },
    /// Follow new attempts as they happen.
    Tail {
        #[command(flatten)]
        filter: LogFilter,
        /// Recent attempts to show first.
        #[arg(long, default_value_t = 10)]
        backlog: u32,
    },
    /// Forget the request bodies stored with an endpoint's attempts (the
    /// attempts stay, with their sizes).
    PurgeBodies {
        endpoint_id: String,
    },
}

#[derive(Debug, Args)]
pub struct LogFilter {
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long = "type")]
    pub event_type: Option<String>,
    #[arg(long, value_enum)]
    pub status: Option<AttemptStatusName>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AttemptStatusName {
    Succeeded,
    Failed,
    Retrying,
    Dead,
    Skipped,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    Publish {
        #[arg(long = "type")]
        event_type: String,
        #[arg(long)]
        device: Option<String>,
        /// JSON, or `@file.json`.
        #[arg(long)]
        data: String,
        /// Publishing twice with one key makes one event.
        #[arg(long)]
        key: Option<String>,
    },
    /// Send an event again, with its original delivery ids (`webhook-id`).
    Replay {
        event_id: String,
        /// Only to this endpoint; else to every endpoint it matches now.
        #[arg(long)]
        endpoint: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Print the job at once instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[arg(long)]
    pub endpoint: String,
    /// Failures at or after this: a duration ago (`2h`, `30m`, `7d`, counted
    /// from the start of the current minute, so running the command again
    /// soon is the same request) or an RFC 3339 time.
    #[arg(long, value_parser = parse_moment)]
    pub since: Moment,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters, oldest first.
    List {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Dead at or after this: a duration ago (`2h`) or an RFC 3339 time.
        #[arg(long, value_parser = parse_moment)]
        since: Option<Moment>,
        /// Dead before this: a duration ago (`30m`) or an RFC 3339 time.
        #[arg(long, value_parser = parse_moment)]
        until: Option<Moment>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Deliver dead letters again (to the endpoint's current URL and secret).
    Redrive {
        #[command(flatten)]
        selection: DeadLetterSelection,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete dead letters for good.
    Purge {
        #[command(flatten)]
        selection: DeadLetterSelection,
        /// Purge every dead letter of `--endpoint` without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters: named, or all of one endpoint.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DeadLetterSelection {
    /// Delivery ids (the `webhook-id` the receiver saw).
    #[arg(value_name = "DELIVERY_ID")]
    pub delivery_ids: Vec<String>,
    /// Every dead letter of this endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// A job as it is now.
    Get { job_id: String },
    /// Follow a job's progress to its end.
    Watch { job_id: String },
}

/// A point in time given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    Ago(time::Duration),
    At(OffsetDateTime),
}

impl Moment {
    /// The time this names, counting a duration back from `now`.
    pub fn before(self, now: OffsetDateTime) -> Result<OffsetDateTime, crate::error::CtlError> {
        match self {
            Moment::At(at) => Ok(at),
            Moment::Ago(ago) => now.checked_sub(ago).ok_or_else(|| {
                crate::error::CtlError::Usage(format!("{ago} ago is before any time"))
            }),
        }
    }
}

fn parse_moment(value: &str) -> Result<Moment, String> {
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(Moment::At(at));
    }
    let expected = "expected a duration ago such as 2h, 30m or 7d, or an RFC 3339 time such as 2026-01-02T15:04:05Z";
    let ago = humantime::parse_duration(value)
        .ok()
        .and_then(|ago| time::Duration::try_from(ago).ok())
        .ok_or_else(|| expected.to_owned())?;
    OffsetDateTime::now_utc()
        .checked_sub(ago)
        .map(|_| Moment::Ago(ago))
        .ok_or_else(|| format!("{value} ago is before any time"))
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The endpoint's secret (`whsec_…`).
    #[arg(long)]
    pub secret: String,
    /// The `webhook-id` header.
    #[arg(long)]
    pub id: String,
    /// The `webhook-timestamp` header.
    #[arg(long)]
    pub timestamp: String,
    /// The `webhook-signature` header.
    #[arg(long)]
    pub signature: String,
    /// The raw body, or `@file`.
    #[arg(long)]
    pub body: String,
    /// Check against this Unix time instead of now (for old captures).
    #[arg(long)]
    pub at: Option<i64>,
}

/// Reads `@path` arguments.
pub fn read_argument(value: &str) -> Result<Vec<u8>, crate::error::CtlError> {
    match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read(PathBuf::from(path)).map_err(|source| crate::error::CtlError::Io {
                path: path.to_owned(),
                source,
            })
        }
        None => Ok(value.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn moments_are_durations_ago_or_rfc_3339_times() {
        assert_eq!(
            parse_moment("2h"),
            Ok(Moment::Ago(time::Duration::hours(2)))
        );
        assert_eq!(parse_moment("7d"), Ok(Moment::Ago(time::Duration::days(7))));
        assert_eq!(
            parse_moment("2026-01-02T15:04:05.5+01:00"),
            Ok(Moment::At(
                time::macros::datetime!(2026-01-02 15:04:05.5 +01:00)
            ))
        );
        assert!(parse_moment("yesterday").is_err());
        assert!(parse_moment("100000000000y").is_err());
        let now = time::macros::datetime!(2026-01-02 15:04:05 UTC);
        assert_eq!(
            Moment::Ago(time::Duration::minutes(30)).before(now).ok(),
            Some(time::macros::datetime!(2026-01-02 14:34:05 UTC))
        );
    }

    #[test]
    fn a_dead_letter_selection_is_ids_or_an_endpoint() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["heraldctl", "dlq"], args].concat());
        assert!(parse(&["redrive", "dlv_1", "dlv_2"]).is_ok());
        assert!(parse(&["purge", "--endpoint", "ep_1", "--yes"]).is_ok());
        assert!(parse(&["redrive"]).is_err());
        assert!(parse(&["redrive", "dlv_1", "--endpoint", "ep_1"]).is_err());
    }

    #[test]
    fn retry_schedules_are_lists_of_delays() {
        assert_eq!(
            parse_retry("100ms,2s"),
            Ok(Retry::Delays(vec![
                Duration::from_millis(100),
                Duration::from_secs(2)
            ]))
        );
        assert_eq!(parse_retry("none"), Ok(Retry::Delays(Vec::new())));
        assert_eq!(parse_retry("default"), Ok(Retry::Default));
        assert!(parse_retry("5s,soon").is_err());
    }
}
