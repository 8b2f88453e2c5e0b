//! `ConfigService`: authenticates, then hands each call to `ConfigState`.

use herald_proto::v1::{
    CreateDeviceRequest, CreateEndpointRequest, CreateEndpointResponse, DeleteDeviceRequest,
    DeleteDeviceResponse, DeleteEndpointRequest, DeleteEndpointResponse, DeleteEventTypeRequest,
    DeleteEventTypeResponse, Device, DisableEndpointRequest, EnableEndpointRequest, Endpoint,
    EndpointSecrets, EventTypeDefinition, GetDeviceRequest, GetEndpointRequest,
    GetEndpointSecretRequest, GetSummaryRequest, ListDevicesRequest, ListDevicesResponse,
    ListEndpointsRequest, ListEndpointsResponse, ListEventTypesRequest, ListEventTypesResponse,
    RegisterEventTypeRequest, RotateEndpointSecretRequest, SimulateTransformationRequest,
    SimulateTransformationResponse, Summary, TestEndpointRequest, TestEndpointResponse,
    UpdateDeviceRequest, UpdateEndpointRequest, config_service_server::ConfigService,
};
use tonic::{Request, Response, Status};

use crate::{auth::Access, convert::HeaderValues, state::ConfigState};

#[derive(Debug)]
pub struct ConfigApi {
    state: ConfigState,
}

impl ConfigApi {
    pub fn new(state: ConfigState) -> ConfigApi {
        ConfigApi { state }
    }

    /// The tenant a read acts on, and how much of endpoints' custom header
    /// values (usually credentials) the caller may see.
    async fn reader<T>(&self, request: &Request<T>) -> Result<(String, HeaderValues), Status> {
        let (tenant_id, sees_credentials) =
            self.state.auth.tenant_reader(request.metadata()).await?;
        let header_values = if sees_credentials {
            HeaderValues::Shown
        } else {
            HeaderValues::Masked
        };
        Ok((tenant_id, header_values))
    }
}

/// One line per RPC: authenticate for `access`, run the state's method,
/// map its error to a `Status`.
macro_rules! tenant_call {
    ($self:ident, $request:ident, $access:expr, $method:ident) => {{
        let tenant_id = $self
            .state
            .auth
            .tenant($request.metadata(), $access)
            .await?;
        let response = $self
            .state
            .$method(&tenant_id, $request.into_inner())
            .await?;
        Ok(Response::new(response))
    }};
}

#[tonic::async_trait]
impl ConfigService for ConfigApi {
    async fn create_device(
        &self,
        request: Request<CreateDeviceRequest>,
    ) -> Result<Response<Device>, Status> {
        tenant_call!(self, request, Access::Write, create_device)
    }

    async fn get_device(
        &self,
        request: Request<GetDeviceRequest>,
    ) -> Result<Response<Device>, Status> {
        tenant_call!(self, request, Access::Read, get_device)
    }

    async fn list_devices(
        &self,
        request: Request<ListDevicesRequest>,
    ) -> Result<Response<ListDevicesResponse>, Status> {
        tenant_call!(self, request, Access::Read, list_devices)
    }

    async fn update_device(
        &self,
        request: Request<UpdateDeviceRequest>,
    ) -> Result<Response<Device>, Status> {
        tenant_call!(self, request, Access::Write, update_device)
    }

    async fn delete_device(
        &self,
        request: Request<DeleteDeviceRequest>,
    ) -> Result<Response<DeleteDeviceResponse>, Status> {
        tenant_call!(self, request, Access::Write, delete_device)
    }

    async fn create_endpoint(
        &self,
        request: Request<CreateEndpointRequest>,
    ) -> Result<Response<CreateEndpointResponse>, Status> {
        tenant_call!(self, request, Access::Write, create_endpoint)
    }

    async fn get_endpoint(
        &self,
        request: Request<GetEndpointRequest>,
    ) -> Result<Response<Endpoint>, Status> {
        let (tenant_id, header_values) = self.reader(&request).await?;
        let response = self
            .state
            .get_endpoint(&tenant_id, request.into_inner(), header_values)
            .await?;
        Ok(Response::new(response))
    }

    async fn list_endpoints(
        &self,
        request: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        let (tenant_id, header_values) = self.reader(&request).await?;
        let response = self
            .state
            .list_endpoints(&tenant_id, request.into_inner(), header_values)
            .await?;
        Ok(Response::new(response))
    }

    async fn update_endpoint(
        &self,
        request: Request<UpdateEndpointRequest>,
    ) -> Result<Response<Endpoint>, Status> {
        tenant_call!(self, request, Access::Write, update_endpoint)
    }

    async fn delete_endpoint(
        &self,
        request: Request<DeleteEndpointRequest>,
    ) -> Result<Response<DeleteEndpointResponse>, Status> {
        tenant_call!(self, request, Access::Write, delete_endpoint)
    }

    async fn disable_endpoint(
        &self,
        request: Request<DisableEndpointRequest>,
    ) -> Result<Response<Endpoint>, Status> {
        tenant_call!(self, request, Access::Write, disable_endpoint)
    }

    async fn enable_endpoint(
        &self,
        request: Request<EnableEndpointRequest>,
    ) -> Result<Response<Endpoint>, Status> {
        tenant_call!(self, request, Access::Write, enable_endpoint)
    }

    async fn test_endpoint(
        &self,
        request: Request<TestEndpointRequest>,
    ) -> Result<Response<TestEndpointResponse>, Status> {
        tenant_call!(self, request, Access::Write, test_endpoint)
    }

    async fn rotate_endpoint_secret(
        &self,
        request: Request<RotateEndpointSecretRequest>,
    ) -> Result<Response<EndpointSecrets>, Status> {
        tenant_call!(self, request, Access::Write, rotate_endpoint_secret)
    }

    /// Reading a secret is a write-level privilege: read-only tokens (for
    /// dashboards) must not be able to forge signatures.
    async fn get_endpoint_secret(
        &self,
        request: Request<GetEndpointSecretRequest>,
    ) -> Result<Response<EndpointSecrets>, Status> {
        tenant_call!(self, request, Access::Write, get_endpoint_secret)
    }

    async fn list_event_types(
        &self,
        request: Request<ListEventTypesRequest>,
    ) -> Result<Response<ListEventTypesResponse>, Status> {
        tenant_call!(self, request, Access::Read, list_event_types)
    }

    async fn register_event_type(
        &self,
        request: Request<RegisterEventTypeRequest>,
    ) -> Result<Response<EventTypeDefinition>, Status> {
        tenant_call!(self, request, Access::Write, register_event_type)
    }

    async fn delete_event_type(
        &self,
        request: Request<DeleteEventTypeRequest>,
    ) -> Result<Response<DeleteEventTypeResponse>, Status> {
        tenant_call!(self, request, Access::Write, delete_event_type)
    }

    async fn get_summary(
        &self,
        request: Request<GetSummaryRequest>,
    ) -> Result<Response<Summary>, Status> {
        tenant_call!(self, request, Access::Read, summary)
    }

    async fn simulate_transformation(
        &self,
        request: Request<SimulateTransformationRequest>,
    ) -> Result<Response<SimulateTransformationResponse>, Status> {
        tenant_call!(self, request, Access::Read, simulate_transformation)
    }
}
