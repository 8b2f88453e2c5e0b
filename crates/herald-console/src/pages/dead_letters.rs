//! Dead letters: deliveries that used up their retries, redriven one at a
//! time, a selection, or all of an endpoint's.

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use herald_proto::v1::{self as pb, recovery_service_server::RecoveryService};
use maud::html;
use serde::Deserialize;

use crate::{
    Console,
    error::PageError,
    form::Form,
    page_clearing_flash, redirect_with_flash,
    render::{self, Flash, Nav, Pager},
    session::Session,
    take_flash,
};

const PAGE_SIZE: u32 = 25;

#[derive(Debug, Default, Deserialize)]
pub struct DeadLettersQuery {
    endpoint: Option<String>,
    page: Option<String>,
    trail: Option<String>,
}

pub async fn list(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<DeadLettersQuery>,
) -> Result<Response, PageError> {
    let endpoint = query
        .endpoint
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let pager = Pager::from_query(query.page.as_deref(), query.trail.as_deref());
    let listed = console
        .backend
        .recovery()
        .list_dead_letters(session.credentials.request(pb::ListDeadLettersRequest {
            page_size: PAGE_SIZE,
            page_token: pager.page_token.clone(),
            endpoint_id: endpoint.clone(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let names = super::endpoint_names(&console, &session).await?;
    let flash = take_flash(&headers);
    let return_to = if endpoint.is_empty() {
        "/console/dead-letters".to_owned()
    } else {
        format!("/console/dead-letters?endpoint={endpoint}")
    };
    let body = html! {
        form class="card filters compact-filters" method="get" action="/console/dead-letters" aria-label="Filter dead letters" {
            div class="field" {
                label for="endpoint" { "Endpoint" }
                select id="endpoint" name="endpoint" {
                    option value="" { "All endpoints" }
                    @for (id, name) in &names {
                        option value=(id) selected[*id == endpoint] { (name) }
                    }
                }
            }
            div class="filter-actions" {
                button class="button primary small" type="submit" { "Apply" }
            }
        }
        section class="card table-card" aria-labelledby="dead-title" {
            div class="table-toolbar" {
                h2 id="dead-title" { "Dead letters" }
                span class="muted small" { "Kept 14 days. Redriving sends them again with their original webhook-id." }
            }
            @if listed.dead_letters.is_empty() {
                (render::empty_state("No dead letters", html! {
                    "Deliveries that fail every retry land here, so nothing is lost while your receiver is down."
                }))
            } @else {
                form method="post" action="/console/dead-letters/redrive" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="return_to" value=(return_to);
                    div class="table-wrap" {
                        table class="data" {
                            caption class="visually-hidden" { "Dead letters" }
                            thead { tr {
                                th scope="col" {
                                    label class="check select-all compact" hidden {
                                        input type="checkbox" data-select-all="dead-letter-rows";
                                        span class="visually-hidden" { "Select all" }
                                    }
                                }
                                th scope="col" { "Dead since" }
                                th scope="col" { "Event" }
                                th scope="col" { "Endpoint" }
                                th scope="col" { "Tries" }
                                th scope="col" { "Last response" }
                                th scope="col" { span class="visually-hidden" { "Actions" } }
                            } }
                            tbody id="dead-letter-rows" {
                                @for letter in &listed.dead_letters {
                                    @let last = letter.attempts.last();
                                    @let event_type = letter.event.as_ref().map(|event| event.r#type.clone()).unwrap_or_default();
                                    tr {
                                        td data-label="Select" {
                                            label class="check compact" {
                                                input type="checkbox" name="delivery_id" value=(letter.id);
                                                span class="visually-hidden" { "Select " (event_type) " " (letter.id) }
                                            }
                                        }
                                        td data-label="Dead since" { (render::time_ago(letter.dead_at.as_ref())) }
                                        td data-label="Event" {
                                            code { (event_type) }
                                            @if let Some(last) = last {
                                                " " a class="small" href={ "/console/logs/" (last.id) } { "last attempt" }
                                            }
                                        }
                                        td data-label="Endpoint" {
                                            a href={ "/console/endpoints/" (letter.endpoint_id) } {
                                                (names.get(&letter.endpoint_id).cloned().unwrap_or_else(|| letter.endpoint_id.clone()))
                                            }
                                        }
                                        td data-label="Tries" { (letter.attempts.len()) }
                                        td data-label="Last response" {
                                            @match last {
                                                Some(last) if last.response_code != 0 => span class="code" { (last.response_code) },
                                                Some(last) if !last.error.is_empty() => span class="muted small" { (super::endpoint::excerpt(&last.error, 60)) },
                                                _ => span class="muted" { "—" },
                                            }
                                        }
                                        td data-label="Redrive" {
                                            button class="button small" type="submit" name="one" value=(letter.id) { "Redrive" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div class="bulk-actions" {
                        button class="button primary small" type="submit" { "Redrive selected" }
                        @if !endpoint.is_empty() {
                            button class="button small" type="submit" name="all_of_endpoint" value=(endpoint) {
                                "Redrive all of " (names.get(&endpoint).cloned().unwrap_or_else(|| endpoint.clone()))
                            }
                        } @else {
                            span class="muted small" { "Choose an endpoint above to redrive all of its dead letters." }
                        }
                    }
                }
                @let other = [("endpoint", endpoint.clone())];
                (pager.links("/console/dead-letters", &other, &listed.next_page_token))
            }
        }
    };
    Ok(page_clearing_flash(
        &headers,
        flash.is_some(),
        render::page(
            &session,
            Nav::DeadLetters,
            "Dead letters",
            flash.as_ref(),
            html! {},
            body,
        ),
    ))
}

pub async fn redrive(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let return_to = Some(form.get("return_to"))
        .filter(|path| path.starts_with("/console/dead-letters"))
        .unwrap_or_else(|| "/console/dead-letters".to_owned());
    let one = form.get("one");
    let all_of_endpoint = form.get("all_of_endpoint");
    let delivery_ids = if !one.is_empty() {
        vec![one]
    } else if all_of_endpoint.is_empty() {
        form.all("delivery_id")
    } else {
        Vec::new()
    };
    if delivery_ids.is_empty() && all_of_endpoint.is_empty() {
        return Ok(redirect_with_flash(
            &headers,
            &return_to,
            &Flash::warning("Tick the dead letters to redrive first."),
        ));
    }
    let job = console
        .backend
        .recovery()
        .redrive_dead_letters(session.credentials.request(pb::RedriveDeadLettersRequest {
            delivery_ids,
            all_of_endpoint,
            use_current_endpoint: true,
        }))
        .await?
        .into_inner();
    Ok(redirect_with_flash(
        &headers,
        &return_to,
        &super::job_flash("Redrive", &job),
    ))
}
