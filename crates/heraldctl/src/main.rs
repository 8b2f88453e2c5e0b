//! `heraldctl`: Herald from the command line.
//!
//! Talks gRPC to the config service (and the ingest service for `events
//! publish`). Address and token come from flags, `HERALD_ADDR` /
//! `HERALD_TOKEN`, or the file `heraldctl login` writes. Tables for people,
//! `--output json|yaml` for scripts; exit codes by class of failure.

mod cli;
mod commands;
mod connection;
mod error;
mod output;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::{cli::Cli, error::CtlError};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            // Nothing useful can be done when the terminal is gone.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Exit codes, so scripts can tell failures apart.
pub mod exit_code {
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const PERMISSION: u8 = 4;
    pub const UNAVAILABLE: u8 = 5;
    pub const OTHER: u8 = 1;
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Status(status) => match status.code() {
                tonic::Code::NotFound => exit_code::NOT_FOUND,
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                    exit_code::PERMISSION
                }
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => exit_code::UNAVAILABLE,
                tonic::Code::InvalidArgument => exit_code::USAGE,
                _ => exit_code::OTHER,
            },
            CtlError::Connect { .. } => exit_code::UNAVAILABLE,
            CtlError::Usage(_) => exit_code::USAGE,
            CtlError::Verify(_)
            | CtlError::Io { .. }
            | CtlError::Output(_)
            | CtlError::Settings(_)
            | CtlError::JobFailed { .. }
            | CtlError::Cancelled(_)
            | CtlError::TestFailed(_) => exit_code::OTHER,
        }
    }
}
