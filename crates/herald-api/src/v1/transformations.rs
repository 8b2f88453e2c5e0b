//! `/api/v1/transformations/simulate`: a program run against an event or
//! a catalog sample, with nothing sent.

use axum::{Json, extract::State};
use herald_proto::v1::{
    self as pb, config_service_server::ConfigService,
    simulate_transformation_request::Input as WireInput,
};

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::Body,
    model::{SimulateTransformation, SimulationResult},
};

/// Runs a transformation program once, as delivery would, and returns what
/// would be sent: the body, the headers it adds and the event type the
/// headers carry, or the cancel and its reason. A program that fails is a
/// result too (`error`, with its line and column), answered 200.
#[utoipa::path(operation_id = "simulate_transformation", post, path = "/api/v1/transformations/simulate", tag = "transformations",
    request_body = SimulateTransformation,
    responses((status = 200, body = SimulationResult), ErrorResponses))]
pub async fn simulate(
    State(backend): State<Backend>,
    credentials: Credentials,
    Body(body): Body<SimulateTransformation>,
) -> Result<Json<SimulationResult>, HttpError> {
    let input = match (body.event, body.event_type) {
        (Some(event), None) => WireInput::EventJson(event.to_string()),
        (None, Some(event_type)) => WireInput::EventType(event_type),
        _ => {
            return Err(HttpError::invalid(
                "event",
                "set exactly one of event and event_type",
            ));
        }
    };
    let simulated = backend
        .config()
        .simulate_transformation(credentials.request(pb::SimulateTransformationRequest {
            code: body.code,
            input: Some(input),
            url: body.url.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(SimulationResult::from_wire(simulated)))
}
