//! `/api/v1/endpoints`: create, list and search, read, edit, delete, test,
//! enable and disable, rotate and read the signing secret.

use axum::{Json, extract::State, http::StatusCode};
use herald_proto::v1::{self as pb, config_service_server::ConfigService};

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::{Body, Path, Query},
    model::{
        CreateEndpoint, CreatedEndpoint, DisableEndpoint, Endpoint, EndpointList, EndpointSecrets,
        EndpointStatus, ListEndpointsQuery, RotateSecret, TestEndpoint, TestResult, UpdateEndpoint,
    },
};

/// Lists the tenant's endpoints by name, optionally filtered.
#[utoipa::path(operation_id = "list_endpoints", get, path = "/api/v1/endpoints", tag = "endpoints",
    params(ListEndpointsQuery),
    responses((status = 200, body = EndpointList), ErrorResponses))]
pub async fn list(
    State(backend): State<Backend>,
    credentials: Credentials,
    Query(query): Query<ListEndpointsQuery>,
) -> Result<Json<EndpointList>, HttpError> {
    let listed = backend
        .config()
        .list_endpoints(
            credentials.request(pb::ListEndpointsRequest {
                page_size: query.page_size.unwrap_or_default(),
                page_token: query.page_token.unwrap_or_default(),
                search: query.search.unwrap_or_default(),
                status: query
                    .status
                    .map_or(pb::EndpointStatus::Unspecified, EndpointStatus::to_wire)
                    .into(),
            }),
        )
        .await?
        .into_inner();
    Ok(Json(EndpointList {
        endpoints: listed.endpoints.iter().map(Endpoint::from_wire).collect(),
        next_page_token: listed.next_page_token,
    }))
}

/// Creates an endpoint, `pending_test` until a test delivery gets a 200 or
/// 201. The response carries the signing secret once.
#[utoipa::path(operation_id = "create_endpoint", post, path = "/api/v1/endpoints", tag = "endpoints",
    request_body = CreateEndpoint,
    responses((status = 201, body = CreatedEndpoint), ErrorResponses))]
pub async fn create(
    State(backend): State<Backend>,
    credentials: Credentials,
    Body(body): Body<CreateEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), HttpError> {
    let (spec, _) = body.fields.to_wire()?;
    let created = backend
        .config()
        .create_endpoint(credentials.request(pb::CreateEndpointRequest {
            spec: Some(spec),
            secret: body.secret.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    let endpoint = created
        .endpoint
        .as_ref()
        .map(Endpoint::from_wire)
        .ok_or_else(|| HttpError::internal("the created endpoint was not returned"))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            endpoint,
            secret: created.secret,
            test: created.test.as_ref().map(TestResult::from_wire),
        }),
    ))
}

#[utoipa::path(operation_id = "get_endpoint", get, path = "/api/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    responses((status = 200, body = Endpoint), ErrorResponses))]
pub async fn get(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
) -> Result<Json<Endpoint>, HttpError> {
    let endpoint = backend
        .config()
        .get_endpoint(credentials.request(pb::GetEndpointRequest { endpoint_id }))
        .await?
        .into_inner();
    Ok(Json(Endpoint::from_wire(&endpoint)))
}

/// Changes the fields present in the body. Changing the URL, signing or
/// headers puts the endpoint back to `pending_test`.
#[utoipa::path(operation_id = "update_endpoint", patch, path = "/api/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    request_body = UpdateEndpoint,
    responses((status = 200, body = Endpoint), ErrorResponses))]
pub async fn update(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
    Body(body): Body<UpdateEndpoint>,
) -> Result<Json<Endpoint>, HttpError> {
    let (spec, paths) = body.fields.to_wire()?;
    if paths.is_empty() {
        return Err(HttpError::bad_request("the body names no field to change"));
    }
    let endpoint = backend
        .config()
        .update_endpoint(credentials.request(pb::UpdateEndpointRequest {
            endpoint_id,
            spec: Some(spec),
            update_mask: Some(prost_types::FieldMask { paths }),
            etag: body.etag.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(Endpoint::from_wire(&endpoint)))
}

/// Deletes the endpoint for good.
#[utoipa::path(operation_id = "delete_endpoint", delete, path = "/api/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, HttpError> {
    backend
        .config()
        .delete_endpoint(credentials.request(pb::DeleteEndpointRequest { endpoint_id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses live deliveries, keeping the configuration.
#[utoipa::path(operation_id = "disable_endpoint", post, path = "/api/v1/endpoints/{endpoint_id}/disable", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    request_body(content = Option<DisableEndpoint>),
    responses((status = 200, body = Endpoint), ErrorResponses))]
pub async fn disable(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
    Body(body): Body<DisableEndpoint>,
) -> Result<Json<Endpoint>, HttpError> {
    let endpoint = backend
        .config()
        .disable_endpoint(credentials.request(pb::DisableEndpointRequest {
            endpoint_id,
            reason: body.reason.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(Endpoint::from_wire(&endpoint)))
}

/// Resumes a disabled endpoint (a failing one resumes into a new test).
#[utoipa::path(operation_id = "enable_endpoint", post, path = "/api/v1/endpoints/{endpoint_id}/enable", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    responses((status = 200, body = Endpoint), ErrorResponses))]
pub async fn enable(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
) -> Result<Json<Endpoint>, HttpError> {
    let endpoint = backend
        .config()
        .enable_endpoint(credentials.request(pb::EnableEndpointRequest { endpoint_id }))
        .await?
        .into_inner();
    Ok(Json(Endpoint::from_wire(&endpoint)))
}

/// Sends a signed test delivery (`"test": true`) through the delivery
/// service and waits for its attempt; a 200 or 201 makes the endpoint active.
#[utoipa::path(operation_id = "test_endpoint", post, path = "/api/v1/endpoints/{endpoint_id}/test", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    request_body(content = Option<TestEndpoint>),
    responses((status = 200, body = TestResult), ErrorResponses))]
pub async fn test(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
    Body(body): Body<TestEndpoint>,
) -> Result<Json<TestResult>, HttpError> {
    let tested = backend
        .config()
        .test_endpoint(credentials.request(body.to_wire(endpoint_id)?))
        .await?
        .into_inner();
    Ok(Json(TestResult::from_wire(&tested)))
}

/// Generates (or sets) a new signing secret; the previous one stays valid
/// for the overlap, and deliveries carry both signatures meanwhile.
#[utoipa::path(operation_id = "rotate_endpoint_secret", post, path = "/api/v1/endpoints/{endpoint_id}/rotate-secret", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    request_body(content = Option<RotateSecret>),
    responses((status = 200, body = EndpointSecrets), ErrorResponses))]
pub async fn rotate_secret(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
    Body(body): Body<RotateSecret>,
) -> Result<Json<EndpointSecrets>, HttpError> {
    let secrets = backend
        .config()
        .rotate_endpoint_secret(credentials.request(body.to_wire(endpoint_id)?))
        .await?
        .into_inner();
    Ok(Json(EndpointSecrets::from_wire(&secrets)))
}

/// The signing secrets (needs a token that may change the configuration).
#[utoipa::path(operation_id = "get_endpoint_secret", get, path = "/api/v1/endpoints/{endpoint_id}/secret", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "`ep_…`")),
    responses((status = 200, body = EndpointSecrets), ErrorResponses))]
pub async fn secret(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(endpoint_id): Path<String>,
) -> Result<Json<EndpointSecrets>, HttpError> {
    let secrets = backend
        .config()
        .get_endpoint_secret(credentials.request(pb::GetEndpointSecretRequest { endpoint_id }))
        .await?
        .into_inner();
    Ok(Json(EndpointSecrets::from_wire(&secrets)))
}
