//! Simulating a transformation: the program run against an event the
//! caller gives, or an event type's catalog sample, with nothing sent.

use herald_core::{
    catalog::{CATALOG, EventType},
    channel::Channel,
    envelope::envelope_body,
    event::{Event, parse_data},
    id::{DeliveryId, EndpointId, EventId, TenantId},
    signing::SigningScheme,
    text::Permit,
    transform::{Input, Limits, Outcome, ScriptError, Transformation, input_headers},
};
use herald_proto::v1::{
    SimulateTransformationRequest, SimulateTransformationResponse, TransformationError,
    simulate_transformation_request::Input as WireInput,
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    error::{ApiError, ApiResult},
    state::ConfigState,
    validate::check_text,
};

/// The URL a simulated delivery goes to when the caller names none.
const SIMULATED_URL: &str = "https://example.com/webhook";
const MAX_URL_BYTES: usize = 2048;
/// The largest event a simulation takes.
const MAX_EVENT_BYTES: usize = 256 * 1024;

impl ConfigState {
    pub async fn simulate_transformation(
        &self,
        tenant_id: &str,
        request: SimulateTransformationRequest,
    ) -> ApiResult<SimulateTransformationResponse> {
        let program = Transformation::new(&request.code)
            .map_err(|error| ApiError::invalid("code", error))?
            .ok_or_else(|| ApiError::invalid("code", "must not be empty"))?;
        let tenant = TenantId::parse(tenant_id).map_err(|error| ApiError::Corrupt {
            what: "tenant id",
            reason: error.to_string(),
        })?;
        check_text("url", &request.url, Permit::SingleLine)?;
        let url = match request.url.trim() {
            "" => SIMULATED_URL,
            url if url.len() > MAX_URL_BYTES => {
                return Err(ApiError::invalid(
                    "url",
                    format!("must be at most {MAX_URL_BYTES} bytes"),
                ));
            }
            url => url,
        };
        let simulated = match request.input {
            Some(WireInput::EventType(name)) => sample_delivery(&tenant, &name)?,
            Some(WireInput::EventJson(json)) => given_delivery(&json)?,
            None => {
                return Err(ApiError::invalid("input", "set event_json or event_type"));
            }
        };
        let input = Input::new(
            &simulated.envelope,
            simulated.headers,
            url,
            &simulated.event_type,
        )
        .map_err(|error| ApiError::invalid("event_json", error.message))?;
        let mut response = SimulateTransformationResponse {
            input_json: input.json().to_owned(),
            ..SimulateTransformationResponse::default()
        };
        match herald_transform::run_once(
            program.code(),
            &input,
            simulated.now_millis,
            Limits::default(),
            &SigningScheme::Standard,
        ) {
            Ok(Outcome::Send(shaped)) => {
                response.body_json = String::from_utf8_lossy(&shaped.body).into_owned();
                response.headers = shaped.headers.into_iter().collect();
                response.event_type = shaped.event_type.unwrap_or(simulated.event_type);
            }
            Ok(Outcome::Cancel { reason }) => {
                response.cancel = true;
                response.cancel_reason = reason.unwrap_or_default();
            }
            Err(error) => response.error = Some(wire_error(error)),
        }
        Ok(response)
    }
}

fn wire_error(error: ScriptError) -> TransformationError {
    TransformationError {
        kind: error.kind.as_str().to_owned(),
        message: error.message,
        line: error.line.unwrap_or_default(),
        column: error.column.unwrap_or_default(),
    }
}

/// A delivery to simulate: the envelope, Herald's headers, the event type
/// and the time `Date` is fixed to.
struct Simulated {
    envelope: Vec<u8>,
    headers: Vec<(String, String)>,
    event_type: String,
    now_millis: i64,
}

/// The catalog sample of `name` as the tenant's endpoint would receive it.
fn sample_delivery(tenant: &TenantId, name: &str) -> ApiResult<Simulated> {
    let entry = CATALOG
        .iter()
        .find(|entry| entry.name == name)
        .ok_or_else(|| {
            ApiError::invalid(
                "event_type",
                format!("{name:?} is not a catalog event type"),
            )
        })?;
    let event_type = EventType::from_catalog(entry);
    let channel = if event_type == EventType::endpoint_disabled() {
        Channel::Internal
    } else {
        Channel::Waba
    };
    let now = OffsetDateTime::now_utc();
    let event_id = EventId::generate();
    let event = Event {
        id: event_id,
        tenant_id: *tenant,
        channel,
        device_id: None,
        event_type,
        occurred_at: now,
        received_at: now,
        source_ref: None,
        idempotency_key: format!("simulation:{event_id}"),
        data: parse_data(entry.sample_data.as_bytes()).map_err(|error| ApiError::Corrupt {
            what: "catalog sample",
            reason: error.to_string(),
        })?,
    };
    let delivery_id = DeliveryId::for_event_endpoint(&event_id, &EndpointId::generate());
    Ok(Simulated {
        envelope: envelope_body(&event, false),
        headers: input_headers(&event, &delivery_id),
        event_type: name.to_owned(),
        now_millis: unix_millis(now),
    })
}

/// The caller's envelope; its `event` and `timestamp` fields, when present,
/// give the event type and the time `Date` is fixed to.
fn given_delivery(json: &str) -> ApiResult<Simulated> {
    if json.len() > MAX_EVENT_BYTES {
        return Err(ApiError::invalid(
            "event_json",
            format!("must be at most {MAX_EVENT_BYTES} bytes"),
        ));
    }
    let envelope: serde_json::Value =
        serde_json::from_str(json).map_err(|error| ApiError::invalid("event_json", error))?;
    let event_type = envelope
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let occurred_at = envelope
        .get("timestamp")
        .and_then(serde_json::Value::as_str)
        .and_then(|timestamp| OffsetDateTime::parse(timestamp, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let delivery_id = DeliveryId::for_event_endpoint(&EventId::generate(), &EndpointId::generate());
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-Herald-Event".to_owned(), event_type.clone()),
    ];
    if let Some(device) = envelope.get("deviceId").and_then(serde_json::Value::as_str) {
        headers.push(("X-Herald-Device".to_owned(), device.to_owned()));
    }
    headers.push(("X-Idempotency-Key".to_owned(), delivery_id.to_string()));
    Ok(Simulated {
        envelope: json.as_bytes().to_vec(),
        headers,
        event_type,
        now_millis: unix_millis(occurred_at),
    })
}

fn unix_millis(moment: OffsetDateTime) -> i64 {
    i64::try_from(moment.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}
