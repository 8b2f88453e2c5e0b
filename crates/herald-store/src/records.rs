//! The plain records the store reads and writes. Callers never see sea-orm
//! models: these structs are the whole vocabulary of the public API.

use time::OffsetDateTime;

/// An organization: the unit of isolation.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Optimistic-concurrency counter: 1 on insert, +1 on every update. Set
    /// by the store; the value passed to `insert_tenant` is ignored.
    pub version: i64,
    pub quotas: TenantQuotasRecord,
}

/// A tenant's own quotas as stored; `None` is the service's default. The
/// config service checks the values before they are written.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TenantQuotasRecord {
    pub events_per_second: Option<f64>,
    pub events_burst: Option<i64>,
    pub max_in_flight_deliveries: Option<i64>,
    pub max_dead_letters: Option<i64>,
}

/// An API token; only the SHA-256 of its secret is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scope: String,
    pub prefix: String,
    pub secret_sha256: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A tenant's channel line.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRecord {
    pub id: String,
    pub tenant_id: String,
    pub channel: String,
    pub name: String,
    pub external_id: String,
    pub verification_ciphertext: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Set by the store: 1 on insert, +1 on every update.
    pub version: i64,
}

/// A webhook endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    pub status: String,
    pub status_reason: String,
    /// Protobuf-encoded `EndpointSpec`, opaque to the store.
    pub spec: Vec<u8>,
    pub secret_ciphertext: Vec<u8>,
    pub previous_secret_ciphertext: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Set by the store: 1 on insert, +1 on every update.
    pub version: i64,
    /// The `config_changes` revision of the endpoint's last change; set by
    /// the store.
    pub revision: i64,
}

/// A tenant's custom event type.
#[derive(Clone, Debug, PartialEq)]
pub struct EventTypeRecord {
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub sample_data: Vec<u8>,
    pub created_at: OffsetDateTime,
    /// The JSON Schema of `data` as JSON text; empty for none.
    pub schema: String,
}

/// One try of one delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub id: String,
    pub delivery_id: String,
    pub event_id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub device_id: String,
    pub event_type: String,
    pub attempt: i32,
    pub attempted_at: OffsetDateTime,
    pub status: String,
    pub response_code: i32,
    pub duration_micros: i64,
    pub response_body: Vec<u8>,
    pub error: String,
    pub url: String,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub trigger: String,
    pub request_headers_json: String,
    pub test: bool,
    /// The first 64 KiB of the body sent; empty when none was stored.
    pub request_body: Vec<u8>,
    /// The whole body's size in bytes.
    pub request_body_size: u64,
}

/// The kinds of watched objects the change log names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Tenant,
    Token,
    Device,
    Endpoint,
    EventType,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::Tenant,
        ObjectKind::Token,
        ObjectKind::Device,
        ObjectKind::Endpoint,
        ObjectKind::EventType,
    ];

    /// The name stored in `config_changes.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "tenant",
            ObjectKind::Token => "token",
            ObjectKind::Device => "device",
            ObjectKind::Endpoint => "endpoint",
            ObjectKind::EventType => "event_type",
        }
    }

    /// The inverse of [`ObjectKind::as_str`].
    pub fn parse(name: &str) -> Option<ObjectKind> {
        ObjectKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the change log the Watch stream replays.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRecord {
    pub revision: i64,
    pub kind: ObjectKind,
    /// The object's id; for an event type, its name.
    pub object_id: String,
    pub tenant_id: String,
    pub deleted: bool,
    pub changed_at: OffsetDateTime,
}

/// Narrows `list_attempts`; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptFilter {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub event_id: Option<String>,
    pub device_id: Option<String>,
    /// A channel name (`waba`, `telegram`, `whatsapp`): attempts of events
    /// from the tenant's devices of that channel; `internal`: of events
    /// from no device.
    pub channel: Option<String>,
    /// Inclusive.
    pub since: Option<OffsetDateTime>,
    /// Exclusive.
    pub until: Option<OffsetDateTime>,
}

/// Where the previous page of `list_attempts` ended: its last record's
/// `attempted_at` and `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptCursor {
    pub attempted_at: OffsetDateTime,
    pub id: String,
}

impl AttemptCursor {
    /// The cursor that continues after `attempt`.
    pub fn after(attempt: &AttemptRecord) -> AttemptCursor {
        AttemptCursor {
            attempted_at: attempt.attempted_at,
            id: attempt.id.clone(),
        }
    }
}

/// Narrows `list_endpoints`; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointFilter {
    /// Case-insensitive substring of the name or the URL, taken literally
    /// (`%` and `_` are not wildcards).
    pub search: Option<String>,
    /// Exact status.
    pub status: Option<String>,
}

/// A delivery that ended failed or dead and has not succeeded since: what
/// a recovery re-sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedDelivery {
    pub delivery_id: String,
    pub event_id: String,
    /// The highest attempt number so far; a re-sent delivery goes on from it.
    pub last_attempt: i32,
}

/// An endpoint whose deliveries have failed, without a single success,
/// since `failing_since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingEndpoint {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub failing_since: OffsetDateTime,
}

/// How an endpoint has been doing, from its attempts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointActivity {
    /// The newest attempt: when, its status and response code.
    pub last_attempt: Option<(OffsetDateTime, String, i32)>,
    pub last_success_at: Option<OffsetDateTime>,
    /// Failed, retrying and dead attempts since the last success (or ever),
    /// counted up to [`MAX_COUNTED_FAILURES`](crate::MAX_COUNTED_FAILURES).
    pub consecutive_failures: u64,
    /// Of the newest attempts since the window's start (at most
    /// [`MAX_WINDOW_ATTEMPTS`](crate::MAX_WINDOW_ATTEMPTS)): how many, and
    /// how many succeeded.
    pub window_attempts: u64,
    pub window_succeeded: u64,
}

/// Deliveries (distinct `delivery_id`s) by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Has a `succeeded` attempt.
    pub succeeded: u64,
    /// Has a `failed` or `dead` attempt and no `succeeded` one.
    pub failed: u64,
    /// Has only `retrying` attempts.
    pub pending: u64,
}

/// Everything the Watch snapshot sends, read in one transaction together
/// with the revision it corresponds to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The newest change included; changes after it are not reflected.
    pub revision: i64,
    pub tenants: Vec<TenantRecord>,
    /// Only tokens that are not revoked.
    pub tokens: Vec<TokenRecord>,
    pub devices: Vec<DeviceRecord>,
    pub endpoints: Vec<EndpointRecord>,
    pub event_types: Vec<EventTypeRecord>,
}
