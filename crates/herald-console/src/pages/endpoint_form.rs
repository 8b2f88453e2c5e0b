//! Adding and editing an endpoint. A refused form comes back with every
//! value kept and the service's error next to the field it names.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use herald_config::FIELD_METADATA_KEY;
use herald_core::preset::Preset;
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

const ALL: &str = "all";
const SELECTED: &str = "selected";

/// What the form shows: read from an endpoint, or as the user sent it.
#[derive(Clone, Debug, Default)]
struct Values {
    name: String,
    url: String,
    description: String,
    secret: String,
    preset: String,
    signing_scheme: String,
    signature_header: String,
    /// `all` (every device, including later ones) or `selected`.
    devices_mode: String,
    devices: Vec<String>,
    /// `all` (every event type) or `selected`.
    events_mode: String,
    events: Vec<String>,
    retry: String,
    retry_delays: String,
    rate_per_second: String,
    rate_burst: String,
    ordering: String,
    timeout: String,
    /// The transformation's JavaScript; empty: none.
    transformation: String,
    /// The catalog type whose sample "Try it" runs the program on.
    try_event_type: String,
    etag: String,
}

impl Values {
    fn blank() -> Values {
        Values {
            preset: String::new(),
            signing_scheme: "standard".to_owned(),
            devices_mode: ALL.to_owned(),
            events_mode: ALL.to_owned(),
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
            preset: spec.preset.clone(),
            signing_scheme: match spec.signing_scheme() {
                pb::SigningScheme::Sha256Hex => "sha256_hex",
                pb::SigningScheme::Hex => "hex",
                pb::SigningScheme::SharedSecret => "shared_secret",
                _ => "standard",
            }
            .to_owned(),
            signature_header: spec.signature_header.clone(),
            // The service reads an empty list as every device (or type):
            // the form says so with its one explicit choice.
            devices_mode: if spec.all_devices || spec.device_ids.is_empty() {
                ALL
            } else {
                SELECTED
            }
            .to_owned(),
            devices: if spec.all_devices {
                Vec::new()
            } else {
                spec.device_ids.clone()
            },
            events_mode: if spec.all_event_types || spec.event_types.is_empty() {
                ALL
            } else {
                SELECTED
            }
            .to_owned(),
            events: if spec.all_event_types {
                Vec::new()
            } else {
                spec.event_types.clone()
            },
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
            transformation: spec
                .transformation
                .as_ref()
                .map(|program| program.code.clone())
                .unwrap_or_default(),
            try_event_type: String::new(),
            etag: endpoint.etag.clone(),
        }
    }

    fn from_form(form: &Form) -> Values {
        Values {
            name: form.get("name"),
            url: form.get("url"),
            description: form.get("description"),
            secret: form.get("secret"),
            preset: form.get("preset"),
            signing_scheme: form.get("signing_scheme"),
            signature_header: form.get("signature_header"),
            devices_mode: form.get("devices_mode"),
            devices: form.all("device"),
            events_mode: form.get("events_mode"),
            events: form.all("event_type"),
            retry: form.get("retry"),
            retry_delays: form.get("retry_delays"),
            rate_per_second: form.get("rate_per_second"),
            rate_burst: form.get("rate_burst"),
            ordering: form.get("ordering"),
            timeout: form.get("timeout"),
            // Browsers send a textarea's lines with CRLF; the program as
            // stored (and compared to tell whether it changed) has LF.
            transformation: form.get("transformation").replace("\r\n", "\n"),
            try_event_type: form.get("try_event_type"),
            etag: form.get("etag"),
        }
    }

    /// The spec to send; a value the form itself cannot read (a number, a
    /// duration) is refused here, naming its field like the service would.
    fn to_spec(&self) -> Result<pb::EndpointSpec, Problem> {
        // A preset fixes the signing; the service fills it in.
        let scheme = match self.signing_scheme.as_str() {
            _ if !self.preset.is_empty() => pb::SigningScheme::Unspecified,
            "sha256_hex" => pb::SigningScheme::Sha256Hex,
            "hex" => pb::SigningScheme::Hex,
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
        let all_devices = self.devices_mode != SELECTED;
        if !all_devices && self.devices.is_empty() {
            return Err(Problem::field(
                "devices",
                "pick at least one device, or choose Every device",
            ));
        }
        // Ticks beside "every" would be dropped without a word (the script
        // clears them; a browser without it does not).
        if all_devices && !self.devices.is_empty() {
            return Err(Problem::field(
                "devices",
                "devices are ticked but Every device is chosen: choose Only the devices I pick, or untick them",
            ));
        }
        let all_events = self.events_mode != SELECTED;
        if all_events && !self.events.is_empty() {
            return Err(Problem::field(
                "events",
                "events are ticked but Every event type is chosen: choose Only the events I pick, or untick them",
            ));
        }
        if !all_events && self.events.is_empty() {
            return Err(Problem::field(
                "events",
                "pick at least one event, or choose Every event type",
            ));
        }
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
            preset: self.preset.clone(),
            signing_scheme: scheme.into(),
            signature_header: if matches!(
                scheme,
                pb::SigningScheme::Sha256Hex | pb::SigningScheme::Hex
            ) {
                self.signature_header.clone()
            } else {
                String::new()
            },
            all_devices,
            device_ids: if all_devices {
                Vec::new()
            } else {
                self.devices.clone()
            },
            all_event_types: all_events,
            event_types: if all_events {
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
            transformation: Some(pb::Transformation {
                code: self.transformation.clone(),
            }),
            // Set through the API; the form leaves it as stored (its update
            // names only the fields above).
            ..pb::EndpointSpec::default()
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
        "preset" => "preset",
        "signing_scheme" => "signing",
        "signature_header" => "signature_header",
        "device_ids" | "all_devices" => "devices",
        "event_types" | "all_event_types" => "events",
        "retry" => "retry",
        "rate_limit" => "rate_limit",
        "ordering" => "ordering",
        "timeout" => "timeout",
        "transformation" => "transformation",
        _ => return None,
    })
}

pub async fn new(State(console): State<Console>, session: Session) -> Result<Response, PageError> {
    render_form(&console, &session, None, &Values::blank(), None, None).await
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
    if form.get("intent") == TRY_INTENT {
        let preview = try_transformation(&console, &session, &values).await?;
        return render_form(&console, &session, None, &values, None, Some(preview)).await;
    }
    let spec = match values.to_spec() {
        Ok(spec) => spec,
        Err(problem) => {
            return render_form(&console, &session, None, &values, Some(problem), None).await;
        }
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
            let page = super::endpoint_test::render_test_page(
                &console,
                &session,
                &endpoint,
                Some(&Flash::success(
                    "Webhook saved. It is Pending test: send a test delivery to activate it.",
                )),
                Some(&created.secret),
                None,
            )
            .await?;
            Ok(html_page(page))
        }
        Err(status) => {
            let problem = Problem::from_status(status)?;
            render_form(&console, &session, None, &values, Some(problem), None).await
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
    if form.get("intent") == TRY_INTENT {
        let preview = try_transformation(&console, &session, &values).await?;
        return render_form(
            &console,
            &session,
            Some(&before),
            &values,
            None,
            Some(preview),
        )
        .await;
    }
    let spec = match values.to_spec() {
        Ok(spec) => spec,
        Err(problem) => {
            return render_form(
                &console,
                &session,
                Some(&before),
                &values,
                Some(problem),
                None,
            )
            .await;
        }
    };
    // Custom headers are not edited here, so they are left out of the mask.
    let paths = [
        "name",
        "description",
        "url",
        "preset",
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
        "transformation",
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
                &format!("/console/endpoints/{endpoint_id}/test"),
                &flash,
            ))
        }
        Err(status) => {
            let problem = Problem::from_status(status)?;
            render_form(
                &console,
                &session,
                Some(&before),
                &values,
                Some(problem),
                None,
            )
            .await
        }
    }
}

/// The button that runs the transformation instead of saving.
const TRY_INTENT: &str = "try";

/// What the form's program makes of the chosen catalog sample, shown under
/// the program: the body and headers it would send, that it cancels, or
/// where it fails. Nothing is saved or sent.
async fn try_transformation(
    console: &Console,
    session: &Session,
    values: &Values,
) -> Result<Markup, PageError> {
    let event_type = if values.try_event_type.is_empty() {
        "message.received".to_owned()
    } else {
        values.try_event_type.clone()
    };
    let simulated =
        console
            .backend
            .config()
            .simulate_transformation(session.credentials.request(
                pb::SimulateTransformationRequest {
                    code: values.transformation.clone(),
                    input: Some(pb::simulate_transformation_request::Input::EventType(
                        event_type.clone(),
                    )),
                    // The form's URL may not be valid yet; the program sees the
                    // simulation's default.
                    url: String::new(),
                },
            ))
            .await;
    let outcome = match simulated {
        Ok(simulated) => simulated.into_inner(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            return Ok(html! {
                section class="transform-preview" id="transform-preview" role="status" aria-labelledby="preview-title" {
                    h3 id="preview-title" { "Preview" }
                    p class="field-error" { (status.message()) }
                }
            });
        }
        Err(status) => return Err(status.into()),
    };
    Ok(html! {
        section class="transform-preview" id="transform-preview" role="status" aria-labelledby="preview-title" {
            h3 id="preview-title" { "Preview on the " (event_type) " sample" }
            @if let Some(error) = &outcome.error {
                p class="field-error" id="preview-error" {
                    (error.kind) ": " (error.message)
                    @if error.line > 0 { " (line " (error.line) ", column " (error.column) ")" }
                }
                p class="hint" { "Nothing would be sent: the delivery would be recorded as failed and kept in the dead letters." }
            } @else if outcome.cancel {
                p id="preview-cancel" { "Cancelled: the delivery would be skipped"
                    @if !outcome.cancel_reason.is_empty() { " (" (outcome.cancel_reason) ")" } "." }
            } @else {
                dl class="details compact" {
                    dt { "Event type" } dd { code { (outcome.event_type) } }
                    dt { "Headers added" } dd {
                        @if outcome.headers.is_empty() { span class="muted" { "none" } }
                        @for (name, value) in outcome.headers.iter().collect::<std::collections::BTreeMap<_, _>>() {
                            code { (name) ": " (value) } " "
                        }
                    }
                }
                pre class="excerpt" id="preview-body" { (outcome.body_json) }
            }
        }
    })
}

async fn render_form(
    console: &Console,
    session: &Session,
    endpoint: Option<&pb::Endpoint>,
    values: &Values,
    problem: Option<Problem>,
    preview: Option<Markup>,
) -> Result<Response, PageError> {
    let devices = super::devices(console, session).await?;
    let event_types = super::event_types(console, session).await?;
    let (title, action, submit) = match endpoint {
        Some(endpoint) => (
            "Edit webhook",
            format!("/console/endpoints/{}", endpoint.id),
            "Save → test",
        ),
        None => (
            "Add webhook",
            "/console/endpoints".to_owned(),
            "Save → test",
        ),
    };
    let cancel = endpoint.map_or("/console/".to_owned(), |endpoint| {
        format!("/console/endpoints/{}", endpoint.id)
    });
    let problem = problem.as_ref();
    let error = |field: &str| problem.and_then(|problem| problem.on(field));
    let delivery_error = [
        "retry",
        "rate_limit",
        "timeout",
        "ordering",
        "transformation",
    ]
    .iter()
    .any(|field| error(field).is_some())
        || preview.is_some();
    let channels = [
        pb::Channel::Whatsapp,
        pb::Channel::Telegram,
        pb::Channel::Waba,
    ];
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
        form class="stack endpoint-editor" method="post" action=(action) novalidate {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="etag" value=(values.etag);
            section class="card form-section" aria-labelledby="section-endpoint" {
                h2 id="section-endpoint" { "Endpoint" }
                (text_field("name", "Display name", &values.name, "text", "e.g. Orders service",
                    Some("Shown in the webhooks table and the logs."), error("name")))
                (text_field("url", "URL", &values.url, "url", "https://hooks.example.com/herald",
                    Some("An HTTPS address on your own server, reachable from the internet."), error("url")))
                (text_field("description", "Description (optional)", &values.description, "text", "", None, error("description")))
                div class="field" {
                    p class="field-label" { "What Herald sends" }
                    p class="hint" {
                        "A " code { "POST" } " with a JSON body (" code { "Content-Type: application/json" } ") per event, "
                        "signed as chosen under Security. Answer 200 or 201 within the timeout."
                    }
                }
            }
            section class="card form-section" aria-labelledby="section-devices" {
                h2 id="section-devices" { "Devices" }
                fieldset class={ "field" @if error("devices").is_some() { " invalid" } } id="devices" {
                    legend { "Which devices’ events to send" }
                    (radio("devices_mode", ALL, &values.devices_mode, "Every device",
                        "all of this tenant’s devices, including ones added later"))
                    (radio("devices_mode", SELECTED, &values.devices_mode, "Only the devices I pick",
                        "choose lines and bots per channel below"))
                    @if let Some(message) = error("devices") { p class="field-error" { (message) } }
                    @if devices.is_empty() {
                        p class="hint" {
                            "No devices yet: events of every device are sent. "
                            a href="/console/devices/new" { "Add a device" }
                        }
                    } @else {
                        div class="device-picker" data-device-picker {
                            div class="chips" id="device-chips" hidden {
                                p class="chips-title" id="chips-title" { "Selected devices" }
                                ul aria-labelledby="chips-title" {}
                            }
                            div class="tabs" role="tablist" aria-label="Channels" hidden {
                                @for channel in channels {
                                    @let slug = render::channel_slug(channel);
                                    @let count = devices.values().filter(|device| device.channel() == channel).count();
                                    button type="button" role="tab" class="tab" id={ "tab-" (slug) }
                                        aria-controls={ "devices-" (slug) } data-tab=(slug) {
                                        (render::channel_label(channel)) " "
                                        span class="tab-count" data-tab-count=(slug) { "0/" (count) }
                                    }
                                }
                            }
                            div class="picker-tools" hidden {
                                label class="visually-hidden" for="device-search" { "Search devices in this channel" }
                                input id="device-search" type="search" placeholder="Search this channel by name or id" autocomplete="off";
                                div class="button-row" {
                                    button class="button small" type="button" data-pick="all" { "Select all" }
                                    button class="button small" type="button" data-pick="filtered" { "Select filtered" }
                                    button class="button small ghost" type="button" data-pick="clear" { "Clear" }
                                }
                            }
                            @for channel in channels {
                                @let slug = render::channel_slug(channel);
                                @let group: Vec<&pb::Device> = devices.values().filter(|device| device.channel() == channel).collect();
                                fieldset class="group channel-panel" id={ "devices-" (slug) } data-panel=(slug) {
                                    legend { (render::channel_label(channel)) }
                                    @if group.is_empty() {
                                        p class="hint" { "No " (render::channel_label(channel)) " devices. " a href="/console/devices/new" { "Add one" } }
                                    }
                                    @for device in group {
                                        label class="check device-option" {
                                            input type="checkbox" name="device" value=(device.id) data-channel=(slug)
                                                data-name=(device.name) checked[values.devices.contains(&device.id)];
                                            span { (device.name) " " span class="muted" { (device.external_id) } }
                                        }
                                    }
                                    p class="hint no-match" hidden { "No device in this channel matches the search." }
                                }
                            }
                        }
                    }
                }
                p class="hint" {
                    "Each device sends its inbound events to Herald once it is set up on the channel’s side: see "
                    a href="/console/devices" { "Devices" } "."
                }
            }
            section class="card form-section" aria-labelledby="section-events" {
                h2 id="section-events" { "Events" }
                fieldset class={ "field" @if error("events").is_some() { " invalid" } } id="events" {
                    legend { "Which events to send" }
                    (radio("events_mode", ALL, &values.events_mode, "Every event type", "including custom types added later"))
                    (radio("events_mode", SELECTED, &values.events_mode, "Only the events I pick", "choose below"))
                    @if let Some(message) = error("events") { p class="field-error" { (message) } }
                    div class="check-grid" id="event-types" {
                        @for definition in &event_types {
                            @let produced_by = render::event_channels(&definition.name);
                            label class="check described event-option"
                                data-channels=[produced_by.as_ref().map(|channels| channels.iter().map(|channel| render::channel_slug(*channel)).collect::<Vec<_>>().join(" "))] {
                                input type="checkbox" name="event_type" value=(definition.name) checked[values.events.contains(&definition.name)];
                                span {
                                    strong class="event-label" { (render::event_label(&definition.name)) }
                                    " " code { (definition.name) }
                                    span class="description" {
                                        (definition.description)
                                        @if let Some(channels) = &produced_by {
                                            " (" (channels.iter().map(|channel| render::channel_label(*channel)).collect::<Vec<_>>().join(" and ")) " only)"
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p class="hint" id="events-hint" data-events-hint { "Options follow the channels of the devices you pick." }
                }
            }
            section class="card form-section" aria-labelledby="section-security" {
                h2 id="section-security" { "Security" }
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
                } @else {
                    p class="hint" { "The signing secret is kept; rotate it from the endpoint’s page." }
                }
                div class={ "field" @if error("preset").is_some() { " invalid" } } {
                    label for="preset" { "Payload preset" }
                    select id="preset" name="preset" aria-describedby="preset-hint" {
                        option value="" selected[values.preset.is_empty()] {
                            "Herald envelope: {id, event, organizationId, deviceId, channel, timestamp, data}"
                        }
                        @for preset in Preset::ALL {
                            option value=(preset.as_str()) selected[values.preset == preset.as_str()] { (preset.summary()) }
                        }
                    }
                    p class="hint" id="preset-hint" {
                        "For receivers written for another product: the body, headers and signing they expect. "
                        "A preset fixes the signing; the scheme below is then not used."
                    }
                    @if let Some(message) = error("preset") { p class="field-error" { (message) } }
                }
                fieldset class={ "field" @if error("signing").is_some() { " invalid" } } id="signing" {
                    legend { "Signing scheme" }
                    (radio("signing_scheme", "standard", &values.signing_scheme, "Standard Webhooks",
                        "webhook-id, webhook-timestamp and webhook-signature headers (recommended)"))
                    (radio("signing_scheme", "sha256_hex", &values.signing_scheme, "HMAC SHA-256 (hex)",
                        "sha256=<hex> in the header below"))
                    (radio("signing_scheme", "hex", &values.signing_scheme, "HMAC SHA-256 (bare hex)",
                        "<hex> without a prefix in the header below"))
                    (radio("signing_scheme", "shared_secret", &values.signing_scheme, "Shared secret",
                        "the secret itself in X-Webhook-Secret, as older webhook settings pages send it"))
                    @if let Some(message) = error("signing") { p class="field-error" { (message) } }
                }
                (text_field("signature_header", "Signature header (HMAC SHA-256 only)", &values.signature_header, "text",
                    "X-Herald-Signature",
                    Some("Not one Herald or HTTP sets itself: traceparent, tracestate, content-*, host, webhook-*, x-herald-*, x-idempotency-key and hop-by-hop headers are refused."),
                    error("signature_header")))
            }
            details class="card form-section delivery-options" open[delivery_error] {
                summary { h2 { "Delivery options" } span class="muted" { "retries, rate limit, timeout, ordering" } }
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
                div class={ "field" @if error("transformation").is_some() { " invalid" } } id="transformation-field" {
                    label for="transformation" { "Transformation (JavaScript)" }
                    textarea id="transformation" name="transformation" rows="10" spellcheck="false"
                        placeholder="function handler(webhook) {\n  return webhook;\n}"
                        aria-describedby="transformation-hint"
                        aria-invalid=[error("transformation").map(|_| "true")] { (values.transformation) }
                    p class="hint" id="transformation-hint" {
                        "Optional. "
                        code { "handler(webhook)" }
                        " gets the event, headers, url and eventType and returns what to send, or "
                        code { "{cancel: true}" }
                        ". 10 ms and 16 MiB per call; no network. Empty: the event is sent as is."
                    }
                    @if let Some(message) = error("transformation") { p class="field-error" { (message) } }
                    div class="try-row" {
                        label for="try_event_type" { "Try it on the sample of" }
                        select id="try_event_type" name="try_event_type" {
                            @for entry in herald_core::catalog::CATALOG {
                                option value=(entry.name) selected[entry.name == values.try_event_type] {
                                    (render::event_label(entry.name)) " (" (entry.name) ")"
                                }
                            }
                        }
                    }
                    p class="hint" { "“Try the transformation” below runs it on that sample and shows the result here; nothing is saved or sent." }
                    @if let Some(preview) = &preview { (preview) }
                }
            }
            div class="form-actions" {
                button class="button primary" type="submit" { (submit) }
                // After the save button, so Enter in a field still saves.
                button class="button" type="submit" name="intent" value="try" formnovalidate id="try-transformation"
                    formaction={ (action) "#transform-preview" } { "Try the transformation" }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_leaves_the_signing_to_the_service() {
        let values = Values {
            name: "Kapso bot".into(),
            url: "https://bot.example.com/whatsapp".into(),
            preset: "kapso".into(),
            signing_scheme: "sha256_hex".into(),
            signature_header: "X-Other".into(),
            ..Values::blank()
        };
        let spec = values.to_spec().unwrap();
        assert_eq!(spec.preset, "kapso");
        assert_eq!(spec.signing_scheme(), pb::SigningScheme::Unspecified);
        assert_eq!(spec.signature_header, "");
        let hex = Values {
            preset: String::new(),
            signing_scheme: "hex".into(),
            ..values
        };
        let spec = hex.to_spec().unwrap();
        assert_eq!(spec.signing_scheme(), pb::SigningScheme::Hex);
        assert_eq!(spec.signature_header, "X-Other");
        assert_eq!(form_field("spec.preset"), Some("preset"));
    }

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
    fn every_device_is_one_explicit_choice() {
        let picked = Values {
            devices_mode: SELECTED.into(),
            devices: vec!["dev_1".into()],
            ..Values::blank()
        };
        let spec = picked.to_spec().unwrap();
        assert!(!spec.all_devices && spec.device_ids == ["dev_1"]);
        let none_picked = Values {
            devices_mode: SELECTED.into(),
            ..Values::blank()
        };
        assert_eq!(none_picked.to_spec().unwrap_err().field, Some("devices"));
        let both = Values {
            devices: vec!["dev_1".into()],
            ..Values::blank()
        };
        assert_eq!(both.to_spec().unwrap_err().field, Some("devices"));
        assert!(Values::blank().to_spec().unwrap().all_devices);
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
