//! `/api/v1/tenants`: a tenant and its quotas, for the admin token only
//! (a tenant token is answered 403).

use axum::{Json, extract::State};
use herald_proto::v1::{self as pb, admin_service_server::AdminService};

use crate::{
    backend::{Backend, Credentials},
    error::{ErrorResponses, HttpError},
    extract::{Body, Path},
    model::{SetTenantQuotas, Tenant},
};

#[utoipa::path(operation_id = "get_tenant", get, path = "/api/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path, description = "`org_…`")),
    responses((status = 200, body = Tenant), ErrorResponses))]
pub async fn get(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(tenant_id): Path<String>,
) -> Result<Json<Tenant>, HttpError> {
    let tenant = backend
        .admin()
        .get_tenant(credentials.request(pb::GetTenantRequest { tenant_id }))
        .await?
        .into_inner();
    Ok(Json(Tenant::from_wire(&tenant)))
}

/// Replaces the tenant's quotas; a field absent (or 0) takes the service's default.
#[utoipa::path(operation_id = "set_tenant_quotas", put, path = "/api/v1/tenants/{tenant_id}/quotas", tag = "tenants",
    params(("tenant_id" = String, Path, description = "`org_…`")),
    request_body = SetTenantQuotas,
    responses((status = 200, body = Tenant), ErrorResponses))]
pub async fn set_quotas(
    State(backend): State<Backend>,
    credentials: Credentials,
    Path(tenant_id): Path<String>,
    Body(body): Body<SetTenantQuotas>,
) -> Result<Json<Tenant>, HttpError> {
    let tenant = backend
        .admin()
        .update_tenant(credentials.request(pb::UpdateTenantRequest {
            tenant_id,
            name: String::new(),
            etag: body.etag.clone().unwrap_or_default(),
            quotas: Some(body.to_wire()),
        }))
        .await?
        .into_inner();
    Ok(Json(Tenant::from_wire(&tenant)))
}
