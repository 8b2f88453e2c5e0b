//! The JSON API's bodies, and their conversions from and to the gRPC
//! messages. Only shapes live here: every rule (defaults, limits,
//! validation) stays in the config service, which sees exactly the message a
//! gRPC client would send.

use std::collections::BTreeMap;

use herald_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};

use crate::error::HttpError;

/// An RFC 3339 timestamp, or `None` when unset.
pub fn timestamp(value: Option<&prost_types::Timestamp>) -> Option<String> {
    let value = value?;
    herald_proto::timestamp_from_wire("timestamp", Some(*value))
        .ok()
        .and_then(|moment| moment.format(&Rfc3339).ok())
}

fn seconds(value: Option<&prost_types::Duration>) -> f64 {
    value.map_or(0.0, |value| {
        value.seconds as f64 + f64::from(value.nanos) / 1e9
    })
}

/// Seconds as a protobuf duration; the service checks the range, but a
/// value that is not a finite, non-negative number cannot even be sent.
fn duration(field: &str, value: f64) -> Result<prost_types::Duration, HttpError> {
    if !value.is_finite() || !(0.0..=1e12).contains(&value) {
        return Err(HttpError::invalid(
            field,
            "must be a non-negative number of seconds",
        ));
    }
    let whole = value.trunc();
    Ok(prost_types::Duration {
        seconds: whole as i64,
        nanos: ((value - whole) * 1e9).round().min(999_999_999.0) as i32,
    })
}

pub fn parse_time(field: &str, value: &str) -> Result<prost_types::Timestamp, HttpError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(herald_proto::timestamp_to_wire)
        .map_err(|_| HttpError::invalid(field, "must be an RFC 3339 timestamp"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Created or edited: a test delivery answered 200 or 201 activates it.
    PendingTest,
    /// Receives live events.
    Active,
    /// Paused by its owner.
    Disabled,
    /// Auto-disabled after failing for too long.
    Failing,
}

impl EndpointStatus {
    pub fn from_wire(status: pb::EndpointStatus) -> EndpointStatus {
        match status {
            pb::EndpointStatus::Active => EndpointStatus::Active,
            pb::EndpointStatus::Disabled => EndpointStatus::Disabled,
            pb::EndpointStatus::Failing => EndpointStatus::Failing,
            pb::EndpointStatus::PendingTest | pb::EndpointStatus::Unspecified => {
                EndpointStatus::PendingTest
            }
        }
    }

    pub fn to_wire(self) -> pb::EndpointStatus {
        match self {
            EndpointStatus::PendingTest => pb::EndpointStatus::PendingTest,
            EndpointStatus::Active => pb::EndpointStatus::Active,
            EndpointStatus::Disabled => pb::EndpointStatus::Disabled,
            EndpointStatus::Failing => pb::EndpointStatus::Failing,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SigningScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// `<signature_header>: sha256=<hex HMAC-SHA256 of the body>`.
    Sha256Hex,
    /// `<signature_header>: <hex HMAC-SHA256 of the body>`, without a
    /// prefix (Kapso's form).
    Hex,
    /// The secret itself in `X-Webhook-Secret`.
    SharedSecret,
}

impl SigningScheme {
    fn from_wire(scheme: pb::SigningScheme) -> SigningScheme {
        match scheme {
            pb::SigningScheme::Sha256Hex => SigningScheme::Sha256Hex,
            pb::SigningScheme::Hex => SigningScheme::Hex,
            pb::SigningScheme::SharedSecret => SigningScheme::SharedSecret,
            pb::SigningScheme::Standard | pb::SigningScheme::Unspecified => SigningScheme::Standard,
        }
    }

    fn to_wire(self) -> pb::SigningScheme {
        match self {
            SigningScheme::Standard => pb::SigningScheme::Standard,
            SigningScheme::Sha256Hex => pb::SigningScheme::Sha256Hex,
            SigningScheme::Hex => pb::SigningScheme::Hex,
            SigningScheme::SharedSecret => pb::SigningScheme::SharedSecret,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    Unordered,
    /// One delivery at a time, in the order ingest accepted the events.
    Fifo,
}

impl Ordering {
    fn from_wire(ordering: pb::Ordering) -> Ordering {
        match ordering {
            pb::Ordering::Fifo => Ordering::Fifo,
            pb::Ordering::Unordered | pb::Ordering::Unspecified => Ordering::Unordered,
        }
    }

    fn to_wire(self) -> pb::Ordering {
        match self {
            Ordering::Unordered => pb::Ordering::Unordered,
            Ordering::Fifo => pb::Ordering::Fifo,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Whatsapp,
    Telegram,
    Waba,
}

impl Channel {
    pub fn from_wire(channel: pb::Channel) -> Option<Channel> {
        match channel {
            pb::Channel::Whatsapp => Some(Channel::Whatsapp),
            pb::Channel::Telegram => Some(Channel::Telegram),
            pb::Channel::Waba => Some(Channel::Waba),
            _ => None,
        }
    }

    pub fn to_wire(self) -> pb::Channel {
        match self {
            Channel::Whatsapp => pb::Channel::Whatsapp,
            Channel::Telegram => pb::Channel::Telegram,
            Channel::Waba => pb::Channel::Waba,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    /// Final: the retry schedule is exhausted.
    Failed,
    /// Failed; another attempt is scheduled at `next_attempt_at`.
    Retrying,
    /// Final: moved to the dead letters.
    Dead,
    /// Not sent: the endpoint was disabled or deleted, or the address refused.
    Skipped,
}

impl AttemptStatus {
    pub fn from_wire(status: pb::AttemptStatus) -> Option<AttemptStatus> {
        match status {
            pb::AttemptStatus::Succeeded => Some(AttemptStatus::Succeeded),
            pb::AttemptStatus::Failed => Some(AttemptStatus::Failed),
            pb::AttemptStatus::Retrying => Some(AttemptStatus::Retrying),
            pb::AttemptStatus::Dead => Some(AttemptStatus::Dead),
            pb::AttemptStatus::Skipped => Some(AttemptStatus::Skipped),
            pb::AttemptStatus::Unspecified => None,
        }
    }

    pub fn to_wire(self) -> pb::AttemptStatus {
        match self {
            AttemptStatus::Succeeded => pb::AttemptStatus::Succeeded,
            AttemptStatus::Failed => pb::AttemptStatus::Failed,
            AttemptStatus::Retrying => pb::AttemptStatus::Retrying,
            AttemptStatus::Dead => pb::AttemptStatus::Dead,
            AttemptStatus::Skipped => pb::AttemptStatus::Skipped,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Live,
    Test,
    Replay,
    Redrive,
    Recover,
}

impl Trigger {
    fn from_wire(trigger: pb::DeliveryTrigger) -> Trigger {
        match trigger {
            pb::DeliveryTrigger::Test => Trigger::Test,
            pb::DeliveryTrigger::Replay => Trigger::Replay,
            pb::DeliveryTrigger::Redrive => Trigger::Redrive,
            pb::DeliveryTrigger::Recover => Trigger::Recover,
            pb::DeliveryTrigger::Live | pb::DeliveryTrigger::Unspecified => Trigger::Live,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Herald's default schedule (5 s, 25 s, 2 min); `delays_seconds` is ignored.
    #[serde(default)]
    pub use_default: bool,
    /// Delays after the first attempt, in seconds: at most 20, each at most 24 h.
    #[serde(default)]
    pub delays_seconds: Vec<f64>,
    /// Symmetric jitter as a fraction of each delay, 0 to 0.5.
    #[serde(default)]
    pub jitter: f64,
}

impl RetryPolicy {
    fn from_wire(retry: Option<&pb::RetryPolicy>) -> RetryPolicy {
        retry.map_or(
            RetryPolicy {
                use_default: true,
                ..Default::default()
            },
            |retry| RetryPolicy {
                use_default: retry.use_default,
                delays_seconds: retry
                    .delays
                    .iter()
                    .map(|delay| seconds(Some(delay)))
                    .collect(),
                jitter: retry.jitter,
            },
        )
    }

    fn to_wire(&self) -> Result<pb::RetryPolicy, HttpError> {
        Ok(pb::RetryPolicy {
            delays: self
                .delays_seconds
                .iter()
                .enumerate()
                .map(|(index, delay)| duration(&format!("retry.delays_seconds[{index}]"), *delay))
                .collect::<Result<_, _>>()?,
            jitter: self.jitter,
            use_default: self.use_default,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Deliveries per second; 0 means unlimited.
    #[serde(default)]
    pub per_second: f64,
    #[serde(default)]
    pub burst: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointHealth {
    /// `closed`, `open` or `half_open`.
    pub circuit: String,
    pub consecutive_failures: u32,
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    pub last_attempt_status: Option<AttemptStatus>,
    /// The last response's HTTP status; null when none was received.
    pub last_response_code: Option<u32>,
    /// Set while the endpoint fails without a single success.
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    /// Attempts in the last 24 hours (of the newest 1,000) and how many of
    /// them succeeded: the success rate.
    #[serde(default)]
    pub attempts_24h: u64,
    #[serde(default)]
    pub succeeded_24h: u64,
}

/// A webhook endpoint: where Herald POSTs which events, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    /// `ep_…`
    pub id: String,
    pub name: String,
    pub description: String,
    pub url: String,
    pub status: EndpointStatus,
    /// Why the endpoint is disabled, failing or pending a test.
    pub status_reason: String,
    /// The payload contract: `kirisan`, `kaanha` or `kapso`; empty for
    /// Herald's own envelope. A preset fixes `signing_scheme` and
    /// `signature_header`.
    #[schema(example = "kaanha")]
    pub preset: String,
    pub signing_scheme: SigningScheme,
    /// The signature header of `sha256_hex` and `hex`.
    pub signature_header: String,
    /// Every device of the tenant (`device_ids` is then empty).
    pub all_devices: bool,
    /// At most 1000.
    #[schema(max_items = 1000)]
    pub device_ids: Vec<String>,
    /// Every event type (`event_types` is then empty).
    pub all_event_types: bool,
    /// At most 1000.
    #[schema(max_items = 1000)]
    pub event_types: Vec<String>,
    /// Sent with every delivery. Values are stored encrypted, shown masked
    /// (`Bearer ****`, `****abcd`) to read-only tokens and redacted in
    /// attempts.
    pub headers: BTreeMap<String, String>,
    pub retry: RetryPolicy,
    pub rate_limit: RateLimit,
    pub ordering: Ordering,
    /// The request timeout.
    pub timeout_seconds: f64,
    /// The JavaScript program that reshapes each delivery; empty: none.
    pub transformation: String,
    pub health: Option<EndpointHealth>,
    /// A test delivery is sent on create and on a change of URL, signing or
    /// headers.
    pub test_on_save: bool,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// Send it back with a change so a concurrent one is not overwritten.
    pub etag: String,
}

impl Endpoint {
    pub fn from_wire(endpoint: &pb::Endpoint) -> Endpoint {
        let spec = endpoint.spec.clone().unwrap_or_default();
        Endpoint {
            id: endpoint.id.clone(),
            name: spec.name.clone(),
            description: spec.description.clone(),
            url: spec.url.clone(),
            status: EndpointStatus::from_wire(endpoint.status()),
            status_reason: endpoint.status_reason.clone(),
            preset: spec.preset.clone(),
            signing_scheme: SigningScheme::from_wire(spec.signing_scheme()),
            signature_header: spec.signature_header.clone(),
            all_devices: spec.all_devices,
            device_ids: spec.device_ids.clone(),
            all_event_types: spec.all_event_types,
            event_types: spec.event_types.clone(),
            headers: spec.headers.clone().into_iter().collect(),
            retry: RetryPolicy::from_wire(spec.retry.as_ref()),
            rate_limit: spec
                .rate_limit
                .map(|limit| RateLimit {
                    per_second: limit.per_second,
                    burst: limit.burst,
                })
                .unwrap_or_default(),
            ordering: Ordering::from_wire(spec.ordering()),
            timeout_seconds: seconds(spec.timeout.as_ref()),
            transformation: spec
                .transformation
                .as_ref()
                .map(|program| program.code.clone())
                .unwrap_or_default(),
            health: endpoint.health.as_ref().map(|health| EndpointHealth {
                circuit: match health.circuit() {
                    pb::CircuitState::Open => "open",
                    pb::CircuitState::HalfOpen => "half_open",
                    pb::CircuitState::Closed | pb::CircuitState::Unspecified => "closed",
                }
                .to_owned(),
                consecutive_failures: health.consecutive_failures,
                last_success_at: timestamp(health.last_success_at.as_ref()),
                last_attempt_at: timestamp(health.last_attempt_at.as_ref()),
                last_attempt_status: AttemptStatus::from_wire(health.last_attempt_status()),
                last_response_code: Some(health.last_response_code).filter(|code| *code != 0),
                failing_since: timestamp(health.failing_since.as_ref()),
                attempts_24h: health.attempts_24h,
                succeeded_24h: health.succeeded_24h,
            }),
            test_on_save: spec.test_on_save,
            created_at: timestamp(endpoint.created_at.as_ref()),
            updated_at: timestamp(endpoint.updated_at.as_ref()),
            etag: endpoint.etag.clone(),
        }
    }
}

/// What an endpoint's owner sets. On create, `name` and `url` are
/// required; on update, only the fields present change.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct EndpointFields {
    pub name: Option<String>,
    pub description: Option<String>,
    /// HTTPS, publicly routable.
    pub url: Option<String>,
    /// A payload contract so receivers written for another product work
    /// unchanged: `kirisan`, `kaanha` or `kapso`; empty for Herald's own
    /// envelope. It fixes the signing: leave `signing_scheme` and
    /// `signature_header` out (they are filled in) or give the preset's own;
    /// another is refused. Changing only the preset takes its scheme.
    #[schema(example = "kaanha")]
    pub preset: Option<String>,
    pub signing_scheme: Option<SigningScheme>,
    /// For `sha256_hex` and `hex`; default `X-Herald-Signature`. Not a header Herald
    /// or HTTP sets itself (`traceparent`, `tracestate`, `content-*`, `host`,
    /// `webhook-*`, `x-herald-*`, `x-idempotency-key`, hop-by-hop headers).
    pub signature_header: Option<String>,
    pub all_devices: Option<bool>,
    /// Subscribed devices, at most 1000; empty means every device.
    #[schema(max_items = 1000)]
    pub device_ids: Option<Vec<String>>,
    pub all_event_types: Option<bool>,
    /// Subscribed event types, at most 1000; empty means every type.
    #[schema(max_items = 1000)]
    pub event_types: Option<Vec<String>>,
    /// Sent with every delivery, at most 32; may not override Herald's own
    /// headers or HTTP's reserved ones. Values usually are credentials: they
    /// are stored encrypted and redacted in attempts.
    pub headers: Option<BTreeMap<String, String>>,
    pub retry: Option<RetryPolicy>,
    pub rate_limit: Option<RateLimit>,
    pub ordering: Option<Ordering>,
    /// Default 15, at most 60.
    pub timeout_seconds: Option<f64>,
    /// Send a test delivery on create, and when an update changes the URL,
    /// signing or headers: the create answer carries its result (`test`),
    /// an update's endpoint shows the status it left.
    pub test_on_save: Option<bool>,
    /// A JavaScript program, `function handler(webhook) { ...; return
    /// webhook; }`, that reshapes each delivery (see the README's
    /// Transformations); empty removes it. At most 64 KiB; checked when
    /// saved.
    #[schema(max_length = 65536)]
    pub transformation: Option<String>,
}

impl EndpointFields {
    /// The spec to send, and the update-mask paths of the fields present.
    pub fn to_wire(&self) -> Result<(pb::EndpointSpec, Vec<String>), HttpError> {
        let mut spec = pb::EndpointSpec::default();
        let mut paths = Vec::new();
        let mut present = |path: &str| paths.push(path.to_owned());
        if let Some(name) = &self.name {
            spec.name = name.clone();
            present("name");
        }
        if let Some(description) = &self.description {
            spec.description = description.clone();
            present("description");
        }
        if let Some(url) = &self.url {
            spec.url = url.clone();
            present("url");
        }
        if let Some(preset) = &self.preset {
            spec.preset = preset.clone();
            present("preset");
        }
        if let Some(scheme) = self.signing_scheme {
            spec.signing_scheme = scheme.to_wire().into();
            present("signing_scheme");
        }
        if let Some(header) = &self.signature_header {
            spec.signature_header = header.clone();
            present("signature_header");
        }
        if let Some(all) = self.all_devices {
            spec.all_devices = all;
            present("all_devices");
        }
        if let Some(ids) = &self.device_ids {
            spec.device_ids = ids.clone();
            present("device_ids");
        }
        if let Some(all) = self.all_event_types {
            spec.all_event_types = all;
            present("all_event_types");
        }
        if let Some(types) = &self.event_types {
            spec.event_types = types.clone();
            present("event_types");
        }
        if let Some(headers) = &self.headers {
            spec.headers = headers.clone().into_iter().collect();
            present("headers");
        }
        if let Some(retry) = &self.retry {
            spec.retry = Some(retry.to_wire()?);
            present("retry");
        }
        if let Some(limit) = self.rate_limit {
            spec.rate_limit = Some(pb::RateLimit {
                per_second: limit.per_second,
                burst: limit.burst,
            });
            present("rate_limit");
        }
        if let Some(ordering) = self.ordering {
            spec.ordering = ordering.to_wire().into();
            present("ordering");
        }
        if let Some(timeout) = self.timeout_seconds {
            spec.timeout = Some(duration("timeout_seconds", timeout)?);
            present("timeout");
        }
        if let Some(test_on_save) = self.test_on_save {
            spec.test_on_save = test_on_save;
            present("test_on_save");
        }
        if let Some(code) = &self.transformation {
            spec.transformation = Some(pb::Transformation { code: code.clone() });
            present("transformation");
        }
        Ok((spec, paths))
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Orders service",
    "url": "https://hooks.example.com/herald",
    "event_types": ["message.received", "message.read"]
}))]
pub struct CreateEndpoint {
    #[serde(flatten)]
    pub fields: EndpointFields,
    /// A signing secret of your own; a `whsec_` one is generated when absent.
    /// The `standard` scheme needs `whsec_` followed by the base64 of 24 to
    /// 64 bytes; the others take any visible ASCII without spaces.
    pub secret: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct UpdateEndpoint {
    #[serde(flatten)]
    pub fields: EndpointFields,
    /// The etag read last; a stale one fails with 409.
    pub etag: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    /// The signing secret, shown once here (`GET …/secret` shows it later).
    pub secret: String,
    /// With `test_on_save`: the test delivery's result.
    pub test: Option<TestResult>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<Endpoint>,
    /// Pass as `page_token` for the next page; empty on the last one.
    pub next_page_token: String,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEndpointsQuery {
    /// Case-insensitive substring of name or URL; at least 3 characters.
    pub search: Option<String>,
    pub status: Option<EndpointStatus>,
    /// Default 50, at most 500.
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableEndpoint {
    /// Shown as the endpoint's `status_reason`.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEndpoint {
    /// Defaults to the first subscribed type, else `message.received`.
    pub event_type: Option<String>,
    /// How long to wait for the attempt; default 30.
    pub timeout_seconds: Option<f64>,
    /// One of the tenant's devices: the sample then comes from it (its id
    /// and channel). None by default.
    pub device_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// The test delivery's attempt: the receiver's status code, time and body.
    pub attempt: Option<Attempt>,
    /// The endpoint afterwards: a 200 or 201 makes it active.
    pub endpoint: Option<Endpoint>,
}

impl TestResult {
    pub fn from_wire(tested: &pb::TestEndpointResponse) -> TestResult {
        TestResult {
            attempt: tested.attempt.as_ref().map(Attempt::from_wire),
            endpoint: tested.endpoint.as_ref().map(Endpoint::from_wire),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// A secret of your own; a `whsec_` one is generated when absent. It
    /// must suit the endpoint's scheme: `standard` needs `whsec_` followed by
    /// the base64 of 24 to 64 bytes.
    pub secret: Option<String>,
    /// How long the previous secret stays valid; default 24 h, 0 ends it now.
    pub overlap_seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EndpointSecrets {
    pub current: String,
    /// Still valid until `previous_expires_at`; empty when none overlaps.
    pub previous: String,
    #[schema(format = DateTime)]
    pub previous_expires_at: Option<String>,
}

impl EndpointSecrets {
    pub fn from_wire(secrets: &pb::EndpointSecrets) -> EndpointSecrets {
        EndpointSecrets {
            current: secrets.current.clone(),
            previous: secrets.previous.clone(),
            previous_expires_at: timestamp(secrets.previous_expires_at.as_ref()),
        }
    }
}

impl RotateSecret {
    pub fn to_wire(
        &self,
        endpoint_id: String,
    ) -> Result<pb::RotateEndpointSecretRequest, HttpError> {
        Ok(pb::RotateEndpointSecretRequest {
            endpoint_id,
            secret: self.secret.clone().unwrap_or_default(),
            overlap: self
                .overlap_seconds
                .map(|overlap| duration("overlap_seconds", overlap))
                .transpose()?,
        })
    }
}

impl TestEndpoint {
    pub fn to_wire(&self, endpoint_id: String) -> Result<pb::TestEndpointRequest, HttpError> {
        Ok(pb::TestEndpointRequest {
            endpoint_id,
            event_type: self.event_type.clone().unwrap_or_default(),
            timeout: self
                .timeout_seconds
                .map(|timeout| duration("timeout_seconds", timeout))
                .transpose()?,
            device_id: self.device_id.clone().unwrap_or_default(),
        })
    }
}

/// One try of one delivery.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    /// Stable across retries and replays; sent as `webhook-id`.
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub device_id: Option<String>,
    pub event_type: String,
    /// 1 for the first try.
    pub attempt: u32,
    #[schema(format = DateTime)]
    pub attempted_at: Option<String>,
    pub status: Option<AttemptStatus>,
    /// Null when no response was received.
    pub response_code: Option<u32>,
    pub duration_ms: f64,
    /// The first 4 KiB of the response body (invalid UTF-8 replaced).
    pub response_body: String,
    /// Transport error, timeout or refusal reason.
    pub error: String,
    /// The URL attempted, credentials stripped.
    pub url: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub trigger: Trigger,
    /// As sent, with signatures and secrets redacted.
    pub request_headers: BTreeMap<String, String>,
    pub test: bool,
    /// The body as sent: its first 64 KiB (invalid UTF-8 replaced); empty
    /// when nothing was sent or the endpoint's stored bodies were purged.
    pub request_body: String,
    /// The whole body's size in bytes.
    pub request_body_size: u64,
}

/// How many attempts' stored request bodies were removed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PurgedRequestBodies {
    pub purged: u64,
}

impl Attempt {
    pub fn from_wire(attempt: &pb::Attempt) -> Attempt {
        Attempt {
            id: attempt.id.clone(),
            delivery_id: attempt.delivery_id.clone(),
            event_id: attempt.event_id.clone(),
            endpoint_id: attempt.endpoint_id.clone(),
            device_id: Some(attempt.device_id.clone()).filter(|id| !id.is_empty()),
            event_type: attempt.event_type.clone(),
            attempt: attempt.attempt,
            attempted_at: timestamp(attempt.attempted_at.as_ref()),
            status: AttemptStatus::from_wire(attempt.status()),
            response_code: Some(attempt.response_code).filter(|code| *code != 0),
            duration_ms: seconds(attempt.duration.as_ref()) * 1000.0,
            response_body: String::from_utf8_lossy(&attempt.response_body).into_owned(),
            error: attempt.error.clone(),
            url: attempt.url.clone(),
            next_attempt_at: timestamp(attempt.next_attempt_at.as_ref()),
            trigger: Trigger::from_wire(attempt.trigger()),
            request_headers: attempt.request_headers.clone().into_iter().collect(),
            test: attempt.test,
            request_body: String::from_utf8_lossy(&attempt.request_body).into_owned(),
            request_body_size: attempt.request_body_size,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttemptList {
    pub attempts: Vec<Attempt>,
    pub next_page_token: String,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAttemptsQuery {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<AttemptStatus>,
    pub event_id: Option<String>,
    /// Attempts of events from this device.
    pub device_id: Option<String>,
    /// `whatsapp`, `telegram` or `waba`: attempts of events from the
    /// tenant's devices of that channel; `internal`: from no device.
    pub channel: Option<String>,
    /// RFC 3339; attempts at or after it.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; attempts before it.
    #[param(format = DateTime)]
    pub until: Option<String>,
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

impl ListAttemptsQuery {
    pub fn to_wire(&self) -> Result<pb::ListAttemptsRequest, HttpError> {
        Ok(pb::ListAttemptsRequest {
            page_size: self.page_size.unwrap_or_default(),
            page_token: self.page_token.clone().unwrap_or_default(),
            endpoint_id: self.endpoint_id.clone().unwrap_or_default(),
            event_type: self.event_type.clone().unwrap_or_default(),
            status: self
                .status
                .map_or(pb::AttemptStatus::Unspecified, AttemptStatus::to_wire)
                .into(),
            event_id: self.event_id.clone().unwrap_or_default(),
            device_id: self.device_id.clone().unwrap_or_default(),
            channel: match self.channel.as_deref() {
                None | Some("") => pb::Channel::Unspecified,
                Some("whatsapp") => pb::Channel::Whatsapp,
                Some("telegram") => pb::Channel::Telegram,
                Some("waba") => pb::Channel::Waba,
                Some("internal") => pb::Channel::Internal,
                Some(_) => {
                    return Err(HttpError::invalid(
                        "channel",
                        "must be whatsapp, telegram, waba or internal",
                    ));
                }
            }
            .into(),
            since: self
                .since
                .as_deref()
                .map(|since| parse_time("since", since))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|until| parse_time("until", until))
                .transpose()?,
        })
    }
}

/// A tenant's channel line.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Device {
    /// `dev_…`
    pub id: String,
    pub channel: Option<Channel>,
    pub name: String,
    /// The channel's own id: WABA phone_number_id, Telegram bot id, gateway session.
    pub external_id: String,
    /// Whether verification material is stored (it is never shown).
    pub verification_configured: bool,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    pub etag: String,
    /// What the device's channel sent lately; absent when it never called
    /// (or the record cannot be read right now).
    pub health: Option<DeviceHealth>,
}

/// A device's inbound calls, from every ingest replica (a call shows within
/// a few seconds). `_24h` counts cover the current hour and the 23 whole
/// hours before it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeviceHealth {
    /// The last call that reached the device's webhook URL, whatever its outcome.
    #[schema(format = DateTime)]
    pub last_webhook_at: Option<String>,
    /// Events accepted from the channel.
    pub events_24h: u64,
    /// Calls refused because their signature, secret token or verify token
    /// did not match the device's settings.
    pub verification_failures_24h: u64,
    #[schema(format = DateTime)]
    pub last_refusal_at: Option<String>,
    /// Why the last refused call was refused; empty when none was.
    pub last_refusal_reason: String,
}

impl DeviceHealth {
    fn from_wire(health: &pb::DeviceHealth) -> DeviceHealth {
        DeviceHealth {
            last_webhook_at: timestamp(health.last_webhook_at.as_ref()),
            events_24h: health.events_24h,
            verification_failures_24h: health.verification_failures_24h,
            last_refusal_at: timestamp(health.last_refusal_at.as_ref()),
            last_refusal_reason: health.last_refusal_reason.clone(),
        }
    }
}

impl Device {
    pub fn from_wire(device: &pb::Device) -> Device {
        Device {
            id: device.id.clone(),
            channel: Channel::from_wire(device.channel()),
            name: device.name.clone(),
            external_id: device.external_id.clone(),
            verification_configured: device
                .verification
                .as_ref()
                .is_some_and(|verification| verification.configured),
            created_at: timestamp(device.created_at.as_ref()),
            updated_at: timestamp(device.updated_at.as_ref()),
            etag: device.etag.clone(),
            health: device.health.as_ref().map(DeviceHealth::from_wire),
        }
    }
}

/// The material that verifies a device's inbound webhooks (write-only).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceVerification {
    Waba {
        /// Meta app secret: the HMAC key of `X-Hub-Signature-256`.
        app_secret: String,
        /// The token Meta echoes in the `hub.verify_token` handshake.
        verify_token: String,
    },
    Telegram {
        /// Compared with `X-Telegram-Bot-Api-Secret-Token`.
        secret_token: String,
    },
    Whatsapp {
        /// HMAC-SHA512 key of `X-Webhook-Hmac`; empty disables the check.
        hmac_key: String,
    },
}

impl DeviceVerification {
    pub fn to_wire(&self) -> pb::DeviceVerification {
        use pb::device_verification::Channel as Which;
        let channel = match self {
            DeviceVerification::Waba {
                app_secret,
                verify_token,
            } => Which::Waba(pb::WabaVerification {
                app_secret: app_secret.clone(),
                verify_token: verify_token.clone(),
            }),
            DeviceVerification::Telegram { secret_token } => {
                Which::Telegram(pb::TelegramVerification {
                    secret_token: secret_token.clone(),
                })
            }
            DeviceVerification::Whatsapp { hmac_key } => Which::Whatsapp(pb::GatewayVerification {
                hmac_key: hmac_key.clone(),
            }),
        };
        pb::DeviceVerification {
            channel: Some(channel),
            configured: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "channel": "whatsapp",
    "name": "Sales line",
    "external_id": "sales-1",
    "verification": { "whatsapp": { "hmac_key": "change-me" } }
}))]
pub struct CreateDevice {
    pub channel: Channel,
    pub name: String,
    pub external_id: String,
    pub verification: Option<DeviceVerification>,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub verification: Option<DeviceVerification>,
    pub etag: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<Device>,
    pub next_page_token: String,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDevicesQuery {
    pub channel: Option<Channel>,
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

/// Endpoint counts by status, and deliveries over the last 24 hours.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Summary {
    pub endpoints_total: u32,
    pub endpoints_active: u32,
    pub endpoints_pending_test: u32,
    pub endpoints_disabled: u32,
    pub endpoints_failing: u32,
    pub deliveries_succeeded: u64,
    pub deliveries_failed: u64,
    pub deliveries_pending: u64,
    pub dead_letters: u64,
    #[schema(format = DateTime)]
    pub as_of: Option<String>,
}

impl Summary {
    pub fn from_wire(summary: &pb::Summary) -> Summary {
        Summary {
            endpoints_total: summary.endpoints_total,
            endpoints_active: summary.endpoints_active,
            endpoints_pending_test: summary.endpoints_pending_test,
            endpoints_disabled: summary.endpoints_disabled,
            endpoints_failing: summary.endpoints_failing,
            deliveries_succeeded: summary.deliveries_succeeded,
            deliveries_failed: summary.deliveries_failed,
            deliveries_pending: summary.deliveries_pending,
            dead_letters: summary.dead_letters,
            as_of: timestamp(summary.as_of.as_ref()),
        }
    }
}

/// An event type an endpoint can subscribe to, with the envelope Herald
/// would POST for it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventType {
    pub name: String,
    /// What people call it, e.g. "Incoming Message"; the name for custom types.
    pub label: String,
    pub description: String,
    /// True for Herald's catalog, false for the tenant's custom types.
    pub catalog: bool,
    /// The channels that can produce it (`whatsapp`, `telegram`, `waba`,
    /// `internal`); empty for custom types.
    pub channels: Vec<String>,
    /// The JSON Schema of the event's `data`, which Publish enforces; null
    /// for a custom type registered without one.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Box<serde_json::value::RawValue>>,
    /// A realistic example of the JSON body Herald POSTs for this type.
    #[schema(value_type = Object)]
    pub sample: Box<serde_json::value::RawValue>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub event_types: Vec<EventType>,
    pub next_page_token: String,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "orders.shipped",
    "description": "An order left the warehouse.",
    "sample_data": { "order_id": "4521", "carrier": "DHL" },
    "schema": {
        "type": "object",
        "required": ["order_id"],
        "properties": { "order_id": { "type": "string" }, "carrier": { "type": "string" } }
    }
}))]
pub struct RegisterEventType {
    /// Lowercase dot-separated segments, not a catalog name.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// An example `data` object; it must satisfy `schema`.
    #[schema(value_type = Option<Object>)]
    pub sample_data: Option<Box<serde_json::value::RawValue>>,
    /// Optional JSON Schema of `data`, enforced on Publish. Keywords: type,
    /// properties, required, additionalProperties, items, enum, const,
    /// minimum, maximum, minLength, maxLength, minItems, maxItems (others are
    /// refused).
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryJobState {
    Running,
    Succeeded,
    Failed,
}

/// A replay, recovery or redrive running on the server.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RecoveryJob {
    /// `rcv_…`
    pub id: String,
    pub kind: Trigger,
    pub state: RecoveryJobState,
    /// Known once the job has counted its work.
    pub total: u64,
    pub enqueued: u64,
    pub skipped: u64,
    pub error: String,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl RecoveryJob {
    pub fn from_wire(job: &pb::RecoveryJob) -> RecoveryJob {
        RecoveryJob {
            id: job.id.clone(),
            kind: Trigger::from_wire(job.kind()),
            state: match job.state() {
                pb::RecoveryJobState::Succeeded => RecoveryJobState::Succeeded,
                pb::RecoveryJobState::Failed => RecoveryJobState::Failed,
                pb::RecoveryJobState::Running | pb::RecoveryJobState::Unspecified => {
                    RecoveryJobState::Running
                }
            },
            total: job.total,
            enqueued: job.enqueued,
            skipped: job.skipped,
            error: job.error.clone(),
            created_at: timestamp(job.created_at.as_ref()),
            finished_at: timestamp(job.finished_at.as_ref()),
        }
    }
}

/// The event a dead letter carries (its `data` left out; replaying sends it).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `whatsapp`, `telegram`, `waba` or `internal`.
    pub channel: String,
    pub device_id: Option<String>,
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
}

/// A delivery that used up its retries.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    /// The delivery id (`dlv_…`): what redrive and purge take.
    pub id: String,
    pub endpoint_id: String,
    pub event: Option<EventSummary>,
    #[schema(format = DateTime)]
    pub dead_at: Option<String>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    pub reason: String,
}

impl DeadLetter {
    pub fn from_wire(letter: &pb::DeadLetter) -> DeadLetter {
        DeadLetter {
            id: letter.id.clone(),
            endpoint_id: letter.endpoint_id.clone(),
            event: letter.event.as_ref().map(|event| EventSummary {
                id: event.id.clone(),
                event_type: event.r#type.clone(),
                channel: match event.channel() {
                    pb::Channel::Whatsapp => "whatsapp",
                    pb::Channel::Telegram => "telegram",
                    pb::Channel::Waba => "waba",
                    _ => "internal",
                }
                .to_owned(),
                device_id: Some(event.device_id.clone()).filter(|id| !id.is_empty()),
                occurred_at: timestamp(event.occurred_at.as_ref()),
            }),
            dead_at: timestamp(letter.dead_at.as_ref()),
            attempts: letter.attempts.iter().map(Attempt::from_wire).collect(),
            reason: letter.reason.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
    pub next_page_token: String,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeadLettersQuery {
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339; dead at or after it.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; dead before it.
    #[param(format = DateTime)]
    pub until: Option<String>,
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

impl ListDeadLettersQuery {
    pub fn to_wire(&self) -> Result<pb::ListDeadLettersRequest, HttpError> {
        Ok(pb::ListDeadLettersRequest {
            page_size: self.page_size.unwrap_or_default(),
            page_token: self.page_token.clone().unwrap_or_default(),
            endpoint_id: self.endpoint_id.clone().unwrap_or_default(),
            event_type: self.event_type.clone().unwrap_or_default(),
            since: self
                .since
                .as_deref()
                .map(|since| parse_time("since", since))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|until| parse_time("until", until))
                .transpose()?,
        })
    }
}

/// Which dead letters: some by delivery id, or all of one endpoint.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "all_of_endpoint": "ep_01jd3m6b8q2w4e6r8t0y2u4i6o" }))]
pub struct SelectDeadLetters {
    /// At most 500 (a page of dead letters); use `all_of_endpoint` for more.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub delivery_ids: Vec<String>,
    /// Every dead letter of this endpoint, when `delivery_ids` is empty.
    pub all_of_endpoint: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Purged {
    pub purged: u64,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayEvent {
    /// Only this endpoint; every endpoint the event matches now when absent.
    pub endpoint_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverFailed {
    /// RFC 3339: every failed or dead delivery of the endpoint since then.
    #[schema(format = DateTime)]
    pub since: String,
}

/// A tenant's own quotas. A field absent (or 0) takes the service's default.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantQuotas {
    /// Events accepted per second (per ingest replica); over it webhooks get
    /// 429 with `Retry-After` and Publish items `RESOURCE_EXHAUSTED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    /// Events accepted at once above the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_burst: Option<u32>,
    /// Deliveries in flight per delivery replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight_deliveries: Option<u32>,
    /// Dead letters kept; the oldest beyond it are purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dead_letters: Option<u64>,
}

impl TenantQuotas {
    pub fn from_wire(quotas: Option<&pb::TenantQuotas>) -> TenantQuotas {
        let quotas = quotas.cloned().unwrap_or_default();
        TenantQuotas {
            events_per_second: Some(quotas.events_per_second).filter(|value| *value != 0.0),
            events_burst: Some(quotas.events_burst).filter(|value| *value != 0),
            max_in_flight_deliveries: Some(quotas.max_in_flight_deliveries)
                .filter(|value| *value != 0),
            max_dead_letters: Some(quotas.max_dead_letters).filter(|value| *value != 0),
        }
    }

    pub fn to_wire(&self) -> pb::TenantQuotas {
        pb::TenantQuotas {
            events_per_second: self.events_per_second.unwrap_or_default(),
            events_burst: self.events_burst.unwrap_or_default(),
            max_in_flight_deliveries: self.max_in_flight_deliveries.unwrap_or_default(),
            max_dead_letters: self.max_dead_letters.unwrap_or_default(),
        }
    }
}

/// An organization, as the admin token sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Tenant {
    /// `org_…`
    pub id: String,
    pub name: String,
    pub quotas: TenantQuotas,
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    pub etag: String,
}

impl Tenant {
    pub fn from_wire(tenant: &pb::Tenant) -> Tenant {
        Tenant {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
            quotas: TenantQuotas::from_wire(tenant.quotas.as_ref()),
            created_at: timestamp(tenant.created_at.as_ref()),
            updated_at: timestamp(tenant.updated_at.as_ref()),
            etag: tenant.etag.clone(),
        }
    }
}

/// Replaces a tenant's quotas: a field absent (or 0) returns it to the
/// service's default.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTenantQuotas {
    pub events_per_second: Option<f64>,
    pub events_burst: Option<u32>,
    pub max_in_flight_deliveries: Option<u32>,
    pub max_dead_letters: Option<u64>,
    /// The etag read last; a stale one is answered 409.
    pub etag: Option<String>,
}

impl SetTenantQuotas {
    pub fn to_wire(&self) -> pb::TenantQuotas {
        TenantQuotas {
            events_per_second: self.events_per_second,
            events_burst: self.events_burst,
            max_in_flight_deliveries: self.max_in_flight_deliveries,
            max_dead_letters: self.max_dead_letters,
        }
        .to_wire()
    }
}

/// A program to run once, on either an envelope of your own or an event
/// type's catalog sample.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "code": "function handler(webhook) { webhook.event = { text: webhook.event.data.text }; return webhook; }",
    "event_type": "message.received"
}))]
pub struct SimulateTransformation {
    /// The program, as an endpoint's `transformation`.
    #[schema(max_length = 65536)]
    pub code: String,
    /// The envelope Herald would send (its `event` and `timestamp` give the
    /// event type and the time `Date` is fixed to).
    pub event: Option<serde_json::Value>,
    /// A catalog event type, whose sample is used instead of `event`.
    pub event_type: Option<String>,
    /// The endpoint URL the program sees; default
    /// `https://example.com/webhook`.
    pub url: Option<String>,
}

/// Where and why a program failed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TransformationError {
    /// `syntax`, `thrown`, `time_limit`, `memory_limit` or
    /// `malformed_result`.
    pub kind: String,
    pub message: String,
    /// 1-based; absent when unknown.
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// What a delivery would be after the program: sent (`body`, `headers`,
/// `event_type`), cancelled, or failed (`error`; nothing would be sent).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SimulationResult {
    /// The program's argument: `{event, headers, url, eventType}`.
    pub input: serde_json::Value,
    /// The body that would be sent.
    pub body: Option<serde_json::Value>,
    /// Headers the program adds.
    pub headers: BTreeMap<String, String>,
    /// The event type the headers would carry.
    pub event_type: String,
    pub cancel: bool,
    pub cancel_reason: String,
    pub error: Option<TransformationError>,
}

impl SimulationResult {
    pub fn from_wire(simulated: pb::SimulateTransformationResponse) -> SimulationResult {
        let json = |text: &str| serde_json::from_str(text).ok();
        SimulationResult {
            input: json(&simulated.input_json).unwrap_or_default(),
            body: Some(simulated.body_json.as_str())
                .filter(|body| !body.is_empty())
                .and_then(json),
            headers: simulated.headers.into_iter().collect(),
            event_type: simulated.event_type,
            cancel: simulated.cancel,
            cancel_reason: simulated.cancel_reason,
            error: simulated.error.map(|error| TransformationError {
                kind: error.kind,
                message: error.message,
                line: Some(error.line).filter(|line| *line != 0),
                column: Some(error.column).filter(|column| *column != 0),
            }),
        }
    }
}
