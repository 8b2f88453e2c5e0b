//! What a page answers when something goes wrong: the one mapping from a
//! gRPC `Status` to a console response.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use tonic::Code;

use crate::render;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No session, or an expired one: sign in (again).
    #[error("signed out")]
    SignedOut,
    #[error("the form expired")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    /// A form body over [`crate::MAX_FORM_BYTES`].
    #[error("the form is too large")]
    TooLarge,
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PageError::SignedOut => return Redirect::to(crate::SIGN_IN_PATH).into_response(),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Go back, reload the page and submit it again.".to_owned(),
            ),
            PageError::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            PageError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "This form is too large",
                format!(
                    "Herald reads forms of up to {} KiB. Go back and send less.",
                    crate::MAX_FORM_BYTES / 1024
                ),
            ),
            PageError::Status(status) => match status.code() {
                // A revoked or expired token ends the session.
                Code::Unauthenticated => {
                    return Redirect::to(crate::SIGN_IN_PATH).into_response();
                }
                Code::NotFound => (
                    StatusCode::NOT_FOUND,
                    "Not found",
                    status.message().to_owned(),
                ),
                Code::PermissionDenied => (
                    StatusCode::FORBIDDEN,
                    "Not allowed",
                    format!(
                        "{} Sign in with a token that may change the configuration.",
                        status.message()
                    ),
                ),
                Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => (
                    StatusCode::BAD_REQUEST,
                    "That did not work",
                    status.message().to_owned(),
                ),
                Code::AlreadyExists | Code::Aborted => (
                    StatusCode::CONFLICT,
                    "Changed meanwhile",
                    status.message().to_owned(),
                ),
                Code::ResourceExhausted => {
                    let mut response = crate::html_page(render::error_page(
                        "Too many attempts",
                        &format!("{} Wait a moment, then try again.", status.message()),
                    ));
                    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    if let Some(retry_after) = status
                        .metadata()
                        .get(herald_config::RETRY_AFTER_METADATA_KEY)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| HeaderValue::from_str(value).ok())
                    {
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, retry_after);
                    }
                    return response;
                }
                Code::Unavailable | Code::DeadlineExceeded => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Herald is busy",
                    format!("{} Try again in a moment.", status.message()),
                ),
                _ => {
                    tracing::error!(%status, "console: the config service failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong",
                        "Herald could not do that; the details are in its log.".to_owned(),
                    )
                }
            },
            PageError::Internal(reason) => {
                tracing::error!(%reason, "console: internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Herald could not do that; the details are in its log.".to_owned(),
                )
            }
        };
        let mut response = crate::html_page(render::error_page(title, &message));
        *response.status_mut() = status;
        response
    }
}
