//! The in-process client of the config service: the gRPC service
//! implementations themselves, called as trait methods with the caller's
//! credentials in the request metadata.
//!
//! Going through the gRPC layer (not `ConfigState`) keeps one implementation
//! of every rule, authentication and authorization included: the JSON API
//! and the console can only do what a gRPC client with the same token can.

use std::sync::Arc;

use axum::http::HeaderMap;
use herald_config::{
    AdminApi, AttemptApi, ConfigApi, ConfigState, RecoveryApi, TENANT_METADATA_KEY,
};
use tokio_util::sync::CancellationToken;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// The config service's gRPC implementations the HTTP faces use.
#[derive(Clone, Debug)]
pub struct Backend {
    admin: Arc<AdminApi>,
    config: Arc<ConfigApi>,
    attempts: Arc<AttemptApi>,
    recovery: Arc<RecoveryApi>,
    /// The ingest service's address as callers reach it, for the actions
    /// that discovery describes there.
    public_ingest_url: Option<Arc<str>>,
}

impl Backend {
    pub fn new(state: ConfigState, shutdown: CancellationToken) -> Backend {
        Backend {
            admin: Arc::new(AdminApi::new(state.clone())),
            config: Arc::new(ConfigApi::new(state.clone())),
            attempts: Arc::new(AttemptApi::new(state.clone(), shutdown.clone())),
            recovery: Arc::new(RecoveryApi::new(state, shutdown)),
            public_ingest_url: None,
        }
    }

    /// Names the ingest service's public URL (`--public-ingest-url`).
    #[must_use]
    pub fn with_public_ingest_url(mut self, url: Option<&str>) -> Backend {
        self.public_ingest_url = url.map(Arc::from);
        self
    }

    /// The ingest service's public URL, when configured.
    pub fn public_ingest_url(&self) -> Option<&str> {
        self.public_ingest_url.as_deref()
    }

    /// `herald.v1.AdminService`: tenants (their quotas), for the admin token.
    pub fn admin(&self) -> &AdminApi {
        &self.admin
    }

    /// `herald.v1.ConfigService`: devices, endpoints, event types, summary.
    pub fn config(&self) -> &ConfigApi {
        &self.config
    }

    /// `herald.v1.AttemptService`: the attempt log.
    pub fn attempts(&self) -> &AttemptApi {
        &self.attempts
    }

    /// `herald.v1.RecoveryService`: dead letters, redrive, replay, recovery.
    pub fn recovery(&self) -> &RecoveryApi {
        &self.recovery
    }
}

/// What a caller presented, passed on as gRPC metadata untouched: the
/// service decides what it is worth.
#[derive(Clone, Default)]
pub struct Credentials {
    metadata: MetadataMap,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A bearer token (the console's session holds one).
    pub fn bearer(token: &str) -> Credentials {
        let mut metadata = MetadataMap::new();
        if let Ok(value) = AsciiMetadataValue::try_from(format!("Bearer {token}")) {
            metadata.insert("authorization", value);
        }
        Credentials { metadata }
    }

    /// `Authorization` and, for the admin token, `Herald-Tenant` from an
    /// HTTP request. A missing or malformed header is left out, and the
    /// service answers Unauthenticated as it would over gRPC.
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let mut metadata = MetadataMap::new();
        for name in ["authorization", TENANT_METADATA_KEY] {
            if let Some(value) = headers
                .get(name)
                .and_then(|value| AsciiMetadataValue::try_from(value.as_bytes()).ok())
            {
                metadata.insert(name, value);
            }
        }
        Credentials { metadata }
    }

    /// `message` as a gRPC request carrying these credentials.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request
    }
}
