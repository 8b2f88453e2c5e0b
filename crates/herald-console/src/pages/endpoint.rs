//! One endpoint: its settings, a link to its Test page, enable and disable, rotate the secret,
//! delete (after a confirmation page), and its recent attempts.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use herald_proto::v1::{
    self as pb, attempt_service_server::AttemptService, config_service_server::ConfigService,
};
use maud::{Markup, html};

use crate::{
    Console,
    error::PageError,
    form::Form,
    html_page, page_clearing_flash, redirect_with_flash,
    render::{self, Flash, Nav},
    session::Session,
    take_flash,
};

/// What a POST adds to the endpoint page it renders.
enum Outcome {
    None,
    Rotated(pb::EndpointSecrets),
}

const RECENT_ATTEMPTS: u32 = 10;

pub async fn show(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
) -> Result<Response, PageError> {
    let flash = take_flash(&headers);
    let page = render_page(
        &console,
        &session,
        &endpoint_id,
        flash.as_ref(),
        Outcome::None,
    )
    .await?;
    Ok(page_clearing_flash(&headers, flash.is_some(), page))
}

pub async fn enable(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let endpoint = console
        .backend
        .config()
        .enable_endpoint(session.credentials.request(pb::EnableEndpointRequest {
            endpoint_id: endpoint_id.clone(),
        }))
        .await?
        .into_inner();
    let flash = if endpoint.status() == pb::EndpointStatus::Active {
        Flash::success("Enabled: live events are delivered again.")
    } else {
        Flash::info("Enabled. Send a test delivery to activate it.")
    };
    Ok(redirect_with_flash(
        &headers,
        &format!("/console/endpoints/{endpoint_id}"),
        &flash,
    ))
}

pub async fn disable(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    console
        .backend
        .config()
        .disable_endpoint(session.credentials.request(pb::DisableEndpointRequest {
            endpoint_id: endpoint_id.clone(),
            reason: String::new(),
        }))
        .await?;
    Ok(redirect_with_flash(
        &headers,
        &format!("/console/endpoints/{endpoint_id}"),
        &Flash::info("Disabled: no live events are sent until you enable it."),
    ))
}

pub async fn rotate_secret(
    State(console): State<Console>,
    session: Session,
    Path(endpoint_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let secrets = console
        .backend
        .config()
        .rotate_endpoint_secret(
            session
                .credentials
                .request(pb::RotateEndpointSecretRequest {
                    endpoint_id: endpoint_id.clone(),
                    ..Default::default()
                }),
        )
        .await?
        .into_inner();
    Ok(html_page(
        render_page(
            &console,
            &session,
            &endpoint_id,
            None,
            Outcome::Rotated(secrets),
        )
        .await?,
    ))
}

pub async fn confirm_delete(
    State(console): State<Console>,
    session: Session,
    Path(endpoint_id): Path<String>,
) -> Result<Response, PageError> {
    let endpoint = console
        .backend
        .config()
        .get_endpoint(session.credentials.request(pb::GetEndpointRequest {
            endpoint_id: endpoint_id.clone(),
        }))
        .await?
        .into_inner();
    let spec = endpoint.spec.clone().unwrap_or_default();
    let body = html! {
        section class="card narrow danger-zone" {
            h2 { "Delete “" (spec.name) "”?" }
            p { "Herald stops delivering to " code { (spec.url) } " at once. "
                "This cannot be undone: to pause deliveries instead, disable the endpoint." }
            div class="button-row" {
                form method="post" action={ "/console/endpoints/" (endpoint_id) "/delete" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button class="button danger" type="submit" { "Delete endpoint" }
                }
                a class="button ghost" href={ "/console/endpoints/" (endpoint_id) } { "Cancel" }
            }
        }
    };
    Ok(html_page(render::page(
        &session,
        Nav::Webhooks,
        "Delete endpoint",
        None,
        html! {},
        body,
    )))
}

pub async fn delete(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    console
        .backend
        .config()
        .delete_endpoint(
            session
                .credentials
                .request(pb::DeleteEndpointRequest { endpoint_id }),
        )
        .await?;
    Ok(redirect_with_flash(
        &headers,
        "/console/",
        &Flash::success("Endpoint deleted."),
    ))
}

async fn render_page(
    console: &Console,
    session: &Session,
    endpoint_id: &str,
    flash: Option<&Flash>,
    outcome: Outcome,
) -> Result<maud::Markup, PageError> {
    let endpoint = console
        .backend
        .config()
        .get_endpoint(session.credentials.request(pb::GetEndpointRequest {
            endpoint_id: endpoint_id.to_owned(),
        }))
        .await?
        .into_inner();
    let attempts = console
        .backend
        .attempts()
        .list_attempts(session.credentials.request(pb::ListAttemptsRequest {
            page_size: RECENT_ATTEMPTS,
            endpoint_id: endpoint_id.to_owned(),
            ..Default::default()
        }))
        .await?
        .into_inner()
        .attempts;
    let devices = super::devices(console, session).await?;
    let spec = endpoint.spec.clone().unwrap_or_default();
    let status = endpoint.status();
    let base = format!("/console/endpoints/{}", endpoint.id);
    let csrf = html! { input type="hidden" name="csrf" value=(session.csrf); };

    let actions = html! {
        a class="button primary" href={ (base) "/test" } { "Test" }
        a class="button" href={ (base) "/edit" } { "Edit" }
        @if matches!(status, pb::EndpointStatus::Disabled | pb::EndpointStatus::Failing) {
            form method="post" action={ (base) "/enable" } {
                (csrf)
                button class="button" type="submit" { "Enable" }
            }
        } @else {
            form method="post" action={ (base) "/disable" } {
                (csrf)
                button class="button" type="submit" { "Disable" }
            }
        }
        a class="button danger-ghost" href={ (base) "/delete" } { "Delete" }
    };

    let body = html! {
        @match &outcome {
            Outcome::Rotated(secrets) => { (rotated(secrets)) }
            Outcome::None => {}
        }
        div class="status-line" {
            (render::endpoint_status_badge(status))
            @if !endpoint.status_reason.is_empty() { span class="muted" { (endpoint.status_reason) } }
            @if status == pb::EndpointStatus::PendingTest && endpoint.status_reason.is_empty() {
                span class="muted" { "Press Test: a 200 or 201 from your receiver activates it." }
            }
        }
        div class="columns" {
            section class="card" {
                h2 { "Settings" }
                dl class="details" {
                    dt { "URL" } dd { code class="wrap" { (spec.url) } }
                    @if !spec.description.is_empty() { dt { "Description" } dd { (spec.description) } }
                    dt { "Devices" } dd { (devices_list(&spec, &devices)) }
                    dt { "Events" } dd {
                        @if spec.all_event_types || spec.event_types.is_empty() { "All events" }
                        @else { ul class="tags" { @for name in &spec.event_types { li { code { (name) } } } } }
                    }
                    dt { "Signing" } dd { (signing(&spec)) }
                    dt { "Retries" } dd { (retries(&spec)) }
                    dt { "Rate limit" } dd {
                        @match spec.rate_limit.filter(|limit| limit.per_second > 0.0) {
                            Some(limit) => { (limit.per_second) " per second" @if limit.burst > 0 { ", burst " (limit.burst) } }
                            None => "Unlimited"
                        }
                    }
                    dt { "Ordering" } dd { @if spec.ordering() == pb::Ordering::Fifo { "In order (FIFO)" } @else { "Unordered" } }
                    dt { "Timeout" } dd { (render::duration_ms(spec.timeout.as_ref())) }
                    dt { "Created" } dd { (render::exact_time(endpoint.created_at.as_ref())) }
                    dt { "Updated" } dd { (render::exact_time(endpoint.updated_at.as_ref())) }
                    dt { "ID" } dd { code id="endpoint-id" { (endpoint.id) } " " (render::copy_button("endpoint-id")) }
                }
            }
            section class="card" {
                h2 { "Signing secret" }
                p { "Rotating makes a new secret. The old one stays valid for 24 hours, and deliveries carry both signatures meanwhile, so you can update your receiver without losing any." }
                form method="post" action={ (base) "/rotate-secret" } {
                    (csrf)
                    button class="button" type="submit" { "Rotate secret" }
                }
            }
        }
        section class="card table-card" aria-labelledby="recent-title" {
            div class="table-toolbar" {
                h2 id="recent-title" { "Recent attempts" }
                a class="button ghost small" href={ "/console/logs?endpoint=" (endpoint.id) } { "All in Logs →" }
            }
            @if attempts.is_empty() {
                (render::empty_state("No attempts yet", html! { "Send a test delivery, or wait for the first event." }))
            } @else {
                (super::logs::attempts_table(&attempts, None))
            }
        }
    };
    Ok(render::page(
        session,
        Nav::Webhooks,
        &spec.name,
        flash,
        actions,
        body,
    ))
}

fn rotated(secrets: &pb::EndpointSecrets) -> Markup {
    html! {
        section class="card test-result success" role="status" {
            h2 { "New signing secret" }
            p { "Copy it now: it is shown once. The previous secret stays valid until "
                (render::exact_time(secrets.previous_expires_at.as_ref())) "." }
            div class="secret-box" {
                code id="secret-value" { (secrets.current) }
                (render::copy_button("secret-value"))
            }
        }
    }
}

fn devices_list(
    spec: &pb::EndpointSpec,
    devices: &std::collections::BTreeMap<String, pb::Device>,
) -> Markup {
    if spec.all_devices || spec.device_ids.is_empty() {
        return html! { "All devices" };
    }
    html! {
        ul class="tags" {
            @for id in &spec.device_ids {
                li {
                    @match devices.get(id) {
                        Some(device) => { (render::channel_label(device.channel())) " · " (device.name) }
                        None => code { (id) }
                    }
                }
            }
        }
    }
}

fn signing(spec: &pb::EndpointSpec) -> String {
    let scheme = match spec.signing_scheme() {
        pb::SigningScheme::Sha256Hex => format!("HMAC SHA-256 (hex) in {}", spec.signature_header),
        pb::SigningScheme::Hex => format!("HMAC SHA-256 (bare hex) in {}", spec.signature_header),
        pb::SigningScheme::SharedSecret => "Shared secret in X-Webhook-Secret".to_owned(),
        _ => "Standard Webhooks".to_owned(),
    };
    if spec.preset.is_empty() {
        scheme
    } else {
        format!("{scheme}, {} preset", spec.preset)
    }
}

fn retries(spec: &pb::EndpointSpec) -> String {
    let retry = spec.retry.clone().unwrap_or_default();
    if retry.use_default {
        return "Herald’s default (5 s, 25 s, 2 min)".to_owned();
    }
    if retry.delays.is_empty() {
        return "None".to_owned();
    }
    retry
        .delays
        .iter()
        .map(|delay| {
            let delay = std::time::Duration::new(
                u64::try_from(delay.seconds).unwrap_or_default(),
                u32::try_from(delay.nanos).unwrap_or_default(),
            );
            humantime::format_duration(delay).to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn excerpt(text: &str, chars: usize) -> String {
    let mut excerpt: String = text.chars().take(chars).collect();
    if text.chars().count() > chars {
        excerpt.push('…');
    }
    excerpt
}
