//! The web console, `/console`: the dashboard customers use to set up
//! endpoints, test them and read the delivery logs.
//!
//! Server-rendered HTML (maud) that works without JavaScript; `app.js` only
//! adds copy buttons, select-all checkboxes, the device picker's tabs,
//! search and chips, and a busy state on slow forms.
//! Every page acts through the config service's gRPC implementations with
//! the signed-in tenant's token ([`herald_api::Backend`]), exactly like the
//! JSON API and gRPC clients: the console holds no rule of its own, and a
//! session sees only what its token may see.

mod assets;
mod error;
mod form;
mod pages;
mod render;
mod session;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderMap, HeaderValue, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use herald_api::Backend;
use herald_config::secrets::MasterKey;
use maud::Markup;

use crate::{
    render::Flash,
    session::{FLASH_COOKIE, set_cookie},
};

pub const SIGN_IN_PATH: &str = "/console/sign-in";
/// The largest form body the console reads; larger ones are answered 413.
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// What every console handler shares.
#[derive(Clone)]
pub struct Console {
    backend: Backend,
    /// Seals session cookies.
    key: MasterKey,
    /// Where channels reach the ingest service, for device setup.
    public_ingest_url: Option<String>,
}

impl Console {
    fn public_ingest_url(&self) -> Option<&str> {
        self.public_ingest_url.as_deref()
    }
}

/// The ingest service's public address as the console shows it: an http(s)
/// URL without query or fragment, without a trailing slash; `None` when
/// `value` is not one.
pub fn public_ingest_url(value: &str) -> Option<String> {
    pages::devices::valid_base(value)
}

impl std::fmt::Debug for Console {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Console").finish_non_exhaustive()
    }
}

/// The `/console` routes. `public_ingest_url` (checked with
/// [`public_ingest_url`]) is the ingest address device setup shows.
pub fn router(backend: Backend, key: MasterKey, public_ingest_url: Option<String>) -> Router {
    use pages::{
        dead_letters, devices, endpoint, endpoint_form, endpoint_test, logs, overview, sign_in,
    };
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(overview::show))
        .route(SIGN_IN_PATH, get(sign_in::show).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/endpoints/new", get(endpoint_form::new))
        .route("/console/endpoints", post(endpoint_form::create))
        .route(
            "/console/endpoints/{endpoint_id}",
            get(endpoint::show).post(endpoint_form::update),
        )
        .route(
            "/console/endpoints/{endpoint_id}/edit",
            get(endpoint_form::edit),
        )
        .route(
            "/console/endpoints/{endpoint_id}/test",
            get(endpoint_test::show).post(endpoint_test::send),
        )
        .route(
            "/console/endpoints/{endpoint_id}/enable",
            post(endpoint::enable),
        )
        .route(
            "/console/endpoints/{endpoint_id}/disable",
            post(endpoint::disable),
        )
        .route(
            "/console/endpoints/{endpoint_id}/rotate-secret",
            post(endpoint::rotate_secret),
        )
        .route(
            "/console/endpoints/{endpoint_id}/delete",
            get(endpoint::confirm_delete).post(endpoint::delete),
        )
        .route("/console/devices", get(devices::list).post(devices::create))
        .route("/console/devices/new", get(devices::new))
        .route(
            "/console/devices/{device_id}",
            get(devices::show).post(devices::update),
        )
        .route("/console/devices/{device_id}/edit", get(devices::edit))
        .route(
            "/console/devices/{device_id}/delete",
            get(devices::confirm_delete).post(devices::delete),
        )
        .route("/console/logs", get(logs::list))
        .route("/console/logs/live", get(logs::live))
        .route("/console/logs/{attempt_id}", get(logs::show))
        .route("/console/logs/{attempt_id}/replay", post(logs::replay))
        .route("/console/dead-letters", get(dead_letters::list))
        .route("/console/dead-letters/redrive", post(dead_letters::redrive))
        .route("/console/{*rest}", get(not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(
            herald_telemetry::server::no_sniff,
        ))
        .with_state(Console {
            backend,
            key,
            public_ingest_url,
        })
}

async fn not_found() -> error::PageError {
    error::PageError::NotFound("There is no page at this address.".to_owned())
}

/// A page, with the headers every console page carries: no caching (pages
/// show secrets), a strict content security policy (only our own assets),
/// no framing.
pub(crate) fn html_page(markup: Markup) -> Response {
    with_page_headers(Html(markup.into_string()).into_response())
}

pub(crate) fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A redirect (303, so the browser GETs) that shows `flash` on the next page.
pub(crate) fn redirect_with_flash(
    request_headers: &HeaderMap,
    to: &str,
    flash: &Flash,
) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(json) = serde_json::to_vec(flash) {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(
                request_headers,
                FLASH_COOKIE,
                &URL_SAFE_NO_PAD.encode(json),
                std::time::Duration::from_secs(60),
            ),
        );
    }
    response
}

/// The flash message a redirect left, if any; the caller clears it with
/// [`clear_flash`].
pub(crate) fn take_flash(headers: &HeaderMap) -> Option<Flash> {
    let value = session::cookie(headers, FLASH_COOKIE)?;
    let json = URL_SAFE_NO_PAD.decode(value).ok()?;
    serde_json::from_slice(&json).ok()
}

/// `page` with the flash cookie cleared when one was shown.
pub(crate) fn page_clearing_flash(headers: &HeaderMap, shown: bool, markup: Markup) -> Response {
    let mut response = html_page(markup);
    if shown {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(headers, FLASH_COOKIE, "", std::time::Duration::ZERO),
        );
    }
    response
}
