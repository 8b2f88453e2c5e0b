//! Adding and editing an endpoint. A refused form comes back with every
//! value kept and the service's error next to the field it names.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use herald_config::FIELD_METADATA_KEY;
use herald_proto::v1::{self as pb, config_service_server::ConfigService};
use maud::{Markup, html};

use crate::{
    Console,
    error::PageError,
    form::Form,
    html_page, redirect_with_flash,
    render::{self, Flash, Nav},
    session::Session,
};

/// What the form shows: read from an endpoint, or as the user sent it.
#[derive(Clone, Debug, Default)]
struct Values {
    name: String,
    url: String,
    description: String,
    secret: String,
    signing_scheme: String,
    signature_header: String,
    all_devices: bool,
    devices: Vec<String>,
    all_events: bool,
    events: Vec<String>,
    retry: String,
    retry_delays: String,
    rate_per_second: String,
    rate_burst: String,
    ordering: String,
    timeout: String,
    etag: String,
}

impl Values {
    fn blank() -> Values {
        Values {
            signing_scheme: "standard".to_owned(),
            retry: "default".to_owned(),
            ordering: "unordered".to_owned(),
            ..Default::default()
        }
    }

    fn from_endpoint(endpoint: &pb::Endpoint) -> Values {
        let spec = endpoint.spec.clone().unwrap_or_default();
        let retry = spec.retry.clone().unwrap_or_default();
        let (retry_mode, delays) = if retry.use_default {
            ("default", String::new())
        } else if retry.delays.is_empty() {
            ("none", String::new())
        } else {
            let delays: Vec<String> = retry
                .delays
                .iter()
                .map(|delay| {
                    let delay = Duration::new(
                        u64::try_from(delay.seconds).unwrap_or_default(),
                        u32::try_from(delay.nanos).unwrap_or_default(),
                    );
                    humantime::format_duration(delay)
                        .to_string()
                        .replace(' ', "")
                })
                .collect();
            ("custom", delays.join(", "))
        };
        let rate = spec.rate_limit.unwrap_or_default();
        Values {
            name: spec.name.clone(),
            url: spec.url.clone(),
            description: spec.description.clone(),
            secret: String::new(),
            signing_scheme: match spec.signing_scheme() {
                pb::SigningScheme::Sha256Hex => "sha256_hex",
                pb::SigningScheme::SharedSecret => "shared_secret",
                _ => "standard",
            }
            .to_owned(),
            signature_header: spec.signature_header.clone(),
            all_devices: spec.all_devices,
            devices: spec.device_ids.clone(),
            all_events: spec.all_event_types,
            events: spec.event_types.clone(),
            retry: retry_mode.to_owned(),
            retry_delays: delays,
            rate_per_second: if rate.per_second > 0.0 {
                rate.per_second.to_string()
            } else {
                String::new()
            },
            rate_burst: if rate.burst > 0 {
                rate.burst.to_string()
            } else {
                String::new()
            },
            ordering: match spec.ordering() {
                pb::Ordering::Fifo => "fifo",
                _ => "unordered",
            }
            .to_owned(),
            timeout: spec
                .timeout
                .map(|timeout| timeout.seconds.to_string())
                .unwrap_or_default(),
            etag: endpoint.etag.clone(),
        }
    }

    fn from_form(form: &Form) -> Values {
        Values {
            name: form.get("name"),
            url: form.get("url"),
            description: form.get("description"),
            secret: form.get("secret"),
            signing_scheme: form.get("signing_scheme"),
            signature_header: form.get("signature_header"),
            all_devices: form.has("all_devices"),
            devices: form.all("device"),
            all_events: form.has("all_events"),
            events: form.all("event_type"),
            retry: form.get("retry"),
            retry_delays: form.get("retry_delays"),
            rate_per_second: form.get("rate_per_second"),
            rate_burst: form.get("rate_burst"),
            ordering: form.get("ordering"),
            timeout: form.get("timeout"),
            etag: form.get("etag"),
        }
    }

    /// The spec to send; a value the form itself cannot read (a number, a
    /// duration) is refused here, naming its field like the service would.
    fn to_spec(&self) -> Result<pb::EndpointSpec, Problem> {
        let scheme = match self.signing_scheme.as_str() {
            "sha256_hex" => pb::SigningScheme::Sha256Hex,
            "shared_secret" => pb::SigningScheme::SharedSecret,
            _ => pb::SigningScheme::Standard,
        };
        let retry = match self.retry.as_str() {
            "none" => pb::RetryPolicy::default(),
            "custom" => {
                let mut delays = Vec::new();
                for part in self
                    .retry_delays
                    .split(',')
                    .map(str::trim)
                    .filter(|part| !part.is_empty())
                {
                    let delay = humantime::parse_duration(part).map_err(|_| {
                        Problem::field(
                            "retry",
                            format!("“{part}” is not a duration: write e.g. 30s, 5m, 1h"),
                        )
                    })?;
                    delays.push(herald_proto::duration_to_wire(delay));
                }
                if delays.is_empty() {
                    return Err(Problem::field(
                        "retry",
                        "list at least one delay, e.g. 30s, 5m, 1h",
                    ));
                }
                pb::RetryPolicy {
                    delays,
                    ..Default::default()
                }
            }
            _ => pb::RetryPolicy {
                use_default: true,
                ..Default::default()
            },
        };
        let per_second =
            parse_number(&self.rate_per_second, "rate_limit", "deliveries per second")?;
        let burst = if self.rate_burst.is_empty() {
            0
        } else {
            self.rate_burst
                .parse::<u32>()
                .map_err(|_| Problem::field("rate_limit", "the burst must be a whole number"))?
        };
        let timeout = if self.timeout.is_empty() {
            None
        } else {
            let seconds = parse_number(&self.timeout, "timeout", "the timeout in seconds")?;
            Some(prost_types::Duration {
                seconds: seconds.trunc() as i64,
                nanos: (seconds.fract() * 1e9) as i32,
            })
        };
        Ok(pb::EndpointSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
            signing_scheme: scheme.into(),
            signature_header: if scheme == pb::SigningScheme::Sha256Hex {
                self.signature_header.clone()
            } else {
                String::new()
            },
            all_devices: self.all_devices,
            device_ids: if self.all_devices {
                Vec::new()
            } else {
                self.devices.clone()
            },
            all_event_types: self.all_events,
            event_types: if self.all_events {
                Vec::new()
            } else {
                self.events.clone()
            },
            headers: Default::default(),
            retry: Some(retry),
            rate_limit: Some(pb::RateLimit { per_second, burst }),
            ordering: if self.ordering == "fifo" {
                pb::Ordering::Fifo
            } else {
                pb::Ordering::Unordered
            }
            .into(),
            timeout,
        })
    }
}

fn parse_number(value: &str, field: &'static str, what: &str) -> Result<f64, Problem> {
    if value.is_empty() {
        return Ok(0.0);
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite() && *number >= 0.0)
        .ok_or_else(|| Problem::field(field, format!("{what} must be a number, 0 or more")))
}

/// Why a form was refused: a message, next to a field when it names one.
#[derive(Clone, Debug)]
struct Problem {
    field: Option<&'static str>,
    message: String,
}

impl Problem {
    fn field(field: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            field: Some(field),
            message: message.into(),
        }
    }

    /// The service's refusal, placed by its `herald-field` metadata; only
    /// input errors become form problems, the rest are error pages.
    fn from_status(status: tonic::Status) -> Result<Problem, PageError> {
        if !matches!(
            status.code(),
            tonic::Code::InvalidArgument | tonic::Code::Aborted | tonic::Code::FailedPrecondition
        ) {
            return Err(status.into());
        }
        let grpc_field = status
            .metadata()
            .get(FIELD_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let message = status.message();
        let message = message
            .strip_prefix(&format!("{grpc_field}: "))
            .unwrap_or(message)
            .to_owned();
        Ok(Problem {
            field: form_field(&grpc_field),
            message,
        })
    }

    fn on(&self, field: &str) -> Option<&str> {
        (self.field == Some(field)).then_some(self.message.as_str())
    }
}

/// The form field a service field path belongs to.
fn form_field(grpc_field: &str) -> Option<&'static str> {
    let field = grpc_field.strip_prefix("spec.").unwrap_or(grpc_field);
    let head = field.split(['.', '[']).next().unwrap_or_default();
    Some(match head {
        "name" => "name",
        "url" => "url",
        "description" => "description",
        "secret" => "secret",
        "signing_scheme" => "signing",
        "signature_header" => "signature_header",
        "device_ids" | "all_devices" => "devices",
        "event_types" | "all_event_types" => "events",
        "retry" => "retry",
        "rate_limit" => "rate_limit",
        "ordering" => "ordering",
        "timeout" => "timeout",
        _ => return None,
    })
}

pub async fn new(State(console): State<Console>, session: Session) -> Result<Response, PageError> {
    render_form(&console, &session, None, &Values::blank(), None).await
}

pub async fn edit(
    State(console): State<Console>,
    session: Session,
    Path(endpoint_id): Path<String>,
) -> Result<Response, PageError> {
    let endpoint = console
        .backend
        .config()
        .get_endpoint(
            session
                .credentials
                .request(pb::GetEndpointRequest { endpoint_id }),
        )
        .await?
        .into_inner();
    render_form(
        &console,
        &session,
        Some(&endpoint),
        &Values::from_endpoint(&endpoint),
        None,
    )
    .await
}

pub async fn create(
    State(console): State<Console>,
    session: Session,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let values = Values::from_form(&form);
    let spec = match values.to_spec() {
        Ok(spec) => spec,
        Err(problem) => return render_form(&console, &session, None, &values, Some(problem)).await,
    };
    let created = console
        .backend
        .config()
        .create_endpoint(session.credentials.request(pb::CreateEndpointRequest {
            spec: Some(spec),
            secret: values.secret.clone(),
        }))
        .await;
    match created {
        Ok(created) => {
            let created = created.into_inner();
            let endpoint = created.endpoint.ok_or_else(|| {
                PageError::Internal("the created endpoint was not returned".into())
            })?;
            Ok(html_page(created_page(
                &session,
                &endpoint,
                &created.secret,
            )))
        }
        Err(status) => {
            let problem = Problem::from_status(status)?;
            render_form(&console, &session, None, &values, Some(problem)).await
        }
    }
}

pub async fn update(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let config = console.backend.config();
    let before = config
        .get_endpoint(session.credentials.request(pb::GetEndpointRequest {
            endpoint_id: endpoint_id.clone(),
        }))
        .await?
        .into_inner();
    let values = Values::from_form(&form);
    let spec = match values.to_spec() {
        Ok(spec) => spec,
        Err(problem) => {
            return render_form(&console, &session, Some(&before), &values, Some(problem)).await;
        }
    };
    // Custom headers are not edited here, so they are left out of the mask.
    let paths = [
        "name",
        "description",
        "url",
        "signing_scheme",
        "signature_header",
        "all_devices",
        "device_ids",
        "all_event_types",
        "event_types",
        "retry",
        "rate_limit",
        "ordering",
        "timeout",
    ];
    let updated = config
        .update_endpoint(session.credentials.request(pb::UpdateEndpointRequest {
            endpoint_id: endpoint_id.clone(),
            spec: Some(spec),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|path| (*path).to_owned()).collect(),
            }),
            etag: values.etag.clone(),
        }))
        .await;
    match updated {
        Ok(updated) => {
            let updated = updated.into_inner();
            let flash = if updated.status() == pb::EndpointStatus::PendingTest
                && before.status() != pb::EndpointStatus::PendingTest
            {
                Flash::warning(
                    "Saved. The endpoint is back to Pending test: send a test delivery to activate it again.",
                )
            } else if updated.status() == pb::EndpointStatus::PendingTest {
                Flash::success("Saved. It is Pending test: send a test delivery to activate it.")
            } else {
                Flash::success("Saved.")
            };
            Ok(redirect_with_flash(
                &headers,
                &format!("/console/endpoints/{endpoint_id}"),
                &flash,
            ))
        }
        Err(status) => {
            let problem = Problem::from_status(status)?;
            render_form(&console, &session, Some(&before), &values, Some(problem)).await
        }
    }
}

async fn render_form(
    console: &Console,
    session: &Session,
    endpoint: Option<&pb::Endpoint>,
    values: &Values,
    problem: Option<Problem>,
) -> Result<Response, PageError> {
    let devices = super::devices(console, session).await?;
    let event_types = super::event_types(console, session).await?;
    let (title, action, submit) = match endpoint {
        Some(endpoint) => (
            "Edit endpoint",
            format!("/console/endpoints/{}", endpoint.id),
            "Save changes",
        ),
        None => (
            "Add endpoint",
            "/console/endpoints".to_owned(),
            "Create endpoint",
        ),
    };
    let cancel = endpoint.map_or("/console/".to_owned(), |endpoint| {
        format!("/console/endpoints/{}", endpoint.id)
    });
    let problem = problem.as_ref();
    let error = |field: &str| problem.and_then(|problem| problem.on(field));
    let body = html! {
        @if let Some(problem) = problem {
            div class="error-summary" role="alert" tabindex="-1" id="error-summary" {
                h2 { "This endpoint could not be saved" }
                p {
                    @if let Some(field) = problem.field {
                        a href={ "#" (field) } { (problem.message) }
                    } @else {
                        (problem.message)
                    }
                }
            }
        }
        form class="stack" method="post" action=(action) novalidate {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="etag" value=(values.etag);
            section class="card form-section" {
                h2 { "Endpoint" }
                (text_field("name", "Name", &values.name, "text", "e.g. Orders service", None, error("name")))
                (text_field("url", "URL", &values.url, "url", "https://hooks.example.com/herald",
                    Some("A public HTTPS address. Herald POSTs signed JSON to it."), error("url")))
                (text_field("description", "Description (optional)", &values.description, "text", "", None, error("description")))
            }
            section class="card form-section" {
                h2 { "Signing" }
                @if endpoint.is_none() {
                    div class={ "field" @if error("secret").is_some() { " invalid" } } {
                        label for="secret" { "Signing secret (optional)" }
                        input id="secret" name="secret" type="text" value=(values.secret) autocomplete="off" spellcheck="false"
                            placeholder="Leave empty to generate one" aria-describedby="secret-hint"
                            aria-invalid=[error("secret").map(|_| "true")];
                        p class="hint" id="secret-hint" {
                            "Generated when empty (whsec_…) and shown once after saving. "
                            "Standard Webhooks signing needs " code { "whsec_" } " followed by the base64 of 24 to 64 random bytes; "
                            "HMAC SHA-256 and shared secret take any visible ASCII text without spaces."
                        }
                        @if let Some(message) = error("secret") { p class="field-error" { (message) } }
                    }
                }
                fieldset class={ "field" @if error("signing").is_some() { " invalid" } } id="signing" {
                    legend { "Signing scheme" }
                    (radio("signing_scheme", "standard", &values.signing_scheme, "Standard Webhooks",
                        "webhook-id, webhook-timestamp and webhook-signature headers (recommended)"))
                    (radio("signing_scheme", "sha256_hex", &values.signing_scheme, "HMAC SHA-256 (hex)",
                        "sha256=<hex> in the header below"))
                    (radio("signing_scheme", "shared_secret", &values.signing_scheme, "Shared secret",
                        "the secret itself in X-Webhook-Secret"))
                    @if let Some(message) = error("signing") { p class="field-error" { (message) } }
                }
                (text_field("signature_header", "Signature header (HMAC SHA-256 only)", &values.signature_header, "text",
                    "X-Herald-Signature",
                    Some("Not one Herald or HTTP sets itself: traceparent, tracestate, content-*, host, webhook-*, x-herald-*, x-idempotency-key and hop-by-hop headers are refused."),
                    error("signature_header")))
            }
            section class="card form-section" {
                h2 { "Devices" }
                fieldset class={ "field" @if error("devices").is_some() { " invalid" } } id="devices" {
                    legend { "Which devices’ events to send" }
                    label class="check strong" {
                        input type="checkbox" name="all_devices" value="1" checked[values.all_devices] data-all-of="device";
                        span { "All devices, including ones added later" }
                    }
                    @if devices.is_empty() {
                        p class="hint" { "This tenant has no devices yet: the endpoint receives events of every device." }
                    }
                    @for channel in [pb::Channel::Whatsapp, pb::Channel::Telegram, pb::Channel::Waba] {
                        @let group: Vec<&pb::Device> = devices.values().filter(|device| device.channel() == channel).collect();
                        @if !group.is_empty() {
                            @let group_id = format!("devices-{}", render::channel_label(channel).to_lowercase());
                            fieldset class="group" id=(group_id) {
                                legend { (render::channel_label(channel)) }
                                label class="check select-all" hidden {
                                    input type="checkbox" data-select-all=(group_id);
                                    span { "Select all " (render::channel_label(channel)) " devices" }
                                }
                                @for device in group {
                                    label class="check" {
                                        input type="checkbox" name="device" value=(device.id) checked[values.devices.contains(&device.id)];
                                        span { (device.name) " " span class="muted" { (device.external_id) } }
                                    }
                                }
                            }
                        }
                    }
                    p class="hint" { "Ticking no device also means every device." }
                    @if let Some(message) = error("devices") { p class="field-error" { (message) } }
                }
            }
            section class="card form-section" {
                h2 { "Events" }
                fieldset class={ "field" @if error("events").is_some() { " invalid" } } id="events" {
                    legend { "Which event types to send" }
                    label class="check strong" {
                        input type="checkbox" name="all_events" value="1" checked[values.all_events] data-all-of="event_type";
                        span { "All event types" }
                    }
                    div class="group" id="event-types" {
                        label class="check select-all" hidden {
                            input type="checkbox" data-select-all="event-types";
                            span { "Select all event types" }
                        }
                        div class="check-grid" {
                            @for definition in &event_types {
                                label class="check described" {
                                    input type="checkbox" name="event_type" value=(definition.name) checked[values.events.contains(&definition.name)];
                                    span {
                                        code { (definition.name) }
                                        span class="description" { (definition.description) }
                                    }
                                }
                            }
                        }
                    }
                    p class="hint" { "Ticking no event type also means every type." }
                    @if let Some(message) = error("events") { p class="field-error" { (message) } }
                }
            }
            section class="card form-section" {
                h2 { "Delivery" }
                fieldset class={ "field" @if error("retry").is_some() { " invalid" } } id="retry" {
                    legend { "Retries after a failure" }
                    (radio("retry", "default", &values.retry, "Herald’s default", "after 5 s, 25 s and 2 min"))
                    (radio("retry", "custom", &values.retry, "Custom schedule", "the delays below"))
                    (radio("retry", "none", &values.retry, "No retries", "one attempt only"))
                    label for="retry_delays" { "Custom delays" }
                    input id="retry_delays" name="retry_delays" type="text" value=(values.retry_delays)
                        placeholder="30s, 5m, 30m, 2h" aria-describedby="retry-hint";
                    p class="hint" id="retry-hint" { "Comma-separated, at most 20, each at most 24 h." }
                    @if let Some(message) = error("retry") { p class="field-error" { (message) } }
                }
                div class="field-row" {
                    div class={ "field" @if error("rate_limit").is_some() { " invalid" } } id="rate_limit" {
                        label for="rate_per_second" { "Rate limit (deliveries per second)" }
                        input id="rate_per_second" name="rate_per_second" type="text" inputmode="decimal"
                            value=(values.rate_per_second) placeholder="Unlimited";
                        label for="rate_burst" { "Burst" }
                        input id="rate_burst" name="rate_burst" type="text" inputmode="numeric" value=(values.rate_burst) placeholder="0";
                        @if let Some(message) = error("rate_limit") { p class="field-error" { (message) } }
                    }
                    div class={ "field" @if error("timeout").is_some() { " invalid" } } {
                        label for="timeout" { "Request timeout (seconds)" }
                        input id="timeout" name="timeout" type="text" inputmode="numeric" value=(values.timeout) placeholder="15"
                            aria-invalid=[error("timeout").map(|_| "true")];
                        @if let Some(message) = error("timeout") { p class="field-error" { (message) } }
                    }
                }
                fieldset class={ "field" @if error("ordering").is_some() { " invalid" } } id="ordering" {
                    legend { "Ordering" }
                    (radio("ordering", "unordered", &values.ordering, "Unordered", "fastest; deliveries may overtake each other"))
                    (radio("ordering", "fifo", &values.ordering, "In order (FIFO)", "one delivery at a time, in the order events arrived"))
                    @if let Some(message) = error("ordering") { p class="field-error" { (message) } }
                }
            }
            div class="form-actions" {
                button class="button primary" type="submit" { (submit) }
                a class="button ghost" href=(cancel) { "Cancel" }
            }
        }
    };
    let status = if problem.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    let mut response = html_page(render::page(
        session,
        Nav::Webhooks,
        title,
        None,
        html! {},
        body,
    ));
    *response.status_mut() = status;
    Ok(response)
}

#[allow(clippy::too_many_arguments)]
fn text_field(
    name: &str,
    label: &str,
    value: &str,
    kind: &str,
    placeholder: &str,
    hint: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let hint_id = format!("{name}-hint");
    let error_id = format!("{name}-error");
    let described: Vec<&str> = [
        hint.map(|_| hint_id.as_str()),
        error.map(|_| error_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    html! {
        div class={ "field" @if error.is_some() { " invalid" } } {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) placeholder=(placeholder)
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[(!described.is_empty()).then(|| described.join(" "))];
            @if let Some(hint) = hint { p class="hint" id=(hint_id) { (hint) } }
            @if let Some(error) = error { p class="field-error" id=(error_id) { (error) } }
        }
    }
}

fn radio(name: &str, value: &str, current: &str, label: &str, description: &str) -> Markup {
    html! {
        label class="check described" {
            input type="radio" name=(name) value=(value) checked[current == value];
            span { strong { (label) } span class="description" { (description) } }
        }
    }
}

fn created_page(session: &Session, endpoint: &pb::Endpoint, secret: &str) -> Markup {
    let name = endpoint
        .spec
        .as_ref()
        .map(|spec| spec.name.clone())
        .unwrap_or_default();
    let body = html! {
        section class="card" {
            h2 { "Signing secret" }
            p { "Copy it now and store it with your receiver: it verifies that deliveries come from Herald. "
                "If you lose it, rotate it to get a new one." }
            div class="secret-box" {
                code id="secret-value" { (secret) }
                (render::copy_button("secret-value"))
            }
        }
        section class="card callout" {
            h2 { "Next: send a test delivery" }
            p { "The endpoint is " (render::endpoint_status_badge(endpoint.status())) ". "
                "It receives live events once a test delivery gets a 200 or 201 from it." }
            div class="button-row" {
                form method="post" action={ "/console/endpoints/" (endpoint.id) "/test" } data-busy="Sending…" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button class="button primary" type="submit" { "Send test delivery" }
                }
                a class="button ghost" href={ "/console/endpoints/" (endpoint.id) } { "Open endpoint" }
            }
        }
    };
    render::page(
        session,
        Nav::Webhooks,
        &format!("{name} created"),
        Some(&Flash::success("Endpoint created.")),
        html! {},
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_fields_land_on_form_fields() {
        assert_eq!(form_field("spec.url"), Some("url"));
        assert_eq!(form_field("spec.device_ids[1]"), Some("devices"));
        assert_eq!(form_field("spec.retry.delays[0]"), Some("retry"));
        assert_eq!(form_field("spec.signing_scheme"), Some("signing"));
        assert_eq!(
            form_field("spec.signature_header"),
            Some("signature_header")
        );
        assert_eq!(form_field("etag"), None);
    }

    #[test]
    fn custom_retry_delays_are_read_as_durations() {
        let values = Values {
            retry: "custom".into(),
            retry_delays: "30s, 5m".into(),
            ..Values::blank()
        };
        let retry = values.to_spec().unwrap().retry.unwrap();
        assert_eq!(retry.delays.len(), 2);
        assert_eq!(retry.delays[1].seconds, 300);
        let bad = Values {
            retry: "custom".into(),
            retry_delays: "soon".into(),
            ..Values::blank()
        };
        assert_eq!(bad.to_spec().unwrap_err().field, Some("retry"));
    }
}
