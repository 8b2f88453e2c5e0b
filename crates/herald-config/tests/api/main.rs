//! The config service through its real gRPC API, on SQLite and PostgreSQL,
//! with a real nats-server; one module a concern.
#![allow(clippy::unwrap_used)]

/// Runs each named test body (of the module it is used in) on both
/// databases.
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(herald_testkit_stack::Backend::Sqlite).await }
            )+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(herald_testkit_stack::Backend::Postgres).await }
            )+
        }
    };
}

mod attempts;
mod availability;
mod control_characters;
mod endpoints;
mod isolation;
mod limits;
mod quotas;
mod secrets;
mod watch;

use std::time::Duration;

use futures::StreamExt;
use herald_bus::{Bus, async_nats, headers};
use herald_proto::v1 as pb;
use herald_testkit_stack::{ConfigStack, Tenant, authed, endpoint_spec};
use prost::Message;
use tonic::Code;

/// A Standard Webhooks secret of a customer's own (24 bytes).
const OWN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long a test waits for what the service does in the background.
const PATIENCE: Duration = Duration::from_secs(10);

fn field_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(herald_config::FIELD_METADATA_KEY)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn assert_invalid(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    field: &str,
) -> tonic::Status {
    let error = result.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
    assert_eq!(field_of(&error), field, "{error:?}");
    assert!(error.message().starts_with(field), "{}", error.message());
    error
}

fn attempt(tenant: &str, endpoint: &str, delivery: &str, number: u32) -> pb::Attempt {
    pb::Attempt {
        id: format!("att_{delivery}_{number}"),
        delivery_id: delivery.into(),
        event_id: herald_core::id::EventId::generate().to_string(),
        tenant_id: tenant.into(),
        endpoint_id: endpoint.into(),
        event_type: "message.received".into(),
        attempt: number,
        attempted_at: Some(herald_proto::timestamp_to_wire(
            time::OffsetDateTime::now_utc(),
        )),
        status: pb::AttemptStatus::Succeeded.into(),
        response_code: 200,
        response_body: bytes::Bytes::from_static(b"ok"),
        trigger: pb::DeliveryTrigger::Live.into(),
        ..Default::default()
    }
}

/// Plays the delivery service's part on the bus: takes the test job and
/// publishes the attempt record a receiver answering `status` produces.
async fn answer_test_job(bus: &Bus, status: pb::AttemptStatus, code: u32) {
    let consumer = bus
        .consumer(herald_bus::ConsumerRole::Delivery)
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let job = pb::DeliveryJob::decode(message.payload.as_ref()).unwrap();
    assert!(job.test);
    assert_eq!(job.trigger(), pb::DeliveryTrigger::Test);
    assert_eq!(
        message
            .headers
            .as_ref()
            .unwrap()
            .get(headers::MESSAGE_ID)
            .unwrap()
            .as_str(),
        job.delivery_id
    );
    message.ack().await.unwrap();
    let event = job.event.unwrap();
    let tenant = herald_core::id::TenantId::parse(&event.tenant_id).unwrap();
    let endpoint = herald_core::id::EndpointId::parse(&job.endpoint_id).unwrap();
    let record = pb::Attempt {
        status: status.into(),
        response_code: code,
        test: true,
        trigger: pb::DeliveryTrigger::Test.into(),
        ..attempt(&event.tenant_id, &job.endpoint_id, &job.delivery_id, 1)
    };
    bus.publish(
        bus.topology().attempt_subject(&tenant, &endpoint),
        &record.id,
        async_nats::HeaderMap::new(),
        record.encode_to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// Makes the endpoint ACTIVE through a passed test, answering the test job
/// as the delivery service would.
async fn activate(herald: &ConfigStack, tenant: &Tenant, endpoint_id: &str) {
    let mut config = herald.config();
    let request = authed(
        &tenant.token,
        pb::TestEndpointRequest {
            endpoint_id: endpoint_id.to_owned(),
            event_type: String::new(),
            timeout: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            ..Default::default()
        },
    );
    let (tested, ()) = tokio::join!(
        config.test_endpoint(request),
        answer_test_job(&herald.bus, pb::AttemptStatus::Succeeded, 200)
    );
    assert_eq!(
        tested.unwrap().into_inner().endpoint.unwrap().status(),
        pb::EndpointStatus::Active
    );
}

async fn secrets(herald: &ConfigStack, tenant: &Tenant, endpoint_id: &str) -> pb::EndpointSecrets {
    herald
        .config()
        .get_endpoint_secret(authed(
            &tenant.token,
            pb::GetEndpointSecretRequest {
                endpoint_id: endpoint_id.to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

fn spec_with_name(name: &str) -> pb::EndpointSpec {
    endpoint_spec(name, "https://hooks.example.com/x")
}

/// The next change on a Watch stream, past heartbeats.
async fn next_change(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    loop {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !matches!(
            response.change,
            Some(pb::watch_response::Change::Heartbeat(_))
        ) {
            return response;
        }
    }
}
