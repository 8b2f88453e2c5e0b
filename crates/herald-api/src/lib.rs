//! The JSON API, `/api/v1`: an HTTP face of the config service for
//! customers who never write a gRPC client, and its OpenAPI 3.1 document at
//! `/api/v1/openapi.json`, generated from the handlers' types.
//!
//! Design decision: the handlers call the config service's gRPC
//! implementations in-process ([`Backend`]) with the caller's bearer token
//! as metadata, so there is no second implementation of any rule, and a
//! JSON caller can do exactly what a gRPC caller with the same token can.
//! Errors are the gRPC status mapped once ([`error`]) to
//! `{ "error": { "code", "message", "field" } }` with the matching HTTP status.
//!
//! It is served on the config service's own listener, beside gRPC.

mod backend;
pub mod error;
mod extract;
pub mod model;
pub mod samples;
mod v1;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::{HeaderMap, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

pub use crate::{
    backend::{Backend, Credentials},
    error::HttpError,
};

/// The largest request body the JSON API reads; larger ones are answered
/// 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Herald API",
        version = "1",
        description = "Endpoints, devices, test deliveries, the attempt log, dead letters and replays, transformation simulations, and the event-type catalog of a Herald tenant. \
Authenticate with a tenant token: `Authorization: Bearer hrld_…` (the `tenants` operations take the admin token). \
Errors are `{\"error\": {\"code\", \"message\", \"field\"}}` with the HTTP status of the gRPC code."
    ),
    paths(
        v1::endpoints::list,
        v1::endpoints::create,
        v1::endpoints::get,
        v1::endpoints::update,
        v1::endpoints::delete,
        v1::endpoints::test,
        v1::endpoints::enable,
        v1::endpoints::disable,
        v1::endpoints::rotate_secret,
        v1::endpoints::secret,
        v1::devices::list,
        v1::devices::create,
        v1::devices::get,
        v1::devices::update,
        v1::devices::delete,
        v1::attempts::list,
        v1::attempts::get,
        v1::attempts::purge_request_bodies,
        v1::catalog::list,
        v1::catalog::register,
        v1::catalog::sample,
        v1::catalog::delete,
        v1::catalog::summary,
        v1::recovery::list_dead_letters,
        v1::recovery::redrive_dead_letters,
        v1::recovery::purge_dead_letters,
        v1::recovery::replay_event,
        v1::recovery::recover_failed,
        v1::recovery::get_recovery_job,
        v1::tenants::get,
        v1::tenants::set_quotas,
        v1::integrations::describe,
        v1::integrations::describe_unversioned,
        v1::transformations::simulate,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "endpoints", description = "Where Herald POSTs events, and how"),
        (name = "devices", description = "The tenant's channel lines"),
        (name = "attempts", description = "Every delivery attempt"),
        (name = "event types", description = "The catalog and custom types, with sample envelopes"),
        (name = "summary", description = "The overview's counts"),
        (name = "recovery", description = "Dead letters, redrive, replay and recovery jobs"),
        (name = "tenants", description = "A tenant and its quotas; the admin token only"),
        (name = "integrations", description = "Discovery for automation platforms (Zapier, Make, n8n): triggers and actions. Also served at /api/integrations/describe"),
        (name = "transformations", description = "Programs that reshape an endpoint's deliveries"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("A tenant token, `hrld_…`".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The `/api/v1` routes, with a fallback that answers unknown paths in the
/// caller's language: gRPC `UNIMPLEMENTED` to gRPC clients (this router
/// shares a listener with them), a JSON 404 under `/api/`, plain text
/// elsewhere.
pub fn router(backend: Backend) -> Router {
    use v1::{
        attempts, catalog, devices, endpoints, integrations, recovery, tenants, transformations,
    };
    Router::new()
        .route(OPENAPI_PATH, get(openapi))
        .route("/api/v1/integrations/describe", get(integrations::describe))
        .route(
            "/api/integrations/describe",
            get(integrations::describe_unversioned),
        )
        .route(
            "/api/v1/endpoints",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}",
            get(endpoints::get)
                .patch(endpoints::update)
                .delete(endpoints::delete),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}/test",
            post(endpoints::test),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}/enable",
            post(endpoints::enable),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}/disable",
            post(endpoints::disable),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}/rotate-secret",
            post(endpoints::rotate_secret),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}/secret",
            get(endpoints::secret),
        )
        .route("/api/v1/devices", get(devices::list).post(devices::create))
        .route(
            "/api/v1/devices/{device_id}",
            get(devices::get)
                .patch(devices::update)
                .delete(devices::delete),
        )
        .route("/api/v1/attempts", get(attempts::list))
        .route("/api/v1/attempts/{attempt_id}", get(attempts::get))
        .route(
            "/api/v1/endpoints/{endpoint_id}/request-bodies",
            axum::routing::delete(attempts::purge_request_bodies),
        )
        .route(
            "/api/v1/event-types",
            get(catalog::list).post(catalog::register),
        )
        .route(
            "/api/v1/event-types/{event_type}",
            axum::routing::delete(catalog::delete),
        )
        .route(
            "/api/v1/event-types/{event_type}/sample",
            get(catalog::sample),
        )
        .route("/api/v1/summary", get(catalog::summary))
        .route("/api/v1/dead-letters", get(recovery::list_dead_letters))
        .route(
            "/api/v1/dead-letters/redrive",
            post(recovery::redrive_dead_letters),
        )
        .route(
            "/api/v1/dead-letters/purge",
            post(recovery::purge_dead_letters),
        )
        .route(
            "/api/v1/events/{event_id}/replay",
            post(recovery::replay_event),
        )
        .route(
            "/api/v1/endpoints/{endpoint_id}/recover",
            post(recovery::recover_failed),
        )
        .route(
            "/api/v1/recovery-jobs/{job_id}",
            get(recovery::get_recovery_job),
        )
        .route("/api/v1/tenants/{tenant_id}", get(tenants::get))
        .route(
            "/api/v1/tenants/{tenant_id}/quotas",
            axum::routing::put(tenants::set_quotas),
        )
        .route(
            "/api/v1/transformations/simulate",
            post(transformations::simulate),
        )
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(
            herald_telemetry::server::no_sniff,
        ))
        .with_state(backend)
}

async fn openapi() -> Json<serde_json::Value> {
    Json(document())
}

/// The OpenAPI document, with links from each create to the operations on
/// what it created, so clients (and schemathesis's stateful tests) can
/// follow them. The links are added as JSON because utoipa 5's `Link` names
/// its fields in snake case (`operation_id`), which OpenAPI does not read.
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let created: [(&str, &str, &str, &[&str]); 3] = [
        (
            "/api/v1/endpoints",
            "endpoint_id",
            "$response.body#/endpoint/id",
            &[
                "get_endpoint",
                "update_endpoint",
                "delete_endpoint",
                "disable_endpoint",
                "enable_endpoint",
                "test_endpoint",
                "rotate_endpoint_secret",
                "get_endpoint_secret",
                "recover_failed",
            ],
        ),
        (
            "/api/v1/devices",
            "device_id",
            "$response.body#/id",
            &["get_device", "update_device", "delete_device"],
        ),
        (
            "/api/v1/event-types",
            "event_type",
            "$response.body#/name",
            &["get_event_type_sample", "delete_event_type"],
        ),
    ];
    for (path, parameter, value, operations) in created {
        if let Some(response) = document
            .pointer_mut(&format!(
                "/paths/{}/post/responses/201",
                path.replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
        {
            let links: serde_json::Map<String, serde_json::Value> = operations
                .iter()
                .map(|operation| {
                    (
                        (*operation).to_owned(),
                        serde_json::json!({
                            "operationId": operation,
                            "parameters": { parameter: value },
                        }),
                    )
                })
                .collect();
            response.insert("links".to_owned(), links.into());
        }
    }
    document
}

async fn fallback(uri: Uri, headers: HeaderMap) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented(format!("unknown method {}", uri.path()))
            .into_http::<axum::body::Body>()
            .into_response();
    }
    if uri.path().starts_with("/api/") {
        return HttpError::not_found(format!("no such path {}", uri.path())).into_response();
    }
    (axum::http::StatusCode::NOT_FOUND, "not found\n").into_response()
}
