//! The channel receivers: one route per device and channel. This is the one
//! place an error becomes an HTTP response.
//!
//! Order of checks: configuration loaded (503), device known and of this
//! channel (404), body within the limit (413), authenticated over the raw
//! bytes (403), parsed (400), published and acknowledged (503 otherwise).
//! Every refusal is one line of plain text; a success is an empty 200
//! (Telegram would run a body as a Bot API call).

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
    routing::post,
};
use herald_core::{channel::Channel, event::EventError};
use herald_proto::v1::{Device, device_verification::Channel as Verification};
use time::OffsetDateTime;

use crate::{
    gateway,
    normalise::{NormalisedEvent, ParseError},
    quota::retry_after_seconds,
    receive::{DeviceContext, DeviceError, Shared, canonical, publish_request},
    telegram, verify,
    verify::VerifyError,
    waba,
};

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("the configuration is not loaded yet; retry shortly")]
    NotSynced,
    #[error("no {channel} device {device}")]
    UnknownDevice { channel: Channel, device: String },
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("cannot read the body")]
    Unreadable,
    #[error("{0}")]
    Unauthenticated(#[from] VerifyError),
    #[error("hub.verify_token does not match (or hub.mode is not subscribe)")]
    Handshake,
    #[error("{0}")]
    Malformed(#[from] ParseError),
    #[error("{0}")]
    Invalid(#[from] EventError),
    #[error("{0}")]
    Device(#[from] DeviceError),
    #[error("the event bus did not acknowledge; retry")]
    Bus(String),
    #[error("the tenant is over its events-per-second quota; retry after {} s", retry_after_seconds(*.0))]
    OverQuota(Duration),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::NotSynced | HttpError::Bus(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::UnknownDevice { .. } => StatusCode::NOT_FOUND,
            HttpError::TooLarge { .. } | HttpError::Invalid(EventError::DataTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            HttpError::Unreadable | HttpError::Malformed(_) | HttpError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::Unauthenticated(_) | HttpError::Handshake => StatusCode::FORBIDDEN,
            HttpError::Device(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::OverQuota(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// The routes, with the body limit applied to them (not to gRPC), each
/// request counted and traced by its route template.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.max_body_bytes;
    let requests = shared.metrics.requests.http_layer();
    Router::new()
        .route(
            "/inbound/waba/{device_id}",
            get(waba_handshake).post(waba_post),
        )
        .route("/inbound/telegram/{device_id}", post(telegram_post))
        .route("/inbound/whatsapp/{device_id}", post(gateway_post))
        .route(
            crate::events_api::EVENTS_PATH,
            post(crate::events_api::publish),
        )
        .layer(DefaultBodyLimit::max(limit))
        .layer(requests)
        .with_state(shared)
}

/// Turns an outcome into the response, counting and logging it.
fn answer(
    shared: &Shared,
    channel: Channel,
    device: &str,
    outcome: Result<Response, HttpError>,
) -> Response {
    record_health(shared, device, &outcome);
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            match &error {
                HttpError::Bus(reason) => {
                    tracing::warn!(channel = %channel, device, reason, "webhook not acknowledged by the bus")
                }
                HttpError::Device(_) => {
                    tracing::error!(channel = %channel, device, %error, "webhook refused")
                }
                _ => {
                    tracing::info!(channel = %channel, device, status = status.as_u16(), %error, "webhook refused")
                }
            }
            let mut response = (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{error}\n"),
            )
                .into_response();
            // The channels retry a 429 after this (Meta retries for days).
            if let HttpError::OverQuota(wait) = error {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(retry_after_seconds(wait)),
                );
            }
            response
        }
    };
    shared
        .metrics
        .request(channel.as_str(), response.status().as_str());
    response
}

/// Counts the call in its device's health: every call that reached a
/// known device, and the reason of each one that failed verification.
fn record_health(shared: &Shared, device: &str, outcome: &Result<Response, HttpError>) {
    let now = OffsetDateTime::now_utc();
    match outcome {
        Err(HttpError::NotSynced | HttpError::UnknownDevice { .. }) => {}
        Err(error @ (HttpError::Unauthenticated(_) | HttpError::Handshake)) => {
            shared.health.webhook(device, now);
            shared.health.refused(device, now, &error.to_string());
        }
        Ok(_) | Err(_) => shared.health.webhook(device, now),
    }
}

/// The device, when the configuration has it on this channel.
fn device(shared: &Shared, channel: Channel, device_id: &str) -> Result<Device, HttpError> {
    if !shared.synced() {
        return Err(HttpError::NotSynced);
    }
    let wire = herald_proto::v1::Channel::from(channel) as i32;
    shared
        .cache
        .snapshot()
        .devices
        .get(device_id)
        .filter(|device| device.channel == wire)
        .cloned()
        .ok_or_else(|| HttpError::UnknownDevice {
            channel,
            device: device_id.chars().take(64).collect(),
        })
}

fn verification(device: &Device) -> Option<&Verification> {
    device.verification.as_ref()?.channel.as_ref()
}

fn body(shared: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Bytes, HttpError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::TooLarge {
                limit: shared.max_body_bytes,
            }
        } else {
            HttpError::Unreadable
        }
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|value| value.as_bytes())
}

/// Canonicalises and publishes; the empty 200 once every event is acked.
async fn accept(
    shared: &Arc<Shared>,
    device: &Device,
    channel: Channel,
    normalised: Vec<NormalisedEvent>,
) -> Result<Response, HttpError> {
    let context = DeviceContext::new(device, channel)?;
    tracing::Span::current().record("herald.tenant.id", context.tenant.as_str());
    let events = canonical(normalised, &context, OffsetDateTime::now_utc())?;
    shared
        .take_quota(&context.tenant, events.len())
        .map_err(HttpError::OverQuota)?;
    let count = events.len();
    publish_request(shared, events)
        .await
        .map_err(HttpError::Bus)?;
    shared
        .health
        .accepted(&device.id, OffsetDateTime::now_utc(), count);
    Ok(StatusCode::OK.into_response())
}

async fn waba_handshake(
    State(shared): State<Arc<Shared>>,
    Path(device_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let outcome = (|| {
        let device = device(&shared, Channel::Waba, &device_id)?;
        let Some(Verification::Waba(waba)) = verification(&device) else {
            return Err(HttpError::Handshake);
        };
        let mode = query.get("hub.mode").map(String::as_str);
        let token = query.get("hub.verify_token").map(String::as_bytes);
        let challenge = query.get("hub.challenge");
        match (mode, token, challenge) {
            (Some("subscribe"), Some(token), Some(challenge))
                if !waba.verify_token.is_empty()
                    && verify::same_secret(
                        waba.verify_token.as_bytes(),
                        token,
                        "hub.verify_token",
                    )
                    .is_ok() =>
            {
                // Echoed byte for byte: Meta calls it an int in one place
                // and a random string in another.
                Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    challenge.clone(),
                )
                    .into_response())
            }
            _ => Err(HttpError::Handshake),
        }
    })();
    answer(&shared, Channel::Waba, &device_id, outcome)
}

async fn waba_post(
    State(shared): State<Arc<Shared>>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let outcome = async {
        let device = device(&shared, Channel::Waba, &device_id)?;
        let raw = body(&shared, raw)?;
        let secret = match verification(&device) {
            Some(Verification::Waba(waba)) => waba.app_secret.as_str(),
            _ => "",
        };
        verify::waba_signature(secret, &raw, header(&headers, verify::WABA_SIGNATURE))?;
        let events = waba::parse(&raw)?;
        accept(&shared, &device, Channel::Waba, events).await
    }
    .await;
    answer(&shared, Channel::Waba, &device_id, outcome)
}

async fn telegram_post(
    State(shared): State<Arc<Shared>>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let outcome = async {
        let device = device(&shared, Channel::Telegram, &device_id)?;
        let raw = body(&shared, raw)?;
        let secret = match verification(&device) {
            Some(Verification::Telegram(telegram)) => telegram.secret_token.as_str(),
            _ => "",
        };
        verify::telegram_secret(secret, header(&headers, verify::TELEGRAM_SECRET))?;
        let event = telegram::parse(&raw)?;
        accept(&shared, &device, Channel::Telegram, vec![event]).await
    }
    .await;
    answer(&shared, Channel::Telegram, &device_id, outcome)
}

async fn gateway_post(
    State(shared): State<Arc<Shared>>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let outcome = async {
        let device = device(&shared, Channel::Whatsapp, &device_id)?;
        let raw = body(&shared, raw)?;
        let key = match verification(&device) {
            Some(Verification::Whatsapp(gateway)) => gateway.hmac_key.as_str(),
            _ => "",
        };
        verify::gateway_hmac(
            key,
            &raw,
            header(&headers, verify::GATEWAY_HMAC),
            header(&headers, verify::GATEWAY_HMAC_ALGORITHM),
        )?;
        let event = gateway::parse(&raw)?;
        accept(&shared, &device, Channel::Whatsapp, vec![event]).await
    }
    .await;
    answer(&shared, Channel::Whatsapp, &device_id, outcome)
}
