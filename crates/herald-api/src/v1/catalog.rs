//! `/api/v1/event-types` (catalog discovery, with sample envelopes) and
//! `/api/v1/summary`.

use axum::{Json, extract::State, http::StatusCode};
use herald_proto::v1::{self as pb, config_service_server::ConfigService};
use serde_json::value::RawValue;

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::{Body, Path, Query},
    model::{EventType, EventTypeList, PageQuery, RegisterEventType, Summary},
    samples::sample_envelope,
};

pub(crate) fn event_type(definition: &pb::EventTypeDefinition) -> EventType {
    EventType {
        name: definition.name.clone(),
        label: definition.label.clone(),
        description: definition.description.clone(),
        catalog: definition.catalog,
        channels: definition.channels.clone(),
        // Checked as a schema when stored, so it is JSON.
        schema: RawValue::from_string(definition.schema.clone()).ok(),
        sample: sample_envelope(definition),
    }
}

/// Every catalog type, then the tenant's custom types, each with a
/// description and the envelope Herald would POST: what automation platforms
/// read to offer Herald events as triggers.
#[utoipa::path(operation_id = "list_event_types", get, path = "/api/v1/event-types", tag = "event types",
    params(PageQuery),
    responses((status = 200, body = EventTypeList), ErrorResponses))]
pub async fn list(
    State(backend): State<Backend>,
    credentials: Credentials,
    Query(query): Query<PageQuery>,
) -> Result<Json<EventTypeList>, HttpError> {
    let listed = backend
        .config()
        .list_event_types(credentials.request(pb::ListEventTypesRequest {
            page_size: query.page_size.unwrap_or_default(),
            page_token: query.page_token.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(EventTypeList {
        event_types: listed.event_types.iter().map(event_type).collect(),
        next_page_token: listed.next_page_token,
    }))
}

/// The envelope Herald would POST for one event type.
#[utoipa::path(operation_id = "get_event_type_sample", get, path = "/api/v1/event-types/{event_type}/sample", tag = "event types",
    params(("event_type" = String, Path, description = "e.g. `message.received`")),
    responses((status = 200, description = "The sample envelope", body = Object), ErrorResponses))]
pub async fn sample(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(name): Path<String>,
) -> Result<Json<Box<RawValue>>, HttpError> {
    let mut page_token = String::new();
    loop {
        let listed = backend
            .config()
            .list_event_types(credentials.request(pb::ListEventTypesRequest {
                page_size: 500,
                page_token,
            }))
            .await?
            .into_inner();
        if let Some(definition) = listed
            .event_types
            .iter()
            .find(|definition| definition.name == name)
        {
            return Ok(Json(sample_envelope(definition)));
        }
        if listed.next_page_token.is_empty() {
            return Err(HttpError::not_found(format!("event type {name} not found")));
        }
        page_token = listed.next_page_token;
    }
}

/// Registers a custom event type for the tenant.
#[utoipa::path(operation_id = "register_event_type", post, path = "/api/v1/event-types", tag = "event types",
    request_body = RegisterEventType,
    responses((status = 201, body = EventType), ErrorResponses))]
pub async fn register(
    State(backend): State<Backend>,
    credentials: Credentials,
    Body(body): Body<RegisterEventType>,
) -> Result<(StatusCode, Json<EventType>), HttpError> {
    let definition = backend
        .config()
        .register_event_type(
            credentials.request(pb::RegisterEventTypeRequest {
                name: body.name,
                description: body.description,
                sample_data: body
                    .sample_data
                    .map(|data| data.get().as_bytes().to_vec().into())
                    .unwrap_or_default(),
                schema: body
                    .schema
                    .map(|schema| schema.get().to_owned())
                    .unwrap_or_default(),
            }),
        )
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(event_type(&definition))))
}

#[utoipa::path(operation_id = "delete_event_type", delete, path = "/api/v1/event-types/{event_type}", tag = "event types",
    params(("event_type" = String, Path, description = "A custom type's name")),
    responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(name): Path<String>,
) -> Result<StatusCode, HttpError> {
    backend
        .config()
        .delete_event_type(credentials.request(pb::DeleteEventTypeRequest { name }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Endpoint counts by status, and delivery counts over the last 24 hours.
#[utoipa::path(operation_id = "get_summary", get, path = "/api/v1/summary", tag = "summary",
    responses((status = 200, body = Summary), ErrorResponses))]
pub async fn summary(
    State(backend): State<Backend>,
    credentials: Credentials,
) -> Result<Json<Summary>, HttpError> {
    let summary = backend
        .config()
        .get_summary(credentials.request(pb::GetSummaryRequest {}))
        .await?
        .into_inner();
    Ok(Json(Summary::from_wire(&summary)))
}
