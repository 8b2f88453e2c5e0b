//! Where to connect and as whom.

use std::time::Duration;

use tonic::{Request, transport::Channel};

use crate::{cli::Cli, error::CtlError, settings};

pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7070";
pub const DEFAULT_INGEST_ADDR: &str = "http://127.0.0.1:7080";

/// The resolved address, tokens and tenant: flags first, then the
/// environment, then what `heraldctl login` saved, then the local defaults.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: String,
    pub ingest_addr: String,
    /// The token tenant commands send.
    pub token: Option<String>,
    /// The token `tenants` and `tokens` send. It has a variable of its own
    /// (`HERALD_ADMIN_TOKEN`, the name the server reads too) so that an
    /// exported admin token does not override the tenant token `heraldctl
    /// login` saved; `--token` still works for it, as before.
    pub admin_token: Option<String>,
    pub tenant: Option<String>,
}

impl Target {
    pub fn resolve(cli: &Cli) -> Result<Target, CtlError> {
        let saved = settings::load()?;
        Ok(Target {
            addr: cli
                .addr
                .clone()
                .or(saved.addr)
                .unwrap_or_else(|| DEFAULT_ADDR.to_owned()),
            ingest_addr: cli
                .ingest_addr
                .clone()
                .or(saved.ingest_addr)
                .unwrap_or_else(|| DEFAULT_INGEST_ADDR.to_owned()),
            // Without a tenant token the admin token is the only credential;
            // the server then asks for `--tenant`.
            token: cli
                .token
                .clone()
                .or(saved.token.clone())
                .or(cli.admin_token.clone()),
            admin_token: cli
                .admin_token
                .clone()
                .or(cli.token.clone())
                .or(saved.token),
            tenant: cli.tenant.clone().or(saved.tenant),
        })
    }

    pub async fn config_channel(&self) -> Result<Channel, CtlError> {
        connect(&self.addr).await
    }

    pub async fn ingest_channel(&self) -> Result<Channel, CtlError> {
        connect(&self.ingest_addr).await
    }

    /// `message` with the tenant token (and tenant, for the admin) attached.
    pub fn request<T>(&self, message: T) -> Result<Request<T>, CtlError> {
        let token = self.token.as_deref().ok_or_else(|| {
            CtlError::Usage(
                "no token: pass --token, set HERALD_TOKEN, or run `heraldctl login`".into(),
            )
        })?;
        self.authorized(token, message)
    }

    /// `message` with the admin token attached, for `AdminService`.
    pub fn admin_request<T>(&self, message: T) -> Result<Request<T>, CtlError> {
        let token = self.admin_token.as_deref().ok_or_else(|| {
            CtlError::Usage(
                "no admin token: pass --admin-token or set HERALD_ADMIN_TOKEN (make run keeps it in .herald/admin.token)".into(),
            )
        })?;
        self.authorized(token, message)
    }

    fn authorized<T>(&self, token: &str, message: T) -> Result<Request<T>, CtlError> {
        let mut request = Request::new(message);
        let bearer = format!("Bearer {token}").parse().map_err(|_| {
            CtlError::Usage("the token contains characters that cannot be sent".into())
        })?;
        request.metadata_mut().insert("authorization", bearer);
        if let Some(tenant) = &self.tenant {
            let tenant = tenant.parse().map_err(|_| {
                CtlError::Usage("--tenant contains characters that cannot be sent".into())
            })?;
            request
                .metadata_mut()
                .insert(herald_proto::metadata::TENANT, tenant);
        }
        Ok(request)
    }
}

async fn connect(addr: &str) -> Result<Channel, CtlError> {
    let unreachable = |reason: String| CtlError::Connect {
        url: addr.to_owned(),
        reason,
    };
    tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(|error| CtlError::Usage(format!("invalid address {addr:?}: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| unreachable(source_chain(&error)))
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
