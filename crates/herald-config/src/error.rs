//! The config service's errors, and their one mapping to gRPC `Status`.

use herald_store::StoreError;
use tonic::{Code, Status, metadata::MetadataValue};

use crate::secrets::SecretsError;

/// Metadata key carrying the offending field of an InvalidArgument, for
/// clients that want it without parsing the message.
pub const FIELD_METADATA_KEY: &str = herald_proto::metadata::FIELD;
/// Metadata key of a throttled call's answer: whole seconds to wait before
/// trying again.
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error(
        "too many failed authentications from this address; retry in {} s",
        retry_after.as_secs().saturating_add(1)
    )]
    Throttled { retry_after: std::time::Duration },
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("the database is unavailable: {0}")]
    StoreUnavailable(#[source] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("the bus is unavailable: {0}")]
    Bus(#[from] herald_bus::BusError),
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

impl From<herald_proto::WireError> for ApiError {
    fn from(error: herald_proto::WireError) -> ApiError {
        ApiError::InvalidArgument {
            field: error.field.into_owned(),
            message: error.reason,
        }
    }
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl ToString) -> ApiError {
        ApiError::InvalidArgument {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            kind,
            id: id.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            StoreError::AlreadyExists { kind, id } => ApiError::AlreadyExists { kind, id },
            StoreError::VersionConflict {
                kind,
                id,
                expected,
                actual,
            } => ApiError::Aborted(format!(
                "{kind} {id} changed since it was read (etag {expected}, now {actual}): read it again and retry"
            )),
            other if other.is_unavailable() => ApiError::StoreUnavailable(other),
            other => ApiError::Store(other),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let code = match &error {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::AlreadyExists { .. } => Code::AlreadyExists,
            ApiError::Aborted(_) => Code::Aborted,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::Throttled { .. } => Code::ResourceExhausted,
            ApiError::Bus(_) => Code::Unavailable,
            ApiError::StoreUnavailable(source) => {
                // The cause stays in the log; callers learn only to retry.
                tracing::warn!(error = %source, "the database is unavailable");
                return Status::unavailable("the database is unavailable; retry shortly");
            }
            ApiError::Store(_) | ApiError::Secrets(_) | ApiError::Corrupt { .. } => {
                // Internal details stay in the log; callers get an opaque message.
                tracing::error!(error = %error, "config service internal error");
                return Status::internal("internal error; see the config service's log");
            }
        };
        let mut status = Status::new(code, error.to_string());
        if let ApiError::Throttled { retry_after } = &error {
            // Whole seconds, rounded up, as HTTP's Retry-After has them.
            let seconds = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
            status
                .metadata_mut()
                .insert(RETRY_AFTER_METADATA_KEY, MetadataValue::from(seconds));
        }
        if let ApiError::InvalidArgument { field, .. } = &error
            && let Ok(value) = MetadataValue::try_from(field.as_str())
        {
            status.metadata_mut().insert(FIELD_METADATA_KEY, value);
        }
        status
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
