//! Command-line and environment configuration, one struct per service.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, error::ErrorKind};
use herald_bus::BusConfig;
use herald_telemetry::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: webhook delivery over NATS JetStream"
)]
pub struct Cli {
    /// Log record format on stderr.
    #[arg(
        long,
        env = "HERALD_LOG_FORMAT",
        value_enum,
        default_value = "json",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every service in one process, wired through JetStream as in production.
    All(AllArgs),
    /// The config service: tenants, devices, endpoints and the attempt log.
    Config(ConfigCommand),
    /// The ingest service: channel webhooks and the Publish API, into JetStream.
    Ingest(IngestCommand),
    /// The fanout service: events to delivery jobs.
    Fanout(WatcherCommand),
    /// The delivery service: signs, POSTs, retries and records attempts.
    Delivery(DeliveryCommand),
}

impl Command {
    /// The OpenTelemetry `service.name` of the process.
    pub fn service_name(&self) -> &'static str {
        match self {
            Command::All(_) => "herald",
            Command::Config(_) => "herald-config",
            Command::Ingest(_) => "herald-ingest",
            Command::Fanout(_) => "herald-fanout",
            Command::Delivery(_) => "herald-delivery",
        }
    }
}

#[derive(Debug, Args)]
pub struct IngestCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub watch: herald_watch::WatchConfig,
    #[command(flatten)]
    pub ingest: herald_ingest::IngestArgs,
}

#[derive(Debug, Args)]
pub struct DeliveryCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub watch: herald_watch::WatchConfig,
    #[command(flatten)]
    pub delivery: herald_delivery::DeliveryArgs,
}

/// A service that follows the configuration through the config service's
/// Watch stream.
#[derive(Debug, Args)]
pub struct WatcherCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub watch: herald_watch::WatchConfig,
}

/// Settings every service has.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Where `/healthz`, `/readyz`, `/metrics` and gRPC health are served.
    #[arg(long, env = "HERALD_OPS_ADDR", default_value = "127.0.0.1:7090")]
    pub ops_addr: SocketAddr,

    /// The credential Herald's services present to the config service's
    /// Watch stream. When unset, one is generated into
    /// `<state dir>/service.token`, which processes on one machine share.
    #[arg(long, env = "HERALD_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// Comma-separated CIDRs endpoints may use despite the SSRF rules, and
    /// over plain HTTP (local receivers, tests). The config service checks
    /// endpoint URLs against it, the delivery service every address it
    /// connects to. Empty in production.
    #[arg(long, env = "HERALD_ALLOW_CIDRS", default_value = "")]
    pub allow_cidrs: String,

    /// Where a local run keeps generated credentials.
    #[arg(long, env = "HERALD_STATE_DIR", default_value = ".herald")]
    pub state_dir: PathBuf,

    #[command(flatten)]
    pub bus: BusConfig,
}

/// The database the config service keeps everything in.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite:path/to/file.db` (created when missing) or
    /// `postgres://user:password@host:5432/database`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:.herald/herald.db")]
    pub database_url: String,

    /// PostgreSQL only: keep Herald's tables in this schema (created when
    /// missing) instead of the connection's default.
    #[arg(long, env = "HERALD_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConfigCommand {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub config: herald_config::ConfigArgs,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub config: herald_config::ConfigArgs,
    #[command(flatten)]
    pub delivery: herald_delivery::DeliveryArgs,
    #[command(flatten)]
    pub ingest: herald_ingest::IngestArgs,
}

impl DatabaseArgs {
    pub fn store_options(&self) -> herald_store::StoreOptions {
        herald_store::StoreOptions {
            url: self.database_url.clone(),
            schema: self
                .database_schema
                .clone()
                .filter(|schema| !schema.is_empty()),
        }
    }
}

impl CommonArgs {
    /// Checks what clap cannot: that the NATS URL parses.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.bus.servers()?;
        Ok(())
    }
}

/// Prints a usage error as one line (help and version print in full) and
/// returns the exit code clap uses for usage errors.
pub fn report_usage_error(error: clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Writing help to a closed stdout is not worth reporting.
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            let rendered = error.to_string();
            let first_line = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            eprintln!("{first_line} (see `herald --help`)");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Catches clashing flag names or ids between the services' settings,
    /// which `herald all` flattens into one command.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
