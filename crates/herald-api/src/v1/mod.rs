//! The `/api/v1` handlers, one module per resource.

pub mod attempts;
pub mod catalog;
pub mod devices;
pub mod endpoints;
pub mod integrations;
pub mod recovery;
pub mod tenants;
pub mod transformations;
