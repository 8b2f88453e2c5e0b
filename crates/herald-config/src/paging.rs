//! Page sizes and opaque page tokens.
//!
//! A token is the keyset position after the last item returned, so paging
//! stays stable while rows are inserted: nothing is skipped or repeated.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use herald_store::AttemptCursor;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;

use crate::error::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

pub fn page_size(requested: u32) -> Result<u64, ApiError> {
    match requested {
        0 => Ok(u64::from(DEFAULT_PAGE_SIZE)),
        size if size > MAX_PAGE_SIZE => Err(ApiError::invalid(
            "page_size",
            format!("{size} is over the maximum of {MAX_PAGE_SIZE}"),
        )),
        size => Ok(u64::from(size)),
    }
}

pub fn encode<T: Serialize>(position: &T) -> String {
    // Serialising plain structs of strings and integers cannot fail.
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Page tokens come back from clients, so each list decodes its own with one
/// fallible function below: whatever the bytes, the answer is a position or
/// an `InvalidArgument` naming `page_token`, never a panic.
fn decode<T: DeserializeOwned>(token: &str) -> Result<Option<T>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid_token())?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| invalid_token())
}

fn invalid_token() -> ApiError {
    ApiError::invalid("page_token", "not a token returned by this API")
}

/// Tenants, tokens, devices and endpoints: the last id returned.
pub fn decode_id_after(token: &str) -> Result<Option<String>, ApiError> {
    decode(token)
}

/// The keyset position of a page of event types: whether the last one was
/// from the catalog, and its name.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventTypePosition(pub bool, pub String);

pub fn decode_event_type_after(token: &str) -> Result<Option<EventTypePosition>, ApiError> {
    decode(token)
}

/// The keyset position of a page of attempts, newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttemptPosition {
    pub at_micros: i128,
    pub id: String,
}

impl AttemptPosition {
    pub fn of(cursor: &AttemptCursor) -> AttemptPosition {
        AttemptPosition {
            at_micros: cursor.attempted_at.unix_timestamp_nanos() / 1_000,
            id: cursor.id.clone(),
        }
    }
}

pub fn decode_attempt_after(token: &str) -> Result<Option<AttemptCursor>, ApiError> {
    let Some(position) = decode::<AttemptPosition>(token)? else {
        return Ok(None);
    };
    let attempted_at = position
        .at_micros
        .checked_mul(1_000)
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .ok_or_else(invalid_token)?;
    Ok(Some(AttemptCursor {
        attempted_at,
        id: position.id,
    }))
}

/// The position of a page of dead letters: the stream sequence to read from.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterPosition {
    pub sequence: u64,
}

/// The first stream sequence of the page (1 for the first page).
pub fn decode_dead_letter_after(token: &str) -> Result<u64, ApiError> {
    match decode::<DeadLetterPosition>(token)? {
        None => Ok(1),
        Some(DeadLetterPosition { sequence: 0 }) => Err(invalid_token()),
        Some(DeadLetterPosition { sequence }) => Ok(sequence),
    }
}

/// Splits `fetched` (queried with `size + 1` rows) into the page and the
/// token of the next one.
pub fn split_page<T, P: Serialize>(
    mut fetched: Vec<T>,
    size: u64,
    position: impl Fn(&T) -> P,
) -> (Vec<T>, String) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if fetched.len() > size {
        fetched.truncate(size);
        let token = fetched.last().map(|last| encode(&position(last)));
        (fetched, token.unwrap_or_default())
    } else {
        (fetched, String::new())
    }
}

#[cfg(test)]
mod tests {
    use proptest::{prelude::*, test_runner::TestCaseError};

    use super::*;

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(500).unwrap(), 500);
        let error = page_size(501).unwrap_err().to_string();
        assert!(error.starts_with("page_size:"), "{error}");
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = encode(&"ep_123".to_owned());
        assert_eq!(decode_id_after(&token).unwrap().unwrap(), "ep_123");
        assert_eq!(decode_id_after("").unwrap(), None);
        let error = decode_id_after("%%%").unwrap_err().to_string();
        assert!(error.starts_with("page_token:"), "{error}");
    }

    #[test]
    fn an_attempt_position_out_of_time_is_refused() {
        for at_micros in [i128::MAX, i128::MIN, i128::from(i64::MAX) * 1_000] {
            let token = encode(&AttemptPosition {
                at_micros,
                id: "att_x".into(),
            });
            let error = decode_attempt_after(&token).unwrap_err().to_string();
            assert!(error.starts_with("page_token:"), "{error}");
        }
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let cursor = AttemptCursor {
            attempted_at: now,
            id: "att_x".into(),
        };
        let token = encode(&AttemptPosition::of(&cursor));
        assert_eq!(
            decode_attempt_after(&token).unwrap().unwrap().attempted_at,
            now
        );
    }

    #[test]
    fn a_full_page_carries_the_next_token() {
        let (page, token) = split_page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page, [1, 2]);
        assert_eq!(decode_id_after(&token).unwrap().as_deref(), Some("2"));
        let (page, token) = split_page(vec![1, 2], 2, |n| *n);
        assert_eq!(page, [1, 2]);
        assert!(token.is_empty());
    }

    fn refused_as_page_token<T: std::fmt::Debug>(
        result: Result<T, ApiError>,
    ) -> Result<(), TestCaseError> {
        if let Err(error) = result {
            prop_assert!(
                matches!(&error, ApiError::InvalidArgument { field, .. } if field == "page_token"),
                "{error}"
            );
        }
        Ok(())
    }

    fn every_list(token: &str) -> Result<(), TestCaseError> {
        refused_as_page_token(decode_id_after(token))?;
        refused_as_page_token(decode_event_type_after(token))?;
        refused_as_page_token(decode_attempt_after(token))?;
        refused_as_page_token(decode_dead_letter_after(token))
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(token in ".*") {
            every_list(&token)?;
        }

        #[test]
        fn arbitrary_encoded_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            every_list(&URL_SAFE_NO_PAD.encode(bytes))?;
        }

        #[test]
        fn tampered_positions_never_panic(
            at_micros in any::<i128>(),
            sequence in any::<u64>(),
            catalog in any::<bool>(),
            id in ".*",
        ) {
            every_list(&encode(&AttemptPosition { at_micros, id: id.clone() }))?;
            every_list(&encode(&DeadLetterPosition { sequence }))?;
            every_list(&encode(&EventTypePosition(catalog, id)))?;
            every_list(&encode(&serde_json::json!({ "at_micros": at_micros.to_string(), "sequence": -1 })))?;
        }
    }
}
