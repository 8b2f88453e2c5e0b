//! Stored records to API messages. Secrets are decrypted only where a
//! caller is entitled to them; every other read gets them redacted.

use herald_core::circuit::CircuitState;
use herald_proto::{
    timestamp_to_wire,
    v1::{
        ApiToken, Attempt, AttemptStatus, CircuitState as WireCircuitState, Device,
        DeviceVerification, Endpoint, EndpointHealth, EndpointSecrets, EndpointSpec,
        EventTypeDefinition, Tenant, TenantQuotas, WatchedToken,
        device_verification::Channel as VerificationChannel,
    },
};
use herald_store::{
    AttemptRecord, DeviceRecord, EndpointActivity, EndpointRecord, EventTypeRecord,
    TenantQuotasRecord, TenantRecord, TokenRecord,
};
use prost::Message;

use crate::{
    endpoint::StoredEndpoint,
    error::{ApiError, ApiResult},
    names,
    secrets::{
        MasterKey, device_verification_context, endpoint_header_context, endpoint_secret_context,
    },
};

pub fn etag(version: i64) -> String {
    version.to_string()
}

/// `None` for an empty etag (no check), else the version it encodes.
pub fn expected_version(field: &str, etag: &str) -> ApiResult<Option<i64>> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid(field, "not an etag returned by this API"))
}

pub fn tenant(record: TenantRecord) -> Tenant {
    Tenant {
        quotas: Some(tenant_quotas(&record.quotas)),
        id: record.id,
        name: record.name,
        created_at: Some(timestamp_to_wire(record.created_at)),
        updated_at: Some(timestamp_to_wire(record.updated_at)),
        etag: etag(record.version),
    }
}

/// Stored quotas on the wire; a stored value that does not fit its field
/// (never written by this service) reads as the default.
pub fn tenant_quotas(record: &TenantQuotasRecord) -> TenantQuotas {
    let narrow = |value: Option<i64>| value.and_then(|value| u32::try_from(value).ok());
    TenantQuotas {
        events_per_second: record.events_per_second.unwrap_or_default(),
        events_burst: narrow(record.events_burst).unwrap_or_default(),
        max_in_flight_deliveries: narrow(record.max_in_flight_deliveries).unwrap_or_default(),
        max_dead_letters: record
            .max_dead_letters
            .and_then(|value| u64::try_from(value).ok())
            .unwrap_or_default(),
    }
}

/// Checked quotas as stored. The bounds of herald-core's rule keep every
/// value within `i64`.
pub fn tenant_quotas_record(quotas: &herald_core::quota::TenantQuotas) -> TenantQuotasRecord {
    TenantQuotasRecord {
        events_per_second: quotas.events_per_second(),
        events_burst: quotas.events_burst().map(i64::from),
        max_in_flight_deliveries: quotas.max_in_flight_deliveries().map(i64::from),
        max_dead_letters: quotas
            .max_dead_letters()
            .and_then(|value| i64::try_from(value).ok()),
    }
}

pub fn token(record: TokenRecord) -> ApiToken {
    ApiToken {
        id: record.id,
        tenant_id: record.tenant_id,
        name: record.name,
        scope: names::parse_token_scope(&record.scope).into(),
        prefix: record.prefix,
        created_at: Some(timestamp_to_wire(record.created_at)),
        expires_at: record.expires_at.map(timestamp_to_wire),
        last_used_at: record.last_used_at.map(timestamp_to_wire),
        revoked_at: record.revoked_at.map(timestamp_to_wire),
    }
}

pub fn watched_token(record: TokenRecord) -> WatchedToken {
    WatchedToken {
        scope: names::parse_token_scope(&record.scope).into(),
        id: record.id,
        tenant_id: record.tenant_id,
        secret_sha256: record.secret_sha256,
        expires_at: record.expires_at.map(timestamp_to_wire),
    }
}

/// A device with its verification material decrypted (for the Watch stream)
/// or redacted (for tenant reads).
pub fn device(record: DeviceRecord, key: &MasterKey, reveal: bool) -> ApiResult<Device> {
    let plaintext = key.decrypt(
        &device_verification_context(&record.id),
        &record.verification_ciphertext,
    )?;
    let mut verification =
        DeviceVerification::decode(plaintext.as_slice()).map_err(|error| ApiError::Corrupt {
            what: "device verification",
            reason: error.to_string(),
        })?;
    if !reveal {
        verification = redact_verification(&verification);
    }
    Ok(Device {
        id: record.id,
        tenant_id: record.tenant_id,
        channel: names::parse_channel(&record.channel).into(),
        name: record.name,
        external_id: record.external_id,
        verification: Some(verification),
        created_at: Some(timestamp_to_wire(record.created_at)),
        updated_at: Some(timestamp_to_wire(record.updated_at)),
        etag: etag(record.version),
        // Filled in by the tenant API's reads, from the bus.
        health: None,
    })
}

fn redact_verification(verification: &DeviceVerification) -> DeviceVerification {
    let configured = match &verification.channel {
        Some(VerificationChannel::Waba(waba)) => {
            !waba.app_secret.is_empty() || !waba.verify_token.is_empty()
        }
        Some(VerificationChannel::Telegram(telegram)) => !telegram.secret_token.is_empty(),
        Some(VerificationChannel::Whatsapp(gateway)) => !gateway.hmac_key.is_empty(),
        None => false,
    };
    let channel = verification.channel.as_ref().map(|channel| match channel {
        VerificationChannel::Waba(_) => VerificationChannel::Waba(Default::default()),
        VerificationChannel::Telegram(_) => VerificationChannel::Telegram(Default::default()),
        VerificationChannel::Whatsapp(_) => VerificationChannel::Whatsapp(Default::default()),
    });
    DeviceVerification {
        channel,
        configured,
    }
}

pub fn stored_endpoint(record: &EndpointRecord) -> ApiResult<StoredEndpoint> {
    StoredEndpoint::decode(record.spec.as_slice()).map_err(|error| ApiError::Corrupt {
        what: "endpoint spec",
        reason: error.to_string(),
    })
}

/// The endpoint's spec with its custom header values unsealed.
pub fn endpoint_spec(record: &EndpointRecord, key: &MasterKey) -> ApiResult<EndpointSpec> {
    let stored = stored_endpoint(record)?;
    let mut spec = stored.spec.unwrap_or_default();
    for (name, sealed) in stored.sealed_headers {
        let plaintext = key.decrypt(&endpoint_header_context(&record.id, &name), &sealed)?;
        let value = String::from_utf8(plaintext).map_err(|error| ApiError::Corrupt {
            what: "endpoint header value",
            reason: error.to_string(),
        })?;
        spec.headers.insert(name, value);
    }
    Ok(spec)
}

/// The stored form of an endpoint's spec: its custom header values sealed
/// under the master key, bound to the endpoint and the header's name.
pub fn seal_endpoint(
    endpoint_id: &str,
    mut spec: EndpointSpec,
    resume_status: i32,
    key: &MasterKey,
) -> ApiResult<Vec<u8>> {
    let mut sealed_headers = std::collections::BTreeMap::new();
    for (name, value) in std::mem::take(&mut spec.headers) {
        let sealed = key.encrypt(
            &endpoint_header_context(endpoint_id, &name),
            value.as_bytes(),
        )?;
        sealed_headers.insert(name, sealed);
    }
    Ok(StoredEndpoint {
        spec: Some(spec),
        resume_status,
        sealed_headers,
    }
    .encode_to_vec())
}

/// How much of an endpoint's custom header values a reader sees: they are
/// usually credentials, which read-only tokens (dashboards) must not obtain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderValues {
    Shown,
    Masked,
}

pub fn endpoint(
    record: &EndpointRecord,
    key: &MasterKey,
    header_values: HeaderValues,
) -> ApiResult<Endpoint> {
    let mut spec = endpoint_spec(record, key)?;
    if header_values == HeaderValues::Masked {
        for value in spec.headers.values_mut() {
            *value = herald_core::signing::mask_header_value(value);
        }
    }
    Ok(Endpoint {
        id: record.id.clone(),
        tenant_id: record.tenant_id.clone(),
        spec: Some(spec),
        status: names::parse_endpoint_status(&record.status).into(),
        status_reason: record.status_reason.clone(),
        health: None,
        created_at: Some(timestamp_to_wire(record.created_at)),
        updated_at: Some(timestamp_to_wire(record.updated_at)),
        etag: etag(record.version),
        revision: u64::try_from(record.revision).unwrap_or_default(),
    })
}

pub fn endpoint_secrets(record: &EndpointRecord, key: &MasterKey) -> ApiResult<EndpointSecrets> {
    let decrypt = |which: &str, sealed: &[u8]| -> ApiResult<String> {
        let plaintext = key.decrypt(&endpoint_secret_context(&record.id, which), sealed)?;
        String::from_utf8(plaintext).map_err(|error| ApiError::Corrupt {
            what: "endpoint secret",
            reason: error.to_string(),
        })
    };
    let current = decrypt("current", &record.secret_ciphertext)?;
    let now = time::OffsetDateTime::now_utc();
    let previous = match (
        &record.previous_secret_ciphertext,
        record.previous_secret_expires_at,
    ) {
        (Some(sealed), Some(expires_at)) if expires_at > now => {
            Some((decrypt("previous", sealed)?, expires_at))
        }
        _ => None,
    };
    Ok(EndpointSecrets {
        current,
        previous: previous
            .as_ref()
            .map(|(secret, _)| secret.clone())
            .unwrap_or_default(),
        previous_expires_at: previous.map(|(_, expires_at)| timestamp_to_wire(expires_at)),
    })
}

pub fn event_type(record: EventTypeRecord) -> EventTypeDefinition {
    EventTypeDefinition {
        label: record.name.clone(),
        name: record.name,
        description: record.description,
        catalog: false,
        sample_data: record.sample_data.into(),
        created_at: Some(timestamp_to_wire(record.created_at)),
        channels: Vec::new(),
        tenant_id: record.tenant_id,
        schema: record.schema,
    }
}

pub fn attempt(record: AttemptRecord) -> Attempt {
    let request_headers = serde_json::from_str(&record.request_headers_json).unwrap_or_default();
    Attempt {
        id: record.id,
        delivery_id: record.delivery_id,
        event_id: record.event_id,
        tenant_id: record.tenant_id,
        endpoint_id: record.endpoint_id,
        device_id: record.device_id,
        event_type: record.event_type,
        attempt: u32::try_from(record.attempt).unwrap_or_default(),
        attempted_at: Some(timestamp_to_wire(record.attempted_at)),
        status: names::parse_attempt_status(&record.status).into(),
        response_code: u32::try_from(record.response_code).unwrap_or_default(),
        duration: Some(herald_proto::duration_to_wire(
            std::time::Duration::from_micros(
                u64::try_from(record.duration_micros).unwrap_or_default(),
            ),
        )),
        response_body: record.response_body.into(),
        error: record.error,
        url: record.url,
        next_attempt_at: record.next_attempt_at.map(timestamp_to_wire),
        trigger: names::parse_trigger(&record.trigger).into(),
        request_headers,
        test: record.test,
        request_body: record.request_body.into(),
        request_body_size: record.request_body_size,
    }
}

/// An attempt from the bus into a row; refuses records that would make a
/// row nobody can find (no id or tenant).
pub fn attempt_record(attempt: Attempt) -> Result<AttemptRecord, String> {
    if attempt.id.is_empty() || attempt.tenant_id.is_empty() || attempt.delivery_id.is_empty() {
        return Err("attempt record without id, tenant_id or delivery_id".to_owned());
    }
    let attempted_at = herald_proto::timestamp_from_wire("attempted_at", attempt.attempted_at)
        .map_err(|error| error.to_string())?;
    let next_attempt_at = match attempt.next_attempt_at {
        Some(next) => Some(
            herald_proto::timestamp_from_wire("next_attempt_at", Some(next))
                .map_err(|error| error.to_string())?,
        ),
        None => None,
    };
    let duration_micros = attempt
        .duration
        .as_ref()
        .and_then(|duration| herald_proto::duration_from_wire("duration", duration).ok())
        .map(|duration| i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let mut body = attempt.response_body.to_vec();
    body.truncate(4096);
    let request_body = herald_core::envelope::stored_body(&attempt.request_body).to_vec();
    Ok(AttemptRecord {
        status: names::attempt_status(attempt.status()).to_owned(),
        trigger: names::trigger(attempt.trigger()).to_owned(),
        id: attempt.id,
        delivery_id: attempt.delivery_id,
        event_id: attempt.event_id,
        tenant_id: attempt.tenant_id,
        endpoint_id: attempt.endpoint_id,
        device_id: attempt.device_id,
        event_type: attempt.event_type,
        attempt: i32::try_from(attempt.attempt).unwrap_or(i32::MAX),
        attempted_at,
        response_code: i32::try_from(attempt.response_code).unwrap_or_default(),
        duration_micros,
        response_body: body,
        error: attempt.error,
        url: attempt.url,
        next_attempt_at,
        request_headers_json: serde_json::to_string(&attempt.request_headers)
            .unwrap_or_else(|_| "{}".to_owned()),
        test: attempt.test,
        request_body,
        request_body_size: attempt.request_body_size,
    })
}

/// An endpoint's health as its attempts tell it (the circuit is read apart).
pub fn endpoint_health(activity: &EndpointActivity) -> EndpointHealth {
    let (last_attempt_at, last_attempt_status, last_response_code) = match &activity.last_attempt {
        Some((at, status, code)) => (
            Some(timestamp_to_wire(*at)),
            names::parse_attempt_status(status),
            u32::try_from(*code).unwrap_or_default(),
        ),
        None => (None, AttemptStatus::Unspecified, 0),
    };
    EndpointHealth {
        circuit: WireCircuitState::Closed.into(),
        consecutive_failures: u32::try_from(activity.consecutive_failures).unwrap_or(u32::MAX),
        last_success_at: activity.last_success_at.map(timestamp_to_wire),
        last_attempt_at,
        last_attempt_status: last_attempt_status.into(),
        last_response_code,
        failing_since: None,
        attempts_24h: activity.window_attempts,
        succeeded_24h: activity.window_succeeded,
    }
}

pub fn circuit_state(state: CircuitState) -> WireCircuitState {
    match state {
        CircuitState::Closed => WireCircuitState::Closed,
        CircuitState::Open => WireCircuitState::Open,
        CircuitState::HalfOpen => WireCircuitState::HalfOpen,
    }
}
