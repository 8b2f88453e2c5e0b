//! Signing in with a tenant token, and out.

use std::time::Duration;

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use herald_api::Credentials;
use herald_proto::v1::{self as pb, config_service_server::ConfigService};
use maud::{Markup, html};
use tonic::Code;

use crate::{
    Console, SIGN_IN_PATH,
    error::PageError,
    form::Form,
    html_page, page_clearing_flash,
    render::{self, Flash},
    session::{self, SESSION_COOKIE, SESSION_LIFETIME, SIGN_IN_CSRF_COOKIE, Session, set_cookie},
    take_flash,
};

pub async fn show(
    State(console): State<Console>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if session::current(&headers, &console).is_some() {
        return Ok(Redirect::to("/console/").into_response());
    }
    let flash = take_flash(&headers);
    let csrf = session::random_token()?;
    let mut response = page_clearing_flash(
        &headers,
        flash.is_some(),
        form_page(&csrf, flash.as_ref(), None),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &headers,
            SIGN_IN_CSRF_COOKIE,
            &csrf,
            Duration::from_secs(3600),
        ),
    );
    Ok(response)
}

pub async fn submit(
    State(console): State<Console>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    let expected = session::cookie(&headers, SIGN_IN_CSRF_COOKIE).unwrap_or_default();
    let presented = form.get("csrf");
    if !session::tokens_match(&presented, expected) {
        return Err(PageError::Csrf);
    }
    let token = form.get("token");
    let problem = if token.is_empty() {
        Some("Paste a tenant token (it starts with hrld_).".to_owned())
    } else {
        // The token is checked by the service, like any API call's.
        match console
            .backend
            .config()
            .get_summary(Credentials::bearer(&token).request(pb::GetSummaryRequest {}))
            .await
        {
            Ok(_) => None,
            // One answer for every token that cannot sign in, so the page
            // confirms nothing about a guessed token.
            Err(status) => match status.code() {
                Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument => Some(
                    "That token is not valid here: sign in with a tenant token (it starts with hrld_)."
                        .to_owned(),
                ),
                _ => return Err(status.into()),
            },
        }
    };
    if let Some(problem) = problem {
        return Ok(html_page(form_page(&presented, None, Some(&problem))));
    }
    let (sealed, _) = session::seal(&console.key, &token)?;
    let mut response = Redirect::to("/console/").into_response();
    let response_headers = response.headers_mut();
    response_headers.append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &sealed, SESSION_LIFETIME),
    );
    response_headers.append(
        header::SET_COOKIE,
        set_cookie(&headers, SIGN_IN_CSRF_COOKIE, "", Duration::ZERO),
    );
    Ok(response)
}

pub async fn sign_out(
    session: Session,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, PageError> {
    session.check_csrf(&form.get("csrf"))?;
    let mut response =
        crate::redirect_with_flash(&headers, SIGN_IN_PATH, &Flash::info("You are signed out."));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Duration::ZERO),
    );
    Ok(response)
}

fn form_page(csrf: &str, flash: Option<&Flash>, problem: Option<&str>) -> Markup {
    render::bare_page(
        "Sign in",
        html! {
            section class="card narrow sign-in" {
                h1 { "Sign in to Herald" }
                p class="muted" { "Use a tenant API token. Your administrator creates one with " code { "heraldctl tokens create" } "." }
                @if let Some(flash) = flash { (render::flash_banner(flash)) }
                form method="post" action=(SIGN_IN_PATH) novalidate {
                    input type="hidden" name="csrf" value=(csrf);
                    div class={ "field" @if problem.is_some() { " invalid" } } {
                        label for="token" { "API token" }
                        input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
                            placeholder="hrld_…" required autofocus
                            aria-invalid=[problem.map(|_| "true")]
                            aria-describedby=[problem.map(|_| "token-error")];
                        @if let Some(problem) = problem {
                            p class="field-error" id="token-error" { (problem) }
                        }
                    }
                    button class="button primary block" type="submit" { "Sign in" }
                }
                p class="hint" { "The token is kept in a secure, HTTP-only cookie for 12 hours. Only this tenant's data is shown." }
            }
        },
    )
}
