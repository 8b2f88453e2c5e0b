//! Herald's wire types: the gRPC services and the messages that cross
//! JetStream, generated from `proto/herald/v1` at build time.
//!
//! Only these types cross a process boundary. Domain rules live in
//! `herald-core`; this crate converts between the two and nothing more.

pub mod codec;
mod convert;
mod endpoint;
pub mod json;
pub mod metadata;

pub use crate::{
    convert::{
        WireError, endpoint_subscription, tenant_quotas, timestamp_from_wire, timestamp_to_wire,
    },
    endpoint::{
        duration_from_wire, duration_to_wire, endpoint_preset, endpoint_settings, retry_schedule,
        signing_scheme, transformation,
    },
};

/// Generated code for package `herald.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("herald.v1");
    include!(concat!(env!("OUT_DIR"), "/servers/herald.v1.rs"));
}

/// The encoded `FileDescriptorSet` of every Herald proto and its imports,
/// served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/herald_descriptor.bin"));
