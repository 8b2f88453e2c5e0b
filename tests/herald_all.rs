//! A whole Herald for browser and API tests: `herald all` on SQLite with
//! its own NATS, and tenants made through the admin API.

use std::time::Duration;

use herald_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use herald_testkit::NatsServer;

use crate::HeraldProcess;

/// A running `herald all` that accepts endpoints on 127.0.0.0/8 over HTTP.
#[derive(Debug)]
pub struct HeraldAll {
    pub herald: HeraldProcess,
    pub admin_token: String,
    _nats: NatsServer,
    _state: tempfile::TempDir,
}

/// A tenant and a token of its own (TENANT scope).
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub token: String,
}

impl HeraldAll {
    pub fn start() -> HeraldAll {
        HeraldAll::start_with(&[])
    }

    /// [`HeraldAll::start`], with more environment variables.
    pub fn start_with(extra: &[(&str, &str)]) -> HeraldAll {
        let nats = NatsServer::start();
        let state = tempfile::tempdir().unwrap();
        let database_url = crate::sqlite_url(state.path());
        let state_dir = state.path().to_str().unwrap().to_owned();
        let nats_url = nats.url();
        let mut envs = vec![
            ("NATS_URL", nats_url.as_str()),
            ("DATABASE_URL", &database_url),
            ("HERALD_STATE_DIR", &state_dir),
            ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        ];
        envs.extend_from_slice(extra);
        let mut herald = HeraldProcess::start(&["all"], &envs);
        herald.wait_until_ready(Duration::from_secs(60));
        let admin_token = std::fs::read_to_string(state.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        HeraldAll {
            herald,
            admin_token,
            _nats: nats,
            _state: state,
        }
    }

    /// `http://<config address><path>`: gRPC, the JSON API and the console
    /// share the config service's address.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.herald.config_addr)
    }

    pub async fn tenant(&self, name: &str) -> Tenant {
        let mut admin = AdminServiceClient::connect(self.url("")).await.unwrap();
        let tenant = admin
            .create_tenant(self.as_admin(pb::CreateTenantRequest { name: name.into() }))
            .await
            .unwrap()
            .into_inner();
        let token = admin
            .create_token(self.as_admin(pb::CreateTokenRequest {
                tenant_id: tenant.id.clone(),
                name: "browser".into(),
                scope: pb::TokenScope::Tenant.into(),
                ttl: None,
            }))
            .await
            .unwrap()
            .into_inner()
            .secret;
        Tenant {
            id: tenant.id,
            token,
        }
    }

    fn as_admin<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.admin_token).parse().unwrap(),
        );
        request
    }
}
