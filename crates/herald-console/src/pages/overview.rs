//! The webhooks overview: summary cards, then the endpoints, searchable and
//! paged.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use herald_config::MIN_SEARCH_CHARS;
use herald_proto::v1::{
    self as pb, attempt_service_server::AttemptService, config_service_server::ConfigService,
};
use maud::{Markup, html};
use serde::Deserialize;

use crate::{
    Console,
    error::PageError,
    page_clearing_flash,
    render::{self, Nav, Pager},
    session::Session,
    take_flash,
};

/// Endpoints per page.
pub const PAGE_SIZE: u32 = 25;

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    q: Option<String>,
    page: Option<String>,
    trail: Option<String>,
}

pub async fn show(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<OverviewQuery>,
) -> Result<Response, PageError> {
    let search = query.q.as_deref().unwrap_or_default().trim().to_owned();
    let searching = search.chars().count() >= MIN_SEARCH_CHARS;
    let pager = Pager::from_query(query.page.as_deref(), query.trail.as_deref());
    let config = console.backend.config();
    let summary = config
        .get_summary(session.credentials.request(pb::GetSummaryRequest {}))
        .await?
        .into_inner();
    let listed = config
        .list_endpoints(session.credentials.request(pb::ListEndpointsRequest {
            page_size: PAGE_SIZE,
            page_token: pager.page_token.clone(),
            search: if searching {
                search.clone()
            } else {
                String::new()
            },
            status: 0,
        }))
        .await?
        .into_inner();
    let devices = super::devices(&console, &session).await?;
    let last_attempts = futures::future::join_all(listed.endpoints.iter().map(|endpoint| {
        let request = session.credentials.request(pb::ListAttemptsRequest {
            page_size: 1,
            endpoint_id: endpoint.id.clone(),
            ..Default::default()
        });
        let attempts = console.backend.attempts();
        async move {
            attempts
                .list_attempts(request)
                .await
                .ok()
                .and_then(|listed| listed.into_inner().attempts.into_iter().next())
        }
    }))
    .await;

    let flash = take_flash(&headers);
    let body = html! {
        (cards(&summary))
        section class="card table-card" aria-labelledby="endpoints-title" {
            div class="table-toolbar" {
                h2 id="endpoints-title" { "Endpoints" }
                form class="search" method="get" action="/console/" role="search" {
                    label class="visually-hidden" for="q" { "Search endpoints by name or URL" }
                    input id="q" name="q" type="search" value=(search) placeholder="Search by name or URL"
                        aria-describedby="search-hint";
                    button class="button small" type="submit" { "Search" }
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
            @if listed.endpoints.is_empty() {
                @if searching {
                    (render::empty_state("No endpoint matches", html! { "Try another part of its name or URL." }))
                } @else {
                    (render::empty_state("No endpoints yet", html! {
                        "Add an HTTPS endpoint, choose its devices and events, and press Test. "
                        a href="/console/endpoints/new" { "Add your first endpoint" }
                    }))
                }
            } @else {
                div class="table-wrap" {
                    table class="data" {
                        caption class="visually-hidden" { "Endpoints" }
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Devices" }
                            th scope="col" { "Events" }
                            th scope="col" { "Status" }
                            th scope="col" { "Last delivery" }
                        } }
                        tbody {
                            @for (endpoint, last) in listed.endpoints.iter().zip(&last_attempts) {
                                (row(endpoint, last.as_ref(), &devices))
                            }
                        }
                    }
                }
                @let other = [("q", if searching { search.clone() } else { String::new() })];
                (pager.links("/console/", &other, &listed.next_page_token))
            }
        }
    };
    let actions =
        html! { a class="button primary" href="/console/endpoints/new" { "Add endpoint" } };
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

fn cards(summary: &pb::Summary) -> Markup {
    let card = |label: &str, value: String, tone: &str| {
        html! {
            div class={ "stat " (tone) } {
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
                    (card("Total", summary.endpoints_total.to_string(), "neutral"))
                    (card("Active", summary.endpoints_active.to_string(), "green"))
                    (card("Pending test", summary.endpoints_pending_test.to_string(), "amber"))
                    (card("Disabled", summary.endpoints_disabled.to_string(), "gray"))
                    (card("Failing", summary.endpoints_failing.to_string(), "red"))
                }
            }
            div class="stat-group" {
                h2 class="stat-title" { "Deliveries, last 24 h" }
                dl class="stat-row" {
                    (card("Succeeded", summary.deliveries_succeeded.to_string(), "green"))
                    (card("Failed", summary.deliveries_failed.to_string(), "red"))
                    (card("Pending", summary.deliveries_pending.to_string(), "amber"))
                }
            }
        }
    }
}

/// "WhatsApp 2 · WABA 1", or "All devices".
pub fn devices_by_channel(
    spec: &pb::EndpointSpec,
    devices: &BTreeMap<String, pb::Device>,
) -> String {
    if spec.all_devices || spec.device_ids.is_empty() {
        return "All devices".to_owned();
    }
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for id in &spec.device_ids {
        let label = devices
            .get(id)
            .map_or("Unknown", |device| render::channel_label(device.channel()));
        *counts.entry(label).or_default() += 1;
    }
    counts
        .iter()
        .map(|(label, count)| format!("{label} {count}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub fn events_summary(spec: &pb::EndpointSpec) -> String {
    if spec.all_event_types || spec.event_types.is_empty() {
        return "All events".to_owned();
    }
    let unique: BTreeSet<&str> = spec.event_types.iter().map(String::as_str).collect();
    match unique.len() {
        1..=2 => unique.into_iter().collect::<Vec<_>>().join(", "),
        count => format!(
            "{} +{}",
            unique
                .iter()
                .take(2)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            count - 2
        ),
    }
}

fn row(
    endpoint: &pb::Endpoint,
    last: Option<&pb::Attempt>,
    devices: &BTreeMap<String, pb::Device>,
) -> Markup {
    let spec = endpoint.spec.clone().unwrap_or_default();
    let href = format!("/console/endpoints/{}", endpoint.id);
    html! {
        tr {
            td class="name-cell" {
                a class="row-link" href=(href) { (spec.name) }
                span class="url" { (spec.url) }
            }
            td data-label="Devices" { (devices_by_channel(&spec, devices)) }
            td data-label="Events" { (events_summary(&spec)) }
            td data-label="Status" { (render::endpoint_status_badge(endpoint.status())) }
            td data-label="Last delivery" {
                @match last {
                    Some(attempt) => {
                        div {
                            div class="last-delivery" {
                                (render::attempt_status_badge(attempt.status()))
                                @if attempt.response_code != 0 { span class="code" { (attempt.response_code) } }
                            }
                            span class="muted small" { (render::time_ago(attempt.attempted_at.as_ref())) }
                        }
                    }
                    None => span class="muted" { "No deliveries yet" }
                }
            }
        }
    }
}
