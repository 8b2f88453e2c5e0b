//! Devices: the WhatsApp lines, Telegram bots and WABA numbers whose
//! webhooks Herald receives. List them by channel, add, edit and remove one,
//! and read the setup each needs on the channel's side (the URL to paste,
//! with its verify token, secret token or HMAC key).
//!
//! Secrets are write-only in the API: they are shown once, on the page that
//! answers the form that set them, and never again.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, header},
    response::Response,
};
use herald_config::FIELD_METADATA_KEY;
use herald_proto::v1::{
    self as pb, config_service_server::ConfigService, device_verification::Channel as Verification,
};
use maud::{Markup, html};
use serde::Deserialize;

use crate::{
    Console,
    error::PageError,
    form::Form,
    html_page, page_clearing_flash, redirect_with_flash,
    render::{self, Flash, Nav},
    session::{self, Session},
    take_flash,
};

/// Remembers the public address of the ingest service that the setup
/// instructions print (the console cannot know how it is exposed).
const INGEST_BASE_COOKIE: &str = "herald_ingest_base";
/// Herald's default ingest port, for the first guess at that address.
const DEFAULT_INGEST_PORT: u16 = 7080;

const CHANNELS: [pb::Channel; 3] = [
    pb::Channel::Whatsapp,
    pb::Channel::Telegram,
    pb::Channel::Waba,
];

/// How a channel's devices are called, and what their fields mean.
struct ChannelText {
    plural: &'static str,
    singular: &'static str,
    external_id: &'static str,
    external_id_hint: &'static str,
}

fn channel_text(channel: pb::Channel) -> ChannelText {
    match channel {
        pb::Channel::Telegram => ChannelText {
            plural: "Telegram bots",
            singular: "Telegram bot",
            external_id: "Bot id",
            external_id_hint: "The number before the colon in the bot token BotFather gave you (123456789:AA…).",
        },
        pb::Channel::Waba => ChannelText {
            plural: "WABA numbers",
            singular: "WABA number",
            external_id: "Phone number id",
            external_id_hint: "Meta’s phone_number_id for the number (WhatsApp → API Setup in the app dashboard), not the phone number itself.",
        },
        _ => ChannelText {
            plural: "WhatsApp lines",
            singular: "WhatsApp line",
            external_id: "Gateway session name",
            external_id_hint: "The session name on your WhatsApp gateway (WAHA-style), e.g. default.",
        },
    }
}

fn parse_channel(value: &str) -> Option<pb::Channel> {
    CHANNELS
        .into_iter()
        .find(|channel| render::channel_slug(*channel) == value)
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// A new public address of the ingest service, to remember.
    ingest: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    channel: Option<String>,
}

/// The ingest service's public base URL: the one this browser chose, else
/// the one the operator configured (`--public-ingest-url`), else the
/// console's host on the default ingest port; and whether it is more than
/// that guess.
fn ingest_base(configured: Option<&str>, headers: &HeaderMap) -> (String, bool) {
    if let Some(base) = session::cookie(headers, INGEST_BASE_COOKIE).and_then(|value| {
        let decoded: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())?;
        valid_base(&decoded)
    }) {
        return (base, true);
    }
    if let Some(configured) = configured {
        return (configured.to_owned(), true);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => host,
    };
    let scheme = if headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("https"))
    {
        "https"
    } else {
        "http"
    };
    (format!("{scheme}://{host}:{DEFAULT_INGEST_PORT}"), false)
}

/// An http(s) URL without query or fragment, without its trailing slash.
pub(crate) fn valid_base(value: &str) -> Option<String> {
    let parsed = url::Url::parse(value.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return None;
    }
    Some(parsed.as_str().trim_end_matches('/').to_owned())
}

/// The URL the channel posts to for `device`.
fn inbound_url(base: &str, device: &pb::Device) -> String {
    format!(
        "{base}/inbound/{}/{}",
        render::channel_slug(device.channel()),
        device.id
    )
}

async fn list_all(console: &Console, session: &Session) -> Result<Vec<pb::Device>, PageError> {
    Ok(super::devices(console, session)
        .await?
        .into_values()
        .collect())
}

async fn get_device(
    console: &Console,
    session: &Session,
    device_id: &str,
) -> Result<pb::Device, PageError> {
    Ok(console
        .backend
        .config()
        .get_device(session.credentials.request(pb::GetDeviceRequest {
            device_id: device_id.to_owned(),
        }))
        .await?
        .into_inner())
}

pub async fn list(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    if let Some(new_base) = query.ingest.as_deref() {
        return Ok(match valid_base(new_base) {
            Some(base) => {
                let encoded: String =
                    url::form_urlencoded::byte_serialize(base.as_bytes()).collect();
                let mut response = redirect_with_flash(
                    &headers,
                    "/console/devices",
                    &Flash::success(format!("Setup instructions now use {base}.")),
                );
                response.headers_mut().append(
                    header::SET_COOKIE,
                    session::set_cookie(
                        &headers,
                        INGEST_BASE_COOKIE,
                        &encoded,
                        std::time::Duration::from_secs(365 * 24 * 3600),
                    ),
                );
                response
            }
            None => redirect_with_flash(
                &headers,
                "/console/devices",
                &Flash::warning(
                    "That is not an http(s) address: write e.g. https://hooks.example.com",
                ),
            ),
        });
    }
    let flash = take_flash(&headers);
    let devices = list_all(&console, &session).await?;
    let (base, remembered) = ingest_base(console.public_ingest_url(), &headers);
    let body = html! {
        p class="lede" { "The lines and bots whose incoming webhooks Herald receives. Add one, then do its setup on the channel’s side, then link it to a webhook." }
        @if devices.is_empty() {
            section class="card" {
                (render::empty_state("No devices yet", html! {
                    "Add a WhatsApp line, a Telegram bot or a WABA number: Herald gives you the webhook URL and secret to paste on the channel’s side. "
                }))
                (add_buttons())
            }
        }
        @for channel in CHANNELS {
            @let group: Vec<&pb::Device> = devices.iter().filter(|device| device.channel() == channel).collect();
            @let text = channel_text(channel);
            @let title_id = format!("devices-{}-title", render::channel_slug(channel));
            @if !group.is_empty() {
                section class="card table-card" aria-labelledby=(title_id) {
                    div class="table-toolbar" {
                        h2 id=(title_id) { (text.plural) " " span class="muted" { "(" (group.len()) ")" } }
                        a class="button small" href={ "/console/devices/new?channel=" (render::channel_slug(channel)) } { "Add " (text.singular) }
                    }
                    div class="table-wrap" {
                        table class="data devices" {
                            caption class="visually-hidden" { (text.plural) }
                            thead { tr {
                                th scope="col" { "Name" }
                                th scope="col" { (text.external_id) }
                                th scope="col" { "Status" }
                                th scope="col" { "Last webhook" }
                                th scope="col" { "Events (24 h)" }
                                th scope="col" { "Inbound URL" }
                                th scope="col" { span class="visually-hidden" { "Actions" } }
                            } }
                            tbody {
                                @for device in group {
                                    tr {
                                        td class="name-cell" { a class="row-link" href={ "/console/devices/" (device.id) } { (device.name) } }
                                        td data-label=(text.external_id) { code { (device.external_id) } }
                                        td data-label="Status" { (verification_badge(device)) (health_badge(device)) }
                                        td data-label="Last webhook" class="last-webhook" { (last_webhook(device)) }
                                        td data-label="Events (24 h)" class="events-24h" { (device.health.as_ref().map_or(0, |health| health.events_24h)) }
                                        td data-label="Inbound URL" { span class="url truncate" title=(inbound_url(&base, device)) tabindex="0" { (inbound_url(&base, device)) } }
                                        td class="row-actions" data-label="Actions" {
                                            a class="button small" href={ "/console/devices/" (device.id) } { "Setup" span class="visually-hidden" { " " (device.name) } }
                                            a class="button small" href={ "/console/devices/" (device.id) "/edit" } { "Edit" span class="visually-hidden" { " " (device.name) } }
                                            a class="button small danger-ghost" href={ "/console/devices/" (device.id) "/delete" } { "Remove" span class="visually-hidden" { " " (device.name) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section class="card" aria-labelledby="ingest-title" {
            h2 id="ingest-title" { "Where channels reach Herald" }
            p { "Setup instructions use " code id="ingest-base" { (base) } " as the public address of Herald’s ingest service"
                @if !remembered { " (a guess: this host on port " (DEFAULT_INGEST_PORT) ")" } "." }
            form class="inline-form" method="get" action="/console/devices" {
                label for="ingest" { "Public ingest address" }
                input id="ingest" name="ingest" type="url" value=(base) placeholder="https://hooks.example.com";
                button class="button small" type="submit" { "Use this address" }
            }
        }
    };
    let actions = html! { a class="button primary" href="/console/devices/new" { "Add device" } };
    Ok(page_clearing_flash(
        &headers,
        flash.is_some(),
        render::page(
            &session,
            Nav::Devices,
            "Devices",
            flash.as_ref(),
            actions,
            body,
        ),
    ))
}

fn add_buttons() -> Markup {
    html! {
        div class="button-row" {
            @for channel in CHANNELS {
                a class="button" href={ "/console/devices/new?channel=" (render::channel_slug(channel)) } {
                    "Add " (channel_text(channel).singular)
                }
            }
        }
    }
}

fn verification_badge(device: &pb::Device) -> Markup {
    let configured = device
        .verification
        .as_ref()
        .is_some_and(|verification| verification.configured);
    match (device.channel(), configured) {
        (_, true) => render::badge("green", "Verified webhooks"),
        (pb::Channel::Whatsapp, false) => render::badge("amber", "No HMAC: unverified"),
        (_, false) => render::badge("red", "No secret"),
    }
}

/// A warning when calls were refused lately: most often the secret pasted
/// on the channel's side is not the one Herald holds.
fn health_badge(device: &pb::Device) -> Markup {
    match &device.health {
        Some(health) if health.verification_failures_24h > 0 => html! {
            " " (render::badge("red", &format!("{} refused (24 h)", health.verification_failures_24h)))
        },
        _ => html! {},
    }
}

fn last_webhook(device: &pb::Device) -> Markup {
    match device
        .health
        .as_ref()
        .and_then(|health| health.last_webhook_at.as_ref())
    {
        Some(at) => render::time_ago(Some(at)),
        None => html! { span class="muted" { "Never" } },
    }
}

/// The device's inbound calls of the last day, and why the last refused one
/// was refused.
fn health_card(device: &pb::Device) -> Markup {
    let health = device.health.clone().unwrap_or_default();
    html! {
        section class="card health-card" aria-labelledby="health-title" {
            h2 id="health-title" { "Health" }
            @if health.last_webhook_at.is_none() {
                p class="muted" { "No webhook has reached this device yet. Once the setup is done on the channel’s side, its first call shows here within seconds." }
            }
            dl class="details" {
                dt { "Last webhook" } dd id="health-last-webhook" { (last_webhook(device)) }
                dt { "Events in the last 24 h" } dd id="health-events" { (health.events_24h) }
                dt { "Refused verifications in the last 24 h" } dd id="health-refused" {
                    (health.verification_failures_24h)
                    @if health.verification_failures_24h > 0 { " " (render::badge("red", "Check the secret")) }
                }
                @if !health.last_refusal_reason.is_empty() {
                    dt { "Last refusal" } dd id="health-last-refusal" {
                        (health.last_refusal_reason) " · " (render::time_ago(health.last_refusal_at.as_ref()))
                    }
                }
            }
        }
    }
}

/// What the device form shows: read from a device, or as the user sent it.
#[derive(Clone, Debug, Default)]
struct Values {
    channel: String,
    name: String,
    external_id: String,
    /// Gateway HMAC key, Telegram secret token, or WABA app secret.
    secret: String,
    /// WABA's verify token.
    verify_token: String,
    etag: String,
}

impl Values {
    fn from_form(form: &Form) -> Values {
        Values {
            channel: form.get("channel"),
            name: form.get("name"),
            external_id: form.get("external_id"),
            secret: form.get("secret"),
            verify_token: form.get("verify_token"),
            etag: form.get("etag"),
        }
    }

    /// The verification to store; empty generated secrets are filled in
    /// (`None` keeps the stored one, when editing).
    fn verification(
        &self,
        channel: pb::Channel,
        creating: bool,
    ) -> Result<Option<pb::DeviceVerification>, DeviceProblem> {
        if !creating && self.secret.is_empty() && self.verify_token.is_empty() {
            return Ok(None);
        }
        let generated = |value: &str| -> Result<String, DeviceProblem> {
            if value.is_empty() {
                session::random_token().map_err(|error| DeviceProblem::general(error.to_string()))
            } else {
                Ok(value.to_owned())
            }
        };
        let verification = match channel {
            pb::Channel::Telegram => Verification::Telegram(pb::TelegramVerification {
                secret_token: generated(&self.secret)?,
            }),
            pb::Channel::Waba => {
                if self.secret.is_empty() {
                    return Err(DeviceProblem::field(
                        "secret",
                        "the app secret is required: copy it from Meta’s app dashboard (App settings → Basic)",
                    ));
                }
                Verification::Waba(pb::WabaVerification {
                    app_secret: self.secret.clone(),
                    verify_token: generated(&self.verify_token)?,
                })
            }
            _ => Verification::Whatsapp(pb::GatewayVerification {
                hmac_key: generated(&self.secret)?,
            }),
        };
        Ok(Some(pb::DeviceVerification {
            channel: Some(verification),
            configured: false,
        }))
    }
}

#[derive(Clone, Debug)]
struct DeviceProblem {
    field: Option<&'static str>,
    message: String,
}

impl DeviceProblem {
    fn field(field: &'static str, message: impl Into<String>) -> DeviceProblem {
        DeviceProblem {
            field: Some(field),
            message: message.into(),
        }
    }

    fn general(message: impl Into<String>) -> DeviceProblem {
        DeviceProblem {
            field: None,
            message: message.into(),
        }
    }

    fn from_status(status: tonic::Status) -> Result<DeviceProblem, PageError> {
        if !matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::Aborted
                | tonic::Code::FailedPrecondition
                | tonic::Code::AlreadyExists
        ) {
            return Err(status.into());
        }
        let grpc_field = status
            .metadata()
            .get(FIELD_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let field = match grpc_field.split(['.', '[']).next().unwrap_or_default() {
            "name" => Some("name"),
            "external_id" => Some("external_id"),
            "verification" if grpc_field.ends_with("verify_token") => Some("verify_token"),
            "verification" => Some("secret"),
            _ => None,
        };
        let message = status.message();
        let message = message
            .strip_prefix(&format!("{grpc_field}: "))
            .unwrap_or(message)
            .to_owned();
        Ok(DeviceProblem { field, message })
    }

    fn on(&self, field: &str) -> Option<&str> {
        (self.field == Some(field)).then_some(self.message.as_str())
    }
}

pub async fn new(
    State(_console): State<Console>,
    session: Session,
    Query(query): Query<NewQuery>,
) -> Result<Response, PageError> {
    let Some(channel) = query.channel.as_deref().and_then(parse_channel) else {
        let body = html! {
            section class="card narrow" {
                h2 { "Which channel?" }
                p { "Each channel needs its own fields and its own setup on the channel’s side." }
                (add_buttons())
            }
        };
        return Ok(html_page(render::page(
            &session,
            Nav::Devices,
            "Add device",
            None,
            html! {},
            body,
        )));
    };
    let values = Values {
        channel: render::channel_slug(channel).to_owned(),
        ..Default::default()
    };
    Ok(html_page(device_form(
        &session, channel, None, &values, None,
    )))
}

pub async fn edit(
    State(console): State<Console>,
    session: Session,
    Path(device_id): Path<String>,
) -> Result<Response, PageError> {
    let device = get_device(&console, &session, &device_id).await?;
    let values = Values {
        channel: render::channel_slug(device.channel()).to_owned(),
        name: device.name.clone(),
        external_id: device.external_id.clone(),
        etag: device.etag.clone(),
        ..Default::default()
    };
    Ok(html_page(device_form(
        &session,
        device.channel(),
        Some(&device),
        &values,
        None,
    )))
}

fn refused(markup: Markup) -> Response {
    let mut response = html_page(markup);
    *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    response
}

pub async fn create(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let values = Values::from_form(&form);
    let Some(channel) = parse_channel(&values.channel) else {
        return Err(PageError::NotFound("There is no such channel.".to_owned()));
    };
    let verification = match values.verification(channel, true) {
        Ok(verification) => verification,
        Err(problem) => {
            return Ok(refused(device_form(
                &session,
                channel,
                None,
                &values,
                Some(problem),
            )));
        }
    };
    let created = console
        .backend
        .config()
        .create_device(session.credentials.request(pb::CreateDeviceRequest {
            channel: channel.into(),
            name: values.name.clone(),
            external_id: values.external_id.clone(),
            verification: verification.clone(),
        }))
        .await;
    match created {
        Ok(device) => {
            let device = device.into_inner();
            let (base, _) = ingest_base(console.public_ingest_url(), &headers);
            Ok(html_page(setup_page(
                &session,
                &device,
                &base,
                verification.as_ref(),
                Some(&Flash::success(format!(
                    "{} added. Copy its secrets now: they are shown once.",
                    device.name
                ))),
            )))
        }
        Err(status) => {
            let problem = DeviceProblem::from_status(status)?;
            Ok(refused(device_form(
                &session,
                channel,
                None,
                &values,
                Some(problem),
            )))
        }
    }
}

pub async fn update(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let before = get_device(&console, &session, &device_id).await?;
    let channel = before.channel();
    let values = Values {
        channel: render::channel_slug(channel).to_owned(),
        ..Values::from_form(&form)
    };
    let verification = match values.verification(channel, false) {
        Ok(verification) => verification,
        Err(problem) => {
            return Ok(refused(device_form(
                &session,
                channel,
                Some(&before),
                &values,
                Some(problem),
            )));
        }
    };
    let mut paths = vec!["name".to_owned(), "external_id".to_owned()];
    if verification.is_some() {
        paths.push("verification".to_owned());
    }
    let updated = console
        .backend
        .config()
        .update_device(session.credentials.request(pb::UpdateDeviceRequest {
            device_id: device_id.clone(),
            name: values.name.clone(),
            external_id: values.external_id.clone(),
            verification: verification.clone(),
            update_mask: Some(prost_types::FieldMask { paths }),
            etag: values.etag.clone(),
        }))
        .await;
    match updated {
        Ok(device) => {
            let device = device.into_inner();
            if verification.is_some() {
                let (base, _) = ingest_base(console.public_ingest_url(), &headers);
                return Ok(html_page(setup_page(
                    &session,
                    &device,
                    &base,
                    verification.as_ref(),
                    Some(&Flash::success(
                        "Saved with new secrets: copy them now and update the channel’s side.",
                    )),
                )));
            }
            Ok(redirect_with_flash(
                &headers,
                &format!("/console/devices/{device_id}"),
                &Flash::success("Saved."),
            ))
        }
        Err(status) => {
            let problem = DeviceProblem::from_status(status)?;
            Ok(refused(device_form(
                &session,
                channel,
                Some(&before),
                &values,
                Some(problem),
            )))
        }
    }
}

pub async fn show(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(device_id): Path<String>,
) -> Result<Response, PageError> {
    let flash = take_flash(&headers);
    let device = get_device(&console, &session, &device_id).await?;
    let (base, _) = ingest_base(console.public_ingest_url(), &headers);
    Ok(page_clearing_flash(
        &headers,
        flash.is_some(),
        setup_page(&session, &device, &base, None, flash.as_ref()),
    ))
}

pub async fn confirm_delete(
    State(console): State<Console>,
    session: Session,
    Path(device_id): Path<String>,
) -> Result<Response, PageError> {
    let device = get_device(&console, &session, &device_id).await?;
    let body = html! {
        section class="card narrow danger-zone" {
            h2 { "Remove “" (device.name) "”?" }
            p { "Herald refuses this device’s webhooks from now on (404), and endpoints linked to it stop receiving its events. "
                "Remove its webhook on the channel’s side too." }
            div class="button-row" {
                form method="post" action={ "/console/devices/" (device.id) "/delete" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button class="button danger" type="submit" { "Remove device" }
                }
                a class="button ghost" href={ "/console/devices/" (device.id) } { "Cancel" }
            }
        }
    };
    Ok(html_page(render::page(
        &session,
        Nav::Devices,
        "Remove device",
        None,
        html! {},
        body,
    )))
}

pub async fn delete(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    console
        .backend
        .config()
        .delete_device(
            session
                .credentials
                .request(pb::DeleteDeviceRequest { device_id }),
        )
        .await?;
    Ok(redirect_with_flash(
        &headers,
        "/console/devices",
        &Flash::success("Device removed."),
    ))
}

fn device_form(
    session: &Session,
    channel: pb::Channel,
    device: Option<&pb::Device>,
    values: &Values,
    problem: Option<DeviceProblem>,
) -> Markup {
    let text = channel_text(channel);
    let problem = problem.as_ref();
    let error = |field: &str| problem.and_then(|problem| problem.on(field));
    let (title, action) = match device {
        Some(device) => (
            format!("Edit {}", device.name),
            format!("/console/devices/{}", device.id),
        ),
        None => (
            format!("Add {}", text.singular),
            "/console/devices".to_owned(),
        ),
    };
    let editing = device.is_some();
    let keep = if editing {
        " Leave empty to keep the current one."
    } else {
        ""
    };
    let (secret_label, secret_hint) = match channel {
        pb::Channel::Telegram => (
            "Secret token",
            "Telegram sends it in X-Telegram-Bot-Api-Secret-Token with every update. 1–256 of A–Z a–z 0–9 _ -. Generated when empty.",
        ),
        pb::Channel::Waba => (
            "App secret",
            "Your Meta app’s secret (App settings → Basic): Herald checks X-Hub-Signature-256 with it.",
        ),
        _ => (
            "HMAC key",
            "Your gateway signs each webhook with HMAC-SHA512 of the body under this key (X-Webhook-Hmac). Generated when empty.",
        ),
    };
    let body = html! {
        @if let Some(problem) = problem {
            div class="error-summary" role="alert" tabindex="-1" id="error-summary" {
                h2 { "This device could not be saved" }
                p {
                    @if let Some(field) = problem.field { a href={ "#" (field) } { (problem.message) } }
                    @else { (problem.message) }
                }
            }
        }
        form class="stack device-form" method="post" action=(action) novalidate {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="etag" value=(values.etag);
            input type="hidden" name="channel" value=(values.channel);
            section class="card form-section" aria-labelledby="device-section" {
                h2 id="device-section" { (text.singular) }
                (field("name", "Name", &values.name, "text", "Shown in the console, e.g. Sales line.", error("name")))
                (field("external_id", text.external_id, &values.external_id, "text", text.external_id_hint, error("external_id")))
            }
            section class="card form-section" aria-labelledby="secrets-section" {
                h2 id="secrets-section" { "Verification" }
                p class="hint" { "Secrets are stored sealed and shown once, after saving." (keep) }
                (field("secret", secret_label, &values.secret, "text", secret_hint, error("secret")))
                @if channel == pb::Channel::Waba {
                    (field("verify_token", "Verify token", &values.verify_token, "text",
                        "The token you type into Meta’s webhook settings; Meta echoes it in the hub.verify_token handshake. Generated when empty.",
                        error("verify_token")))
                }
            }
            div class="form-actions" {
                button class="button primary" type="submit" { @if editing { "Save device" } @else { "Add device" } }
                a class="button ghost" href=(device.map_or("/console/devices".to_owned(), |device| format!("/console/devices/{}", device.id))) { "Cancel" }
            }
        }
    };
    render::page(session, Nav::Devices, &title, None, html! {}, body)
}

fn field(
    name: &str,
    label: &str,
    value: &str,
    kind: &str,
    hint: &str,
    error: Option<&str>,
) -> Markup {
    let hint_id = format!("{name}-hint");
    let error_id = format!("{name}-error");
    let described = match error {
        Some(_) => format!("{hint_id} {error_id}"),
        None => hint_id.clone(),
    };
    html! {
        div class={ "field" @if error.is_some() { " invalid" } } {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) autocomplete="off" spellcheck="false"
                aria-invalid=[error.map(|_| "true")] aria-describedby=(described);
            p class="hint" id=(hint_id) { (hint) }
            @if let Some(error) = error { p class="field-error" id=(error_id) { (error) } }
        }
    }
}

/// One value to copy: a label, the value, its copy button.
fn copy_row(id: &str, label: &str, value: &str) -> Markup {
    html! {
        dt { (label) }
        dd class="copy-row" {
            code class="wrap" id=(id) { (value) }
            " " (render::copy_button(id))
        }
    }
}

/// The device's settings and its inbound setup. `secrets` (just set) are
/// shown once; otherwise they appear as placeholders.
fn setup_page(
    session: &Session,
    device: &pb::Device,
    base: &str,
    secrets: Option<&pb::DeviceVerification>,
    flash: Option<&Flash>,
) -> Markup {
    let text = channel_text(device.channel());
    let url = inbound_url(base, device);
    let set = secrets.and_then(|verification| verification.channel.clone());
    let kept = "(set; shown only when saved: replace it from Edit to see a new one)";
    let instructions = match device.channel() {
        pb::Channel::Telegram => {
            let token = match &set {
                Some(Verification::Telegram(telegram)) => telegram.secret_token.clone(),
                _ => "<your secret token>".to_owned(),
            };
            let call = format!(
                "curl -sS https://api.telegram.org/bot<BOT TOKEN>/setWebhook -d url={} -d secret_token={}",
                url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>(),
                token
            );
            html! {
                ol class="steps" {
                    li { "Call Telegram’s " code { "setWebhook" } " with the bot’s token (from BotFather), this URL and the secret token:" }
                }
                dl class="details setup" {
                    (copy_row("setup-url", "Webhook URL", &url))
                    @if set.is_some() { (copy_row("setup-secret", "secret_token", &token)) }
                    @else { dt { "secret_token" } dd { span class="muted" { (kept) } } }
                    (copy_row("setup-call", "setWebhook call", &call))
                }
                p class="hint" { "Telegram then sends every update with " code { "X-Telegram-Bot-Api-Secret-Token" } "; Herald refuses updates without it (403)." }
            }
        }
        pb::Channel::Waba => {
            let (verify_token, app_secret) = match &set {
                Some(Verification::Waba(waba)) => (
                    Some(waba.verify_token.clone()),
                    Some(waba.app_secret.clone()),
                ),
                _ => (None, None),
            };
            html! {
                ol class="steps" {
                    li { "In Meta’s app dashboard, open WhatsApp → Configuration → Webhook and press Edit." }
                    li { "Paste the callback URL and the verify token below, and press Verify and save (Meta calls the URL with " code { "hub.verify_token" } ")." }
                    li { "Subscribe to the " code { "messages" } " field." }
                }
                dl class="details setup" {
                    (copy_row("setup-url", "Callback URL", &url))
                    @match verify_token {
                        Some(token) => { (copy_row("setup-verify-token", "Verify token", &token)) }
                        None => { dt { "Verify token" } dd { span class="muted" { (kept) } } }
                    }
                    @if let Some(secret) = app_secret { (copy_row("setup-app-secret", "App secret (as you entered it)", &secret)) }
                }
                p class="hint" { "Meta signs each webhook with your app secret in " code { "X-Hub-Signature-256" } "; Herald refuses a wrong signature (403)." }
            }
        }
        _ => {
            let key = match &set {
                Some(Verification::Whatsapp(gateway)) => Some(gateway.hmac_key.clone()),
                _ => None,
            };
            html! {
                ol class="steps" {
                    li { "In your WhatsApp gateway’s session settings, add a webhook with this URL and the events you want (" code { "message" } ", " code { "message.ack" } ", …)." }
                    li { "Turn on HMAC with the key below: the gateway sends " code { "X-Webhook-Hmac" } " (SHA-512 of the body, hex) and " code { "X-Webhook-Hmac-Algorithm: sha512" } "." }
                }
                dl class="details setup" {
                    (copy_row("setup-url", "Webhook URL", &url))
                    @match key {
                        Some(key) => { (copy_row("setup-hmac-key", "HMAC key", &key)) }
                        None => { dt { "HMAC key" } dd { span class="muted" { (kept) } } }
                    }
                    dt { "HMAC algorithm" } dd { code { "sha512" } }
                }
            }
        }
    };
    let body = html! {
        div class="status-line" { (verification_badge(device)) }
        div class="columns" {
            section class="card setup-card" aria-labelledby="setup-title" {
                h2 id="setup-title" { "Inbound setup" }
                p { "Do this once on the " (render::channel_label(device.channel())) " side so its webhooks reach Herald." }
                (instructions)
                p class="hint" { "The address comes from " a href="/console/devices" { "Where channels reach Herald" } " on the Devices page." }
            }
            section class="card" aria-labelledby="device-title" {
                h2 id="device-title" { "Device" }
                dl class="details" {
                    dt { "Channel" } dd { (text.singular) }
                    dt { (text.external_id) } dd { code { (device.external_id) } }
                    dt { "Created" } dd { (render::exact_time(device.created_at.as_ref())) }
                    dt { "ID" } dd { code id="device-id" { (device.id) } " " (render::copy_button("device-id")) }
                }
                p { a href="/console/endpoints/new" { "Add a webhook for its events" } }
            }
            (health_card(device))
        }
    };
    let actions = html! {
        a class="button" href={ "/console/devices/" (device.id) "/edit" } { "Edit" }
        a class="button danger-ghost" href={ "/console/devices/" (device.id) "/delete" } { "Remove" }
    };
    render::page(session, Nav::Devices, &device.name, flash, actions, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_addresses_are_remembered() {
        assert_eq!(
            valid_base("https://hooks.example.com/").as_deref(),
            Some("https://hooks.example.com")
        );
        assert_eq!(
            valid_base("http://10.0.0.5:7080/herald").as_deref(),
            Some("http://10.0.0.5:7080/herald")
        );
        assert!(valid_base("ftp://example.com").is_none());
        assert!(valid_base("https://example.com/?a=1").is_none());
        assert!(valid_base("not a url").is_none());
    }

    #[test]
    fn the_configured_address_comes_before_the_guess() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "console.example.com:7070".parse().unwrap());
        assert_eq!(
            ingest_base(Some("https://hooks.example.com"), &headers),
            ("https://hooks.example.com".to_owned(), true)
        );
    }

    #[test]
    fn the_first_guess_is_this_host_on_the_ingest_port() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "console.example.com:7070".parse().unwrap());
        assert_eq!(
            ingest_base(None, &headers),
            ("http://console.example.com:7080".to_owned(), false)
        );
    }
}
