//! The one mapping from a gRPC `Status` (and from malformed HTTP input) to
//! the JSON error `{ "error": { "code", "message", "field" } }`.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use herald_config::{FIELD_METADATA_KEY, RETRY_AFTER_METADATA_KEY};
use serde::Serialize;
use tonic::Code;
use utoipa::{
    ToSchema,
    openapi::{RefOr, ResponseBuilder, ResponsesBuilder, content::ContentBuilder},
};

/// An error as the JSON API answers it.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Whole seconds a throttled caller waits before trying again, sent as
    /// `Retry-After`.
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The gRPC status code in snake case: `invalid_argument`, `not_found`,
    /// `unauthenticated`, `permission_denied`, `already_exists`, `aborted`,
    /// `failed_precondition`, `unavailable`, `deadline_exceeded`, `internal`...
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, for `invalid_argument`.
    pub field: Option<String>,
}

impl HttpError {
    /// A request the JSON API could not even read (bad JSON, a bad query
    /// parameter or path segment).
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> HttpError {
        HttpError {
            field: Some(field.to_owned()),
            ..HttpError::bad_request(format!("{field}: {}", message.into()))
        }
    }

    /// A request body over the API's limit.
    pub fn too_large(limit: usize) -> HttpError {
        HttpError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "resource_exhausted",
            message: format!("the request body is over the limit of {limit} bytes"),
            field: None,
            retry_after: None,
        }
    }

    /// A response the service should have filled in was empty.
    pub fn internal(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
}

impl From<tonic::Status> for HttpError {
    fn from(status: tonic::Status) -> HttpError {
        let field = status
            .metadata()
            .get(FIELD_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .map(json_field);
        let retry_after = status
            .metadata()
            .get(RETRY_AFTER_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        HttpError {
            status: http_status(status.code()),
            code: code_name(status.code()),
            message: status.message().to_owned(),
            field,
            retry_after,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let unauthenticated = self.status == StatusCode::UNAUTHORIZED;
        let retry_after = self.retry_after;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"herald\""),
            );
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The HTTP status that means what a gRPC code means (as Google's HTTP
/// mapping has it).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The gRPC API names fields by their protobuf path (`spec.url`,
/// `spec.timeout`); the JSON API's bodies are flat, with units in names.
pub fn json_field(grpc_field: &str) -> String {
    let field = grpc_field.strip_prefix("spec.").unwrap_or(grpc_field);
    if let Some(rest) = field.strip_prefix("retry.delays") {
        return format!("retry.delays_seconds{rest}");
    }
    match field {
        "timeout" => "timeout_seconds".to_owned(),
        "overlap" => "overlap_seconds".to_owned(),
        other => other.to_owned(),
    }
}

/// Every error status an operation can answer, each with [`ErrorBody`]:
/// listed once and added to every path of the OpenAPI document.
#[derive(Debug)]
pub struct ErrorResponses;

impl utoipa::IntoResponses for ErrorResponses {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        let statuses = [
            ("400", "The request is invalid; `field` names the culprit"),
            ("401", "Missing, unknown, expired or revoked token"),
            ("403", "The token may not do this"),
            ("404", "No such object in the caller's tenant"),
            (
                "409",
                "It already exists, or changed since it was read (etag)",
            ),
            ("413", "The request body is over the limit (1 MiB)"),
            (
                "429",
                "Too many failed authentications from this address; retry after `Retry-After` seconds",
            ),
            ("500", "A broken invariant; details are in the server's log"),
            ("503", "A dependency (the bus, the database) is unavailable"),
            ("504", "The operation timed out"),
        ];
        let mut responses = ResponsesBuilder::new();
        for (status, description) in statuses {
            responses = responses.response(
                status,
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            );
        }
        responses.build().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_their_http_meaning() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::Aborted), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn fields_are_named_as_the_json_bodies_name_them() {
        assert_eq!(json_field("spec.url"), "url");
        assert_eq!(
            json_field("spec.retry.delays[2]"),
            "retry.delays_seconds[2]"
        );
        assert_eq!(json_field("spec.timeout"), "timeout_seconds");
        assert_eq!(json_field("page_size"), "page_size");
    }

    #[test]
    fn a_status_keeps_its_field() {
        let mut status = tonic::Status::invalid_argument("spec.url: must be https");
        status
            .metadata_mut()
            .insert(FIELD_METADATA_KEY, "spec.url".parse().unwrap());
        let error = HttpError::from(status);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.field.as_deref(), Some("url"));
    }
}
