//! Authenticating channel webhooks, always over the raw request bytes (a
//! re-serialised body differs: escaped unicode, `\/`, key order) and always
//! in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Header names, as the channels send them.
pub const WABA_SIGNATURE: &str = "x-hub-signature-256";
pub const TELEGRAM_SECRET: &str = "x-telegram-bot-api-secret-token";
pub const GATEWAY_HMAC: &str = "x-webhook-hmac";
pub const GATEWAY_HMAC_ALGORITHM: &str = "x-webhook-hmac-algorithm";

/// Why a webhook was not authenticated. Never carries the presented value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {header} header is missing")]
    Missing { header: &'static str },
    #[error("the {header} header is malformed")]
    Malformed { header: &'static str },
    #[error("the {header} header does not match")]
    Mismatch { header: &'static str },
    #[error("the {header} algorithm is not sha512")]
    Algorithm { header: &'static str },
    #[error("the device has no {what} configured")]
    NotConfigured { what: &'static str },
    #[error("cannot key the HMAC: {0}")]
    Key(String),
}

/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
pub fn waba_signature(
    app_secret: &str,
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), VerifyError> {
    const HEADER: &str = WABA_SIGNATURE;
    if app_secret.is_empty() {
        return Err(VerifyError::NotConfigured { what: "app secret" });
    }
    let header = header.ok_or(VerifyError::Missing { header: HEADER })?;
    let hex = header
        .strip_prefix(b"sha256=")
        .ok_or(VerifyError::Malformed { header: HEADER })?;
    let presented = decode_hex(hex).ok_or(VerifyError::Malformed { header: HEADER })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .map_err(|error| VerifyError::Key(error.to_string()))?;
    mac.update(body);
    equal(&mac.finalize().into_bytes(), &presented, HEADER)
}

/// `X-Webhook-Hmac: <hex HMAC-SHA512(key, body)>`, checked only when the
/// device has a key (gateways may run without one).
pub fn gateway_hmac(
    key: &str,
    body: &[u8],
    header: Option<&[u8]>,
    algorithm: Option<&[u8]>,
) -> Result<(), VerifyError> {
    const HEADER: &str = GATEWAY_HMAC;
    if key.is_empty() {
        return Ok(());
    }
    if let Some(algorithm) = algorithm
        && !algorithm.eq_ignore_ascii_case(b"sha512")
    {
        return Err(VerifyError::Algorithm { header: HEADER });
    }
    let header = header.ok_or(VerifyError::Missing { header: HEADER })?;
    let presented = decode_hex(header).ok_or(VerifyError::Malformed { header: HEADER })?;
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes())
        .map_err(|error| VerifyError::Key(error.to_string()))?;
    mac.update(body);
    equal(&mac.finalize().into_bytes(), &presented, HEADER)
}

/// `X-Telegram-Bot-Api-Secret-Token`, equal to the device's secret token.
pub fn telegram_secret(expected: &str, header: Option<&[u8]>) -> Result<(), VerifyError> {
    const HEADER: &str = TELEGRAM_SECRET;
    if expected.is_empty() {
        return Err(VerifyError::NotConfigured {
            what: "secret token",
        });
    }
    let presented = header.ok_or(VerifyError::Missing { header: HEADER })?;
    same_secret(expected.as_bytes(), presented, HEADER)
}

/// Compares two secrets of possibly different lengths without revealing
/// their length or common prefix: their digests are compared instead.
pub fn same_secret(
    expected: &[u8],
    presented: &[u8],
    header: &'static str,
) -> Result<(), VerifyError> {
    equal(
        &Sha256::digest(expected),
        &Sha256::digest(presented),
        header,
    )
}

fn equal(expected: &[u8], presented: &[u8], header: &'static str) -> Result<(), VerifyError> {
    if bool::from(expected.ct_eq(presented)) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch { header })
    }
}

/// Lower- or uppercase hex; `None` for anything else.
fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    };
    text.chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently (Python hmac, openssl) for the
    // reference payloads; the secrets are made up.
    const META_SECRET: &str = "test-app-secret-NOT-FROM-META";
    const ESCAPED_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.TEST","timestamp":"1749416383","type":"text","text":{"body":"\u00e4\u00f6\u00e5"}}]},"field":"messages"}]}]}"#;
    const ESCAPED_SIGNATURE: &str =
        "sha256=0e38929390701171b21d8f2f4e4492419b77163d4beb9e73fff1d8f3d4f949d6";
    const REENCODED_SIGNATURE: &str =
        "sha256=f7c8c73fa2c7525af47e3618c4f4e13086416887e143135bec0a8cb8cde43169";

    #[test]
    fn waba_signatures_are_over_the_raw_bytes() {
        let body = ESCAPED_BODY.as_bytes();
        assert_eq!(
            waba_signature(META_SECRET, body, Some(ESCAPED_SIGNATURE.as_bytes())),
            Ok(())
        );
        // The same JSON value re-encoded with raw UTF-8 has another HMAC.
        let reencoded = ESCAPED_BODY.replace(r"\u00e4\u00f6\u00e5", "äöå");
        assert_eq!(
            waba_signature(
                META_SECRET,
                reencoded.as_bytes(),
                Some(REENCODED_SIGNATURE.as_bytes())
            ),
            Ok(())
        );
        assert!(waba_signature(META_SECRET, body, Some(REENCODED_SIGNATURE.as_bytes())).is_err());
        let upper = ESCAPED_SIGNATURE.replace("sha256=", "").to_uppercase();
        assert_eq!(
            waba_signature(
                META_SECRET,
                body,
                Some(format!("sha256={upper}").as_bytes())
            ),
            Ok(())
        );
    }

    #[test]
    fn waba_signature_failures_are_named() {
        let body = ESCAPED_BODY.as_bytes();
        let header = WABA_SIGNATURE;
        assert_eq!(
            waba_signature(META_SECRET, body, None),
            Err(VerifyError::Missing { header })
        );
        for malformed in ["", "sha1=00", "sha256=zz", "sha256=abc", "0e3892"] {
            assert_eq!(
                waba_signature(META_SECRET, body, Some(malformed.as_bytes())),
                Err(VerifyError::Malformed { header }),
                "{malformed}"
            );
        }
        assert_eq!(
            waba_signature(META_SECRET, body, Some(b"sha256=00")),
            Err(VerifyError::Mismatch { header })
        );
        assert_eq!(
            waba_signature("other", body, Some(ESCAPED_SIGNATURE.as_bytes())),
            Err(VerifyError::Mismatch { header })
        );
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert!(
            waba_signature(META_SECRET, &tampered, Some(ESCAPED_SIGNATURE.as_bytes())).is_err()
        );
        assert!(matches!(
            waba_signature("", body, Some(ESCAPED_SIGNATURE.as_bytes())),
            Err(VerifyError::NotConfigured { .. })
        ));
    }

    #[test]
    fn gateway_hmac_matches_the_documented_vector() {
        let body = br#"{"event":"message","session":"default","engine":"WEBJS"}"#;
        let signature = b"208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89";
        assert_eq!(
            gateway_hmac("my-secret-key", body, Some(signature), Some(b"sha512")),
            Ok(())
        );
        assert_eq!(
            gateway_hmac("my-secret-key", body, Some(signature), None),
            Ok(())
        );
        assert!(gateway_hmac("other-key", body, Some(signature), None).is_err());
        assert!(gateway_hmac("my-secret-key", body, None, None).is_err());
        assert!(gateway_hmac("my-secret-key", body, Some(signature), Some(b"sha256")).is_err());
        // Without a key the gateway is not asked to sign.
        assert_eq!(gateway_hmac("", body, None, None), Ok(()));
    }

    #[test]
    fn telegram_secret_is_compared_exactly() {
        assert_eq!(telegram_secret("s3cr3t_-", Some(b"s3cr3t_-")), Ok(()));
        for wrong in [&b"s3cr3t_"[..], b"s3cr3t_-x", b"", b"S3CR3T_-"] {
            assert!(telegram_secret("s3cr3t_-", Some(wrong)).is_err());
        }
        assert!(telegram_secret("s3cr3t_-", None).is_err());
        assert!(telegram_secret("", Some(b"")).is_err());
    }
}
