//! An endpoint's delivery settings from its wire form, converted in one
//! place: the config service validates a spec with these functions and
//! delivery builds its [`EndpointSettings`] with them, so the two cannot
//! read a spec differently.

use std::time::Duration;

use herald_core::{
    endpoint::{DEFAULT_TIMEOUT, EndpointSecrets, EndpointSettings, Ordering},
    id::{EndpointId, TenantId},
    matching::EndpointStatus,
    preset::Preset,
    rate::RateLimit,
    retry::{Jitter, RetrySchedule},
    signing::{EndpointSecret, SchemeError, SigningScheme},
    transform::Transformation,
};
use url::Url;

use crate::{WireError, timestamp_from_wire, v1};

/// A delivery's settings from the endpoint and secrets the Watch stream
/// sends; errors name the field (`endpoint.spec.timeout`, `secrets.current`).
pub fn endpoint_settings(watched: &v1::WatchedEndpoint) -> Result<EndpointSettings, WireError> {
    let endpoint = watched
        .endpoint
        .as_ref()
        .ok_or_else(|| WireError::new("endpoint", "must be set"))?;
    let spec = endpoint.spec.clone().unwrap_or_default();
    let in_endpoint =
        |error: WireError| WireError::new(format!("endpoint.{}", error.field), error.reason);
    let status = v1::EndpointStatus::try_from(endpoint.status)
        .map_err(|_| {
            WireError::new(
                "endpoint.status",
                format!("unknown value {}", endpoint.status),
            )
        })
        .and_then(EndpointStatus::try_from)
        .map_err(|error| WireError::new("endpoint.status", error.reason))?;
    Ok(EndpointSettings {
        id: EndpointId::parse(&endpoint.id)
            .map_err(|error| WireError::new("endpoint.id", error))?,
        tenant_id: TenantId::parse(&endpoint.tenant_id)
            .map_err(|error| WireError::new("endpoint.tenant_id", error))?,
        revision: endpoint.revision,
        status,
        url: Url::parse(&spec.url).map_err(|error| WireError::new("endpoint.spec.url", error))?,
        preset: endpoint_preset(&spec).map_err(in_endpoint)?,
        scheme: signing_scheme(&spec).map_err(in_endpoint)?,
        secrets: endpoint_secrets(watched.secrets.as_ref())?,
        retry: retry_schedule(spec.retry.as_ref()).map_err(in_endpoint)?,
        rate_limit: rate_limit(spec.rate_limit.as_ref()).map_err(in_endpoint)?,
        timeout: match spec.timeout {
            Some(timeout) => duration_from_wire("endpoint.spec.timeout", &timeout)?,
            None => Duration::ZERO,
        },
        ordering: match v1::Ordering::try_from(spec.ordering) {
            Ok(v1::Ordering::Fifo) => Ordering::Fifo,
            Ok(v1::Ordering::Unordered | v1::Ordering::Unspecified) => Ordering::Unordered,
            Err(_) => {
                return Err(WireError::new(
                    "endpoint.spec.ordering",
                    format!("unknown value {}", spec.ordering),
                ));
            }
        },
        event_types: crate::convert::event_type_filter(&spec)?,
        transformation: transformation(spec.transformation.as_ref()).map_err(in_endpoint)?,
        headers: spec.headers,
    })
    .map(|mut settings| {
        // The config service always sets one; an unset or zero timeout
        // would fail every request at once.
        if settings.timeout.is_zero() {
            settings.timeout = DEFAULT_TIMEOUT;
        }
        settings
    })
}

fn endpoint_secrets(secrets: Option<&v1::EndpointSecrets>) -> Result<EndpointSecrets, WireError> {
    // Without a current secret there is nothing to sign with; signing then
    // reports that the endpoint has no secret.
    let Some(secrets) = secrets.filter(|secrets| !secrets.current.is_empty()) else {
        return Ok(EndpointSecrets::default());
    };
    let current = EndpointSecret::parse(&secrets.current)
        .map_err(|error| WireError::new("secrets.current", error))?;
    let expires_at = secrets
        .previous_expires_at
        .and_then(|at| timestamp_from_wire("secrets.previous_expires_at", Some(at)).ok());
    let previous = match expires_at {
        Some(expires_at) if !secrets.previous.is_empty() => Some((
            EndpointSecret::parse(&secrets.previous)
                .map_err(|error| WireError::new("secrets.previous", error))?,
            expires_at,
        )),
        _ => None,
    };
    Ok(EndpointSecrets {
        current: Some(current),
        previous,
    })
}

/// The spec's payload contract; errors name `spec.preset`.
pub fn endpoint_preset(spec: &v1::EndpointSpec) -> Result<Option<Preset>, WireError> {
    Preset::parse(spec.preset.trim()).map_err(|error| WireError::new("spec.preset", error))
}

/// The signing scheme a spec asks for; unspecified means the preset's
/// scheme, or Herald's default, `standard`, without a preset. A preset owns
/// its endpoint's signing: a spec naming another scheme or header with it
/// is refused, because its receivers verify only the preset's. Errors name
/// `spec.preset`, `spec.signing_scheme` or `spec.signature_header`.
pub fn signing_scheme(spec: &v1::EndpointSpec) -> Result<SigningScheme, WireError> {
    let header = Some(spec.signature_header.trim()).filter(|header| !header.is_empty());
    let wire = v1::SigningScheme::try_from(spec.signing_scheme)
        .map_err(|_| WireError::new("spec.signing_scheme", "unknown value"))?;
    if let Some(preset) = endpoint_preset(spec)? {
        let own = preset.signing_scheme();
        if wire != v1::SigningScheme::Unspecified && wire != v1::SigningScheme::from(&own) {
            return Err(WireError::new(
                "spec.signing_scheme",
                format!(
                    "the {preset} preset signs with {}; leave signing_scheme unset",
                    own.as_str()
                ),
            ));
        }
        if let Some(header) = header
            && !own
                .header_name()
                .is_some_and(|own| own.eq_ignore_ascii_case(header))
        {
            return Err(WireError::new(
                "spec.signature_header",
                format!(
                    "the {preset} preset sends its signature in {}; leave signature_header unset",
                    own.header_name().unwrap_or("no header")
                ),
            ));
        }
        return Ok(own);
    }
    let name = match wire {
        v1::SigningScheme::Unspecified | v1::SigningScheme::Standard => "standard",
        v1::SigningScheme::Sha256Hex => "sha256-hex",
        v1::SigningScheme::Hex => "hex",
        v1::SigningScheme::SharedSecret => "shared-secret",
    };
    SigningScheme::parse(name, header).map_err(|error| {
        let field = match error {
            SchemeError::UnknownScheme { .. } => "spec.signing_scheme",
            // Every other refusal is about the header name.
            _ => "spec.signature_header",
        };
        WireError::new(field, error)
    })
}

impl From<&SigningScheme> for v1::SigningScheme {
    fn from(scheme: &SigningScheme) -> v1::SigningScheme {
        match scheme {
            SigningScheme::Standard => v1::SigningScheme::Standard,
            SigningScheme::Sha256Hex { .. } => v1::SigningScheme::Sha256Hex,
            SigningScheme::Hex { .. } => v1::SigningScheme::Hex,
            SigningScheme::SharedSecret => v1::SigningScheme::SharedSecret,
        }
    }
}

/// The endpoint's schedule: Herald's default, or its own delays and jitter.
/// Errors name `spec.retry.delays[i]`, `spec.retry.jitter` or
/// `spec.retry.delays`.
pub fn retry_schedule(policy: Option<&v1::RetryPolicy>) -> Result<RetrySchedule, WireError> {
    let Some(policy) = policy.filter(|policy| !policy.use_default) else {
        return Ok(RetrySchedule::default());
    };
    let delays = policy
        .delays
        .iter()
        .enumerate()
        .map(|(index, delay)| duration_from_wire(format!("spec.retry.delays[{index}]"), delay))
        .collect::<Result<Vec<_>, _>>()?;
    let jitter = Jitter::fraction(policy.jitter)
        .map_err(|error| WireError::new("spec.retry.jitter", error))?;
    RetrySchedule::new(delays, jitter).map_err(|error| WireError::new("spec.retry.delays", error))
}

/// The endpoint's program; none when unset or blank. Errors name
/// `spec.transformation.code`. Whether it compiles is the config service's
/// check at save time (it needs the engine).
pub fn transformation(
    wire: Option<&v1::Transformation>,
) -> Result<Option<Transformation>, WireError> {
    wire.map_or(Ok(None), |wire| {
        Transformation::new(&wire.code)
            .map_err(|error| WireError::new("spec.transformation.code", error))
    })
}

/// The endpoint's rate limit; none when unset or zero (unlimited).
fn rate_limit(limit: Option<&v1::RateLimit>) -> Result<Option<RateLimit>, WireError> {
    match limit {
        Some(limit) if limit.per_second > 0.0 => RateLimit::new(limit.per_second, limit.burst)
            .map(Some)
            .map_err(|error| WireError::new("spec.rate_limit", error)),
        _ => Ok(None),
    }
}

impl From<EndpointStatus> for v1::EndpointStatus {
    fn from(status: EndpointStatus) -> v1::EndpointStatus {
        match status {
            EndpointStatus::PendingTest => v1::EndpointStatus::PendingTest,
            EndpointStatus::Active => v1::EndpointStatus::Active,
            EndpointStatus::Disabled => v1::EndpointStatus::Disabled,
            EndpointStatus::Failing => v1::EndpointStatus::Failing,
        }
    }
}

impl TryFrom<v1::EndpointStatus> for EndpointStatus {
    type Error = WireError;

    fn try_from(status: v1::EndpointStatus) -> Result<EndpointStatus, WireError> {
        match status {
            v1::EndpointStatus::PendingTest => Ok(EndpointStatus::PendingTest),
            v1::EndpointStatus::Active => Ok(EndpointStatus::Active),
            v1::EndpointStatus::Disabled => Ok(EndpointStatus::Disabled),
            v1::EndpointStatus::Failing => Ok(EndpointStatus::Failing),
            v1::EndpointStatus::Unspecified => Err(WireError::new("status", "must be set")),
        }
    }
}

pub fn duration_to_wire(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or_default(),
    }
}

/// A non-negative wire duration.
pub fn duration_from_wire(
    field: impl Into<std::borrow::Cow<'static, str>>,
    duration: &prost_types::Duration,
) -> Result<Duration, WireError> {
    if duration.seconds < 0 || duration.nanos < 0 || duration.nanos >= 1_000_000_000 {
        return Err(WireError::new(field, "must be a non-negative duration"));
    }
    Ok(Duration::new(
        u64::try_from(duration.seconds).unwrap_or_default(),
        u32::try_from(duration.nanos).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp_to_wire;
    use time::OffsetDateTime;

    fn wire_millis(millis: u64) -> prost_types::Duration {
        duration_to_wire(Duration::from_millis(millis))
    }

    fn watched(spec: v1::EndpointSpec) -> v1::WatchedEndpoint {
        v1::WatchedEndpoint {
            endpoint: Some(v1::Endpoint {
                id: herald_core::id::EndpointId::generate().to_string(),
                tenant_id: TenantId::generate().to_string(),
                status: v1::EndpointStatus::Active.into(),
                revision: 7,
                spec: Some(v1::EndpointSpec {
                    url: "https://example.com/hook".into(),
                    ..spec
                }),
                ..v1::Endpoint::default()
            }),
            secrets: Some(v1::EndpointSecrets {
                current: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=".into(),
                ..v1::EndpointSecrets::default()
            }),
        }
    }

    #[test]
    fn retry_policies_map_to_schedules() {
        assert_eq!(retry_schedule(None).unwrap(), RetrySchedule::default());
        let default = v1::RetryPolicy {
            delays: vec![wire_millis(1)],
            jitter: 0.0,
            use_default: true,
        };
        assert_eq!(
            retry_schedule(Some(&default)).unwrap(),
            RetrySchedule::default()
        );
        let custom = v1::RetryPolicy {
            delays: vec![wire_millis(200), wire_millis(1500)],
            jitter: 0.1,
            use_default: false,
        };
        let schedule = retry_schedule(Some(&custom)).unwrap();
        assert_eq!(
            schedule.delays(),
            [Duration::from_millis(200), Duration::from_millis(1500)]
        );
        assert_eq!(schedule.jitter().as_fraction(), 0.1);
        let none = v1::RetryPolicy::default();
        assert_eq!(retry_schedule(Some(&none)).unwrap().max_attempts(), 1);
        let negative = v1::RetryPolicy {
            delays: vec![
                wire_millis(1),
                prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                },
            ],
            ..v1::RetryPolicy::default()
        };
        assert_eq!(
            retry_schedule(Some(&negative)).unwrap_err().field,
            "spec.retry.delays[1]"
        );
    }

    #[test]
    fn every_wire_signing_scheme_maps_and_maps_back() {
        let spec = |scheme: v1::SigningScheme, header: &str| v1::EndpointSpec {
            signing_scheme: scheme.into(),
            signature_header: header.into(),
            ..v1::EndpointSpec::default()
        };
        assert_eq!(
            signing_scheme(&spec(v1::SigningScheme::Unspecified, "")).unwrap(),
            SigningScheme::Standard
        );
        for (wire, header) in [
            (v1::SigningScheme::Standard, ""),
            (v1::SigningScheme::Sha256Hex, "X-Sig"),
            (v1::SigningScheme::Hex, "X-Sig"),
            (v1::SigningScheme::SharedSecret, " "),
        ] {
            let scheme = signing_scheme(&spec(wire, header)).unwrap();
            assert_eq!(v1::SigningScheme::from(&scheme), wire);
        }
        assert_eq!(
            signing_scheme(&spec(v1::SigningScheme::Sha256Hex, " X-Sig ")).unwrap(),
            SigningScheme::Sha256Hex {
                header: "X-Sig".into()
            }
        );
        let unknown = v1::EndpointSpec {
            signing_scheme: 42,
            ..v1::EndpointSpec::default()
        };
        assert_eq!(
            signing_scheme(&unknown).unwrap_err().field,
            "spec.signing_scheme"
        );
    }

    #[test]
    fn a_preset_fixes_the_scheme_and_refuses_another() {
        let spec = |preset: &str, scheme: v1::SigningScheme, header: &str| v1::EndpointSpec {
            preset: preset.into(),
            signing_scheme: scheme.into(),
            signature_header: header.into(),
            ..v1::EndpointSpec::default()
        };
        assert_eq!(
            signing_scheme(&spec("kaanha", v1::SigningScheme::Unspecified, "")).unwrap(),
            SigningScheme::Sha256Hex {
                header: "X-Kaanha-Signature".into()
            }
        );
        assert_eq!(
            signing_scheme(&spec(
                "kaanha",
                v1::SigningScheme::Sha256Hex,
                "x-kaanha-signature"
            ))
            .unwrap(),
            herald_core::preset::Preset::Kaanha.signing_scheme()
        );
        assert_eq!(
            signing_scheme(&spec("kirisan", v1::SigningScheme::SharedSecret, "")).unwrap(),
            SigningScheme::SharedSecret
        );
        assert_eq!(
            signing_scheme(&spec("kapso", v1::SigningScheme::Unspecified, ""))
                .unwrap()
                .as_str(),
            "hex"
        );
        for (preset, scheme, header, field) in [
            (
                "kirisan",
                v1::SigningScheme::Standard,
                "",
                "spec.signing_scheme",
            ),
            (
                "kaanha",
                v1::SigningScheme::Sha256Hex,
                "X-Other",
                "spec.signature_header",
            ),
            (
                "kapso",
                v1::SigningScheme::Sha256Hex,
                "",
                "spec.signing_scheme",
            ),
            ("acme", v1::SigningScheme::Unspecified, "", "spec.preset"),
        ] {
            assert_eq!(
                signing_scheme(&spec(preset, scheme, header))
                    .unwrap_err()
                    .field,
                field,
                "{preset}"
            );
        }
        let settings =
            endpoint_settings(&watched(spec("kapso", v1::SigningScheme::Unspecified, ""))).unwrap();
        assert_eq!(settings.preset, Some(herald_core::preset::Preset::Kapso));
        assert_eq!(settings.scheme.header_name(), Some("X-Webhook-Signature"));
    }

    #[test]
    fn a_watched_endpoint_converts_with_its_defaults() {
        let settings = endpoint_settings(&watched(v1::EndpointSpec::default())).unwrap();
        assert_eq!(settings.status, EndpointStatus::Active);
        assert_eq!(settings.revision, 7);
        assert_eq!(settings.scheme, SigningScheme::Standard);
        assert_eq!(settings.preset, None);
        assert_eq!(settings.retry, RetrySchedule::default());
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
        assert_eq!(settings.rate_limit, None);
        assert_eq!(settings.ordering, Ordering::Unordered);
        assert_eq!(settings.transformation, None);
        assert_eq!(settings.secrets.signing(OffsetDateTime::now_utc()).len(), 1);
    }

    #[test]
    fn a_transformation_converts_and_blank_code_is_none() {
        let with_code = |code: &str| {
            endpoint_settings(&watched(v1::EndpointSpec {
                transformation: Some(v1::Transformation { code: code.into() }),
                ..v1::EndpointSpec::default()
            }))
            .unwrap()
            .transformation
        };
        assert_eq!(with_code(" "), None);
        let code = "function handler(w) { return w; }";
        assert_eq!(with_code(code).unwrap().code(), code);
    }

    #[test]
    fn the_previous_secret_is_kept_with_its_expiry() {
        let now = OffsetDateTime::now_utc();
        let mut endpoint = watched(v1::EndpointSpec::default());
        endpoint.secrets = Some(v1::EndpointSecrets {
            current: "current-secret".into(),
            previous: "previous-secret".into(),
            previous_expires_at: Some(timestamp_to_wire(now + time::Duration::hours(1))),
        });
        let settings = endpoint_settings(&endpoint).unwrap();
        assert_eq!(settings.secrets.signing(now).len(), 2);
        assert_eq!(
            settings
                .secrets
                .signing(now + time::Duration::hours(2))
                .len(),
            1
        );
    }

    #[test]
    fn invalid_watched_endpoints_name_the_field() {
        let cases: Vec<(&str, v1::WatchedEndpoint)> = vec![
            ("endpoint.spec.url", {
                let mut endpoint = watched(v1::EndpointSpec::default());
                if let Some(spec) = endpoint.endpoint.as_mut().and_then(|e| e.spec.as_mut()) {
                    spec.url = "not a url".into();
                }
                endpoint
            }),
            (
                "endpoint.spec.timeout",
                watched(v1::EndpointSpec {
                    timeout: Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    }),
                    ..v1::EndpointSpec::default()
                }),
            ),
            (
                "endpoint.spec.retry.jitter",
                watched(v1::EndpointSpec {
                    retry: Some(v1::RetryPolicy {
                        jitter: 7.0,
                        ..v1::RetryPolicy::default()
                    }),
                    ..v1::EndpointSpec::default()
                }),
            ),
            (
                "endpoint.spec.rate_limit",
                watched(v1::EndpointSpec {
                    rate_limit: Some(v1::RateLimit {
                        per_second: 2_000_000.0,
                        burst: 0,
                    }),
                    ..v1::EndpointSpec::default()
                }),
            ),
            (
                "endpoint.spec.transformation.code",
                watched(v1::EndpointSpec {
                    transformation: Some(v1::Transformation {
                        code: "x".repeat(herald_core::transform::MAX_CODE_BYTES + 1),
                    }),
                    ..v1::EndpointSpec::default()
                }),
            ),
            ("endpoint.status", {
                let mut endpoint = watched(v1::EndpointSpec::default());
                if let Some(endpoint) = endpoint.endpoint.as_mut() {
                    endpoint.status = v1::EndpointStatus::Unspecified.into();
                }
                endpoint
            }),
            ("secrets.current", {
                let mut endpoint = watched(v1::EndpointSpec::default());
                endpoint.secrets = Some(v1::EndpointSecrets {
                    current: "has space".into(),
                    ..v1::EndpointSecrets::default()
                });
                endpoint
            }),
        ];
        for (field, wire) in cases {
            let error = endpoint_settings(&wire).unwrap_err();
            assert_eq!(error.field, field, "{error}");
            assert!(!error.reason.contains("has space"), "{error}");
        }
    }
}
