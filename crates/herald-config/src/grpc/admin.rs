//! `AdminService`: tenants and their tokens, for the admin token only.

use herald_core::{
    id::{TenantId, TokenId},
    quota::TenantQuotas,
};
use herald_proto::v1::{
    ApiToken, CreateTenantRequest, CreateTokenRequest, CreateTokenResponse, DeleteTenantRequest,
    DeleteTenantResponse, GetTenantRequest, ListTenantsRequest, ListTenantsResponse,
    ListTokensRequest, ListTokensResponse, RevokeTokenRequest, Tenant, TokenScope,
    UpdateTenantRequest, admin_service_server::AdminService,
};
use herald_store::{TenantQuotasRecord, TenantRecord, TokenRecord};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use crate::{
    auth::{generate_token, hash_token},
    convert,
    endpoint::duration_from_wire,
    error::{ApiError, ApiResult},
    names, paging,
    state::ConfigState,
    validate::{check_id, check_text},
};

const MAX_TENANT_NAME_CHARS: usize = 200;
const MAX_TOKEN_NAME_CHARS: usize = 200;
/// Characters of a token shown in listings, enough to recognise it.
const TOKEN_DISPLAY_PREFIX_CHARS: usize = 12;
/// The last year a token may expire in: every timestamp Herald stores fits
/// four-digit years, on both databases.
const MAX_EXPIRY_YEAR: i32 = 9999;

#[derive(Debug)]
pub struct AdminApi {
    state: ConfigState,
}

impl AdminApi {
    pub fn new(state: ConfigState) -> AdminApi {
        AdminApi { state }
    }

    async fn tenant_exists(&self, field: &str, tenant_id: &str) -> ApiResult<()> {
        TenantId::parse(tenant_id).map_err(|error| ApiError::invalid(field, error))?;
        match self.state.store.get_tenant(tenant_id).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("tenant", tenant_id)),
        }
    }
}

fn validate_name(field: &str, name: &str, max: usize) -> ApiResult<String> {
    let name = name.trim();
    check_text(field, name, herald_core::text::Permit::SingleLine)?;
    if name.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(name.to_owned())
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_tenant(
        &self,
        request: Request<CreateTenantRequest>,
    ) -> Result<Response<Tenant>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let name = validate_name("name", &request.get_ref().name, MAX_TENANT_NAME_CHARS)?;
        let now = OffsetDateTime::now_utc();
        let record = TenantRecord {
            id: TenantId::generate().to_string(),
            name,
            created_at: now,
            updated_at: now,
            version: 1,
            quotas: TenantQuotasRecord::default(),
        };
        self.state
            .store
            .insert_tenant(&record)
            .await
            .map_err(ApiError::from)?;
        self.state.notify_changed();
        Ok(Response::new(convert::tenant(record)))
    }

    async fn get_tenant(
        &self,
        request: Request<GetTenantRequest>,
    ) -> Result<Response<Tenant>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let id = &request.get_ref().tenant_id;
        check_id("tenant_id", id)?;
        let tenant = self
            .state
            .store
            .get_tenant(id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("tenant", id.as_str()))?;
        Ok(Response::new(convert::tenant(tenant)))
    }

    async fn list_tenants(
        &self,
        request: Request<ListTenantsRequest>,
    ) -> Result<Response<ListTenantsResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let request = request.into_inner();
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_id_after(&request.page_token)?;
        let fetched = self
            .state
            .store
            .list_tenants(size + 1, after.as_deref())
            .await
            .map_err(ApiError::from)?;
        let (page, next_page_token) = paging::split_page(fetched, size, |tenant| tenant.id.clone());
        Ok(Response::new(ListTenantsResponse {
            tenants: page.into_iter().map(convert::tenant).collect(),
            next_page_token,
        }))
    }

    async fn update_tenant(
        &self,
        request: Request<UpdateTenantRequest>,
    ) -> Result<Response<Tenant>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let request = request.into_inner();
        check_id("tenant_id", &request.tenant_id)?;
        let name = if request.name.is_empty() {
            None
        } else {
            Some(validate_name("name", &request.name, MAX_TENANT_NAME_CHARS)?)
        };
        let quotas = request
            .quotas
            .as_ref()
            .map(|quotas| {
                TenantQuotas::try_from(quotas)
                    .map(|quotas| convert::tenant_quotas_record(&quotas))
                    .map_err(|error| ApiError::invalid(error.field, error.reason))
            })
            .transpose()?;
        let expected = convert::expected_version("etag", &request.etag)?;
        let tenant = self
            .state
            .store
            .update_tenant(
                &request.tenant_id,
                name.as_deref(),
                quotas.as_ref(),
                expected,
                OffsetDateTime::now_utc(),
            )
            .await
            .map_err(ApiError::from)?;
        self.state.notify_changed();
        Ok(Response::new(convert::tenant(tenant)))
    }

    async fn delete_tenant(
        &self,
        request: Request<DeleteTenantRequest>,
    ) -> Result<Response<DeleteTenantResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let id = &request.get_ref().tenant_id;
        check_id("tenant_id", id)?;
        if !self
            .state
            .store
            .delete_tenant(id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::not_found("tenant", id.as_str()).into());
        }
        self.state.notify_changed();
        Ok(Response::new(DeleteTenantResponse {}))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let request = request.into_inner();
        self.tenant_exists("tenant_id", &request.tenant_id).await?;
        let name = validate_name("name", &request.name, MAX_TOKEN_NAME_CHARS)?;
        let scope = match TokenScope::try_from(request.scope) {
            Ok(TokenScope::Unspecified) => TokenScope::Tenant,
            Ok(scope) => scope,
            Err(_) => return Err(ApiError::invalid("scope", "unknown value").into()),
        };
        let now = OffsetDateTime::now_utc();
        let expires_at = match &request.ttl {
            Some(ttl) => {
                let ttl =
                    duration_from_wire(ttl).map_err(|reason| ApiError::invalid("ttl", reason))?;
                if ttl.is_zero() {
                    return Err(ApiError::invalid("ttl", "must be positive when set").into());
                }
                let expires_at = time::Duration::try_from(ttl)
                    .ok()
                    .and_then(|ttl| now.checked_add(ttl))
                    .filter(|expires_at| expires_at.year() <= MAX_EXPIRY_YEAR)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "ttl",
                            format!("must end before the year {}", MAX_EXPIRY_YEAR + 1),
                        )
                    })?;
                Some(expires_at)
            }
            None => None,
        };
        let secret = generate_token()?;
        let record = TokenRecord {
            id: TokenId::generate().to_string(),
            tenant_id: request.tenant_id,
            name,
            scope: names::token_scope(scope).to_owned(),
            prefix: secret.chars().take(TOKEN_DISPLAY_PREFIX_CHARS).collect(),
            secret_sha256: hash_token(&secret),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.state
            .store
            .insert_token(&record)
            .await
            .map_err(ApiError::from)?;
        self.state.notify_changed();
        Ok(Response::new(CreateTokenResponse {
            token: Some(convert::token(record)),
            secret,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let request = request.into_inner();
        self.tenant_exists("tenant_id", &request.tenant_id).await?;
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_id_after(&request.page_token)?;
        let fetched = self
            .state
            .store
            .list_tokens(
                &request.tenant_id,
                request.include_revoked,
                size + 1,
                after.as_deref(),
            )
            .await
            .map_err(ApiError::from)?;
        let (page, next_page_token) = paging::split_page(fetched, size, |token| token.id.clone());
        Ok(Response::new(ListTokensResponse {
            tokens: page.into_iter().map(convert::token).collect(),
            next_page_token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<ApiToken>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        check_id("token_id", &request.get_ref().token_id)?;
        let token = self
            .state
            .store
            .revoke_token(&request.get_ref().token_id, OffsetDateTime::now_utc())
            .await
            .map_err(ApiError::from)?;
        self.state.notify_changed();
        Ok(Response::new(convert::token(token)))
    }
}
