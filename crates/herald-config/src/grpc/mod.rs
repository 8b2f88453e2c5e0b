//! The gRPC edge: each service authenticates its caller and maps errors to
//! `Status`; the rules live in `ConfigState`.

mod admin;
mod attempts;
mod catalog;
mod config;
mod devices;
mod endpoints;
mod recovery;
mod transformations;
mod watch;

pub use admin::AdminApi;
pub use attempts::AttemptApi;
pub use config::ConfigApi;
pub use endpoints::MIN_SEARCH_CHARS;
pub use recovery::RecoveryApi;
pub use watch::WatchApi;
