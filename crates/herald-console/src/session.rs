//! Sessions and CSRF protection.
//!
//! The session cookie holds the tenant token sealed with the master key
//! (XChaCha20-Poly1305, under its own context), with its CSRF token and
//! issue time: nothing is stored server-side, so every replica accepts it
//! and a restart signs nobody out. The cookie is HttpOnly, SameSite=Strict
//! and scoped to `/console`; it is Secure when the request came over HTTPS.
//!
//! Every form carries a CSRF token that must match: the session's, or before
//! sign-in a random one double-submitted in its own cookie.

use std::time::Duration;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use herald_api::Credentials;
use herald_config::secrets::{MasterKey, random_bytes};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::{Console, error::PageError};

pub const SESSION_COOKIE: &str = "herald_session";
pub const SIGN_IN_CSRF_COOKIE: &str = "herald_sign_in_csrf";
pub const FLASH_COOKIE: &str = "herald_flash";
/// Sessions end after this, whatever the token's own lifetime.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
const SESSION_CONTEXT: &str = "herald-console-session";

#[derive(Serialize, Deserialize)]
struct SealedSession {
    token: String,
    csrf: String,
    issued_at: i64,
}

/// A signed-in browser: the tenant token it acts with, and its CSRF token.
#[derive(Clone)]
pub struct Session {
    pub credentials: Credentials,
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `presented` (a form's `csrf` field) is this session's token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        if tokens_match(presented, &self.csrf) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }
}

pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// 32 random bytes, base64url: CSRF tokens.
pub fn random_token() -> Result<String, PageError> {
    let bytes = random_bytes::<32>().map_err(|error| PageError::Internal(error.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The session cookie's value for `token`, and the session's CSRF token.
pub fn seal(key: &MasterKey, token: &str) -> Result<(String, String), PageError> {
    let csrf = random_token()?;
    let session = SealedSession {
        token: token.to_owned(),
        csrf: csrf.clone(),
        issued_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    let json =
        serde_json::to_vec(&session).map_err(|error| PageError::Internal(error.to_string()))?;
    let sealed = key
        .encrypt(SESSION_CONTEXT, &json)
        .map_err(|error| PageError::Internal(error.to_string()))?;
    Ok((URL_SAFE_NO_PAD.encode(sealed), csrf))
}

fn open(key: &MasterKey, value: &str) -> Option<Session> {
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    let json = key.decrypt(SESSION_CONTEXT, &sealed).ok()?;
    let session: SealedSession = serde_json::from_slice(&json).ok()?;
    let age = OffsetDateTime::now_utc()
        .unix_timestamp()
        .saturating_sub(session.issued_at);
    let lifetime = i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    if !(0..lifetime).contains(&age) {
        return None;
    }
    Some(Session {
        credentials: Credentials::bearer(&session.token),
        csrf: session.csrf,
    })
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached us over HTTPS (directly or through a proxy
/// that says so), which makes cookies Secure.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` for `/console`; `max_age` zero deletes it.
pub fn set_cookie(
    request_headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: Duration,
) -> HeaderValue {
    let secure = if over_https(request_headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{name}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl FromRequestParts<Console> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, PageError> {
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|value| open(&console.key, value))
            .ok_or(PageError::SignedOut)
    }
}

/// The optional session, for the sign-in page.
pub fn current(headers: &HeaderMap, console: &Console) -> Option<Session> {
    cookie(headers, SESSION_COOKIE).and_then(|value| open(&console.key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn a_sealed_session_opens_only_under_its_key() {
        let key = key();
        let (value, csrf) = seal(&key, "hrld_abc").unwrap();
        let session = open(&key, &value).unwrap();
        assert_eq!(session.csrf, csrf);
        assert!(session.check_csrf(&csrf).is_ok());
        assert!(session.check_csrf("other").is_err());
        assert!(open(&self::key(), &value).is_none());
        assert!(open(&key, "garbage").is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; herald_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn an_empty_expected_csrf_matches_nothing() {
        assert!(!tokens_match("", ""));
        assert!(tokens_match("abc", "abc"));
    }
}
