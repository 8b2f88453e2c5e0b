//! Herald's domain core: the types and rules every other Herald crate agrees on.
//!
//! herald-core does no I/O. It opens no sockets or files, spawns no tasks and
//! never reads the clock inside its rules: every function that needs "now" takes
//! it as a parameter, and every function that needs randomness takes the random
//! value as a parameter. The one exception is `generate()` on the id types, which
//! asks `uuid` for a UUIDv7 and is named so that nobody calls it by accident in
//! code that must be deterministic. Keeping the core pure lets it be tested
//! exhaustively and shared by the ingest, delivery and admin services alike.
//!
//! Modules:
//! - [`id`]: prefixed, time-sortable ids (`evt_…`, `org_…`, `dev_…`, `ep_…`,
//!   `dlv_…`, `att_…`) and the deterministic per-endpoint delivery id.
//! - [`channel`]: the messaging channels events come from.
//! - [`device_health`]: a device's inbound calls, events and verification
//!   failures of the last day, merged from every ingest replica.
//! - [`catalog`]: validated event type names and the catalog of built-in types.
//! - [`event`]: the canonical event and the rules it must satisfy.
//! - [`envelope`]: the exact JSON body POSTed to customer endpoints.
//! - [`schema`]: JSON Schemas of event data and their validator.
//! - [`matching`]: endpoint subscriptions and the in-memory subscription index.
//! - [`preset`]: the payload contracts of the products customers come from
//!   (Kirisan, Kaanha, Kapso): body, headers and signing together.
//! - [`signing`]: endpoint secrets, signature schemes, delivery headers and the
//!   Standard Webhooks verifier.
//! - [`retry`]: retry schedules, jitter and `Retry-After` handling.
//! - [`address`]: endpoint URL rules and the SSRF address classifier.
//! - [`endpoint`]: an endpoint's delivery settings.
//! - [`digest`]: lowercase hex and SHA-256 keys.
//! - [`token`]: API token hashing and scope rules.
//! - [`rate`]: endpoint rate limits (GCRA with reservations).
//! - [`circuit`]: the per-endpoint circuit breaker.
//! - [`text`]: which control characters a configured text field may hold.
//! - [`throttle`]: the budget of failed authentications per client address.
//! - [`transform`]: endpoint transformations' limits, input and result rules.

pub mod address;
pub mod catalog;
pub mod channel;
pub mod circuit;
pub mod device_health;
pub mod digest;
pub mod endpoint;
pub mod envelope;
pub mod event;
pub mod fairness;
pub mod id;
pub mod matching;
pub mod preset;
pub mod quota;
pub mod rate;
pub mod retry;
pub mod schema;
pub mod signing;
pub mod text;
pub mod throttle;
pub mod token;
pub mod transform;

mod excerpt;
