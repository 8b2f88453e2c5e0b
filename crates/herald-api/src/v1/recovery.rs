//! Dead letters (list, redrive, purge), replay, recovery, and the jobs they
//! start.

use axum::{Json, extract::State, http::StatusCode};
use herald_proto::v1::{self as pb, recovery_service_server::RecoveryService};

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::{Body, Path, Query},
    model::{
        DeadLetter, DeadLetterList, ListDeadLettersQuery, Purged, RecoverFailed, RecoveryJob,
        ReplayEvent, SelectDeadLetters, parse_time,
    },
};

/// Deliveries that used up their retries, kept with their event and every
/// attempt.
#[utoipa::path(operation_id = "list_dead_letters", get, path = "/api/v1/dead-letters", tag = "recovery",
    params(ListDeadLettersQuery),
    responses((status = 200, body = DeadLetterList), ErrorResponses))]
pub async fn list_dead_letters(
    State(backend): State<Backend>,
    credentials: Credentials,
    Query(query): Query<ListDeadLettersQuery>,
) -> Result<Json<DeadLetterList>, HttpError> {
    let listed = backend
        .recovery()
        .list_dead_letters(credentials.request(query.to_wire()?))
        .await?
        .into_inner();
    Ok(Json(DeadLetterList {
        dead_letters: listed
            .dead_letters
            .iter()
            .map(DeadLetter::from_wire)
            .collect(),
        next_page_token: listed.next_page_token,
    }))
}

/// Delivers dead letters again, to the endpoint's current URL and secret,
/// with their original delivery ids; each leaves the dead letters once
/// re-enqueued.
#[utoipa::path(operation_id = "redrive_dead_letters", post, path = "/api/v1/dead-letters/redrive", tag = "recovery",
    request_body = SelectDeadLetters,
    responses((status = 202, body = RecoveryJob), ErrorResponses))]
pub async fn redrive_dead_letters(
    State(backend): State<Backend>,
    credentials: Credentials,
    Body(body): Body<SelectDeadLetters>,
) -> Result<(StatusCode, Json<RecoveryJob>), HttpError> {
    let job = backend
        .recovery()
        .redrive_dead_letters(credentials.request(pb::RedriveDeadLettersRequest {
            delivery_ids: body.delivery_ids,
            all_of_endpoint: body.all_of_endpoint.unwrap_or_default(),
            use_current_endpoint: true,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(RecoveryJob::from_wire(&job))))
}

/// Deletes dead letters for good.
#[utoipa::path(operation_id = "purge_dead_letters", post, path = "/api/v1/dead-letters/purge", tag = "recovery",
    request_body = SelectDeadLetters,
    responses((status = 200, body = Purged), ErrorResponses))]
pub async fn purge_dead_letters(
    State(backend): State<Backend>,
    credentials: Credentials,
    Body(body): Body<SelectDeadLetters>,
) -> Result<Json<Purged>, HttpError> {
    let purged = backend
        .recovery()
        .purge_dead_letters(credentials.request(pb::PurgeDeadLettersRequest {
            delivery_ids: body.delivery_ids,
            all_of_endpoint: body.all_of_endpoint.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(Purged {
        purged: purged.purged,
    }))
}

/// Sends an event again with its original delivery ids: to one endpoint, or
/// to every endpoint it matches now. Asking again while the job runs returns
/// the same job.
#[utoipa::path(operation_id = "replay_event", post, path = "/api/v1/events/{event_id}/replay", tag = "recovery",
    params(("event_id" = String, Path, description = "`evt_…`")),
    request_body(content = Option<ReplayEvent>),
    responses((status = 202, body = RecoveryJob), ErrorResponses))]
pub async fn replay_event(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(event_id): Path<String>,
    Body(body): Body<ReplayEvent>,
) -> Result<(StatusCode, Json<RecoveryJob>), HttpError> {
    let job = backend
        .recovery()
        .replay_event(credentials.request(pb::ReplayEventRequest {
            event_id,
            endpoint_id: body.endpoint_id.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(RecoveryJob::from_wire(&job))))
}

/// Re-enqueues every failed or dead delivery of an endpoint since a time.
#[utoipa::path(operation_id = "recover_failed", post, path = "/api/v1/endpoints/{endpoint_id}/recover", tag = "recovery",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    request_body = RecoverFailed,
    responses((status = 202, body = RecoveryJob), ErrorResponses))]
pub async fn recover_failed(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
    Body(body): Body<RecoverFailed>,
) -> Result<(StatusCode, Json<RecoveryJob>), HttpError> {
    let job = backend
        .recovery()
        .recover_failed(credentials.request(pb::RecoverFailedRequest {
            endpoint_id,
            since: Some(parse_time("since", &body.since)?),
        }))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(RecoveryJob::from_wire(&job))))
}

#[utoipa::path(operation_id = "get_recovery_job", get, path = "/api/v1/recovery-jobs/{job_id}", tag = "recovery",
    params(("job_id" = String, Path, description = "`rcv_…`")),
    responses((status = 200, body = RecoveryJob), ErrorResponses))]
pub async fn get_recovery_job(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(job_id): Path<String>,
) -> Result<Json<RecoveryJob>, HttpError> {
    let job = backend
        .recovery()
        .get_recovery_job(credentials.request(pb::GetRecoveryJobRequest { job_id }))
        .await?
        .into_inner();
    Ok(Json(RecoveryJob::from_wire(&job)))
}
