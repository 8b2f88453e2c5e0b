//! The webhooks overview, as the settings page customers know: summary
//! cards, the developer notice, the endpoints table (newest first, sortable
//! by name and status, searchable, paged) and the delivery-contract footer.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use herald_config::MIN_SEARCH_CHARS;
use herald_proto::v1::{self as pb, config_service_server::ConfigService};
use maud::{Markup, html};
use serde::Deserialize;

use crate::{
    Console,
    error::PageError,
    page_clearing_flash,
    render::{self, Nav},
    session::Session,
    take_flash,
};

/// Endpoints per page.
pub const PAGE_SIZE: usize = 25;
/// The most endpoints the table sorts (the service lists in id order, so
/// sorting reads them all): 20 lookups of 500.
const MAX_SORTED: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    q: Option<String>,
    sort: Option<String>,
    page: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sort {
    Newest,
    Name,
    Status,
}

impl Sort {
    fn parse(value: Option<&str>) -> Sort {
        match value {
            Some("name") => Sort::Name,
            Some("status") => Sort::Status,
            _ => Sort::Newest,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::Name => "name",
            Sort::Status => "status",
        }
    }
}

/// Every endpoint matching `search`, in the service's order.
async fn all_endpoints(
    console: &Console,
    session: &Session,
    search: &str,
) -> Result<(Vec<pb::Endpoint>, bool), PageError> {
    let mut endpoints = Vec::new();
    let mut page_token = String::new();
    loop {
        let listed = console
            .backend
            .config()
            .list_endpoints(session.credentials.request(pb::ListEndpointsRequest {
                page_size: super::LOOKUP_PAGE,
                page_token: page_token.clone(),
                search: search.to_owned(),
                status: 0,
            }))
            .await?
            .into_inner();
        endpoints.extend(listed.endpoints);
        if listed.next_page_token.is_empty() {
            return Ok((endpoints, false));
        }
        if endpoints.len() >= MAX_SORTED {
            return Ok((endpoints, true));
        }
        page_token = listed.next_page_token;
    }
}

fn status_rank(status: pb::EndpointStatus) -> u8 {
    match status {
        pb::EndpointStatus::Failing => 0,
        pb::EndpointStatus::PendingTest | pb::EndpointStatus::Unspecified => 1,
        pb::EndpointStatus::Active => 2,
        pb::EndpointStatus::Disabled => 3,
    }
}

fn sort_endpoints(endpoints: &mut [pb::Endpoint], sort: Sort) {
    let name = |endpoint: &pb::Endpoint| {
        endpoint
            .spec
            .as_ref()
            .map(|spec| spec.name.to_lowercase())
            .unwrap_or_default()
    };
    // Ids are time-ordered (UUIDv7), so the newest has the greatest id.
    match sort {
        Sort::Newest => endpoints.sort_by(|a, b| b.id.cmp(&a.id)),
        Sort::Name => endpoints.sort_by(|a, b| name(a).cmp(&name(b)).then(b.id.cmp(&a.id))),
        Sort::Status => endpoints.sort_by(|a, b| {
            status_rank(a.status())
                .cmp(&status_rank(b.status()))
                .then(b.id.cmp(&a.id))
        }),
    }
}

/// Device attachments of one endpoint: an endpoint of every device counts
/// each of the tenant's devices.
fn linked_devices<'a>(
    spec: &pb::EndpointSpec,
    devices: &'a BTreeMap<String, pb::Device>,
) -> Vec<&'a pb::Device> {
    if spec.all_devices || spec.device_ids.is_empty() {
        devices.values().collect()
    } else {
        spec.device_ids
            .iter()
            .filter_map(|id| devices.get(id))
            .collect()
    }
}

pub async fn show(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<OverviewQuery>,
) -> Result<Response, PageError> {
    let search = query.q.as_deref().unwrap_or_default().trim().to_owned();
    let searching = search.chars().count() >= MIN_SEARCH_CHARS;
    let sort = Sort::parse(query.sort.as_deref());
    let page_number = query
        .page
        .as_deref()
        .and_then(|page| page.parse::<usize>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    let summary = console
        .backend
        .config()
        .get_summary(session.credentials.request(pb::GetSummaryRequest {}))
        .await?
        .into_inner();
    let devices = super::devices(&console, &session).await?;
    let (every_endpoint, _) = all_endpoints(&console, &session, "").await?;
    let has_endpoints = !every_endpoint.is_empty();
    let device_links: usize = every_endpoint
        .iter()
        .map(|endpoint| linked_devices(&endpoint.spec.clone().unwrap_or_default(), &devices).len())
        .sum();
    let (mut endpoints, truncated) = if searching {
        all_endpoints(&console, &session, &search).await?
    } else {
        (every_endpoint, false)
    };
    sort_endpoints(&mut endpoints, sort);
    let start = (page_number - 1).saturating_mul(PAGE_SIZE);
    let shown: Vec<pb::Endpoint> = endpoints
        .iter()
        .skip(start)
        .take(PAGE_SIZE)
        .cloned()
        .collect();
    let has_next = endpoints.len() > start.saturating_add(PAGE_SIZE);

    let link = |sort: Sort, page: usize| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        if searching {
            serializer.append_pair("q", &search);
        }
        if sort != Sort::Newest {
            serializer.append_pair("sort", sort.as_str());
        }
        if page > 1 {
            serializer.append_pair("page", &page.to_string());
        }
        let query = serializer.finish();
        if query.is_empty() {
            "/console/".to_owned()
        } else {
            format!("/console/?{query}")
        }
    };
    let sort_header = |label: &str, by: Sort| {
        let current = sort == by;
        html! {
            th scope="col" aria-sort=[current.then_some("ascending")] {
                a class="sort-link" href=(link(by, 1)) aria-current=[current.then_some("true")] {
                    (label) span class="visually-hidden" { ", sort by " (label.to_lowercase()) }
                    @if current { span aria-hidden="true" { " ↓" } }
                }
            }
        }
    };

    let flash = take_flash(&headers);
    let body = html! {
        p class="lede" { "Configure HTTPS endpoints that receive JSON when messages arrive on your devices or forms are submitted." }
        (cards(&summary, device_links))
        aside class="notice" aria-label="Developer notice" {
            p {
                strong { "This is a developer feature." }
                " Webhooks POST to a server you run: your CRM, helpdesk or backend, reacting to events without polling. "
                "If you only use the console, you can skip them."
            }
        }
        section class="card table-card" aria-labelledby="endpoints-title" {
            div class="table-toolbar" {
                h2 id="endpoints-title" { "Endpoints" }
                // As the seed: search appears once there is something to search.
                @if has_endpoints || !search.is_empty() {
                form class="search" method="get" action="/console/" role="search" {
                    label class="visually-hidden" for="q" { "Search endpoints by name or URL" }
                    input id="q" name="q" type="search" value=(search) placeholder="Search by name or URL"
                        aria-describedby="search-hint";
                    @if sort != Sort::Newest { input type="hidden" name="sort" value=(sort.as_str()); }
                    button class="button small" type="submit" { "Search" }
                }
                }
            }
            @if !search.is_empty() && !searching {
                p class="hint search-hint" id="search-hint" role="status" {
                    "Searching starts at " (MIN_SEARCH_CHARS) " characters: keep typing. Showing every endpoint meanwhile."
                }
            } @else if searching {
                p class="hint search-hint" id="search-hint" role="status" {
                    "Endpoints whose name or URL contains “" (search) "”. " a href="/console/" { "Clear search" }
                }
            }
            @if truncated {
                p class="hint search-hint" role="status" { "Showing the first " (MAX_SORTED) " matches: narrow the search." }
            }
            @if shown.is_empty() {
                @if searching {
                    (render::empty_state("No endpoint matches", html! { "Try another part of its name or URL." }))
                } @else if devices.is_empty() {
                    (render::empty_state("No webhooks yet", html! {
                        "Start by adding a device (a WhatsApp line, Telegram bot or WABA number), then add a webhook and test it. "
                        a href="/console/devices/new" { "Add your first device" }
                    }))
                } @else {
                    (render::empty_state("No webhooks yet", html! {
                        "Click Add webhook to create your first endpoint, then send a test so its status becomes Active. "
                        a href="/console/endpoints/new" { "Add your first webhook" }
                    }))
                }
            } @else {
                div class="table-wrap" {
                    table class="data endpoints" {
                        caption class="visually-hidden" { "Endpoints, " (match sort { Sort::Newest => "newest first", Sort::Name => "by name", Sort::Status => "by status" }) }
                        thead { tr {
                            (sort_header("Webhook", Sort::Name))
                            th scope="col" { "Channel" }
                            th scope="col" { "Devices" }
                            th scope="col" { "Destination" }
                            th scope="col" { "Events" }
                            (sort_header("Status", Sort::Status))
                            th scope="col" { "Last delivery" }
                            th scope="col" { span class="visually-hidden" { "Actions" } }
                        } }
                        tbody {
                            @for endpoint in &shown {
                                (row(endpoint, &devices))
                            }
                        }
                    }
                }
                nav class="pager" aria-label="Pagination" {
                    @if page_number > 1 {
                        a class="button ghost small" href=(link(sort, page_number - 1)) rel="prev" { "← Previous" }
                    } @else {
                        span class="button ghost small disabled" aria-disabled="true" { "← Previous" }
                    }
                    span class="pager-page" { "Page " (page_number) }
                    @if has_next {
                        a class="button ghost small" href=(link(sort, page_number + 1)) rel="next" { "Next →" }
                    } @else {
                        span class="button ghost small disabled" aria-disabled="true" { "Next →" }
                    }
                    @if sort != Sort::Newest { a class="button ghost small" href=(link(Sort::Newest, 1)) { "Newest first" } }
                }
            }
        }
        (contract_footer())
    };
    let actions =
        html! { a class="button primary" href="/console/endpoints/new" { "Add webhook" } };
    Ok(page_clearing_flash(
        &headers,
        flash.is_some(),
        render::page(
            &session,
            Nav::Webhooks,
            "Webhooks",
            flash.as_ref(),
            actions,
            body,
        ),
    ))
}

fn cards(summary: &pb::Summary, device_links: usize) -> Markup {
    let card = |label: &str, value: String, tone: &str, help: &str| {
        html! {
            div class={ "stat " (tone) } title=(help) {
                dt { (label) }
                dd { (value) }
            }
        }
    };
    html! {
        section class="stats" aria-label="Summary" {
            div class="stat-group" {
                h2 class="stat-title" { "Endpoints" }
                dl class="stat-row" {
                    (card("Webhooks", summary.endpoints_total.to_string(), "neutral", "Endpoints configured"))
                    (card("Device links", device_links.to_string(), "neutral", "Device attachments across all endpoints"))
                    (card("Active", summary.endpoints_active.to_string(), "green", "Delivering live traffic after a successful test"))
                    (card("Pending test", summary.endpoints_pending_test.to_string(), "amber", "Saved, waiting for a test answered 200 or 201"))
                    (card("Disabled", summary.endpoints_disabled.to_string(), "gray", "Paused"))
                    (card("Failing", summary.endpoints_failing.to_string(), "red", "Deliveries keep failing"))
                }
            }
            div class="stat-group" {
                h2 class="stat-title" { "Deliveries, last 24 h" }
                dl class="stat-row" {
                    (card("Succeeded", summary.deliveries_succeeded.to_string(), "green", "Answered 2xx"))
                    (card("Failed", summary.deliveries_failed.to_string(), "red", "Refused or unreachable"))
                    (card("Pending", summary.deliveries_pending.to_string(), "amber", "Waiting for a retry"))
                }
            }
        }
    }
}

/// The delivery contract in short, as Herald actually sends it.
fn contract_footer() -> Markup {
    html! {
        footer class="card contract" aria-labelledby="contract-title" {
            h2 id="contract-title" { "Delivery format" }
            ul {
                li { "HTTPS only: Herald refuses other URLs and private addresses." }
                li { "Answer " strong { "200 or 201" } " quickly (within the endpoint’s timeout, 15 s unless set) and queue heavy work on your server. "
                    "Other answers and timeouts are retried after 5 s, 25 s and 2 min by default, then kept as dead letters." }
                li { "The JSON body has the top-level keys " code { "id" } ", " code { "event" } ", " code { "organizationId" } ", "
                    code { "deviceId" } ", " code { "channel" } ", " code { "timestamp" } " and " code { "data" }
                    " (its shape depends on the event), plus " code { "\"test\": true" } " on test deliveries." }
                li { "Headers: " code { "Content-Type: application/json" } ", " code { "User-Agent: Herald/…" } ", "
                    code { "X-Herald-Event" } ", " code { "X-Herald-Device" } " (when the event has a device) and "
                    code { "X-Idempotency-Key" } " (the delivery id, the same on every retry); then the signature: "
                    code { "webhook-id" } ", " code { "webhook-timestamp" } ", " code { "webhook-signature" } " (Standard Webhooks), "
                    "your header with " code { "sha256=<hex>" } " (HMAC SHA-256), or " code { "X-Webhook-Secret" } " (shared secret)." }
            }
            p class="hint" { "Deliveries are at least once: deduplicate on " code { "webhook-id" } " / " code { "X-Idempotency-Key" } "." }
        }
    }
}

/// "WhatsApp", "Telegram", "WABA", or "Mixed channels".
fn channel_cell(linked: &[&pb::Device], every: bool) -> String {
    if every {
        return "Every channel".to_owned();
    }
    let mut channels: Vec<pb::Channel> = linked.iter().map(|device| device.channel()).collect();
    channels.sort_by_key(|channel| *channel as i32);
    channels.dedup();
    match channels.as_slice() {
        [] => "—".to_owned(),
        [one] => render::channel_label(*one).to_owned(),
        _ => "Mixed channels".to_owned(),
    }
}

/// The share of the last day's attempts that succeeded, e.g. `97 %`.
fn success_rate(health: &pb::EndpointHealth) -> String {
    let percent = health
        .succeeded_24h
        .saturating_mul(100)
        .checked_div(health.attempts_24h)
        .unwrap_or_default();
    format!("{percent} %")
}

fn row(endpoint: &pb::Endpoint, devices: &BTreeMap<String, pb::Device>) -> Markup {
    let spec = endpoint.spec.clone().unwrap_or_default();
    let href = format!("/console/endpoints/{}", endpoint.id);
    let every = spec.all_devices || spec.device_ids.is_empty();
    let linked = linked_devices(&spec, devices);
    html! {
        tr {
            td class="name-cell" {
                a class="row-link" href=(href) { (spec.name) }
            }
            td data-label="Channel" { (channel_cell(&linked, every)) }
            td data-label="Devices" {
                details class="linked-devices" {
                    summary {
                        span class="count" { (linked.len()) }
                        span class="visually-hidden" { " linked devices of " (spec.name) }
                        @if every { " " span class="muted small" { "(every device)" } }
                    }
                    div class="popup" {
                        @if linked.is_empty() {
                            p class="muted" { "No devices yet: events of every device are sent." }
                        } @else {
                            ul {
                                @for device in &linked {
                                    li { (render::channel_label(device.channel())) " · " (device.name) " " span class="muted" { (device.external_id) } }
                                }
                            }
                        }
                    }
                }
            }
            td data-label="Destination" {
                span class="url truncate" title=(spec.url) tabindex="0" { (spec.url) }
            }
            td data-label="Events" {
                @if spec.all_event_types || spec.event_types.is_empty() {
                    span class="badge blue" { "All events" }
                } @else {
                    ul class="event-badges" {
                        @for name in &spec.event_types {
                            li { span class="badge blue" title=(name) { (render::event_label(name)) } }
                        }
                    }
                }
            }
            td data-label="Status" { (render::endpoint_status_badge(endpoint.status())) }
            td data-label="Last delivery" {
                @match endpoint.health.as_ref().filter(|health| health.last_attempt_at.is_some()) {
                    Some(health) => {
                        div {
                            div class="last-delivery" {
                                (render::attempt_status_badge(health.last_attempt_status()))
                                @if health.last_response_code != 0 { span class="code" { (health.last_response_code) } }
                            }
                            span class="muted small" { (render::time_ago(health.last_attempt_at.as_ref())) }
                            @if health.attempts_24h > 0 {
                                span class="muted small success-rate" {
                                    " · " (success_rate(health)) " ok in 24 h"
                                }
                            }
                            @if health.circuit() == pb::CircuitState::Open {
                                " " (render::badge("red", "Circuit open"))
                            } @else if health.consecutive_failures > 0 {
                                " " span class="muted small" { (health.consecutive_failures) " failed in a row" }
                            }
                        }
                    }
                    None => span class="muted" { "No deliveries yet" }
                }
            }
            td class="row-actions" data-label="Actions" {
                a class="button small" href={ (href) "/edit" } { "Edit" span class="visually-hidden" { " " (spec.name) } }
                a class="button small danger-ghost" href={ (href) "/delete" } { "Delete" span class="visually-hidden" { " " (spec.name) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_over_several_channels_is_mixed() {
        let device = |channel: pb::Channel| pb::Device {
            channel: channel.into(),
            ..Default::default()
        };
        let (whatsapp, waba) = (device(pb::Channel::Whatsapp), device(pb::Channel::Waba));
        assert_eq!(channel_cell(&[&whatsapp, &whatsapp], false), "WhatsApp");
        assert_eq!(channel_cell(&[&whatsapp, &waba], false), "Mixed channels");
        assert_eq!(channel_cell(&[], true), "Every channel");
    }
}
