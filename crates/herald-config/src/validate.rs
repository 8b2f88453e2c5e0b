//! herald-core's input rules applied to request fields, with errors that
//! name the field.

use herald_core::text::{self, Permit};

use crate::error::{ApiError, ApiResult};

/// Refuses control characters in a text field beyond what `permit` allows.
pub fn check_text(field: &str, value: &str, permit: Permit) -> ApiResult<()> {
    text::check(value, permit).map_err(|error| ApiError::invalid(field, error))
}

/// An id from a request is looked up, never stored; one holding a control
/// character cannot name anything (and PostgreSQL refuses NUL in a query).
pub fn check_id(field: &str, value: &str) -> ApiResult<()> {
    check_text(field, value, Permit::SingleLine)
}
