//! Endpoint secrets, signature schemes, delivery headers and the Standard
//! Webhooks verifier.
//!
//! Everything here is a pure function of the secret, the message id, the
//! timestamp and the body, so signatures are reproducible in tests and by
//! customers.
//!
//! Design decisions:
//! - A secret is stored exactly as the customer (or Herald) configured it, as an
//!   [`EndpointSecret`]. What the HMAC key is depends on the scheme:
//!   - `standard` ([Standard Webhooks](https://www.standardwebhooks.com/)):
//!     the base64-decoded bytes after `whsec_`, as the specification and its
//!     reference libraries do. Herald generates such secrets with
//!     [`SigningSecret`].
//!   - `sha256-hex` (GitHub-style `sha256=<hex>`): the UTF-8 bytes of the whole
//!     secret string. Receivers migrating from other platforms use the literal
//!     string as the key, whether or not it looks like `whsec_…`.
//!   - `hex`: as `sha256-hex` without the `sha256=` prefix (Kapso's form).
//!   - `shared-secret`: no signature; the secret string itself is sent in
//!     `X-Webhook-Secret`, for receivers that can only compare a header.
//! - Secret rotation: `secrets` lists the current secret first, then any
//!   previous secrets still inside their overlap window.
//!   - `standard` sends one space-separated `v1,…` entry per secret, as the
//!     specification allows, and verifiers accept any of them.
//!   - `sha256-hex` and `hex` send only the current secret's signature in the configured
//!     header, because most receivers compare that header's whole value with
//!     one expected string; the previous secrets' signatures go in
//!     `<header>-Previous` (comma-separated when there is more than one), so a
//!     receiver mid-rotation can check both headers.
//!   - `shared-secret` sends only the current secret: sending old ones would
//!     hand out secrets that are being retired.
//! - Secrets never appear in `Debug` output or error messages.
//! - The verifier compares signatures in constant time (`subtle`) and allows
//!   [`TIMESTAMP_TOLERANCE_SECONDS`] of clock skew either way.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::event::Event;
use crate::excerpt::excerpt;
use crate::id::DeliveryId;

/// Prefix of Standard Webhooks secrets.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";
/// Shortest decoded key accepted for the standard scheme (192 bits).
pub const MIN_STANDARD_KEY_BYTES: usize = 24;
/// Longest decoded key accepted for the standard scheme (one SHA-256 block).
pub const MAX_STANDARD_KEY_BYTES: usize = 64;
/// Longest secret string accepted, in bytes (secrets are ASCII).
pub const MAX_SECRET_LEN: usize = 256;
/// Header the `sha256-hex` scheme uses unless configured otherwise.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Herald-Signature";
/// Suffix of the header carrying previous secrets' `sha256-hex` signatures.
pub const PREVIOUS_SIGNATURE_HEADER_SUFFIX: &str = "-Previous";
/// Header the `shared-secret` scheme sends the secret in.
pub const SHARED_SECRET_HEADER: &str = "X-Webhook-Secret";
/// How far `webhook-timestamp` may be from the verifier's clock, either way.
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 5 * 60;
/// Longest configurable signature header name.
pub const MAX_HEADER_NAME_LEN: usize = 64;
/// Longest message id accepted by [`sign`].
pub const MAX_MESSAGE_ID_LEN: usize = 256;
/// Longest version string accepted for `User-Agent`.
pub const MAX_USER_AGENT_VERSION_LEN: usize = 64;

/// Header names Herald sets itself on deliveries, or that HTTP reserves for
/// the connection, which neither a signature header nor a custom header may
/// take: one would be dropped or overwritten on the way (a `traceparent`
/// signature header switched signing off), or would break the request.
/// Lowercase.
const RESERVED_HEADER_NAMES: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "user-agent",
    "x-idempotency-key",
    "x-webhook-secret",
    "traceparent",
    "tracestate",
    // Hop-by-hop (RFC 9110 section 7.6.1) and HTTP/1.1 framing.
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Prefixes of reserved header names: Standard Webhooks' `webhook-*`,
/// Herald's own `x-herald-*`, and the proxy's `proxy-*`. Lowercase.
const RESERVED_HEADER_PREFIXES: &[&str] = &["webhook-", "x-herald-", "proxy-"];

/// Whether `name` is a header Herald sets itself or HTTP reserves, in any
/// case.
#[must_use]
pub fn is_reserved_header_name(name: &str) -> bool {
    let lowercase = name.to_ascii_lowercase();
    RESERVED_HEADER_NAMES.contains(&lowercase.as_str())
        || RESERVED_HEADER_PREFIXES
            .iter()
            .any(|prefix| lowercase.starts_with(prefix))
}

/// `whsec_` secrets are accepted with or without base64 padding: both forms
/// circulate, and the padding carries no information.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// SHA-256's block size, the length HMAC pads keys to.
const SHA256_BLOCK_BYTES: usize = 64;

/// Why a secret was refused. Messages never include the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret is empty.
    #[error("secret is empty")]
    Empty,
    /// The secret is longer than [`MAX_SECRET_LEN`].
    #[error("secret is {length} bytes long, the limit is {MAX_SECRET_LEN}")]
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The secret has a space, control or non-ASCII character.
    #[error(
        "secret has a character at byte {position} that is not visible ASCII \
         (spaces, control characters and non-ASCII are not allowed)"
    )]
    InvalidCharacter {
        /// Byte offset of the offending character.
        position: usize,
    },
    /// The standard scheme needs a `whsec_` secret.
    #[error(
        "the standard signing scheme (Standard Webhooks) needs a secret of the form \
         whsec_<base64 of {MIN_STANDARD_KEY_BYTES} to {MAX_STANDARD_KEY_BYTES} bytes>; \
         leave it empty to have one generated"
    )]
    NotStandardForm,
    /// The part after `whsec_` is not base64.
    #[error(
        "secret is not valid: the part after whsec_ is not standard base64 (the standard \
         signing scheme needs whsec_<base64 of {MIN_STANDARD_KEY_BYTES} to \
         {MAX_STANDARD_KEY_BYTES} bytes>)"
    )]
    InvalidBase64,
    /// The decoded key has the wrong length.
    #[error(
        "secret key is {length} bytes once decoded; the standard signing scheme needs \
         whsec_<base64 of {MIN_STANDARD_KEY_BYTES} to {MAX_STANDARD_KEY_BYTES} bytes>"
    )]
    KeyLength {
        /// Decoded length in bytes.
        length: usize,
    },
}

/// Why a scheme configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// Not one of `standard`, `sha256-hex`, `hex`, `shared-secret`.
    #[error(
        "unknown signing scheme {value:?}: expected one of standard, sha256-hex, hex, \
         shared-secret"
    )]
    UnknownScheme {
        /// Excerpt of the refused name.
        value: String,
    },
    /// Only `sha256-hex` and `hex` take a header name.
    #[error("signing scheme {scheme} does not take a header name (got {header:?})")]
    UnexpectedHeader {
        /// The scheme name.
        scheme: &'static str,
        /// Excerpt of the header name given.
        header: String,
    },
    /// The header name is empty.
    #[error("signature header name is empty")]
    EmptyHeaderName,
    /// The header name is longer than [`MAX_HEADER_NAME_LEN`].
    #[error("signature header name {name:?} is longer than {MAX_HEADER_NAME_LEN} characters")]
    HeaderNameTooLong {
        /// Excerpt of the refused name.
        name: String,
    },
    /// The header name is not an HTTP token.
    #[error(
        "signature header name {name:?} is not a valid HTTP header name: {character:?} is not \
         allowed (letters, digits and !#$%&'*+-.^_`|~ are)"
    )]
    InvalidHeaderName {
        /// Excerpt of the refused name.
        name: String,
        /// The first offending character.
        character: char,
    },
    /// The header name is one Herald sets itself or HTTP reserves.
    #[error(
        "signature header name {name:?} is reserved: Herald sets that header itself or HTTP \
         reserves it (content-*, host, traceparent, tracestate, webhook-*, x-herald-*, \
         x-idempotency-key and hop-by-hop headers are)"
    )]
    ReservedHeaderName {
        /// The refused name.
        name: String,
    },
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// No secret was given.
    #[error("cannot sign: the endpoint has no secret")]
    NoSecrets,
    /// A secret does not suit the scheme.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The scheme is misconfigured.
    #[error(transparent)]
    Scheme(#[from] SchemeError),
    /// The message id cannot be sent as a header value.
    #[error(
        "message id {value:?} is invalid: it must be 1 to {MAX_MESSAGE_ID_LEN} bytes of \
         visible ASCII"
    )]
    InvalidMessageId {
        /// Excerpt of the refused id.
        value: String,
    },
    /// The timestamp is before 1970.
    #[error("timestamp {timestamp} is invalid: it must be non-negative unix seconds")]
    NegativeTimestamp {
        /// The refused timestamp.
        timestamp: i64,
    },
    /// The `User-Agent` version cannot be sent as a header value.
    #[error(
        "user agent version {value:?} is invalid: it must be 1 to {MAX_USER_AGENT_VERSION_LEN} \
         bytes of visible ASCII"
    )]
    InvalidUserAgentVersion {
        /// Excerpt of the refused version.
        value: String,
    },
}

/// Why a Standard Webhooks signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The secret is not a usable `whsec_` secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// `webhook-timestamp` is not unix seconds.
    #[error("webhook-timestamp {value:?} is not a unix timestamp in seconds")]
    InvalidTimestamp {
        /// Excerpt of the refused header value.
        value: String,
    },
    /// `webhook-timestamp` is older than the tolerance allows.
    #[error(
        "webhook-timestamp {timestamp} is too old: it is {age_seconds} s before now, the \
         tolerance is {TIMESTAMP_TOLERANCE_SECONDS} s"
    )]
    TimestampTooOld {
        /// The header's timestamp.
        timestamp: i64,
        /// How far before now it is.
        age_seconds: i64,
    },
    /// `webhook-timestamp` is further in the future than the tolerance allows.
    #[error(
        "webhook-timestamp {timestamp} is in the future: it is {ahead_seconds} s after now, the \
         tolerance is {TIMESTAMP_TOLERANCE_SECONDS} s"
    )]
    TimestampInFuture {
        /// The header's timestamp.
        timestamp: i64,
        /// How far after now it is.
        ahead_seconds: i64,
    },
    /// `webhook-signature` is empty, has an entry without a `version,`
    /// prefix, or a `v1` entry that is not base64 — and no entry matched.
    #[error("webhook-signature is malformed: expected space-separated \"v1,<base64>\" entries")]
    MalformedSignature,
    /// No `v1` signature matches.
    #[error("no webhook-signature entry matches the payload")]
    NoMatchingSignature,
}

/// A secret as configured on an endpoint: 1 to [`MAX_SECRET_LEN`] bytes of
/// visible ASCII, in `whsec_<base64>` form or not. See the module
/// documentation for how each scheme uses it.
#[derive(Clone)]
pub struct EndpointSecret(String);

impl EndpointSecret {
    /// Validates and wraps a configured secret.
    pub fn parse(value: &str) -> Result<Self, SecretError> {
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        if value.len() > MAX_SECRET_LEN {
            return Err(SecretError::TooLong {
                length: value.len(),
            });
        }
        if let Some(position) = value.bytes().position(|byte| !byte.is_ascii_graphic()) {
            return Err(SecretError::InvalidCharacter { position });
        }
        Ok(Self(value.to_owned()))
    }

    /// The secret string, for storage and for the `shared-secret` scheme.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key of the standard scheme: the base64-decoded bytes after
    /// `whsec_`, which must be 24 to 64 bytes.
    pub fn standard_key(&self) -> Result<Vec<u8>, SecretError> {
        let encoded = self
            .0
            .strip_prefix(STANDARD_SECRET_PREFIX)
            .ok_or(SecretError::NotStandardForm)?;
        // The decode error names the offending byte, which would leak part of
        // the secret, so it is dropped.
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        if !(MIN_STANDARD_KEY_BYTES..=MAX_STANDARD_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::KeyLength { length: key.len() });
        }
        Ok(key)
    }
}

impl fmt::Debug for EndpointSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("EndpointSecret(***)")
    }
}

/// A Standard Webhooks secret, `whsec_<base64 key>`, as Herald generates it.
///
/// It has no `Display`, so it cannot end up in a log line through `{}`; use
/// [`SigningSecret::expose`] where the text is really needed.
#[derive(Clone)]
pub struct SigningSecret {
    text: String,
    key: Vec<u8>,
}

impl SigningSecret {
    /// Parses `whsec_<base64>` with a 24- to 64-byte key.
    pub fn parse(value: &str) -> Result<Self, SecretError> {
        let secret = EndpointSecret::parse(value)?;
        let key = secret.standard_key()?;
        Ok(Self {
            text: secret.0,
            key,
        })
    }

    /// Wraps random key bytes (24 to 64 of them) supplied by the caller, who
    /// owns the random source.
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if !(MIN_STANDARD_KEY_BYTES..=MAX_STANDARD_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::KeyLength { length: key.len() });
        }
        Ok(Self {
            text: format!("{STANDARD_SECRET_PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        })
    }

    /// The `whsec_…` text, for storage and for showing to the customer once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The decoded HMAC key.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SigningSecret(***)")
    }
}

impl From<SigningSecret> for EndpointSecret {
    fn from(secret: SigningSecret) -> Self {
        EndpointSecret(secret.text)
    }
}

/// How deliveries to an endpoint are signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum SigningScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    #[default]
    Standard,
    /// `<header>: sha256=<hex HMAC-SHA256 of the body>`.
    Sha256Hex {
        /// The header carrying the signature, an HTTP token.
        header: String,
    },
    /// `<header>: <hex HMAC-SHA256 of the body>`, without a prefix: what
    /// receivers written for Kapso compare.
    Hex {
        /// The header carrying the signature, an HTTP token.
        header: String,
    },
    /// `X-Webhook-Secret: <secret>`.
    SharedSecret,
}

impl SigningScheme {
    /// The configuration name: `standard`, `sha256-hex`, `hex` or
    /// `shared-secret`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            SigningScheme::Standard => "standard",
            SigningScheme::Sha256Hex { .. } => "sha256-hex",
            SigningScheme::Hex { .. } => "hex",
            SigningScheme::SharedSecret => "shared-secret",
        }
    }

    /// Builds a scheme from its configuration name and optional header name;
    /// `sha256-hex` and `hex` without a header use
    /// [`DEFAULT_SIGNATURE_HEADER`].
    pub fn parse(name: &str, header: Option<&str>) -> Result<Self, SchemeError> {
        let scheme = match name {
            "standard" => SigningScheme::Standard,
            "shared-secret" => SigningScheme::SharedSecret,
            "sha256-hex" => SigningScheme::Sha256Hex {
                header: header.unwrap_or(DEFAULT_SIGNATURE_HEADER).to_owned(),
            },
            "hex" => SigningScheme::Hex {
                header: header.unwrap_or(DEFAULT_SIGNATURE_HEADER).to_owned(),
            },
            _ => {
                return Err(SchemeError::UnknownScheme {
                    value: excerpt(name),
                });
            }
        };
        if let (Some(header), SigningScheme::Standard | SigningScheme::SharedSecret) =
            (header, &scheme)
        {
            return Err(SchemeError::UnexpectedHeader {
                scheme: scheme.as_str(),
                header: excerpt(header),
            });
        }
        scheme.validate()?;
        Ok(scheme)
    }

    /// The configured signature header, for `sha256-hex` and `hex`.
    #[must_use]
    pub fn header_name(&self) -> Option<&str> {
        match self {
            SigningScheme::Sha256Hex { header } | SigningScheme::Hex { header } => Some(header),
            SigningScheme::Standard | SigningScheme::SharedSecret => None,
        }
    }

    /// Checks the header name of `sha256-hex` and `hex`: an HTTP token (RFC
    /// 9110) of at most [`MAX_HEADER_NAME_LEN`] characters that Herald does
    /// not set itself.
    pub fn validate(&self) -> Result<(), SchemeError> {
        match self {
            SigningScheme::Sha256Hex { header } | SigningScheme::Hex { header } => {
                validate_header_name(header)
            }
            SigningScheme::Standard | SigningScheme::SharedSecret => Ok(()),
        }
    }

    /// Refuses a secret this scheme cannot sign with, so configuration that
    /// would fail every delivery is refused when it is made: `standard`
    /// needs `whsec_<base64 of 24 to 64 bytes>`; `sha256-hex` and
    /// `shared-secret` use the secret string as it is.
    pub fn check_secret(&self, secret: &EndpointSecret) -> Result<(), SecretError> {
        match self {
            SigningScheme::Standard => secret.standard_key().map(|_| ()),
            SigningScheme::Sha256Hex { .. }
            | SigningScheme::Hex { .. }
            | SigningScheme::SharedSecret => Ok(()),
        }
    }
}

/// Words that name an authentication scheme at the start of a header value
/// (`Bearer`, `Basic`, `Token`...) are at most this long.
const MAX_AUTH_SCHEME_CHARS: usize = 20;
/// A masked value shows its last characters only when it is at least this
/// long, so at most a third of it is ever shown.
const MIN_CHARS_TO_SHOW_TAIL: usize = 12;
const SHOWN_TAIL_CHARS: usize = 4;

/// A custom header value as a reader without access to credentials sees it:
/// the authentication scheme word kept (`Bearer ****`), else `****` and the
/// last four characters of a long value, else `****`. Enough to recognise
/// which credential is configured, not to use it.
#[must_use]
pub fn mask_header_value(value: &str) -> String {
    const MASK: &str = "****";
    let value = value.trim();
    if let Some((word, rest)) = value.split_once(' ')
        && !word.is_empty()
        && word.chars().count() <= MAX_AUTH_SCHEME_CHARS
        && word
            .chars()
            .all(|character| character.is_ascii_alphabetic())
        && !rest.trim().is_empty()
    {
        return format!("{word} {MASK}");
    }
    let count = value.chars().count();
    if count < MIN_CHARS_TO_SHOW_TAIL {
        return MASK.to_owned();
    }
    let tail: String = value
        .chars()
        .skip(count.saturating_sub(SHOWN_TAIL_CHARS))
        .collect();
    format!("{MASK}{tail}")
}

/// Most custom headers an endpoint may send.
pub const MAX_CUSTOM_HEADERS: usize = 32;
/// Longest custom header value, in bytes.
pub const MAX_CUSTOM_HEADER_VALUE_LEN: usize = 2048;

/// Why an endpoint's custom headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomHeaderError {
    /// More than [`MAX_CUSTOM_HEADERS`].
    #[error("at most {MAX_CUSTOM_HEADERS} custom headers are allowed, got {count}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// Not an HTTP token, or too long.
    #[error(
        "custom header name {name:?} is not a valid HTTP header name (letters, digits and \
         !#$%&'*+-.^_`|~, at most {MAX_HEADER_NAME_LEN} characters)"
    )]
    InvalidName {
        /// Excerpt of the refused name.
        name: String,
    },
    /// Herald sets this header itself (including the endpoint's signature
    /// header and trace context), or HTTP reserves it.
    #[error("custom header {name:?} is reserved: Herald sets it itself or HTTP reserves it")]
    Reserved {
        /// The refused name.
        name: String,
    },
    /// The value has a control character or is too long.
    #[error(
        "value of custom header {name:?} must be at most {MAX_CUSTOM_HEADER_VALUE_LEN} bytes \
         without control characters"
    )]
    InvalidValue {
        /// The header's name.
        name: String,
    },
}

/// Checks the headers an endpoint adds to every delivery: valid names and
/// values, and none that Herald sets itself, so a custom header can never
/// forge or shadow a signature.
pub fn validate_custom_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    scheme: &SigningScheme,
) -> Result<(), CustomHeaderError> {
    let headers: Vec<(&str, &str)> = headers.into_iter().collect();
    if headers.len() > MAX_CUSTOM_HEADERS {
        return Err(CustomHeaderError::TooMany {
            count: headers.len(),
        });
    }
    let signature_header = scheme.header_name().map(str::to_ascii_lowercase);
    for (name, value) in headers {
        if name.is_empty()
            || name.chars().count() > MAX_HEADER_NAME_LEN
            || !name.chars().all(is_http_token_character)
        {
            return Err(CustomHeaderError::InvalidName {
                name: excerpt(name),
            });
        }
        let lowercase = name.to_ascii_lowercase();
        let shadows_signature = signature_header.as_deref().is_some_and(|header| {
            lowercase == header
                || lowercase
                    == format!(
                        "{header}{}",
                        PREVIOUS_SIGNATURE_HEADER_SUFFIX.to_ascii_lowercase()
                    )
        });
        if is_reserved_header_name(name) || shadows_signature {
            return Err(CustomHeaderError::Reserved {
                name: name.to_owned(),
            });
        }
        if value.len() > MAX_CUSTOM_HEADER_VALUE_LEN
            || crate::text::check(value, crate::text::Permit::Tab).is_err()
        {
            return Err(CustomHeaderError::InvalidValue {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

fn is_http_token_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(character)
}

fn validate_header_name(name: &str) -> Result<(), SchemeError> {
    if name.is_empty() {
        return Err(SchemeError::EmptyHeaderName);
    }
    if name.chars().count() > MAX_HEADER_NAME_LEN {
        return Err(SchemeError::HeaderNameTooLong {
            name: excerpt(name),
        });
    }
    if let Some(character) = name.chars().find(|&c| !is_http_token_character(c)) {
        return Err(SchemeError::InvalidHeaderName {
            name: excerpt(name),
            character,
        });
    }
    // The default is Herald's own name for this very header.
    if is_reserved_header_name(name) && !name.eq_ignore_ascii_case(DEFAULT_SIGNATURE_HEADER) {
        return Err(SchemeError::ReservedHeaderName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn is_visible_ascii_value(value: &str, max_len: usize) -> bool {
    !value.is_empty() && value.len() <= max_len && value.bytes().all(|byte| byte.is_ascii_graphic())
}

/// HMAC-SHA256 over the concatenation of `parts`.
///
/// The key is brought to SHA-256's block size exactly as RFC 2104 does (hashed
/// when longer, zero-padded otherwise), which lets the MAC be built with the
/// infallible fixed-size constructor instead of handling an error that cannot
/// happen.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block_key = [0u8; SHA256_BLOCK_BYTES];
    if key.len() > SHA256_BLOCK_BYTES {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut mac = <HmacSha256 as KeyInit>::new(&block_key.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The raw Standard Webhooks signature of `{id}.{timestamp}.{body}`.
fn standard_signature(key: &[u8], message_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let timestamp = timestamp.to_string();
    hmac_sha256(
        key,
        &[
            message_id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body,
        ],
    )
}

fn lowercase_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// `sha256=<hex>` keyed with the secret string's own bytes.
fn sha256_hex_value(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex_value(secret, body))
}

/// The lowercase hex HMAC-SHA256 of `body`, keyed with the secret string's
/// own bytes.
fn hex_value(secret: &str, body: &[u8]) -> String {
    lowercase_hex(&hmac_sha256(secret.as_bytes(), &[body]))
}

/// The current secret's signature in `header`, and the previous secrets'
/// (comma-separated) in `<header>-Previous` while they overlap.
fn header_signatures(
    header: &str,
    current: &EndpointSecret,
    previous: &[EndpointSecret],
    body: &[u8],
    value: fn(&str, &[u8]) -> String,
) -> Vec<(String, String)> {
    let mut headers = vec![(header.to_owned(), value(current.expose(), body))];
    if !previous.is_empty() {
        let values: Vec<String> = previous
            .iter()
            .map(|secret| value(secret.expose(), body))
            .collect();
        headers.push((
            format!("{header}{PREVIOUS_SIGNATURE_HEADER_SUFFIX}"),
            values.join(","),
        ));
    }
    headers
}

/// The signature headers for one delivery attempt.
///
/// `secrets` is the current secret first, then previous secrets still in their
/// overlap window; `timestamp` is unix seconds. See the module documentation
/// for what each scheme sends.
pub fn sign(
    scheme: &SigningScheme,
    secrets: &[EndpointSecret],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, SigningError> {
    scheme.validate()?;
    let Some((current, previous)) = secrets.split_first() else {
        return Err(SigningError::NoSecrets);
    };
    if !is_visible_ascii_value(message_id, MAX_MESSAGE_ID_LEN) {
        return Err(SigningError::InvalidMessageId {
            value: excerpt(message_id),
        });
    }
    if timestamp < 0 {
        return Err(SigningError::NegativeTimestamp { timestamp });
    }
    match scheme {
        SigningScheme::Standard => {
            let mut entries = Vec::with_capacity(secrets.len());
            for secret in secrets {
                let key = secret.standard_key()?;
                let signature = standard_signature(&key, message_id, timestamp, body);
                entries.push(format!("v1,{}", STANDARD.encode(signature)));
            }
            Ok(vec![
                ("webhook-id".to_owned(), message_id.to_owned()),
                ("webhook-timestamp".to_owned(), timestamp.to_string()),
                ("webhook-signature".to_owned(), entries.join(" ")),
            ])
        }
        SigningScheme::Sha256Hex { header } => Ok(header_signatures(
            header,
            current,
            previous,
            body,
            sha256_hex_value,
        )),
        SigningScheme::Hex { header } => Ok(header_signatures(
            header, current, previous, body, hex_value,
        )),
        SigningScheme::SharedSecret => Ok(vec![(
            SHARED_SECRET_HEADER.to_owned(),
            current.expose().to_owned(),
        )]),
    }
}

/// Every header of a delivery attempt: `Content-Type`, `User-Agent:
/// Herald/<version>`, `X-Herald-Event`, `X-Herald-Device` (when the event has
/// a device), `X-Idempotency-Key: <delivery id>`, then the signature headers
/// from [`sign`] with the delivery id as message id (so `webhook-id` is the
/// delivery id, stable across retries).
pub fn delivery_headers(
    scheme: &SigningScheme,
    secrets: &[EndpointSecret],
    delivery_id: &DeliveryId,
    event: &Event,
    timestamp: i64,
    body: &[u8],
    user_agent_version: &str,
) -> Result<Vec<(String, String)>, SigningError> {
    if !is_visible_ascii_value(user_agent_version, MAX_USER_AGENT_VERSION_LEN) {
        return Err(SigningError::InvalidUserAgentVersion {
            value: excerpt(user_agent_version),
        });
    }
    let signature_headers = sign(scheme, secrets, delivery_id.as_str(), timestamp, body)?;
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        (
            "User-Agent".to_owned(),
            format!("Herald/{user_agent_version}"),
        ),
        ("X-Herald-Event".to_owned(), event.event_type.to_string()),
    ];
    if let Some(device_id) = &event.device_id {
        headers.push(("X-Herald-Device".to_owned(), device_id.to_string()));
    }
    headers.push(("X-Idempotency-Key".to_owned(), delivery_id.to_string()));
    headers.extend(signature_headers);
    Ok(headers)
}

/// Parses `webhook-timestamp`: decimal digits only, as the specification's
/// libraries do.
fn parse_unix_seconds(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Verifies a Standard Webhooks delivery the way a receiver would.
///
/// The timestamp must be within [`TIMESTAMP_TOLERANCE_SECONDS`] of
/// `now_unix`, either way. `webhook_signature` may hold several
/// space-separated entries; the delivery verifies if any `v1` entry matches.
/// Entries of other versions (e.g. `v1a,…`) are skipped, so senders can add
/// new schemes without breaking old receivers.
pub fn verify_standard(
    secret: &EndpointSecret,
    webhook_id: &str,
    webhook_timestamp: &str,
    webhook_signature: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let timestamp =
        parse_unix_seconds(webhook_timestamp).ok_or_else(|| VerifyError::InvalidTimestamp {
            value: excerpt(webhook_timestamp),
        })?;
    let age_seconds = now_unix.saturating_sub(timestamp);
    if age_seconds > TIMESTAMP_TOLERANCE_SECONDS {
        return Err(VerifyError::TimestampTooOld {
            timestamp,
            age_seconds,
        });
    }
    if age_seconds < -TIMESTAMP_TOLERANCE_SECONDS {
        return Err(VerifyError::TimestampInFuture {
            timestamp,
            ahead_seconds: age_seconds.saturating_neg(),
        });
    }
    let key = secret.standard_key()?;
    let expected = standard_signature(&key, webhook_id, timestamp, body);

    let mut saw_entry = false;
    let mut saw_malformed_entry = false;
    for entry in webhook_signature
        .split(' ')
        .filter(|entry| !entry.is_empty())
    {
        saw_entry = true;
        let Some((version, encoded)) = entry.split_once(',') else {
            saw_malformed_entry = true;
            continue;
        };
        if version != "v1" {
            continue;
        }
        match STANDARD.decode(encoded) {
            Ok(candidate) => {
                if bool::from(candidate.as_slice().ct_eq(&expected)) {
                    return Ok(());
                }
            }
            Err(_) => saw_malformed_entry = true,
        }
    }
    if !saw_entry || saw_malformed_entry {
        Err(VerifyError::MalformedSignature)
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample_event;
    use proptest::prelude::*;

    // The Standard Webhooks reference libraries' test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_MESSAGE_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret(value: &str) -> EndpointSecret {
        EndpointSecret::parse(value).unwrap()
    }

    fn spec_secret() -> EndpointSecret {
        secret(SPEC_SECRET)
    }

    fn verify_spec(
        secret: &EndpointSecret,
        message_id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        verify_standard(secret, message_id, timestamp, signature, body, now)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn other_whsec_secret() -> EndpointSecret {
        SigningSecret::from_bytes(&[7u8; 32]).unwrap().into()
    }

    #[test]
    fn sign_reproduces_the_specification_vector() {
        let headers = sign(
            &SigningScheme::Standard,
            &[spec_secret()],
            SPEC_MESSAGE_ID,
            SPEC_TIMESTAMP,
            SPEC_PAYLOAD,
        )
        .unwrap();
        assert_eq!(
            headers,
            vec![
                ("webhook-id".to_owned(), SPEC_MESSAGE_ID.to_owned()),
                ("webhook-timestamp".to_owned(), "1614265330".to_owned()),
                ("webhook-signature".to_owned(), SPEC_SIGNATURE.to_owned()),
            ]
        );
    }

    #[test]
    fn verify_accepts_the_specification_vector() {
        verify_spec(
            &spec_secret(),
            SPEC_MESSAGE_ID,
            "1614265330",
            SPEC_SIGNATURE,
            SPEC_PAYLOAD,
            SPEC_TIMESTAMP,
        )
        .unwrap();
    }

    #[test]
    fn verify_tolerates_five_minutes_either_way_and_no_more() {
        let verify_at = |now| {
            verify_spec(
                &spec_secret(),
                SPEC_MESSAGE_ID,
                "1614265330",
                SPEC_SIGNATURE,
                SPEC_PAYLOAD,
                now,
            )
        };
        assert!(verify_at(SPEC_TIMESTAMP + 300).is_ok());
        assert!(verify_at(SPEC_TIMESTAMP - 300).is_ok());
        assert_eq!(
            verify_at(SPEC_TIMESTAMP + 301),
            Err(VerifyError::TimestampTooOld {
                timestamp: SPEC_TIMESTAMP,
                age_seconds: 301
            })
        );
        assert_eq!(
            verify_at(SPEC_TIMESTAMP - 301),
            Err(VerifyError::TimestampInFuture {
                timestamp: SPEC_TIMESTAMP,
                ahead_seconds: 301
            })
        );
        assert!(matches!(
            verify_at(i64::MAX),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            verify_at(i64::MIN),
            Err(VerifyError::TimestampInFuture { .. })
        ));
    }

    #[test]
    fn verify_refuses_tampering() {
        let now = SPEC_TIMESTAMP;
        assert_eq!(
            verify_spec(
                &spec_secret(),
                SPEC_MESSAGE_ID,
                "1614265330",
                SPEC_SIGNATURE,
                br#"{"test": 2432232315}"#,
                now
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify_spec(
                &spec_secret(),
                "msg_p5jXN8AQM9LWM0D4loKWxJeK",
                "1614265330",
                SPEC_SIGNATURE,
                SPEC_PAYLOAD,
                now
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify_spec(
                &spec_secret(),
                SPEC_MESSAGE_ID,
                "1614265331",
                SPEC_SIGNATURE,
                SPEC_PAYLOAD,
                now
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn verify_refuses_a_wrong_secret() {
        assert_eq!(
            verify_spec(
                &other_whsec_secret(),
                SPEC_MESSAGE_ID,
                "1614265330",
                SPEC_SIGNATURE,
                SPEC_PAYLOAD,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify_spec(
                &secret("plain-secret"),
                SPEC_MESSAGE_ID,
                "1614265330",
                SPEC_SIGNATURE,
                SPEC_PAYLOAD,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::Secret(SecretError::NotStandardForm))
        );
    }

    #[test]
    fn verify_accepts_the_right_signature_among_several() {
        let signatures =
            format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SPEC_SIGNATURE} v2,abc");
        verify_spec(
            &spec_secret(),
            SPEC_MESSAGE_ID,
            "1614265330",
            &signatures,
            SPEC_PAYLOAD,
            SPEC_TIMESTAMP,
        )
        .unwrap();
        let with_unknown_first = format!("v1a,{} {SPEC_SIGNATURE}", &SPEC_SIGNATURE[3..]);
        verify_spec(
            &spec_secret(),
            SPEC_MESSAGE_ID,
            "1614265330",
            &with_unknown_first,
            SPEC_PAYLOAD,
            SPEC_TIMESTAMP,
        )
        .unwrap();
    }

    #[test]
    fn verify_ignores_unknown_versions() {
        let only_unknown = format!("v1a,{}", &SPEC_SIGNATURE[3..]);
        assert_eq!(
            verify_spec(
                &spec_secret(),
                SPEC_MESSAGE_ID,
                "1614265330",
                &only_unknown,
                SPEC_PAYLOAD,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn verify_refuses_malformed_signatures() {
        for signature in [&SPEC_SIGNATURE[3..], "", "   ", "v1,not base64!", "v1,%%%%"] {
            assert_eq!(
                verify_spec(
                    &spec_secret(),
                    SPEC_MESSAGE_ID,
                    "1614265330",
                    signature,
                    SPEC_PAYLOAD,
                    SPEC_TIMESTAMP
                ),
                Err(VerifyError::MalformedSignature),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn verify_refuses_invalid_timestamps() {
        for timestamp in [
            "",
            "abc",
            "-1614265330",
            "+1614265330",
            "1614265330.0",
            " 1614265330",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(
                    verify_spec(
                        &spec_secret(),
                        SPEC_MESSAGE_ID,
                        timestamp,
                        SPEC_SIGNATURE,
                        SPEC_PAYLOAD,
                        SPEC_TIMESTAMP
                    ),
                    Err(VerifyError::InvalidTimestamp { .. })
                ),
                "{timestamp:?}"
            );
        }
    }

    #[test]
    fn sha256_hex_matches_githubs_documented_example() {
        // GitHub's key contains spaces, which configured secrets may not, so
        // the vector is checked one level below `sign`.
        assert_eq!(
            sha256_hex_value("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn hex_is_sha256_hex_without_the_prefix_and_rotates_alike() {
        let scheme = SigningScheme::parse("hex", Some("X-Webhook-Signature")).unwrap();
        assert_eq!(scheme.as_str(), "hex");
        let headers = sign(
            &scheme,
            &[secret("It's-a-Secret"), secret("old-secret")],
            "dlv_x",
            0,
            b"Hello, World!",
        )
        .unwrap();
        assert_eq!(
            hex_value("It's a Secret to Everybody", b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert_eq!(
            headers,
            vec![
                (
                    "X-Webhook-Signature".to_owned(),
                    hex_value("It's-a-Secret", b"Hello, World!")
                ),
                (
                    "X-Webhook-Signature-Previous".to_owned(),
                    hex_value("old-secret", b"Hello, World!")
                ),
            ]
        );
    }

    #[test]
    fn sha256_hex_header_uses_the_default_name() {
        let scheme = SigningScheme::parse("sha256-hex", None).unwrap();
        let headers = sign(
            &scheme,
            &[secret("It's-a-Secret")],
            "dlv_x",
            0,
            b"Hello, World!",
        )
        .unwrap();
        assert_eq!(
            headers,
            vec![(
                "X-Herald-Signature".to_owned(),
                sha256_hex_value("It's-a-Secret", b"Hello, World!")
            )]
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_vectors() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(lowercase_hex(&hmac_sha256(key, &[data])), expected);
        }
    }

    #[test]
    fn sha256_hex_uses_the_literal_secret_string_and_sends_previous_separately() {
        let current = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let previous = secret("old-secret");
        let older = secret("older-secret");
        let scheme = SigningScheme::parse("sha256-hex", Some("X-Signature")).unwrap();
        let body = b"{\"a\":1}";
        let expected_current = format!(
            "sha256={}",
            lowercase_hex(&hmac_sha256(current.expose().as_bytes(), &[body]))
        );
        let only_current = sign(&scheme, std::slice::from_ref(&current), "dlv_x", 1, body).unwrap();
        assert_eq!(
            only_current,
            vec![("X-Signature".to_owned(), expected_current.clone())]
        );

        let rotated = sign(
            &scheme,
            &[current, previous.clone(), older.clone()],
            "dlv_x",
            1,
            body,
        )
        .unwrap();
        assert_eq!(
            header(&rotated, "X-Signature"),
            Some(expected_current.as_str())
        );
        let expected_previous = format!(
            "sha256={},sha256={}",
            lowercase_hex(&hmac_sha256(b"old-secret", &[body])),
            lowercase_hex(&hmac_sha256(b"older-secret", &[body]))
        );
        assert_eq!(
            header(&rotated, "X-Signature-Previous"),
            Some(expected_previous.as_str())
        );
    }

    #[test]
    fn standard_sends_one_entry_per_secret_and_each_verifies() {
        let current = other_whsec_secret();
        let previous = spec_secret();
        let headers = sign(
            &SigningScheme::Standard,
            &[current.clone(), previous.clone()],
            SPEC_MESSAGE_ID,
            SPEC_TIMESTAMP,
            SPEC_PAYLOAD,
        )
        .unwrap();
        let signature = header(&headers, "webhook-signature").unwrap();
        let entries: Vec<&str> = signature.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1], SPEC_SIGNATURE);
        for secret in [&current, &previous] {
            verify_standard(
                secret,
                SPEC_MESSAGE_ID,
                "1614265330",
                signature,
                SPEC_PAYLOAD,
                SPEC_TIMESTAMP,
            )
            .unwrap();
        }
    }

    #[test]
    fn standard_refuses_non_whsec_secrets() {
        let result = sign(&SigningScheme::Standard, &[secret("plain")], "m", 1, b"{}");
        assert_eq!(
            result,
            Err(SigningError::Secret(SecretError::NotStandardForm))
        );
    }

    #[test]
    fn shared_secret_sends_only_the_current_secret() {
        let headers = sign(
            &SigningScheme::SharedSecret,
            &[secret("current"), secret("previous")],
            "m",
            1,
            b"{}",
        )
        .unwrap();
        assert_eq!(
            headers,
            vec![("X-Webhook-Secret".to_owned(), "current".to_owned())]
        );
    }

    #[test]
    fn sign_refuses_bad_inputs() {
        assert_eq!(
            sign(&SigningScheme::Standard, &[], "m", 1, b"{}"),
            Err(SigningError::NoSecrets)
        );
        for message_id in ["", "a b", "é", &"m".repeat(MAX_MESSAGE_ID_LEN + 1)] {
            assert!(matches!(
                sign(
                    &SigningScheme::Standard,
                    &[spec_secret()],
                    message_id,
                    1,
                    b"{}"
                ),
                Err(SigningError::InvalidMessageId { .. })
            ));
        }
        assert_eq!(
            sign(&SigningScheme::Standard, &[spec_secret()], "m", -1, b"{}"),
            Err(SigningError::NegativeTimestamp { timestamp: -1 })
        );
        let bad_scheme = SigningScheme::Sha256Hex {
            header: "Bad Header".to_owned(),
        };
        assert!(matches!(
            sign(&bad_scheme, &[spec_secret()], "m", 1, b"{}"),
            Err(SigningError::Scheme(SchemeError::InvalidHeaderName {
                character: ' ',
                ..
            }))
        ));
    }

    #[test]
    fn delivery_headers_for_the_standard_scheme() {
        let event = sample_event();
        let delivery_id = DeliveryId::parse("dlv_01jabcdefghjkmnpqrstvwxyz3").unwrap();
        let body = crate::envelope::envelope_body(&event, false);
        let headers = delivery_headers(
            &SigningScheme::Standard,
            &[spec_secret()],
            &delivery_id,
            &event,
            SPEC_TIMESTAMP,
            &body,
            "1.2.3",
        )
        .unwrap();
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "User-Agent",
                "X-Herald-Event",
                "X-Herald-Device",
                "X-Idempotency-Key",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature"
            ]
        );
        assert_eq!(header(&headers, "Content-Type"), Some("application/json"));
        assert_eq!(header(&headers, "User-Agent"), Some("Herald/1.2.3"));
        assert_eq!(header(&headers, "X-Herald-Event"), Some("message.received"));
        assert_eq!(
            header(&headers, "X-Herald-Device"),
            Some("dev_01jabcdefghjkmnpqrstvwxyz2")
        );
        assert_eq!(
            header(&headers, "X-Idempotency-Key"),
            Some(delivery_id.as_str())
        );
        assert_eq!(header(&headers, "webhook-id"), Some(delivery_id.as_str()));
        verify_standard(
            &spec_secret(),
            delivery_id.as_str(),
            header(&headers, "webhook-timestamp").unwrap(),
            header(&headers, "webhook-signature").unwrap(),
            &body,
            SPEC_TIMESTAMP + 10,
        )
        .unwrap();
    }

    #[test]
    fn delivery_headers_omit_missing_device_and_check_the_version() {
        let mut event = sample_event();
        event.device_id = None;
        let delivery_id = DeliveryId::parse("dlv_01jabcdefghjkmnpqrstvwxyz3").unwrap();
        let headers = delivery_headers(
            &SigningScheme::SharedSecret,
            &[secret("s3cret")],
            &delivery_id,
            &event,
            5,
            b"{}",
            "0.1.0",
        )
        .unwrap();
        assert_eq!(header(&headers, "X-Herald-Device"), None);
        assert_eq!(header(&headers, "X-Webhook-Secret"), Some("s3cret"));
        for version in ["", "1 2", "é"] {
            assert!(matches!(
                delivery_headers(
                    &SigningScheme::SharedSecret,
                    &[secret("s3cret")],
                    &delivery_id,
                    &event,
                    5,
                    b"{}",
                    version
                ),
                Err(SigningError::InvalidUserAgentVersion { .. })
            ));
        }
    }

    #[test]
    fn scheme_names_and_headers() {
        assert_eq!(SigningScheme::default(), SigningScheme::Standard);
        assert_eq!(
            SigningScheme::parse("standard", None).unwrap().as_str(),
            "standard"
        );
        assert_eq!(
            SigningScheme::parse("shared-secret", None)
                .unwrap()
                .as_str(),
            "shared-secret"
        );
        let hex = SigningScheme::parse("sha256-hex", None).unwrap();
        assert_eq!(hex.as_str(), "sha256-hex");
        assert_eq!(hex.header_name(), Some(DEFAULT_SIGNATURE_HEADER));
        assert_eq!(SigningScheme::Standard.header_name(), None);
        assert_eq!(
            SigningScheme::parse("hmac", None).unwrap_err().to_string(),
            "unknown signing scheme \"hmac\": expected one of standard, sha256-hex, hex, \
             shared-secret"
        );
        assert!(matches!(
            SigningScheme::parse("standard", Some("X-Sig")),
            Err(SchemeError::UnexpectedHeader {
                scheme: "standard",
                ..
            })
        ));
    }

    #[test]
    fn custom_headers_are_checked() {
        let standard = SigningScheme::Standard;
        let hex = SigningScheme::parse("sha256-hex", Some("X-Kaanha-Signature")).unwrap();
        assert_eq!(
            validate_custom_headers(
                [("X-Tenant", "acme"), ("Authorization", "Bearer t")],
                &standard
            ),
            Ok(())
        );
        for (name, scheme) in [
            ("webhook-signature", &standard),
            ("Content-Type", &standard),
            ("traceparent", &standard),
            ("x-kaanha-signature", &hex),
            ("X-Kaanha-Signature-Previous", &hex),
        ] {
            assert!(
                matches!(
                    validate_custom_headers([(name, "x")], scheme),
                    Err(CustomHeaderError::Reserved { .. })
                ),
                "{name} accepted"
            );
        }
        assert!(matches!(
            validate_custom_headers([("bad name", "x")], &standard),
            Err(CustomHeaderError::InvalidName { .. })
        ));
        assert!(matches!(
            validate_custom_headers([("", "x")], &standard),
            Err(CustomHeaderError::InvalidName { .. })
        ));
        assert!(matches!(
            validate_custom_headers([("X-A", "a\r\nInjected: 1")], &standard),
            Err(CustomHeaderError::InvalidValue { .. })
        ));
        let long = "v".repeat(MAX_CUSTOM_HEADER_VALUE_LEN + 1);
        assert!(matches!(
            validate_custom_headers([("X-A", long.as_str())], &standard),
            Err(CustomHeaderError::InvalidValue { .. })
        ));
        let names: Vec<String> = (0..=MAX_CUSTOM_HEADERS)
            .map(|i| format!("X-H{i}"))
            .collect();
        assert!(matches!(
            validate_custom_headers(names.iter().map(|n| (n.as_str(), "v")), &standard),
            Err(CustomHeaderError::TooMany { count: 33 })
        ));
    }

    #[test]
    fn header_names_must_be_tokens_and_not_reserved() {
        for good in ["X-Hub-Signature-256", "x_sig", "Sig!#$%&'*+-.^_`|~1"] {
            assert!(
                SigningScheme::parse("sha256-hex", Some(good)).is_ok(),
                "{good}"
            );
        }
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "signature header name is empty"),
            ("X Sig".to_owned(), "' ' is not allowed"),
            ("X:Sig".to_owned(), "':' is not allowed"),
            ("X-Sïg".to_owned(), "'ï' is not allowed"),
            ("h".repeat(MAX_HEADER_NAME_LEN + 1), "longer than 64"),
            ("content-type".to_owned(), "is reserved"),
            ("Webhook-Signature".to_owned(), "is reserved"),
            ("X-HERALD-EVENT".to_owned(), "is reserved"),
        ];
        for (name, expected) in cases {
            let message = SigningScheme::parse("sha256-hex", Some(&name))
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{name:?}: {message}");
        }
    }

    #[test]
    fn endpoint_secret_rules() {
        assert!(EndpointSecret::parse("a").is_ok());
        assert!(EndpointSecret::parse(&"s".repeat(MAX_SECRET_LEN)).is_ok());
        assert_eq!(EndpointSecret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(
            EndpointSecret::parse(&"s".repeat(MAX_SECRET_LEN + 1)).unwrap_err(),
            SecretError::TooLong { length: 257 }
        );
        for (value, position) in [("a b", 1), ("ab\t", 2), ("é", 0), ("\u{7f}", 0)] {
            assert_eq!(
                EndpointSecret::parse(value).unwrap_err(),
                SecretError::InvalidCharacter { position }
            );
        }
    }

    #[test]
    fn standard_key_decodes_whsec_secrets() {
        assert_eq!(spec_secret().standard_key().unwrap().len(), 24);
        let padded = SigningSecret::from_bytes(&[1u8; 32]).unwrap();
        assert!(padded.expose().ends_with('='));
        let unpadded = secret(padded.expose().trim_end_matches('='));
        assert_eq!(unpadded.standard_key().unwrap(), vec![1u8; 32]);
        assert_eq!(
            secret("plain").standard_key(),
            Err(SecretError::NotStandardForm)
        );
        assert_eq!(
            secret("whsec_@@@@").standard_key(),
            Err(SecretError::InvalidBase64)
        );
        assert_eq!(
            secret("whsec_AAAA").standard_key(),
            Err(SecretError::KeyLength { length: 3 })
        );
    }

    #[test]
    fn signing_secret_bounds_and_round_trip() {
        for length in [MIN_STANDARD_KEY_BYTES, 32, MAX_STANDARD_KEY_BYTES] {
            let key: Vec<u8> = (0..length).map(|i| u8::try_from(i).unwrap()).collect();
            let secret = SigningSecret::from_bytes(&key).unwrap();
            assert!(secret.expose().starts_with("whsec_"));
            assert_eq!(secret.key(), key.as_slice());
            let parsed = SigningSecret::parse(secret.expose()).unwrap();
            assert_eq!(parsed.key(), key.as_slice());
            assert_eq!(parsed.expose(), secret.expose());
        }
        for length in [0, MIN_STANDARD_KEY_BYTES - 1, MAX_STANDARD_KEY_BYTES + 1] {
            assert_eq!(
                SigningSecret::from_bytes(&vec![0u8; length]).unwrap_err(),
                SecretError::KeyLength { length }
            );
        }
        assert_eq!(
            SigningSecret::parse(SPEC_SECRET).unwrap().expose(),
            SPEC_SECRET
        );
        assert!(SigningSecret::parse("nope").is_err());
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let signing = SigningSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(format!("{signing:?}"), "SigningSecret(***)");
        let endpoint: EndpointSecret = signing.into();
        assert_eq!(format!("{endpoint:?}"), "EndpointSecret(***)");
        assert_eq!(endpoint.expose(), SPEC_SECRET);
        let bad = "whsec_MfKQ9r8GKYqrTwjUPD8I@PZIo2LaLaSw";
        let message = secret(bad).standard_key().unwrap_err().to_string();
        assert!(!message.contains("MfKQ"), "{message}");
        let message = EndpointSecret::parse("hunter2 x").unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn each_scheme_refuses_the_secrets_it_cannot_sign_with() {
        let generated: EndpointSecret = SigningSecret::from_bytes(&[7; 32]).unwrap().into();
        let plain = EndpointSecret::parse("my-plain-secret-123").unwrap();
        let short = EndpointSecret::parse("whsec_AAAA").unwrap();
        let hex = SigningScheme::parse("sha256-hex", None).unwrap();
        assert_eq!(SigningScheme::Standard.check_secret(&generated), Ok(()));
        assert_eq!(
            SigningScheme::Standard.check_secret(&plain),
            Err(SecretError::NotStandardForm)
        );
        assert!(matches!(
            SigningScheme::Standard.check_secret(&short),
            Err(SecretError::KeyLength { length: 3 })
        ));
        let message = SecretError::NotStandardForm.to_string();
        assert!(
            message.contains("whsec_<base64 of 24 to 64 bytes>"),
            "{message}"
        );
        for secret in [&generated, &plain, &short] {
            assert_eq!(hex.check_secret(secret), Ok(()));
            assert_eq!(SigningScheme::SharedSecret.check_secret(secret), Ok(()));
        }
    }

    #[test]
    fn herald_and_http_header_names_are_reserved_in_any_case() {
        for name in [
            "traceparent",
            "TraceState",
            "webhook-id",
            "Webhook-Anything",
            "Content-Type",
            "content-length",
            "Host",
            "X-Herald-Event",
            "x-herald-tenant",
            "X-Idempotency-Key",
            "Connection",
            "Keep-Alive",
            "Proxy-Authorization",
            "proxy-connection",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
        ] {
            assert!(is_reserved_header_name(name), "{name}");
            assert!(
                matches!(
                    SigningScheme::parse("sha256-hex", Some(name)),
                    Err(SchemeError::ReservedHeaderName { .. })
                ),
                "{name}"
            );
            assert!(
                matches!(
                    validate_custom_headers([(name, "x")], &SigningScheme::Standard),
                    Err(CustomHeaderError::Reserved { .. })
                ),
                "{name}"
            );
        }
        for name in [
            "X-Hub-Signature-256",
            "Authorization",
            "X-Api-Key",
            "Webhooks",
        ] {
            assert!(!is_reserved_header_name(name), "{name}");
        }
        // Herald's default signature header stays configurable as itself.
        assert!(SigningScheme::parse("sha256-hex", Some("x-herald-signature")).is_ok());
    }

    #[test]
    fn masked_header_values_keep_the_scheme_word_or_a_short_tail() {
        assert_eq!(mask_header_value("Bearer abc.def.ghi"), "Bearer ****");
        assert_eq!(mask_header_value("Basic dXNlcjpwYXNz"), "Basic ****");
        assert_eq!(mask_header_value("sk_live_0123456789abcd"), "****abcd");
        assert_eq!(mask_header_value("short-key"), "****");
        assert_eq!(mask_header_value(""), "****");
        assert_eq!(mask_header_value("Bearer "), "****");
    }

    proptest! {
        #[test]
        fn hmac_helper_agrees_with_the_hmac_crate(
            key in proptest::collection::vec(any::<u8>(), 0..200),
            data in proptest::collection::vec(any::<u8>(), 0..300),
            split in 0usize..300,
        ) {
            let mut reference = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
            reference.update(&data);
            let expected: [u8; 32] = reference.finalize().into_bytes().into();
            let split = split.min(data.len());
            prop_assert_eq!(hmac_sha256(&key, &[&data[..split], &data[split..]]), expected);
        }

        #[test]
        fn a_secret_a_scheme_accepts_is_one_it_can_sign_with(
            value in "[!-~]{1,80}",
            key in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let schemes = [
                SigningScheme::Standard,
                SigningScheme::parse("sha256-hex", None).unwrap(),
                SigningScheme::SharedSecret,
            ];
            let mut secrets = vec![EndpointSecret::parse(&value).unwrap()];
            secrets.push(EndpointSecret::parse(&format!("whsec_{}", STANDARD.encode(&key))).unwrap());
            for secret in &secrets {
                for scheme in &schemes {
                    let signed = sign(scheme, std::slice::from_ref(secret), "dlv_1", 1, b"{}");
                    prop_assert_eq!(scheme.check_secret(secret).is_ok(), signed.is_ok());
                }
            }
        }

        #[test]
        fn a_masked_value_never_shows_more_than_a_third(value in "\\PC{0,60}") {
            let masked = mask_header_value(&value);
            prop_assert!(masked.contains("****"));
            let shown = masked.replace("****", "");
            let shown = shown.trim();
            let is_scheme_word = value.trim().starts_with(shown) && !shown.is_empty();
            prop_assert!(
                is_scheme_word || shown.chars().count() * 3 <= value.trim().chars().count(),
                "{:?} -> {:?}", value, masked
            );
        }

        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(
                any::<u8>(),
                MIN_STANDARD_KEY_BYTES..=MAX_STANDARD_KEY_BYTES,
            ),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            timestamp in 0i64..4_000_000_000,
            skew in -TIMESTAMP_TOLERANCE_SECONDS..=TIMESTAMP_TOLERANCE_SECONDS,
        ) {
            let secret: EndpointSecret = SigningSecret::from_bytes(&key).unwrap().into();
            let secrets = std::slice::from_ref(&secret);
            let headers =
                sign(&SigningScheme::Standard, secrets, "dlv_1", timestamp, &body).unwrap();
            prop_assert!(verify_standard(
                &secret,
                header(&headers, "webhook-id").unwrap(),
                header(&headers, "webhook-timestamp").unwrap(),
                header(&headers, "webhook-signature").unwrap(),
                &body,
                timestamp + skew,
            ).is_ok());
        }

        #[test]
        fn verify_never_panics(
            id in ".{0,20}",
            timestamp in ".{0,20}",
            signature in ".{0,80}",
            now in any::<i64>(),
        ) {
            let _ = verify_standard(&spec_secret(), &id, &timestamp, &signature, b"{}", now);
        }
    }
}
