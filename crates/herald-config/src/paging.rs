//! Page sizes and opaque page tokens.
//!
//! A token is the keyset position after the last item returned, so paging
//! stays stable while rows are inserted: nothing is skipped or repeated.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

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

pub fn decode<T: DeserializeOwned>(token: &str) -> Result<Option<T>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || ApiError::invalid("page_token", "not a token returned by this API");
    let json = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| invalid())
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
        assert_eq!(decode::<String>(&token).unwrap().unwrap(), "ep_123");
        assert_eq!(decode::<String>("").unwrap(), None);
        let error = decode::<String>("%%%").unwrap_err().to_string();
        assert!(error.starts_with("page_token:"), "{error}");
    }

    #[test]
    fn a_full_page_carries_the_next_token() {
        let (page, token) = split_page(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page, [1, 2]);
        assert_eq!(decode::<i32>(&token).unwrap(), Some(2));
        let (page, token) = split_page(vec![1, 2], 2, |n| *n);
        assert_eq!(page, [1, 2]);
        assert!(token.is_empty());
    }
}
