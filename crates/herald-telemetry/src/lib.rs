//! What every Herald service exposes to operators: logs, OpenTelemetry
//! traces, Prometheus metrics, liveness and readiness (over HTTP and
//! `grpc.health.v1`), and gRPC reflection.
//!
//! Readiness is a set of named checks (NATS answers, the database answers,
//! the service finished starting); a service is ready only when all pass.

pub mod logging;
pub mod ops;
mod readiness;
pub mod server;
pub mod trace;

pub use crate::readiness::{CheckOutcome, Readiness, ReadinessReport};
