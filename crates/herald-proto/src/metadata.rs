//! gRPC metadata keys Herald's services and clients agree on.

/// Lets the admin act on one tenant's configuration (support, tooling).
pub const TENANT: &str = "herald-tenant";
/// The request field an `InvalidArgument` status is about.
pub const FIELD: &str = "herald-field";
