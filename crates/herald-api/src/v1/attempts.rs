//! `/api/v1/attempts`: the attempt log, newest first.

use axum::{Json, extract::State};
use herald_proto::v1::{self as pb, attempt_service_server::AttemptService};

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::{Path, Query},
    model::{Attempt, AttemptList, ListAttemptsQuery, PurgedRequestBodies},
};

#[utoipa::path(operation_id = "list_attempts", get, path = "/api/v1/attempts", tag = "attempts",
    params(ListAttemptsQuery),
    responses((status = 200, body = AttemptList), ErrorResponses))]
pub async fn list(
    State(backend): State<Backend>,
    credentials: Credentials,
    Query(query): Query<ListAttemptsQuery>,
) -> Result<Json<AttemptList>, HttpError> {
    let listed = backend
        .attempts()
        .list_attempts(credentials.request(query.to_wire()?))
        .await?
        .into_inner();
    Ok(Json(AttemptList {
        attempts: listed.attempts.iter().map(Attempt::from_wire).collect(),
        next_page_token: listed.next_page_token,
    }))
}

/// One attempt, with its request headers (signatures redacted) and the
/// start of the response body.
#[utoipa::path(operation_id = "get_attempt", get, path = "/api/v1/attempts/{attempt_id}", tag = "attempts",
    params(("attempt_id" = String, Path, description = "`att_…`")),
    responses((status = 200, body = Attempt), ErrorResponses))]
pub async fn get(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(attempt_id): Path<String>,
) -> Result<Json<Attempt>, HttpError> {
    let attempt = backend
        .attempts()
        .get_attempt(credentials.request(pb::GetAttemptRequest { attempt_id }))
        .await?
        .into_inner();
    Ok(Json(Attempt::from_wire(&attempt)))
}

/// Forgets the request bodies stored with the endpoint's attempts (also a
/// deleted endpoint's); the attempts stay, with their sizes.
#[utoipa::path(operation_id = "purge_request_bodies", delete, path = "/api/v1/endpoints/{endpoint_id}/request-bodies", tag = "attempts",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    responses((status = 200, body = PurgedRequestBodies), ErrorResponses))]
pub async fn purge_request_bodies(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
) -> Result<Json<PurgedRequestBodies>, HttpError> {
    let purged = backend
        .attempts()
        .purge_request_bodies(credentials.request(pb::PurgeRequestBodiesRequest { endpoint_id }))
        .await?
        .into_inner();
    Ok(Json(PurgedRequestBodies {
        purged: purged.purged,
    }))
}
