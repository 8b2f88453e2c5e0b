//! The Test page of an endpoint: pick the sample's event type, send it, and
//! read what was sent and what came back. Sending is a POST answered with a
//! redirect to the result (a GET naming the attempt), so reloading the result
//! never sends another test.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
};
use herald_proto::v1::{
    self as pb, attempt_service_server::AttemptService, config_service_server::ConfigService,
};
use maud::{Markup, html};
use serde::Deserialize;

use crate::{
    Console,
    error::PageError,
    form::Form,
    page_clearing_flash, redirect_with_flash,
    render::{self, Flash, Nav},
    session::Session,
    take_flash,
};

#[derive(Debug, Default, Deserialize)]
pub struct TestQuery {
    /// The test attempt to show.
    attempt: Option<String>,
    /// The endpoint's status before that test, to say when it changed.
    was: Option<String>,
}

pub async fn show(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
    Query(query): Query<TestQuery>,
) -> Result<Response, PageError> {
    let flash = take_flash(&headers);
    let endpoint = get_endpoint(&console, &session, &endpoint_id).await?;
    let attempt = match query.attempt.filter(|id| !id.is_empty()) {
        Some(attempt_id) => {
            let attempt = console
                .backend
                .attempts()
                .get_attempt(
                    session
                        .credentials
                        .request(pb::GetAttemptRequest { attempt_id }),
                )
                .await?
                .into_inner();
            // An attempt of another endpoint is not this page's result.
            (attempt.endpoint_id == endpoint.id).then_some(attempt)
        }
        None => None,
    };
    let was_active = query.was.as_deref() == Some("active");
    let markup = render_test_page(
        &console,
        &session,
        &endpoint,
        flash.as_ref(),
        None,
        attempt.as_ref().map(|attempt| (attempt, was_active)),
    )
    .await?;
    Ok(page_clearing_flash(&headers, flash.is_some(), markup))
}

pub async fn send(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(endpoint_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let before = get_endpoint(&console, &session, &endpoint_id).await?;
    let tested = console
        .backend
        .config()
        .test_endpoint(session.credentials.request(pb::TestEndpointRequest {
            endpoint_id: endpoint_id.clone(),
            event_type: form.get("event_type"),
            device_id: form.get("device_id"),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let attempt_id = tested.attempt.map(|attempt| attempt.id).unwrap_or_default();
    let was = if before.status() == pb::EndpointStatus::Active {
        "active"
    } else {
        "inactive"
    };
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("attempt", &attempt_id)
        .append_pair("was", was)
        .finish();
    Ok(redirect_with_flash(
        &headers,
        &format!("/console/endpoints/{endpoint_id}/test?{query}"),
        &Flash::info("Test delivery sent."),
    ))
}

async fn get_endpoint(
    console: &Console,
    session: &Session,
    endpoint_id: &str,
) -> Result<pb::Endpoint, PageError> {
    Ok(console
        .backend
        .config()
        .get_endpoint(session.credentials.request(pb::GetEndpointRequest {
            endpoint_id: endpoint_id.to_owned(),
        }))
        .await?
        .into_inner())
}

/// The Test page; `secret` is shown once, right after the endpoint was
/// created, and `result` is the attempt of the last test with whether the
/// endpoint was already active before it.
pub async fn render_test_page(
    console: &Console,
    session: &Session,
    endpoint: &pb::Endpoint,
    flash: Option<&Flash>,
    secret: Option<&str>,
    result: Option<(&pb::Attempt, bool)>,
) -> Result<Markup, PageError> {
    let event_types = super::event_types(console, session).await?;
    let spec = endpoint.spec.clone().unwrap_or_default();
    let subscribed: Vec<&pb::EventTypeDefinition> =
        if spec.all_event_types || spec.event_types.is_empty() {
            event_types.iter().collect()
        } else {
            event_types
                .iter()
                .filter(|definition| spec.event_types.contains(&definition.name))
                .collect()
        };
    let chosen = result
        .map(|(attempt, _)| attempt.event_type.clone())
        .or_else(|| spec.event_types.first().cloned())
        .unwrap_or_else(|| "message.received".to_owned());
    // The devices whose events the endpoint receives, by channel and name.
    let mut devices: Vec<pb::Device> = super::devices(console, session)
        .await?
        .into_values()
        .filter(|device| spec.all_devices || spec.device_ids.contains(&device.id))
        .collect();
    devices.sort_by(|a, b| (a.channel, &a.name).cmp(&(b.channel, &b.name)));
    let chosen_device = result
        .map(|(attempt, _)| attempt.device_id.clone())
        .unwrap_or_default();
    let status = endpoint.status();
    let base = format!("/console/endpoints/{}", endpoint.id);
    let body = html! {
        div class="status-line" {
            (render::endpoint_status_badge(status))
            @if status == pb::EndpointStatus::PendingTest {
                span class="muted" { "Live events start once a test gets a 200 or 201 from " code { (spec.url) } "." }
            } @else if !endpoint.status_reason.is_empty() {
                span class="muted" { (endpoint.status_reason) }
            }
        }
        @if let Some(secret) = secret {
            section class="card" aria-labelledby="secret-title" {
                h2 id="secret-title" { "Signing secret" }
                p { "Copy it now and store it with your receiver: it verifies that deliveries come from Herald. "
                    "It is shown once; if you lose it, rotate it to get a new one." }
                div class="secret-box" {
                    code id="secret-value" { (secret) }
                    (render::copy_button("secret-value"))
                }
            }
        }
        @if let Some((attempt, was_active)) = result {
            (test_result(attempt, was_active, status))
        }
        section class="card" aria-labelledby="send-title" {
            h2 id="send-title" { "Send a test delivery" }
            form class="stack" method="post" action={ (base) "/test" } data-busy="Sending…" {
                input type="hidden" name="csrf" value=(session.csrf);
                div class="field" {
                    label for="event_type" { "Event type of the sample" }
                    select id="event_type" name="event_type" aria-describedby="event-type-hint" {
                        @for definition in &subscribed {
                            option value=(definition.name) selected[definition.name == chosen] {
                                (render::event_label(&definition.name)) " (" (definition.name) ")"
                            }
                        }
                    }
                    p class="hint" id="event-type-hint" {
                        "The sample is a real delivery to your URL, signed like live ones, with "
                        code { "\"test\": true" } " in the body and the catalog’s example " code { "data" } " of the type."
                    }
                }
                div class="field" {
                    label for="device_id" { "Device of the sample" }
                    select id="device_id" name="device_id" aria-describedby="device-hint" {
                        option value="" selected[chosen_device.is_empty()] { "No device" }
                        @for device in &devices {
                            option value=(device.id) selected[device.id == chosen_device] {
                                (render::channel_label(device.channel())) " · " (device.name)
                            }
                        }
                    }
                    p class="hint" id="device-hint" {
                        "With a device, the sample carries its id in " code { "deviceId" } " and its channel in "
                        code { "channel" } "; with none, " code { "\"deviceId\": null" } " and " code { "\"channel\": \"internal\"" } "."
                    }
                }
                div class="button-row" {
                    button class="button primary" type="submit" { "Send test delivery" }
                    a class="button ghost" href=(base) { "Open endpoint" }
                }
            }
        }
    };
    Ok(render::page(
        session,
        Nav::Webhooks,
        &format!("Test · {}", spec.name),
        flash,
        html! {},
        body,
    ))
}

/// Why an answer does or does not activate the endpoint, in plain words.
fn verdict(attempt: &pb::Attempt, passed: bool) -> String {
    if passed {
        return format!(
            "Your server answered {}: the test passed.",
            attempt.response_code
        );
    }
    match attempt.response_code {
        0 if attempt.error.is_empty() => "No answer came back.".to_owned(),
        0 => format!(
            "No answer came back: {}.",
            attempt.error.trim_end_matches('.')
        ),
        202 => "Your server answered 202 Accepted, which says it queued the request without \
                handling it. Herald activates an endpoint only on 200 or 201, so that a \
                placeholder answering every request with 202 is not mistaken for a working \
                receiver. Answer 200 or 201 once your server has taken the event, and test again."
            .to_owned(),
        code @ 200..=299 => format!(
            "Your server answered {code}. Herald activates an endpoint only on 200 or 201: \
             other 2xx answers (204 and the like) often come from a placeholder that never \
             read the request."
        ),
        code => format!("Your server answered {code}. Only a 200 or 201 activates the endpoint."),
    }
}

fn test_result(attempt: &pb::Attempt, was_active: bool, now: pb::EndpointStatus) -> Markup {
    let passed = herald_core::matching::test_delivery_passed(
        attempt.status() == pb::AttemptStatus::Succeeded,
        attempt.response_code,
    );
    let tone = if passed { "success" } else { "warning" };
    let response_body = String::from_utf8_lossy(&attempt.response_body);
    html! {
        section class={ "card test-result " (tone) } aria-labelledby="result-title" {
            h2 id="result-title" {
                @if passed { "Test delivery succeeded" } @else { "Test delivery did not succeed" }
            }
            p class="verdict" { (verdict(attempt, passed)) }
            p {
                @if passed && !was_active && now == pb::EndpointStatus::Active {
                    "The endpoint is now " (render::endpoint_status_badge(now)) ": it receives live events."
                } @else {
                    "The endpoint is " (render::endpoint_status_badge(now)) "."
                }
                " " a href={ "/console/logs/" (attempt.id) } { "Attempt in the logs" }
            }
            div class="columns" {
                div class="request-sent" {
                    h3 { "Request sent" }
                    p { code { "POST" } " " code class="wrap" { (attempt.url) } }
                    p class="muted" { (render::exact_time(attempt.attempted_at.as_ref())) " · " code { (attempt.event_type) } }
                    div class="table-wrap" {
                        table class="data headers" {
                            caption class="visually-hidden" { "Request headers" }
                            thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                            tbody {
                                @for (name, value) in attempt.request_headers.iter().collect::<BTreeMap<_, _>>() {
                                    tr {
                                        td data-label="Header" { code { (name) } }
                                        td data-label="Value" { code class="wrap" { (super::logs::shown_header_value(name, value)) } }
                                    }
                                }
                            }
                        }
                    }
                    p class="hint" { "Signatures and secrets are redacted." }
                    p { "Body: Herald’s envelope (" code { "id" } ", " code { "event" } ", " code { "organizationId" } ", "
                        code { "deviceId" } ", " code { "channel" } ", " code { "timestamp" } ", " code { "data" } ") with "
                        code { "\"test\":true" } " and this " code { "data" } ":" }
                    pre class="excerpt" { (test_data_of(&attempt.event_type)) }
                }
                div class="response-received" {
                    h3 { "Response" }
                    dl class="details compact" {
                        dt { "Status" } dd {
                            @if attempt.response_code != 0 { span class="code" id="response-code" { (attempt.response_code) } }
                            @else { span class="muted" { "no response" } }
                        }
                        dt { "Time" } dd { (render::duration_ms(attempt.duration.as_ref())) }
                        @if !attempt.error.is_empty() { dt { "Error" } dd { (attempt.error) } }
                        dt { "Body" } dd {
                            @if response_body.is_empty() { span class="muted" { "(empty)" } }
                            @else { pre class="excerpt" { (super::endpoint::excerpt(&response_body, 600)) } }
                        }
                    }
                }
            }
        }
    }
}

/// The `data` a test of this type carried.
fn test_data_of(event_type: &str) -> &'static str {
    herald_core::catalog::EventType::parse(event_type).map_or("", |event_type| {
        herald_core::envelope::test_data(&event_type)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_202_says_why_it_does_not_activate() {
        let attempt = pb::Attempt {
            response_code: 202,
            ..Default::default()
        };
        let text = verdict(&attempt, false);
        assert!(
            text.contains("202 Accepted") && text.contains("200 or 201"),
            "{text}"
        );
    }
}
