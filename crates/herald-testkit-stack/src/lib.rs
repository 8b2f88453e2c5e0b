//! The one test stack of Herald's integration tests, above
//! [`herald_testkit`] (NATS servers, ports, the PostgreSQL test database):
//! the config service in process on SQLite or PostgreSQL with its Watch
//! stream ([`ConfigStack`]), the tenant, token and endpoint builders, the
//! authenticated request ([`authed`]), a customer's webhook receiver
//! ([`Receiver`]), a TCP proxy that can be cut ([`CuttableProxy`]) and the
//! poll helper ([`eventually`]). Everything is real: no mocks.
#![allow(clippy::unwrap_used)]

mod config;
mod proxy;
mod receiver;

use std::{
    future::Future,
    time::{Duration, Instant},
};

pub use config::{
    ADMIN_TOKEN, Backend, ConfigStack, SERVICE_TOKEN, Tenant, create_tenant, create_token,
    endpoint_spec,
};
pub use proxy::CuttableProxy;
pub use receiver::{Received, Receiver};

/// `message` as a gRPC request carrying `token` as its bearer token.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Polls `check` every 50 ms until it returns `Some`, or panics naming
/// `what` after `timeout`. (Blocking tests poll with
/// [`herald_testkit::wait_for`].)
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
