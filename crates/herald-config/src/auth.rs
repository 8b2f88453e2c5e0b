//! Who is calling: the admin, one of Herald's own services, or a tenant.
//!
//! Credentials are bearer tokens in the `authorization` metadata. Tenant
//! tokens are stored as SHA-256 hashes and looked up by hash; the admin and
//! service tokens come from configuration and are compared in constant time.
//!
//! Failed authentications are throttled per client address (herald-core's
//! [`AuthThrottle`]): the address comes from the connection, set for the
//! duration of each request by [`PeerLayer`], so the JSON API and the
//! console, which call the services in-process, are throttled by their
//! callers' addresses too.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

pub use herald_core::token::hash as hash_token;
use herald_core::{
    id::TenantId,
    rate::Micros,
    throttle::{AuthThrottle, client_address, client_key},
    token::Scope,
};
use herald_proto::v1::TokenScope;
use herald_store::Store;
use ipnet::IpNet;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tonic::{metadata::MetadataMap, transport::server::TcpConnectInfo};

use crate::error::{ApiError, ApiResult};

/// Lets the admin act on one tenant's configuration (support, tooling).
pub const TENANT_METADATA_KEY: &str = herald_proto::metadata::TENANT;
/// Every tenant token starts with this, so leaked tokens are recognisable by
/// secret scanners.
pub const TOKEN_PREFIX: &str = "hrld_";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Service,
    Tenant(TenantCaller),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantCaller {
    pub tenant_id: String,
    pub scope: TokenScope,
}

/// What a tenant call needs from its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Clone)]
pub struct Authenticator {
    admin_token: String,
    service_token: String,
    store: Store,
    failures: Arc<Mutex<Failures>>,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: Arc<[IpNet]>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Authenticator")
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(admin_token: String, service_token: String, store: Store) -> Authenticator {
        Authenticator {
            admin_token,
            service_token,
            store,
            failures: Arc::new(Mutex::new(Failures::new(
                AuthThrottle::default(),
                MAX_THROTTLED_ADDRESSES,
            ))),
            trusted_proxies: Arc::from([]),
        }
    }

    /// Believes `X-Forwarded-For` from these proxies when throttling.
    pub fn trusting_proxies(mut self, proxies: Vec<IpNet>) -> Authenticator {
        self.trusted_proxies = proxies.into();
        self
    }

    /// Who presented the credentials in `metadata`. A caller whose address
    /// failed too often lately is refused before its token is looked at.
    pub async fn caller(&self, metadata: &MetadataMap) -> ApiResult<Caller> {
        let peer = current_origin().map(|origin| {
            client_key(client_address(
                origin.peer,
                origin.forwarded_for.as_deref(),
                &self.trusted_proxies,
            ))
        });
        if let Some(peer) = peer {
            let wait = self.failures().wait(peer, now_micros());
            if let Some(retry_after) = wait {
                return Err(ApiError::Throttled { retry_after });
            }
        }
        let caller = self.identify(metadata).await;
        if let (Err(ApiError::Unauthenticated(_)), Some(peer)) = (&caller, peer) {
            self.failures().fail(peer, now_micros());
        }
        caller
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        // The map stays consistent whatever panicked while holding it.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn identify(&self, metadata: &MetadataMap) -> ApiResult<Caller> {
        let presented = bearer_token(metadata)?;
        if constant_time_eq(presented, &self.admin_token) {
            return Ok(Caller::Admin);
        }
        if constant_time_eq(presented, &self.service_token) {
            return Ok(Caller::Service);
        }
        if !presented.starts_with(TOKEN_PREFIX) {
            return Err(unknown_token());
        }
        let token = self
            .store
            .find_token_by_secret_hash(&hash_token(presented))
            .await?
            .ok_or_else(unknown_token)?;
        let now = OffsetDateTime::now_utc();
        if token.revoked_at.is_some() {
            return Err(ApiError::Unauthenticated("the token was revoked".into()));
        }
        if token.expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Err(ApiError::Unauthenticated("the token expired".into()));
        }
        let scope = crate::names::parse_token_scope(&token.scope);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.touch_token(&token.id, now).await {
                tracing::debug!(%error, "cannot record a token's last use");
            }
        });
        Ok(Caller::Tenant(TenantCaller {
            tenant_id: token.tenant_id,
            scope,
        }))
    }

    pub async fn admin(&self, metadata: &MetadataMap) -> ApiResult<()> {
        match self.caller(metadata).await? {
            Caller::Admin => Ok(()),
            _ => Err(ApiError::PermissionDenied(
                "this call needs the admin token".into(),
            )),
        }
    }

    pub async fn service(&self, metadata: &MetadataMap) -> ApiResult<()> {
        match self.caller(metadata).await? {
            Caller::Service | Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::PermissionDenied(
                "this call is for Herald's own services, not tenant tokens".into(),
            )),
        }
    }

    /// The tenant a call acts on: the token's own, or for the admin the one
    /// named in `herald-tenant`.
    /// The call's span names the tenant.
    pub async fn tenant(&self, metadata: &MetadataMap, access: Access) -> ApiResult<String> {
        Ok(self.tenant_access(metadata, access).await?.0)
    }

    /// Like [`Authenticator::tenant`], with whether the caller may see
    /// credentials in what it reads: a read-only token may not.
    pub async fn tenant_reader(&self, metadata: &MetadataMap) -> ApiResult<(String, bool)> {
        let (tenant, scope) = self.tenant_access(metadata, Access::Read).await?;
        let sees_credentials = scope
            .and_then(|scope| Scope::try_from(scope).ok())
            .is_none_or(Scope::sees_credentials);
        Ok((tenant, sees_credentials))
    }

    /// The tenant, and the scope of the token when a tenant token called.
    async fn tenant_access(
        &self,
        metadata: &MetadataMap,
        access: Access,
    ) -> ApiResult<(String, Option<TokenScope>)> {
        let mut scope = None;
        let tenant = match self.caller(metadata).await? {
            Caller::Tenant(tenant) => {
                let allowed = Scope::try_from(tenant.scope).is_ok_and(|scope| match access {
                    Access::Read => scope.may_read_config(),
                    Access::Write => scope.may_change_config(),
                });
                scope = Some(tenant.scope);
                if allowed {
                    Ok(tenant.tenant_id)
                } else {
                    Err(ApiError::PermissionDenied(format!(
                        "a {} token cannot {} the tenant's configuration",
                        crate::names::token_scope(tenant.scope),
                        match access {
                            Access::Read => "read",
                            Access::Write => "change",
                        }
                    )))
                }
            }
            Caller::Admin => admin_tenant(metadata),
            Caller::Service => Err(ApiError::PermissionDenied(
                "the service credential cannot use the tenant API".into(),
            )),
        }?;
        tracing::Span::current().record("herald.tenant.id", tenant.as_str());
        Ok((tenant, scope))
    }
}

/// How many addresses the throttle tracks at most. When full, spent entries
/// are dropped first, then the ones closest to being spent.
const MAX_THROTTLED_ADDRESSES: usize = 10_000;

/// The failure state of the addresses that failed lately.
#[derive(Debug)]
struct Failures {
    throttle: AuthThrottle,
    capacity: usize,
    by_address: HashMap<IpAddr, Micros>,
}

impl Failures {
    fn new(throttle: AuthThrottle, capacity: usize) -> Failures {
        Failures {
            throttle,
            capacity,
            by_address: HashMap::new(),
        }
    }

    fn wait(&self, address: IpAddr, now: Micros) -> Option<Duration> {
        let tat = self.by_address.get(&address).copied()?;
        self.throttle.wait(tat, now)
    }

    fn fail(&mut self, address: IpAddr, now: Micros) {
        if !self.by_address.contains_key(&address) && self.by_address.len() >= self.capacity {
            let throttle = self.throttle;
            self.by_address
                .retain(|_, tat| !throttle.is_spent(*tat, now));
            if self.by_address.len() >= self.capacity
                && let Some(closest) = self
                    .by_address
                    .iter()
                    .min_by_key(|(_, tat)| **tat)
                    .map(|(address, _)| *address)
            {
                self.by_address.remove(&closest);
            }
        }
        let tat = self.by_address.get(&address).copied().unwrap_or(0);
        self.by_address
            .insert(address, self.throttle.fail(tat, now));
    }
}

fn now_micros() -> Micros {
    Micros::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000)
        .unwrap_or(Micros::MAX)
}

/// Where the request being served came from.
#[derive(Clone, Debug)]
struct Origin {
    peer: IpAddr,
    forwarded_for: Option<String>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

fn current_origin() -> Option<Origin> {
    ORIGIN.try_with(Origin::clone).ok()
}

/// Makes the connection's peer address (and `X-Forwarded-For`, believed
/// only from trusted proxies) what [`Authenticator`] throttles by, for the
/// duration of each request (gRPC and the HTTP routes alike).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerLayer;

impl<S> tower_layer::Layer<S> for PeerLayer {
    type Service = PeerService<S>;

    fn layer(&self, inner: S) -> PeerService<S> {
        PeerService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct PeerService<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for PeerService<S>
where
    S: tower_service::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|address| address.ip());
        let forwarded_for = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>();
        let forwarded_for = (!forwarded_for.is_empty()).then(|| forwarded_for.join(","));
        let response = self.inner.call(request);
        match peer {
            Some(peer) => Box::pin(ORIGIN.scope(
                Origin {
                    peer,
                    forwarded_for,
                },
                response,
            )),
            None => Box::pin(response),
        }
    }
}

/// The tenant the admin names in `herald-tenant`, parsed here so a malformed
/// id is the caller's mistake rather than a corrupt id deeper down.
fn admin_tenant(metadata: &MetadataMap) -> ApiResult<String> {
    let value = metadata
        .get(TENANT_METADATA_KEY)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::invalid(TENANT_METADATA_KEY, "the tenant id is not text"))
        })
        .transpose()?
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                TENANT_METADATA_KEY,
                "the admin token must name the tenant to act on in `herald-tenant` metadata",
            )
        })?;
    TenantId::parse(value)
        .map(|tenant| tenant.to_string())
        .map_err(|error| ApiError::invalid(TENANT_METADATA_KEY, error))
}

/// `hrld_` and 43 base64url characters (32 random bytes).
pub fn generate_token() -> ApiResult<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let bytes = crate::secrets::random_bytes::<32>()?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn bearer_token(metadata: &MetadataMap) -> ApiResult<&str> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| {
            ApiError::Unauthenticated("missing `authorization: Bearer <token>` metadata".into())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the authorization metadata is not text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::Unauthenticated("authorization must be `Bearer <token>`".into()))?
        .trim();
    if token.is_empty() {
        return Err(ApiError::Unauthenticated(
            "the bearer token is empty".into(),
        ));
    }
    Ok(token)
}

fn unknown_token() -> ApiError {
    ApiError::Unauthenticated("unknown token".into())
}

fn constant_time_eq(presented: &str, configured: &str) -> bool {
    !configured.is_empty() && bool::from(presented.as_bytes().ct_eq(configured.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed_as_hex() {
        let token = generate_token().unwrap();
        assert!(token.starts_with("hrld_"));
        assert_eq!(token.len(), 5 + 43);
        assert_ne!(token, generate_token().unwrap());
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut metadata = MetadataMap::new();
        assert!(bearer_token(&metadata).is_err());
        metadata.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer_token(&metadata).is_err());
        metadata.insert("authorization", "Bearer ".parse().unwrap());
        assert!(bearer_token(&metadata).is_err());
        metadata.insert("authorization", "Bearer hrld_x".parse().unwrap());
        assert_eq!(bearer_token(&metadata).unwrap(), "hrld_x");
    }

    #[test]
    fn the_failure_map_stays_bounded() {
        let mut failures = Failures::new(AuthThrottle::default(), 3);
        let now = 1_000_000_000;
        for last in 1..=10_u8 {
            failures.fail(IpAddr::from([10, 0, 0, last]), now + i64::from(last));
            assert!(failures.by_address.len() <= 3);
        }
        // The latest failure is always remembered.
        assert!(
            failures
                .by_address
                .contains_key(&IpAddr::from([10, 0, 0, 10]))
        );
    }

    #[test]
    fn an_empty_configured_token_matches_nothing() {
        assert!(!constant_time_eq("", ""));
        assert!(constant_time_eq("a", "a"));
        assert!(!constant_time_eq("a", "b"));
    }
}
