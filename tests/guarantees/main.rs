//! Delivery guarantees through separate Herald processes: dead letters and
//! redrive, recovery of failed deliveries, FIFO order across two delivery
//! replicas (one killed mid-run), a rate limit shared by two replicas, and
//! the circuit breaker.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use futures::StreamExt;
use herald_proto::{timestamp_to_wire, v1 as pb};
use herald_tests::{
    HeraldProcess, Receiver, eventually,
    stack::{Stack, TenantClient, authed, internal_event, publish_event, publish_events, spec},
};
use time::OffsetDateTime;

mod circuits;
mod config_changes;
mod fifo;
mod recovery;

/// For tests of retries and dead letters: a circuit opening after a few
/// failures would hold the retries back for its cooldown.
const NO_CIRCUIT: (&str, &str) = ("HERALD_CIRCUIT_FAILURES", "1000");

async fn dead_letters(tenant: &mut TenantClient, endpoint_id: &str) -> Vec<pb::DeadLetter> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = tenant
            .recovery
            .list_dead_letters(authed(
                &tenant.token,
                pb::ListDeadLettersRequest {
                    endpoint_id: endpoint_id.to_owned(),
                    page_size: 2,
                    page_token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.dead_letters);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// Follows a job's progress stream to its end.
async fn finished(tenant: &mut TenantClient, job: pb::RecoveryJob) -> pb::RecoveryJob {
    let mut updates = tenant
        .recovery
        .watch_recovery_job(authed(
            &tenant.token,
            pb::GetRecoveryJobRequest { job_id: job.id },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(update) = updates.next().await {
        last = Some(update.unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.state(), pb::RecoveryJobState::Succeeded, "{last:?}");
    last
}

/// The webhook-ids of the receiver's requests from `from` on, tests aside.
fn webhook_ids(receiver: &Receiver, from: usize) -> Vec<String> {
    receiver.received()[from..]
        .iter()
        .filter(|received| received.data().get("index").is_some())
        .map(|received| received.header("webhook-id").to_owned())
        .collect()
}

/// Publishes one `contact.created` event of the tenant carrying `data`, as
/// ingest does (accepted once JetStream acknowledged it).
async fn publish_one(bus: &herald_bus::Bus, tenant_id: &str, data: serde_json::Value) -> String {
    let key = format!("e2e-{}", herald_core::id::EventId::generate());
    let event = internal_event(tenant_id, key, &data.to_string());
    publish_event(bus, &event).await.await.unwrap();
    event.id.to_string()
}

/// Events fanout has not acknowledged yet.
async fn fanout_outstanding(bus: &herald_bus::Bus) -> u64 {
    let mut consumer: herald_bus::async_nats::jetstream::consumer::PullConsumer = bus
        .jetstream()
        .get_consumer_from_stream(
            herald_bus::ConsumerRole::Fanout.durable_name(),
            bus.topology().events_stream(),
        )
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    info.num_pending + info.num_ack_pending as u64
}

/// Every attempt recorded for the endpoint.
async fn endpoint_attempts(
    client: &mut pb::attempt_service_client::AttemptServiceClient<tonic::transport::Channel>,
    token: &str,
    endpoint_id: &str,
) -> Vec<pb::Attempt> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_attempts(authed(
                token,
                pb::ListAttemptsRequest {
                    endpoint_id: endpoint_id.to_owned(),
                    page_size: 100,
                    page_token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.attempts);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}
