//! `POST /api/v1/events`: one event published as JSON, for automation
//! platforms (Zapier, Make, n8n) that speak HTTP and not gRPC.
//!
//! Design decision: the body becomes a one-item `PublishRequest` handed to
//! the gRPC service in-process with the caller's `Authorization` header, so
//! every rule of Publish (token scope, type, device, schema, quota,
//! idempotency) is the gRPC one. Errors are the JSON API's shape,
//! `{"error": {"code", "message", "field"}}`, the field named as in this
//! body (`data.contact.phone`, not `items[0].data.contact.phone`).

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use herald_proto::v1::{
    PublishItem, PublishRequest, ingest_service_server::IngestService, publish_result::Outcome,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tonic::metadata::AsciiMetadataValue;

use crate::{
    grpc::{BUS_FAILURE, PublishApi},
    quota::retry_after_seconds,
    receive::Shared,
};

/// Where the route is served on the ingest listener.
pub(crate) const EVENTS_PATH: &str = "/api/v1/events";

/// One event to publish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// A catalog type or one of the tenant's custom types.
    r#type: String,
    /// The event's `data`; it must satisfy the type's schema.
    data: Box<RawValue>,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    source_ref: String,
}

#[derive(Debug, Serialize)]
struct Accepted {
    event_id: String,
    duplicate: bool,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize)]
struct ErrorDetail {
    code: &'static str,
    message: String,
    field: String,
}

fn refusal(status: StatusCode, code: &'static str, field: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field: field.to_owned(),
        },
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn publish(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "resource_exhausted",
            "",
            format!("the body is larger than {} bytes", shared.max_body_bytes),
        );
    };
    let parsed: PublishBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "",
                format!("the body is not a publish request: {error}"),
            );
        }
    };
    let mut request = tonic::Request::new(PublishRequest {
        items: vec![PublishItem {
            r#type: parsed.r#type,
            data: parsed.data.get().as_bytes().to_vec().into(),
            device_id: parsed.device_id,
            idempotency_key: parsed.idempotency_key,
            source_ref: parsed.source_ref,
            ..PublishItem::default()
        }],
    });
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| AsciiMetadataValue::try_from(value.as_bytes()).ok())
    {
        request.metadata_mut().insert("authorization", value);
    }
    let answered = PublishApi { shared }.publish(request).await;
    let outcome = match answered {
        Ok(response) => response
            .into_inner()
            .results
            .into_iter()
            .next()
            .and_then(|result| result.outcome),
        Err(status) => return status_response(&status),
    };
    match outcome {
        Some(Outcome::Accepted(accepted)) => (
            if accepted.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            Json(Accepted {
                event_id: accepted.event_id,
                duplicate: accepted.duplicate,
            }),
        )
            .into_response(),
        Some(Outcome::Error(error)) if error.code == "RESOURCE_EXHAUSTED" => {
            let mut response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                "",
                error.message,
            );
            if let Some(wait) = error
                .retry_after
                .and_then(|wait| std::time::Duration::try_from(wait).ok())
            {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(retry_after_seconds(wait)),
                );
            }
            response
        }
        Some(Outcome::Error(error)) if error.message == BUS_FAILURE => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "",
            error.message,
        ),
        Some(Outcome::Error(error)) => {
            let field = error.field.strip_prefix("items[0]").unwrap_or(&error.field);
            refusal(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                field.strip_prefix('.').unwrap_or(field),
                error.message,
            )
        }
        None => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "",
            "the publish was not answered; retry".to_owned(),
        ),
    }
}

fn status_response(status: &tonic::Status) -> Response {
    let (http, code) = match status.code() {
        tonic::Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        tonic::Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
        tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    refusal(http, code, "", status.message().to_owned())
}
