//! Endpoint specs: validation with field-naming errors, defaults, update
//! masks, and the status rules around testing, disabling and editing.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use herald_core::{
    address::{AllowList, validate_endpoint_url},
    catalog::{EventType, alias},
    endpoint::DEFAULT_TIMEOUT,
    id::DeviceId,
    signing::{SigningScheme, validate_custom_headers},
    text::Permit,
    transform::Limits,
};
use herald_proto::{
    duration_to_wire, retry_schedule,
    v1::{
        EndpointSpec, EndpointStatus, Ordering, RateLimit, RetryPolicy,
        SigningScheme as WireScheme, Transformation as WireTransformation,
    },
};
use prost::Message;

use crate::{
    error::{ApiError, ApiResult},
    validate::check_text,
};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_RATE_PER_SECOND: f64 = 10_000.0;
pub const MAX_BURST: u32 = 10_000;
pub const MAX_SUBSCRIBED_ITEMS: usize = 1_000;

/// What the store keeps for an endpoint besides its searchable columns: the
/// normalised spec, and the status `EnableEndpoint` returns to.
#[derive(Clone, PartialEq, Message)]
pub struct StoredEndpoint {
    /// The spec without its custom header values (they are in
    /// `sealed_headers`). Rows written before header values were sealed keep
    /// them here in plain text, and still load.
    #[prost(message, optional, tag = "1")]
    pub spec: Option<EndpointSpec>,
    #[prost(enumeration = "EndpointStatus", tag = "2")]
    pub resume_status: i32,
    /// Custom header values by header name, sealed like secrets (they
    /// usually are credentials: `Authorization`, `X-Api-Key`).
    #[prost(btree_map = "string, bytes", tag = "3")]
    pub sealed_headers: BTreeMap<String, Vec<u8>>,
}

/// Checks that need the database: which devices exist and which custom event
/// types the tenant registered.
pub trait TenantCatalog {
    fn missing_devices(
        &self,
        ids: &[String],
    ) -> impl Future<Output = ApiResult<Vec<String>>> + Send;
    fn is_registered_type(&self, name: &str) -> impl Future<Output = ApiResult<bool>> + Send;
}

/// Validates `spec` and fills its defaults; errors name `spec.<field>`.
pub async fn normalise_spec(
    mut spec: EndpointSpec,
    allow_list: &AllowList,
    catalog: &impl TenantCatalog,
) -> ApiResult<EndpointSpec> {
    spec.name = spec.name.trim().to_owned();
    if spec.name.is_empty() {
        return Err(ApiError::invalid("spec.name", "must not be empty"));
    }
    check_text("spec.name", &spec.name, Permit::SingleLine)?;
    check_text("spec.description", &spec.description, Permit::MultiLine)?;
    check_text("spec.url", &spec.url, Permit::SingleLine)?;
    check_text(
        "spec.signature_header",
        &spec.signature_header,
        Permit::SingleLine,
    )?;
    if spec.name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            "spec.name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if spec.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(
            "spec.description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let url = validate_endpoint_url(spec.url.trim(), allow_list)
        .map_err(|error| ApiError::invalid("spec.url", error))?;
    spec.url = url.to_string();

    // A preset fixes the scheme and its header: stored filled in, so every
    // reader sees how deliveries are really signed. A preset also shapes the
    // body, so an endpoint with a custom transformation as well is refused
    // (InvalidArgument naming `spec.preset`): the two would fight over the
    // body, and neither contract would be kept.
    let preset = herald_proto::endpoint_preset(&spec)?;
    spec.preset = preset
        .map(|preset| preset.as_str().to_owned())
        .unwrap_or_default();
    let scheme = signing_scheme(&spec)?;
    spec.signing_scheme = WireScheme::from(&scheme).into();
    spec.signature_header = scheme.header_name().unwrap_or_default().to_owned();
    validate_custom_headers(
        spec.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
        &scheme,
    )
    .map_err(|error| ApiError::invalid("spec.headers", error))?;
    if let Some(preset) = preset
        && let Some(taken) = spec.headers.keys().find(|name| {
            preset
                .header_names()
                .iter()
                .any(|own| own.eq_ignore_ascii_case(name))
        })
    {
        return Err(ApiError::invalid(
            "spec.headers",
            format!("header {taken} is set by the {preset} preset"),
        ));
    }

    spec.device_ids = normalise_devices(&spec, catalog).await?;
    spec.all_devices = spec.device_ids.is_empty();
    spec.event_types = normalise_event_types(&spec, catalog).await?;
    spec.all_event_types = spec.event_types.is_empty();

    spec.retry = Some(normalise_retry(spec.retry.take())?);
    spec.rate_limit = Some(normalise_rate_limit(spec.rate_limit.take())?);
    spec.ordering = match Ordering::try_from(spec.ordering) {
        Ok(Ordering::Unspecified) => Ordering::Unordered.into(),
        Ok(ordering) => ordering.into(),
        Err(_) => return Err(ApiError::invalid("spec.ordering", "unknown value")),
    };
    spec.timeout = Some(normalise_timeout(spec.timeout.take())?);
    spec.transformation = normalise_transformation(spec.transformation.take()).await?;
    if preset.is_some() && spec.transformation.is_some() {
        return Err(ApiError::invalid(
            "spec.preset",
            "a preset and a transformation would both shape the body: keep one of them",
        ));
    }
    Ok(spec)
}

/// The endpoint's program, compiled and checked for a `handler` now, so a
/// broken program is refused when saved rather than failing every delivery.
/// Blank code is no transformation. Errors name `spec.transformation.code`
/// and the line.
async fn normalise_transformation(
    wire: Option<WireTransformation>,
) -> ApiResult<Option<WireTransformation>> {
    let Some(program) = herald_proto::transformation(wire.as_ref())? else {
        return Ok(None);
    };
    // Bounded by the time limit (top-level code runs once) and parsing at
    // most MAX_CODE_BYTES: short enough to run in place.
    herald_transform::check(program.code(), Limits::default())
        .map_err(|error| ApiError::invalid("spec.transformation.code", error))?;
    Ok(wire)
}

/// The signing scheme a (normalised or raw) spec asks for.
pub fn signing_scheme(spec: &EndpointSpec) -> ApiResult<SigningScheme> {
    Ok(herald_proto::signing_scheme(spec)?)
}

async fn normalise_devices(
    spec: &EndpointSpec,
    catalog: &impl TenantCatalog,
) -> ApiResult<Vec<String>> {
    if spec.all_devices && !spec.device_ids.is_empty() {
        return Err(ApiError::invalid(
            "spec.device_ids",
            "must be empty when all_devices is set",
        ));
    }
    if spec.device_ids.len() > MAX_SUBSCRIBED_ITEMS {
        return Err(ApiError::invalid(
            "spec.device_ids",
            format!("at most {MAX_SUBSCRIBED_ITEMS} devices"),
        ));
    }
    for (index, id) in spec.device_ids.iter().enumerate() {
        DeviceId::parse(id)
            .map_err(|error| ApiError::invalid(format!("spec.device_ids[{index}]"), error))?;
    }
    let unique: BTreeSet<String> = spec.device_ids.iter().cloned().collect();
    let unique: Vec<String> = unique.into_iter().collect();
    let missing = catalog.missing_devices(&unique).await?;
    if let Some(missing) = missing.first() {
        let index = spec
            .device_ids
            .iter()
            .position(|id| id == missing)
            .unwrap_or_default();
        return Err(ApiError::invalid(
            format!("spec.device_ids[{index}]"),
            format!("unknown device {missing}"),
        ));
    }
    Ok(unique)
}

async fn normalise_event_types(
    spec: &EndpointSpec,
    catalog: &impl TenantCatalog,
) -> ApiResult<Vec<String>> {
    if spec.all_event_types && !spec.event_types.is_empty() {
        return Err(ApiError::invalid(
            "spec.event_types",
            "must be empty when all_event_types is set",
        ));
    }
    if spec.event_types.len() > MAX_SUBSCRIBED_ITEMS {
        return Err(ApiError::invalid(
            "spec.event_types",
            format!("at most {MAX_SUBSCRIBED_ITEMS} event types"),
        ));
    }
    let mut unique = BTreeSet::new();
    for (index, name) in spec.event_types.iter().enumerate() {
        let field = || format!("spec.event_types[{index}]");
        let event_type =
            EventType::parse(name).map_err(|error| ApiError::invalid(field(), error))?;
        let known = event_type.is_catalog() || alias(event_type.as_str()).is_some();
        if !known && !catalog.is_registered_type(event_type.as_str()).await? {
            return Err(ApiError::invalid(
                field(),
                format!(
                    "unknown event type {name:?}: not in the catalog, not an alias of a catalog type and not registered with RegisterEventType"
                ),
            ));
        }
        unique.insert(event_type.as_str().to_owned());
    }
    Ok(unique.into_iter().collect())
}

fn normalise_retry(retry: Option<RetryPolicy>) -> ApiResult<RetryPolicy> {
    let use_default = retry.as_ref().is_none_or(|retry| retry.use_default);
    let schedule = retry_schedule(retry.as_ref())?;
    Ok(RetryPolicy {
        delays: schedule
            .delays()
            .iter()
            .map(|delay| duration_to_wire(*delay))
            .collect(),
        // Herald's default is stored without jitter.
        jitter: if use_default {
            0.0
        } else {
            schedule.jitter().as_fraction()
        },
        use_default,
    })
}

fn normalise_rate_limit(rate_limit: Option<RateLimit>) -> ApiResult<RateLimit> {
    let rate_limit = rate_limit.unwrap_or_default();
    if !rate_limit.per_second.is_finite()
        || rate_limit.per_second < 0.0
        || rate_limit.per_second > MAX_RATE_PER_SECOND
    {
        return Err(ApiError::invalid(
            "spec.rate_limit.per_second",
            format!("must be between 0 (unlimited) and {MAX_RATE_PER_SECOND}"),
        ));
    }
    if rate_limit.burst > MAX_BURST {
        return Err(ApiError::invalid(
            "spec.rate_limit.burst",
            format!("must be at most {MAX_BURST}"),
        ));
    }
    Ok(rate_limit)
}

fn normalise_timeout(timeout: Option<prost_types::Duration>) -> ApiResult<prost_types::Duration> {
    let Some(timeout) = timeout else {
        return Ok(duration_to_wire(DEFAULT_TIMEOUT));
    };
    let timeout = herald_proto::duration_from_wire("spec.timeout", &timeout)?;
    if timeout < Duration::from_secs(1) || timeout > MAX_TIMEOUT {
        return Err(ApiError::invalid(
            "spec.timeout",
            format!("must be between 1 s and {} s", MAX_TIMEOUT.as_secs()),
        ));
    }
    Ok(duration_to_wire(timeout))
}

/// [`herald_proto::duration_from_wire`] for callers that name the field
/// themselves (the token service, being reworked for tenant quotas).
pub fn duration_from_wire(duration: &prost_types::Duration) -> Result<Duration, String> {
    herald_proto::duration_from_wire("", duration).map_err(|error| error.reason)
}

/// Applies `paths` of an update mask: each copies one field of `update` into
/// `current`; no paths replace the whole spec.
pub fn merge_spec(
    current: &EndpointSpec,
    update: EndpointSpec,
    paths: &[String],
) -> ApiResult<EndpointSpec> {
    if paths.is_empty() {
        return Ok(update);
    }
    let mut merged = current.clone();
    for (index, path) in paths.iter().enumerate() {
        match path.strip_prefix("spec.").unwrap_or(path) {
            "name" => merged.name = update.name.clone(),
            "description" => merged.description = update.description.clone(),
            "url" => merged.url = update.url.clone(),
            "signing_scheme" => merged.signing_scheme = update.signing_scheme,
            "signature_header" => merged.signature_header = update.signature_header.clone(),
            "all_devices" => merged.all_devices = update.all_devices,
            "device_ids" => merged.device_ids = update.device_ids.clone(),
            "all_event_types" => merged.all_event_types = update.all_event_types,
            "event_types" => merged.event_types = update.event_types.clone(),
            "headers" => merged.headers = update.headers.clone(),
            "retry" => merged.retry = update.retry.clone(),
            "rate_limit" => merged.rate_limit = update.rate_limit,
            "ordering" => merged.ordering = update.ordering,
            "timeout" => merged.timeout = update.timeout,
            "preset" => merged.preset = update.preset.clone(),
            "test_on_save" => merged.test_on_save = update.test_on_save,
            "transformation" | "transformation.code" => {
                merged.transformation = update.transformation.clone();
            }
            other => {
                return Err(ApiError::invalid(
                    format!("update_mask.paths[{index}]"),
                    format!("unknown field {other:?}"),
                ));
            }
        }
    }
    // Subscribing to specific items implies "not all", so a mask naming only
    // the list does what the caller means.
    if paths.iter().any(|path| path.ends_with("device_ids")) && !merged.device_ids.is_empty() {
        merged.all_devices = false;
    }
    if paths.iter().any(|path| path.ends_with("event_types")) && !merged.event_types.is_empty() {
        merged.all_event_types = false;
    }
    let names = |field: &str| paths.iter().any(|path| path.ends_with(field));
    // The stored scheme is the old preset's: changing the preset alone
    // takes the new one's (or Herald's default) rather than refusing the
    // change for a scheme the caller never chose.
    if names("preset") && !names("signing_scheme") && !names("signature_header") {
        merged.signing_scheme = WireScheme::Unspecified.into();
        merged.signature_header.clear();
    }
    // Only sha256-hex and hex have a signature header: switching away from
    // them drops the stored one rather than refusing the switch for it.
    if names("signing_scheme")
        && !names("signature_header")
        && merged.signing_scheme != i32::from(WireScheme::Sha256Hex)
        && merged.signing_scheme != i32::from(WireScheme::Hex)
    {
        merged.signature_header.clear();
    }
    Ok(merged)
}

/// Whether a change affects what the receiver must accept (where deliveries
/// go, or how they are signed and dressed): such an edit needs a new test.
pub fn needs_new_test(before: &EndpointSpec, after: &EndpointSpec) -> bool {
    before.url != after.url
        || before.preset != after.preset
        || before.signing_scheme != after.signing_scheme
        || before.signature_header != after.signature_header
        || before.headers != after.headers
        // A new program sends other bodies: the receiver must accept them.
        || before.transformation != after.transformation
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Catalog;

    impl TenantCatalog for Catalog {
        async fn missing_devices(&self, ids: &[String]) -> ApiResult<Vec<String>> {
            Ok(ids.iter().filter(|id| id.ends_with('z')).cloned().collect())
        }
        async fn is_registered_type(&self, name: &str) -> ApiResult<bool> {
            Ok(name == "order.shipped")
        }
    }

    fn spec() -> EndpointSpec {
        EndpointSpec {
            name: " Orders ".into(),
            url: "https://example.com/hooks".into(),
            ..Default::default()
        }
    }

    async fn field_of(spec: EndpointSpec) -> String {
        match normalise_spec(spec, &AllowList::default(), &Catalog).await {
            Err(ApiError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn defaults_are_filled() {
        let spec = normalise_spec(spec(), &AllowList::default(), &Catalog)
            .await
            .unwrap();
        assert_eq!(spec.name, "Orders");
        assert_eq!(spec.signing_scheme, i32::from(WireScheme::Standard));
        assert!(spec.all_devices && spec.all_event_types);
        assert_eq!(spec.timeout, Some(duration_to_wire(DEFAULT_TIMEOUT)));
        assert_eq!(spec.ordering, i32::from(Ordering::Unordered));
        let retry = spec.retry.unwrap();
        assert!(retry.use_default);
        assert_eq!(retry.delays.len(), 3);
    }

    #[tokio::test]
    async fn transformations_are_compiled_when_saved() {
        let with_code = |code: String| EndpointSpec {
            transformation: Some(WireTransformation { code }),
            ..spec()
        };
        let valid = "function handler(w) { return w; }".to_owned();
        let saved = normalise_spec(with_code(valid.clone()), &AllowList::default(), &Catalog)
            .await
            .unwrap();
        assert_eq!(saved.transformation.unwrap().code, valid);
        let blank = normalise_spec(with_code(" \n".into()), &AllowList::default(), &Catalog)
            .await
            .unwrap();
        assert_eq!(blank.transformation, None);
        for broken in [
            "function handler(w) {\n  return w\n  let = ;\n}".to_owned(),
            "function other(w) { return w; }".to_owned(),
            "x".repeat(herald_core::transform::MAX_CODE_BYTES + 1),
        ] {
            assert_eq!(
                field_of(with_code(broken)).await,
                "spec.transformation.code"
            );
        }
        match normalise_spec(
            with_code("function handler(w) {\n  return w\n  let = ;\n}".into()),
            &AllowList::default(),
            &Catalog,
        )
        .await
        {
            Err(ApiError::InvalidArgument { message, .. }) => {
                assert!(message.contains("line 3"), "{message}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_fields_are_named() {
        assert_eq!(
            field_of(EndpointSpec {
                name: "  ".into(),
                ..spec()
            })
            .await,
            "spec.name"
        );
        assert_eq!(
            field_of(EndpointSpec {
                url: "http://example.com".into(),
                ..spec()
            })
            .await,
            "spec.url"
        );
        assert_eq!(
            field_of(EndpointSpec {
                url: "https://10.0.0.1/x".into(),
                ..spec()
            })
            .await,
            "spec.url"
        );
        assert_eq!(
            field_of(EndpointSpec {
                event_types: vec!["message.received".into(), "nope.never".into()],
                ..spec()
            })
            .await,
            "spec.event_types[1]"
        );
        assert_eq!(
            field_of(EndpointSpec {
                event_types: vec!["Bad".into()],
                ..spec()
            })
            .await,
            "spec.event_types[0]"
        );
        let missing = herald_core::id::DeviceId::generate().to_string();
        let missing = format!("{}z", &missing[..missing.len() - 1]);
        assert_eq!(
            field_of(EndpointSpec {
                device_ids: vec![missing],
                ..spec()
            })
            .await,
            "spec.device_ids[0]"
        );
        assert_eq!(
            field_of(EndpointSpec {
                device_ids: vec!["dev_1".into()],
                ..spec()
            })
            .await,
            "spec.device_ids[0]"
        );
        assert_eq!(
            field_of(EndpointSpec {
                headers: [("webhook-id".to_owned(), "x".to_owned())].into(),
                ..spec()
            })
            .await,
            "spec.headers"
        );
        assert_eq!(
            field_of(EndpointSpec {
                timeout: Some(duration_to_wire(Duration::from_secs(61))),
                ..spec()
            })
            .await,
            "spec.timeout"
        );
        assert_eq!(
            field_of(EndpointSpec {
                retry: Some(RetryPolicy {
                    delays: vec![duration_to_wire(Duration::from_secs(90_000))],
                    ..Default::default()
                }),
                ..spec()
            })
            .await,
            "spec.retry.delays"
        );
        assert_eq!(
            field_of(EndpointSpec {
                rate_limit: Some(RateLimit {
                    per_second: -1.0,
                    burst: 0
                }),
                ..spec()
            })
            .await,
            "spec.rate_limit.per_second"
        );
        assert_eq!(
            field_of(EndpointSpec {
                signature_header: "X-Sig".into(),
                ..spec()
            })
            .await,
            "spec.signature_header"
        );
    }

    #[tokio::test]
    async fn registered_custom_types_and_sha256_headers_are_accepted() {
        let spec = normalise_spec(
            EndpointSpec {
                event_types: vec![
                    "order.shipped".into(),
                    "message.read".into(),
                    "order.shipped".into(),
                ],
                signing_scheme: WireScheme::Sha256Hex.into(),
                signature_header: "X-Kaanha-Signature".into(),
                ..spec()
            },
            &AllowList::default(),
            &Catalog,
        )
        .await
        .unwrap();
        assert_eq!(spec.event_types, ["message.read", "order.shipped"]);
        assert!(!spec.all_event_types);
        assert_eq!(spec.signature_header, "X-Kaanha-Signature");
    }

    #[tokio::test]
    async fn a_preset_fills_its_scheme_and_keeps_its_headers() {
        let normalise = |spec: EndpointSpec| async {
            normalise_spec(spec, &AllowList::default(), &Catalog).await
        };
        let kaanha = normalise(EndpointSpec {
            preset: " kaanha ".into(),
            ..spec()
        })
        .await
        .unwrap();
        assert_eq!(kaanha.preset, "kaanha");
        assert_eq!(kaanha.signing_scheme, i32::from(WireScheme::Sha256Hex));
        assert_eq!(kaanha.signature_header, "X-Kaanha-Signature");
        let kapso = normalise(EndpointSpec {
            preset: "kapso".into(),
            ..spec()
        })
        .await
        .unwrap();
        assert_eq!(kapso.signing_scheme, i32::from(WireScheme::Hex));
        assert_eq!(kapso.signature_header, "X-Webhook-Signature");
        // Normalising again is stable: the filled-in scheme is the preset's.
        assert_eq!(normalise(kapso.clone()).await.unwrap(), kapso);

        assert_eq!(
            field_of(EndpointSpec {
                preset: "zapier".into(),
                ..spec()
            })
            .await,
            "spec.preset"
        );
        assert_eq!(
            field_of(EndpointSpec {
                preset: "kirisan".into(),
                signing_scheme: WireScheme::Standard.into(),
                ..spec()
            })
            .await,
            "spec.signing_scheme"
        );
        assert_eq!(
            field_of(EndpointSpec {
                preset: "kirisan".into(),
                headers: [("x-kirisan-event".to_owned(), "x".to_owned())].into(),
                ..spec()
            })
            .await,
            "spec.headers"
        );

        // Changing only the preset takes the new preset's scheme.
        let merged = merge_spec(
            &kaanha,
            EndpointSpec {
                preset: "kirisan".into(),
                ..Default::default()
            },
            &["preset".into()],
        )
        .unwrap();
        let kirisan = normalise(merged).await.unwrap();
        assert_eq!(kirisan.signing_scheme, i32::from(WireScheme::SharedSecret));
        assert_eq!(kirisan.signature_header, "");
        assert!(needs_new_test(&kaanha, &kirisan));
    }

    #[test]
    fn masks_merge_named_fields_only() {
        let current = EndpointSpec {
            name: "a".into(),
            url: "https://a.example".into(),
            ..Default::default()
        };
        let update = EndpointSpec {
            name: "b".into(),
            url: "https://b.example".into(),
            ..Default::default()
        };
        let merged = merge_spec(&current, update.clone(), &["name".into()]).unwrap();
        assert_eq!(
            (merged.name.as_str(), merged.url.as_str()),
            ("b", "https://a.example")
        );
        assert_eq!(merge_spec(&current, update.clone(), &[]).unwrap(), update);
        assert!(merge_spec(&current, update, &["secret".into()]).is_err());

        let program = EndpointSpec {
            transformation: Some(WireTransformation {
                code: "function handler(w) { return w; }".into(),
            }),
            ..Default::default()
        };
        for path in ["transformation", "spec.transformation.code"] {
            let merged = merge_spec(&current, program.clone(), &[path.into()]).unwrap();
            assert_eq!(merged.transformation, program.transformation);
            assert_eq!(merged.name, "a");
        }

        let hex = EndpointSpec {
            signing_scheme: WireScheme::Sha256Hex.into(),
            signature_header: "X-Sig".into(),
            ..spec()
        };
        let to_standard = EndpointSpec {
            signing_scheme: WireScheme::Standard.into(),
            ..Default::default()
        };
        let merged = merge_spec(&hex, to_standard, &["signing_scheme".into()]).unwrap();
        assert_eq!(merged.signature_header, "");
    }

    #[test]
    fn url_scheme_and_header_edits_need_a_new_test() {
        let before = EndpointSpec {
            url: "https://a.example".into(),
            ..Default::default()
        };
        assert!(!needs_new_test(
            &before,
            &EndpointSpec {
                name: "renamed".into(),
                ..before.clone()
            }
        ));
        assert!(needs_new_test(
            &before,
            &EndpointSpec {
                url: "https://b.example".into(),
                ..before.clone()
            }
        ));
        assert!(needs_new_test(
            &before,
            &EndpointSpec {
                signing_scheme: 3,
                ..before.clone()
            }
        ));
        assert!(needs_new_test(
            &before,
            &EndpointSpec {
                headers: [("X-A".to_owned(), "1".to_owned())].into(),
                ..before.clone()
            }
        ));
        assert!(needs_new_test(
            &before,
            &EndpointSpec {
                transformation: Some(WireTransformation {
                    code: "function handler(webhook) { return webhook; }".into(),
                }),
                ..before.clone()
            }
        ));
    }
}
