//! The service under a database outage and under token guessing.

use std::time::Duration;

use herald_proto::v1::{self as pb, config_service_client::ConfigServiceClient};
use herald_store::StoreOptions;
use herald_testkit_stack::{ADMIN_TOKEN, Backend, ConfigStack, CuttableProxy, authed};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_09_a_database_outage_answers_unavailable() {
    let direct = herald_testkit::postgres_url();
    let parsed = url::Url::parse(&direct).unwrap();
    let upstream = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let proxy = CuttableProxy::start(upstream);
    let mut through_proxy = parsed.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(proxy.addr.port())).unwrap();
    let options = StoreOptions {
        url: through_proxy.to_string(),
        schema: Some(herald_testkit::fresh_postgres_schema()),
    };
    let herald = ConfigStack::start_on(&options).await;
    let tenant = herald.tenant("Acme").await;
    proxy.cut();

    let status = herald
        .config()
        .list_endpoints(authed(&tenant.token, pb::ListEndpointsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = herald
        .admin()
        .list_tenants(authed(ADMIN_TOKEN, pb::ListTenantsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_10_failed_authentications_are_throttled_per_address() {
    let herald = ConfigStack::start(Backend::Sqlite).await;
    let tenant = herald.tenant("Acme").await;
    // The guesser connects from another loopback address than everyone else.
    let guesser = tonic::transport::Endpoint::from_shared(format!("http://{}", herald.addr))
        .unwrap()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .connect()
        .await
        .unwrap();
    let mut guessing = ConfigServiceClient::new(guesser);
    let summary = || pb::GetSummaryRequest {};
    for attempt in 0..10 {
        let status = guessing
            .get_summary(authed(&format!("hrld_guess{attempt}"), summary()))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{attempt}: {status:?}"
        );
    }
    let throttled = guessing
        .get_summary(authed("hrld_guess10", summary()))
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "{throttled:?}");
    let retry_after: u64 = throttled
        .metadata()
        .get(herald_config::RETRY_AFTER_METADATA_KEY)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Even the right token is not confirmed while the address is throttled.
    let status = guessing
        .get_summary(authed(&tenant.token, summary()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Other clients are not affected, neither their successes nor their failures.
    herald
        .config()
        .get_summary(authed(&tenant.token, summary()))
        .await
        .unwrap();
    let status = herald
        .config()
        .get_summary(authed("hrld_typo", summary()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // After the wait, the address has one more try.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    guessing
        .get_summary(authed(&tenant.token, summary()))
        .await
        .unwrap();
}
