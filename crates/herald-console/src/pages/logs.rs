//! The delivery logs: every attempt, filtered and paged, and one attempt's
//! detail.

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
};

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt};
use herald_proto::v1::{
    self as pb, attempt_service_server::AttemptService, recovery_service_server::RecoveryService,
};
use maud::{Markup, html};
use serde::Deserialize;
use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};

use crate::{
    Console,
    error::PageError,
    form::Form,
    html_page, page_clearing_flash, redirect_with_flash,
    render::{self, Nav, Pager},
    session::Session,
    take_flash,
};

const PAGE_SIZE: u32 = 25;

const STATUSES: [(pb::AttemptStatus, &str, &str); 5] = [
    (pb::AttemptStatus::Succeeded, "succeeded", "Succeeded"),
    (pb::AttemptStatus::Failed, "failed", "Failed"),
    (pb::AttemptStatus::Retrying, "retrying", "Retrying"),
    (pb::AttemptStatus::Dead, "dead", "Dead"),
    (pb::AttemptStatus::Skipped, "skipped", "Skipped"),
];

const CHANNELS: [(pb::Channel, &str, &str); 4] = [
    (pb::Channel::Whatsapp, "whatsapp", "WhatsApp"),
    (pb::Channel::Telegram, "telegram", "Telegram"),
    (pb::Channel::Waba, "waba", "WABA"),
    (
        pb::Channel::Internal,
        "internal",
        "No device (published, tests)",
    ),
];

/// A filter's select of named values, after an "any" choice.
fn named_select<'a>(
    id: &str,
    label: &str,
    any: &str,
    options: impl Iterator<Item = (&'a str, &'a str)>,
    current: &str,
) -> Markup {
    html! {
        div class="field" {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" { (any) }
                @for (name, text) in options {
                    option value=(name) selected[name == current] { (text) }
                }
            }
        }
    }
}

/// The status a filter's value names; any other value filters nothing.
fn status_named(value: &str) -> pb::AttemptStatus {
    STATUSES
        .iter()
        .find(|(_, name, _)| *name == value)
        .map_or(pb::AttemptStatus::Unspecified, |(status, _, _)| *status)
}

/// The channel a filter's value names; any other value filters nothing.
fn channel_named(value: &str) -> pb::Channel {
    CHANNELS
        .iter()
        .find(|(_, name, _)| *name == value)
        .map_or(pb::Channel::Unspecified, |(channel, _, _)| *channel)
}

#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    endpoint: Option<String>,
    event_type: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    device: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<String>,
    trail: Option<String>,
}

/// A `datetime-local` value (`2026-11-25T12:00`, read as UTC).
fn parse_local(value: &str) -> Option<prost_types::Timestamp> {
    let with_seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let without = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    PrimitiveDateTime::parse(value, with_seconds)
        .or_else(|_| PrimitiveDateTime::parse(value, without))
        .ok()
        .map(|moment| herald_proto::timestamp_to_wire(moment.assume_utc()))
}

pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<LogsQuery>,
) -> Result<Response, PageError> {
    let text = |value: &Option<String>| value.as_deref().unwrap_or_default().trim().to_owned();
    let (endpoint, event_type, status, since, until) = (
        text(&query.endpoint),
        text(&query.event_type),
        text(&query.status),
        text(&query.since),
        text(&query.until),
    );
    let (channel, device) = (text(&query.channel), text(&query.device));
    let channel_filter = channel_named(&channel);
    let pager = Pager::from_query(query.page.as_deref(), query.trail.as_deref());
    let status_filter = status_named(&status);
    let mut problems = Vec::new();
    let since_filter = parse_local(&since);
    if !since.is_empty() && since_filter.is_none() {
        problems.push("“From” is not a date and time.");
    }
    let until_filter = parse_local(&until);
    if !until.is_empty() && until_filter.is_none() {
        problems.push("“To” is not a date and time.");
    }
    let listed = console
        .backend
        .attempts()
        .list_attempts(session.credentials.request(pb::ListAttemptsRequest {
            page_size: PAGE_SIZE,
            page_token: pager.page_token.clone(),
            endpoint_id: endpoint.clone(),
            event_type: event_type.clone(),
            status: status_filter.into(),
            event_id: String::new(),
            since: since_filter,
            until: until_filter,
            device_id: device.clone(),
            channel: channel_filter.into(),
        }))
        .await?
        .into_inner();
    let names = super::endpoint_names(&console, &session).await?;
    let event_types = super::event_types(&console, &session).await?;
    let mut devices: Vec<pb::Device> = super::devices(&console, &session)
        .await?
        .into_values()
        .collect();
    devices.sort_by(|a, b| (a.channel, &a.name).cmp(&(b.channel, &b.name)));
    let filtered = [
        &endpoint,
        &event_type,
        &status,
        &channel,
        &device,
        &since,
        &until,
    ]
    .iter()
    .any(|value| !value.is_empty());

    let live_url = format!(
        "/console/logs/live?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("endpoint", &endpoint)
            .append_pair("event_type", &event_type)
            .append_pair("status", &status)
            .append_pair("channel", &channel)
            .append_pair("device", &device)
            .finish()
    );
    let body = html! {
        form class="card filters" method="get" action="/console/logs" aria-label="Filter attempts" {
            div class="field" {
                label for="endpoint" { "Endpoint" }
                select id="endpoint" name="endpoint" {
                    option value="" { "All endpoints" }
                    @for (id, name) in &names {
                        option value=(id) selected[*id == endpoint] { (name) }
                    }
                }
            }
            div class="field" {
                label for="event_type" { "Event type" }
                select id="event_type" name="event_type" {
                    option value="" { "All event types" }
                    @for definition in &event_types {
                        option value=(definition.name) selected[definition.name == event_type] { (definition.name) }
                    }
                }
            }
            (named_select("status", "Status", "Any status", STATUSES.iter().map(|(_, name, label)| (*name, *label)), &status))
            (named_select("channel", "Channel", "Any channel", CHANNELS.iter().map(|(_, name, label)| (*name, *label)), &channel))
            div class="field" {
                label for="device" { "Device" }
                select id="device" name="device" {
                    option value="" { "Any device" }
                    @for option in &devices {
                        option value=(option.id) selected[option.id == device] {
                            (render::channel_label(option.channel())) " · " (option.name)
                        }
                    }
                }
            }
            div class="field" {
                label for="since" { "From (UTC)" }
                input id="since" name="since" type="datetime-local" value=(since);
            }
            div class="field" {
                label for="until" { "To (UTC)" }
                input id="until" name="until" type="datetime-local" value=(until);
            }
            div class="filter-actions" {
                button class="button primary small" type="submit" { "Apply" }
                @if filtered { a class="button ghost small" href="/console/logs" { "Reset" } }
            }
        }
        @for problem in &problems { p class="field-error" role="alert" { (problem) } }
        section class="card table-card" aria-labelledby="attempts-title" {
            div class="table-toolbar" {
                h2 id="attempts-title" { "Attempts" }
                span class="muted small" { "Newest first" }
                button class="button small" type="button" id="live-toggle" hidden aria-pressed="false" data-live-url=(live_url) { "Follow live" }
            }
            p class="muted small" id="live-status" role="status" aria-live="polite" {}
            @if listed.attempts.is_empty() {
                div class="logs-empty" {
                    (render::empty_state(
                        if filtered { "No attempt matches" } else { "No attempts yet" },
                        html! { "Every delivery try, test deliveries included, shows up here." },
                    ))
                }
            }
            div id="attempts-live" hidden[listed.attempts.is_empty()] {
                (attempts_table(&listed.attempts, Some(&names)))
            }
            @if !listed.attempts.is_empty() {
                @let other = [
                    ("endpoint", endpoint.clone()),
                    ("event_type", event_type.clone()),
                    ("status", status.clone()),
                    ("channel", channel.clone()),
                    ("device", device.clone()),
                    ("since", since.clone()),
                    ("until", until.clone()),
                ];
                (pager.links("/console/logs", &other, &listed.next_page_token))
            }
        }
    };
    Ok(html_page(render::page(
        &session,
        Nav::Logs,
        "Logs",
        None,
        html! {},
        body,
    )))
}

/// The attempts table; the endpoint column only when `names` is given.
pub fn attempts_table(
    attempts: &[pb::Attempt],
    names: Option<&BTreeMap<String, String>>,
) -> Markup {
    html! {
        div class="table-wrap" {
            table class="data" {
                caption class="visually-hidden" { "Delivery attempts" }
                thead { tr {
                    th scope="col" { "Time" }
                    th scope="col" { "Event" }
                    @if names.is_some() { th scope="col" { "Endpoint" } }
                    th scope="col" { "Status" }
                    th scope="col" { "Response" }
                    th scope="col" { "Duration" }
                } }
                tbody {
                    @for attempt in attempts {
                        (attempt_row(attempt, names))
                    }
                }
            }
        }
    }
}

/// One attempt's row; the endpoint cell only when `names` is given.
pub fn attempt_row(attempt: &pb::Attempt, names: Option<&BTreeMap<String, String>>) -> Markup {
    html! {
        tr {
            td data-label="Time" { a class="row-link" href={ "/console/logs/" (attempt.id) } { (render::exact_time(attempt.attempted_at.as_ref())) } }
            td data-label="Event" {
                code { (attempt.event_type) }
                @if attempt.test { " " (render::badge("blue", "Test")) }
                @if attempt.attempt > 1 { " " span class="muted small" { "try " (attempt.attempt) } }
            }
            @if let Some(names) = names {
                td data-label="Endpoint" {
                    a href={ "/console/endpoints/" (attempt.endpoint_id) } {
                        (names.get(&attempt.endpoint_id).cloned().unwrap_or_else(|| attempt.endpoint_id.clone()))
                    }
                }
            }
            td data-label="Status" { (render::attempt_status_badge(attempt.status())) }
            td data-label="Response" {
                @if attempt.response_code != 0 { span class="code" { (attempt.response_code) } }
                @else { span class="muted" { "—" } }
            }
            td data-label="Duration" { (render::duration_ms(attempt.duration.as_ref())) }
        }
    }
}

/// Signature and secret headers are redacted by the delivery service
/// already; the console hides them again in case a record came otherwise.
pub fn shown_header_value<'a>(name: &str, value: &'a str) -> &'a str {
    let name = name.to_ascii_lowercase();
    let sensitive = ["signature", "secret", "authorization"]
        .iter()
        .any(|word| name.contains(word));
    if sensitive && !value.contains("redacted") {
        "(redacted)"
    } else {
        value
    }
}

/// New attempts as server-sent events, one table row each, matching the
/// page's filters; the Logs page's "Follow live" prepends them. Without
/// JavaScript the paged view is all there is.
pub async fn live(
    State(console): State<Console>,
    session: Session,
    Query(query): Query<LogsQuery>,
) -> Result<Response, PageError> {
    let text = |value: &Option<String>| value.as_deref().unwrap_or_default().trim().to_owned();
    let status = text(&query.status);
    let status_filter = status_named(&status);
    let (channel, device) = (text(&query.channel), text(&query.device));
    let devices = super::devices(&console, &session).await?;
    // Tails filter by endpoint, type and status; device and channel here.
    let wanted_devices: Option<BTreeSet<String>> = if !device.is_empty() {
        Some(BTreeSet::from([device]))
    } else if channel == "internal" {
        Some(BTreeSet::from([String::new()]))
    } else if let wire @ (pb::Channel::Whatsapp | pb::Channel::Telegram | pb::Channel::Waba) =
        channel_named(&channel)
    {
        Some(
            devices
                .values()
                .filter(|device| device.channel() == wire)
                .map(|device| device.id.clone())
                .collect(),
        )
    } else {
        None
    };
    let names = super::endpoint_names(&console, &session).await?;
    let tail = console
        .backend
        .attempts()
        .tail_attempts(session.credentials.request(pb::TailAttemptsRequest {
            endpoint_id: text(&query.endpoint),
            event_type: text(&query.event_type),
            status: status_filter.into(),
            backlog: 0,
        }))
        .await?
        .into_inner();
    let rows = live_rows(tail, wanted_devices, names);
    Ok(Sse::new(rows)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn live_rows(
    tail: impl Stream<Item = Result<pb::Attempt, tonic::Status>> + Send + 'static,
    wanted_devices: Option<BTreeSet<String>>,
    names: BTreeMap<String, String>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    tail.take_while(|attempt| std::future::ready(attempt.is_ok()))
        .filter_map(move |attempt| {
            let row = attempt.ok().filter(|attempt| {
                wanted_devices
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(&attempt.device_id))
            });
            let event = row.map(|attempt| {
                Ok(SseEvent::default()
                    .event("attempt")
                    .data(attempt_row(&attempt, Some(&names)).into_string()))
            });
            std::future::ready(event)
        })
}

pub async fn show(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(attempt_id): Path<String>,
) -> Result<Response, PageError> {
    let flash = take_flash(&headers);
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
    let names = super::endpoint_names(&console, &session).await?;
    let endpoint_name = names
        .get(&attempt.endpoint_id)
        .cloned()
        .unwrap_or_else(|| attempt.endpoint_id.clone());
    let response_body = String::from_utf8_lossy(&attempt.response_body);
    let trigger = match attempt.trigger() {
        pb::DeliveryTrigger::Test => "Test delivery",
        pb::DeliveryTrigger::Replay => "Replay",
        pb::DeliveryTrigger::Redrive => "Redrive",
        pb::DeliveryTrigger::Recover => "Recovery",
        _ => "Live event",
    };
    let body = html! {
        div class="status-line" {
            (render::attempt_status_badge(attempt.status()))
            @if attempt.response_code != 0 { span class="code" { "HTTP " (attempt.response_code) } }
            span class="muted" { (render::duration_ms(attempt.duration.as_ref())) }
        }
        div class="columns" {
            section class="card" {
                h2 { "Attempt" }
                dl class="details" {
                    dt { "Time" } dd { (render::exact_time(attempt.attempted_at.as_ref())) }
                    dt { "Event" } dd { code { (attempt.event_type) } }
                    dt { "Endpoint" } dd { a href={ "/console/endpoints/" (attempt.endpoint_id) } { (endpoint_name) } }
                    dt { "URL" } dd { code class="wrap" { (attempt.url) } }
                    dt { "Trigger" } dd { (trigger) }
                    dt { "Try" } dd { (attempt.attempt) }
                    @if attempt.next_attempt_at.is_some() {
                        dt { "Next try" } dd { (render::exact_time(attempt.next_attempt_at.as_ref())) }
                    }
                    @if !attempt.error.is_empty() { dt { "Error" } dd { (attempt.error) } }
                    dt { "Event ID" } dd { code id="event-id" { (attempt.event_id) } " " (render::copy_button("event-id")) }
                    dt { "Delivery ID" } dd { code { (attempt.delivery_id) } }
                    dt { "Attempt ID" } dd { code { (attempt.id) } }
                }
            }
            section class="card" {
                h2 { "Response body" }
                @if response_body.is_empty() { p class="muted" { "(empty)" } }
                @else { pre class="excerpt" { (response_body) } }
                p class="hint" { "The first 4 KiB of what the receiver answered." }
            }
        }
        section class="card" {
            h2 { "Request headers" }
            @if attempt.request_headers.is_empty() {
                p class="muted" { "None recorded." }
            } @else {
                div class="table-wrap" {
                    table class="data headers" {
                        caption class="visually-hidden" { "Request headers" }
                        thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                        tbody {
                            @for (name, value) in attempt.request_headers.iter().collect::<BTreeMap<_, _>>() {
                                tr {
                                    td data-label="Header" { code { (name) } }
                                    td data-label="Value" { code class="wrap" { (shown_header_value(name, value)) } }
                                }
                            }
                        }
                    }
                }
                p class="hint" { "Signatures and secrets are redacted." }
            }
        }
        section class="card" aria-labelledby="request-body-title" {
            h2 id="request-body-title" { "Request body" }
            @if attempt.request_body.is_empty() {
                p class="muted" {
                    @if attempt.request_body_size > 0 { "Not kept: this endpoint's stored bodies were purged (it was " (attempt.request_body_size) " bytes)." }
                    @else { "Nothing was sent." }
                }
            } @else {
                pre class="excerpt" id="request-body" { (String::from_utf8_lossy(&attempt.request_body)) }
                p class="hint" {
                    "Exactly the bytes POSTed (and signed)"
                    @if u64::try_from(attempt.request_body.len()).is_ok_and(|kept| kept < attempt.request_body_size) {
                        ": the first " (attempt.request_body.len()) " of " (attempt.request_body_size) " bytes"
                    }
                    "."
                }
            }
        }
    };
    let actions = html! {
        a class="button ghost" href={ "/console/logs?endpoint=" (attempt.endpoint_id) } { "← Endpoint’s logs" }
        @if !attempt.test {
            form method="post" action={ "/console/logs/" (attempt.id) "/replay" } {
                input type="hidden" name="csrf" value=(session.csrf);
                button class="button primary" type="submit" { "Replay" }
            }
        }
    };
    let title = format!(
        "{} · {}",
        attempt.event_type,
        render::absolute(
            render::to_time(attempt.attempted_at.as_ref()).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    );
    Ok(page_clearing_flash(
        &headers,
        flash.is_some(),
        render::page(&session, Nav::Logs, &title, flash.as_ref(), actions, body),
    ))
}

/// Sends the attempt's event to its endpoint again, with the same delivery
/// id, through a replay job.
pub async fn replay(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Path(attempt_id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let attempt = console
        .backend
        .attempts()
        .get_attempt(session.credentials.request(pb::GetAttemptRequest {
            attempt_id: attempt_id.clone(),
        }))
        .await?
        .into_inner();
    let job = console
        .backend
        .recovery()
        .replay_event(session.credentials.request(pb::ReplayEventRequest {
            event_id: attempt.event_id,
            endpoint_id: attempt.endpoint_id,
        }))
        .await?
        .into_inner();
    Ok(redirect_with_flash(
        &headers,
        &format!("/console/logs/{attempt_id}"),
        &super::job_flash("Replay", &job),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_are_read_as_utc() {
        let parsed = parse_local("2026-11-25T12:00").unwrap();
        assert_eq!(parsed.seconds, 1_795_608_000);
        assert!(parse_local("2026-11-25T12:00:30").is_some());
        assert!(parse_local("yesterday").is_none());
    }

    #[test]
    fn signature_headers_are_never_shown() {
        assert_eq!(
            shown_header_value("webhook-signature", "v1,abc"),
            "(redacted)"
        );
        assert_eq!(
            shown_header_value("webhook-signature", "(redacted)"),
            "(redacted)"
        );
        assert_eq!(
            shown_header_value("content-type", "application/json"),
            "application/json"
        );
    }
}
