//! What an attempt record shows of a request: the URL without credentials
//! and the headers with signatures, secrets and custom header values
//! redacted.

use std::collections::HashMap;

use herald_core::signing::{PREVIOUS_SIGNATURE_HEADER_SUFFIX, SHARED_SECRET_HEADER, SigningScheme};
use reqwest::Url;

const REDACTED: &str = "[redacted]";

/// Headers whose values are credentials whatever the scheme. Lowercase.
/// `authorization` and friends can only come from the endpoint's custom
/// headers; the attempt log is read more widely than the endpoint's setup.
const SECRET_HEADERS: &[&str] = &[
    "webhook-signature",
    "authorization",
    "proxy-authorization",
    "cookie",
];

/// The request headers as sent, with every signature and secret replaced by
/// `[redacted]`, and every value of the endpoint's `custom_headers` too: they
/// usually carry credentials (`X-Api-Key`), and the attempt log and the bus
/// are read more widely than the endpoint's setup.
pub(crate) fn redacted_headers(
    headers: &[(String, String)],
    scheme: &SigningScheme,
    custom_headers: &HashMap<String, String>,
) -> HashMap<String, String> {
    let signature_header = scheme.header_name().map(str::to_ascii_lowercase);
    let previous_signature_header = signature_header.as_ref().map(|header| {
        format!(
            "{header}{}",
            PREVIOUS_SIGNATURE_HEADER_SUFFIX.to_ascii_lowercase()
        )
    });
    headers
        .iter()
        .map(|(name, value)| {
            let lowercase = name.to_ascii_lowercase();
            let secret = SECRET_HEADERS.contains(&lowercase.as_str())
                || lowercase.eq_ignore_ascii_case(SHARED_SECRET_HEADER)
                || signature_header.as_ref() == Some(&lowercase)
                || previous_signature_header.as_ref() == Some(&lowercase)
                || custom_headers
                    .keys()
                    .any(|custom| custom.eq_ignore_ascii_case(name));
            let shown = if secret { REDACTED } else { value.as_str() };
            (name.clone(), shown.to_owned())
        })
        .collect()
}

/// The URL for the attempt record, without user name or password. The
/// config service refuses URLs with credentials; this keeps any that slipped
/// in some other way out of the log. An unparsable URL is left out entirely,
/// as it could hold anything.
pub(crate) fn record_url(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw) else {
        return String::new();
    };
    // Both fail only for URLs that cannot have credentials at all.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn signatures_and_secrets_are_redacted() {
        let sent = headers(&[
            ("Content-Type", "application/json"),
            ("webhook-id", "dlv_1"),
            ("webhook-signature", "v1,abc v1,def"),
            ("X-Acme-Signature", "sha256=00"),
            ("X-Acme-Signature-Previous", "sha256=11"),
            ("X-Webhook-Secret", "hunter2"),
            ("Authorization", "Bearer t"),
            ("X-Api-Key", "k-123"),
            ("X-Tenant", "acme"),
        ]);
        let custom: HashMap<String, String> = [
            ("authorization".to_owned(), "Bearer t".to_owned()),
            ("x-api-key".to_owned(), "k-123".to_owned()),
        ]
        .into();
        let hex = SigningScheme::parse("sha256-hex", Some("X-Acme-Signature")).unwrap();
        let shown = redacted_headers(&sent, &hex, &custom);
        for name in [
            "webhook-signature",
            "X-Acme-Signature",
            "X-Acme-Signature-Previous",
            "X-Webhook-Secret",
            "Authorization",
            "X-Api-Key",
        ] {
            assert_eq!(shown[name], REDACTED, "{name}");
        }
        assert_eq!(shown["Content-Type"], "application/json");
        assert_eq!(shown["webhook-id"], "dlv_1");
        assert_eq!(shown["X-Tenant"], "acme");

        let standard = redacted_headers(&sent, &SigningScheme::Standard, &HashMap::new());
        assert_eq!(
            standard["X-Acme-Signature"], "sha256=00",
            "not a signature header here"
        );
    }

    #[test]
    fn credentials_are_stripped_from_urls() {
        assert_eq!(
            record_url("https://user:pw@example.com/hook?x=1"),
            "https://example.com/hook?x=1"
        );
        assert_eq!(
            record_url("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/hook"
        );
        assert_eq!(record_url("not a url"), "");
    }
}
