//! `/api/v1/devices`: the tenant's channel lines.

use axum::{Json, extract::State, http::StatusCode};
use herald_proto::v1::{self as pb, config_service_server::ConfigService};

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::{Body, Path, Query},
    model::{Channel, CreateDevice, Device, DeviceList, ListDevicesQuery, UpdateDevice},
};

#[utoipa::path(operation_id = "list_devices", get, path = "/api/v1/devices", tag = "devices",
    params(ListDevicesQuery),
    responses((status = 200, body = DeviceList), ErrorResponses))]
pub async fn list(
    State(backend): State<Backend>,
    credentials: Credentials,
    Query(query): Query<ListDevicesQuery>,
) -> Result<Json<DeviceList>, HttpError> {
    let listed = backend
        .config()
        .list_devices(
            credentials.request(pb::ListDevicesRequest {
                page_size: query.page_size.unwrap_or_default(),
                page_token: query.page_token.unwrap_or_default(),
                channel: query
                    .channel
                    .map_or(pb::Channel::Unspecified, Channel::to_wire)
                    .into(),
            }),
        )
        .await?
        .into_inner();
    Ok(Json(DeviceList {
        devices: listed.devices.iter().map(Device::from_wire).collect(),
        next_page_token: listed.next_page_token,
    }))
}

#[utoipa::path(operation_id = "create_device", post, path = "/api/v1/devices", tag = "devices",
    request_body = CreateDevice,
    responses((status = 201, body = Device), ErrorResponses))]
pub async fn create(
    State(backend): State<Backend>,
    credentials: Credentials,
    Body(body): Body<CreateDevice>,
) -> Result<(StatusCode, Json<Device>), HttpError> {
    let device = backend
        .config()
        .create_device(
            credentials.request(pb::CreateDeviceRequest {
                channel: body.channel.to_wire().into(),
                name: body.name,
                external_id: body.external_id,
                verification: body
                    .verification
                    .as_ref()
                    .map(|verification| verification.to_wire()),
            }),
        )
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(Device::from_wire(&device))))
}

#[utoipa::path(operation_id = "get_device", get, path = "/api/v1/devices/{device_id}", tag = "devices",
    params(("device_id" = String, Path, description = "`dev_…`")),
    responses((status = 200, body = Device), ErrorResponses))]
pub async fn get(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(device_id): Path<String>,
) -> Result<Json<Device>, HttpError> {
    let device = backend
        .config()
        .get_device(credentials.request(pb::GetDeviceRequest { device_id }))
        .await?
        .into_inner();
    Ok(Json(Device::from_wire(&device)))
}

/// Changes the fields present in the body.
#[utoipa::path(operation_id = "update_device", patch, path = "/api/v1/devices/{device_id}", tag = "devices",
    params(("device_id" = String, Path, description = "`dev_…`")),
    request_body = UpdateDevice,
    responses((status = 200, body = Device), ErrorResponses))]
pub async fn update(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(device_id): Path<String>,
    Body(body): Body<UpdateDevice>,
) -> Result<Json<Device>, HttpError> {
    let mut paths = Vec::new();
    if body.name.is_some() {
        paths.push("name".to_owned());
    }
    if body.external_id.is_some() {
        paths.push("external_id".to_owned());
    }
    if body.verification.is_some() {
        paths.push("verification".to_owned());
    }
    if paths.is_empty() {
        return Err(HttpError::bad_request("the body names no field to change"));
    }
    let device = backend
        .config()
        .update_device(
            credentials.request(pb::UpdateDeviceRequest {
                device_id,
                name: body.name.unwrap_or_default(),
                external_id: body.external_id.unwrap_or_default(),
                verification: body
                    .verification
                    .as_ref()
                    .map(|verification| verification.to_wire()),
                update_mask: Some(prost_types::FieldMask { paths }),
                etag: body.etag.unwrap_or_default(),
            }),
        )
        .await?
        .into_inner();
    Ok(Json(Device::from_wire(&device)))
}

#[utoipa::path(operation_id = "delete_device", delete, path = "/api/v1/devices/{device_id}", tag = "devices",
    params(("device_id" = String, Path, description = "`dev_…`")),
    responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(device_id): Path<String>,
) -> Result<StatusCode, HttpError> {
    backend
        .config()
        .delete_device(credentials.request(pb::DeleteDeviceRequest { device_id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
