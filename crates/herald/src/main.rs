//! `herald`: one binary for every Herald service.
//!
//! `herald all` runs every service in one process (the embedded default);
//! `herald config|ingest|fanout|delivery` runs one. Either way the services
//! meet only on JetStream and the config service's gRPC API, so what runs on
//! a laptop is what runs on Kubernetes.

mod cli;
mod credentials;
mod lag;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return cli::report_usage_error(error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("herald")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // TLS clients built without an explicit provider (the OTLP exporters)
    // use ring, like delivery; only the first install can succeed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The gRPC trace exporter's channel lives on the runtime.
    let telemetry = {
        let _entered = runtime.enter();
        herald_telemetry::logging::init(cli.log_format, cli.command.service_name())
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if telemetry.exporting() {
        tracing::info!("exporting traces over OTLP (OTEL_EXPORTER_OTLP_* settings)");
    }
    let outcome = runtime.block_on(run::run(cli.command));
    // After the services stopped, while the runtime still runs the exporter.
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
