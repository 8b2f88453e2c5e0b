//! A whole Herald for browser and API tests: `herald all` on SQLite with
//! its own NATS, and tenants made through the admin API.

use std::{path::Path, time::Duration};

use herald_testkit::NatsServer;
pub use herald_testkit_stack::Tenant;

use crate::{HeraldProcess, stack::grpc_channel};

/// A running `herald all` that accepts endpoints on 127.0.0.0/8 over HTTP.
#[derive(Debug)]
pub struct HeraldAll {
    pub herald: HeraldProcess,
    pub admin_token: String,
    _nats: NatsServer,
    state: tempfile::TempDir,
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
            state,
        }
    }

    /// `http://<config address><path>`: gRPC, the JSON API and the console
    /// share the config service's address.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.herald.config_addr)
    }

    /// The directory of its database and generated credentials.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// A new tenant and a token of its own (TENANT scope).
    pub async fn tenant(&self, name: &str) -> Tenant {
        let channel = grpc_channel(&self.url("")).await;
        herald_testkit_stack::create_tenant(&channel, &self.admin_token, name).await
    }
}

/// The JSON API of a running `herald all` with one bearer token, as a
/// script would use it (redirects are answers, not followed).
#[derive(Debug)]
pub struct JsonApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl HeraldAll {
    pub fn api(&self, token: &str) -> JsonApi {
        let _ = rustls::crypto::ring::default_provider().install_default();
        JsonApi {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: self.url(""),
            token: token.to_owned(),
        }
    }
}

impl JsonApi {
    /// The status and JSON body of the answer (`null` when it has none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }
}
