//! Fanout against a real nats-server.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, time::Duration};

use bytes::Bytes;
use herald_bus::{Bus, BusConfig, async_nats, headers};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::{Event, parse_data},
    id::{DeliveryId, DeviceId, EndpointId, EventId, TenantId},
};
use herald_fanout::{FanoutMetrics, Subscriptions};
use herald_proto::v1::{self as pb, WatchedEndpoint, WatchedObject, watched_object::Object};
use herald_testkit::NatsServer;
use herald_watch::WatchHandler;
use prost::Message;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Harness {
    bus: Bus,
    subscriptions: Subscriptions,
    synced: watch::Sender<bool>,
    shutdown: CancellationToken,
    _nats: NatsServer,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Harness {
    herald_testkit::trace_spans();
    let nats = NatsServer::start();
    let bus = Bus::connect(&BusConfig::for_url(nats.url()), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let subscriptions = Subscriptions::new();
    let (synced, synced_receiver) = watch::channel(false);
    let shutdown = CancellationToken::new();
    let mut registry = prometheus_client::registry::Registry::default();
    tokio::spawn(herald_fanout::run(
        bus.clone(),
        subscriptions.clone(),
        synced_receiver,
        FanoutMetrics::register(&mut registry),
        shutdown.clone(),
    ));
    Harness {
        bus,
        subscriptions,
        synced,
        shutdown,
        _nats: nats,
    }
}

fn endpoint(
    tenant: TenantId,
    status: pb::EndpointStatus,
    devices: &[DeviceId],
    types: &[&str],
) -> (EndpointId, WatchedObject) {
    let id = EndpointId::generate();
    let object = WatchedObject {
        object: Some(Object::Endpoint(WatchedEndpoint {
            endpoint: Some(pb::Endpoint {
                id: id.to_string(),
                tenant_id: tenant.to_string(),
                status: status.into(),
                revision: 42,
                spec: Some(pb::EndpointSpec {
                    device_ids: devices.iter().map(ToString::to_string).collect(),
                    event_types: types.iter().map(|t| (*t).to_owned()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            secrets: None,
        })),
    };
    (id, object)
}

fn event(tenant: TenantId, device: DeviceId, event_type: &str) -> Event {
    Event {
        id: EventId::generate(),
        tenant_id: tenant,
        channel: Channel::Waba,
        device_id: Some(device),
        event_type: EventType::parse(event_type).unwrap(),
        occurred_at: OffsetDateTime::now_utc(),
        received_at: OffsetDateTime::now_utc(),
        source_ref: Some("wamid.X".into()),
        idempotency_key: format!("wamid.X:{event_type}"),
        data: parse_data(br#"{"text":"ol\u00e1","n":12345678901234567890}"#).unwrap(),
    }
}

async fn publish_event(bus: &Bus, event: &Event, message_id: &str) {
    let mut event_headers = async_nats::HeaderMap::new();
    event_headers.insert(
        headers::TRACEPARENT,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    bus.publish(
        bus.topology().event_subject(event),
        message_id,
        event_headers,
        Bytes::from(pb::Event::from(event).encode_to_vec()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// Every job on the jobs stream, without consuming them.
async fn jobs(bus: &Bus) -> Vec<(pb::DeliveryJob, async_nats::HeaderMap)> {
    let mut stream = bus
        .jetstream()
        .get_stream(bus.topology().jobs_stream())
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut jobs = Vec::new();
    if state.messages == 0 {
        return jobs;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            jobs.push((
                pb::DeliveryJob::decode(message.payload.as_ref()).unwrap(),
                message.headers,
            ));
        }
    }
    jobs
}

async fn wait_for_jobs(bus: &Bus, count: usize) -> Vec<(pb::DeliveryJob, async_nats::HeaderMap)> {
    for _ in 0..100 {
        let found = jobs(bus).await;
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} jobs after 5 s");
}

/// Events not yet acknowledged by fanout (all of them while its consumer
/// does not exist yet).
async fn events_outstanding(bus: &Bus) -> u64 {
    let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> = bus
        .jetstream()
        .get_consumer_from_stream("fanout", bus.topology().events_stream())
        .await;
    match consumer {
        Ok(mut consumer) => {
            let info = consumer.info().await.unwrap();
            info.num_pending + info.num_ack_pending as u64
        }
        Err(_) => u64::MAX,
    }
}

#[tokio::test]
async fn an_event_becomes_one_job_per_matching_endpoint() {
    let herald = start().await;
    let tenant = TenantId::generate();
    let device = DeviceId::generate();
    let other_device = DeviceId::generate();
    let mut handler = herald.subscriptions.handler();
    handler.begin_snapshot();
    let mut matching = BTreeSet::new();
    for (status, devices, types, matches) in [
        (pb::EndpointStatus::Active, vec![], vec![], true),
        (
            pb::EndpointStatus::Active,
            vec![device],
            vec!["message.received"],
            true,
        ),
        (
            pb::EndpointStatus::Active,
            vec![device, other_device],
            vec!["message.received", "message.read"],
            true,
        ),
        (
            pb::EndpointStatus::Active,
            vec![other_device],
            vec![],
            false,
        ),
        (pb::EndpointStatus::Disabled, vec![], vec![], false),
        (
            pb::EndpointStatus::Active,
            vec![],
            vec!["message.read"],
            false,
        ),
    ] {
        let (id, object) = endpoint(tenant, status, &devices, &types);
        handler.upsert(object);
        if matches {
            matching.insert(id);
        }
    }
    let (_, other_tenant) = endpoint(TenantId::generate(), pb::EndpointStatus::Active, &[], &[]);
    handler.upsert(other_tenant);
    handler.end_snapshot();
    herald.synced.send_replace(true);

    let event = event(tenant, device, "message.received");
    publish_event(&herald.bus, &event, &event.idempotency_key).await;
    let jobs = wait_for_jobs(&herald.bus, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jobs_now = self::jobs(&herald.bus).await;
    assert_eq!(jobs_now.len(), 3, "exactly one job per matching endpoint");
    let endpoints: BTreeSet<EndpointId> = jobs
        .iter()
        .map(|(job, _)| EndpointId::parse(&job.endpoint_id).unwrap())
        .collect();
    assert_eq!(endpoints, matching);
    for (job, job_headers) in &jobs {
        let endpoint_id = EndpointId::parse(&job.endpoint_id).unwrap();
        assert_eq!(
            job.delivery_id,
            DeliveryId::for_event_endpoint(&event.id, &endpoint_id).to_string()
        );
        assert_eq!(job.endpoint_revision, 42);
        assert_eq!(job.trigger(), pb::DeliveryTrigger::Live);
        let carried = Event::try_from(job.event.clone().unwrap()).unwrap();
        assert_eq!(
            carried.data.get(),
            event.data.get(),
            "the payload travels byte for byte"
        );
        assert_eq!(
            job_headers.get(headers::MESSAGE_ID).unwrap().as_str(),
            format!("{}:{}", event.id, endpoint_id)
        );
        // The job continues the event's trace as a child of fanout's span.
        let traceparent = job_headers.get(headers::TRACEPARENT).unwrap().as_str();
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");
    }
    assert_eq!(
        events_outstanding(&herald.bus).await,
        0,
        "the event is acknowledged"
    );
}

#[tokio::test]
async fn an_event_fanned_out_twice_makes_no_duplicate_jobs() {
    let herald = start().await;
    let tenant = TenantId::generate();
    let mut handler = herald.subscriptions.handler();
    for _ in 0..2 {
        handler.upsert(endpoint(tenant, pb::EndpointStatus::Active, &[], &[]).1);
    }
    herald.synced.send_replace(true);
    let event = event(tenant, DeviceId::generate(), "contact.created");
    // The same event stored twice, as after a crash between the job publishes
    // and the event's acknowledgement.
    publish_event(&herald.bus, &event, "first copy").await;
    publish_event(&herald.bus, &event, "second copy").await;
    wait_for_jobs(&herald.bus, 2).await;
    for _ in 0..100 {
        if events_outstanding(&herald.bus).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_outstanding(&herald.bus).await, 0);
    assert_eq!(jobs(&herald.bus).await.len(), 2);
}

#[tokio::test]
async fn an_event_without_a_match_is_acknowledged_and_nothing_is_published() {
    let herald = start().await;
    herald.synced.send_replace(true);
    let event = event(TenantId::generate(), DeviceId::generate(), "message.sent");
    publish_event(&herald.bus, &event, &event.idempotency_key).await;
    for _ in 0..100 {
        if events_outstanding(&herald.bus).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_outstanding(&herald.bus).await, 0);
    assert!(jobs(&herald.bus).await.is_empty());
}

#[tokio::test]
async fn nothing_is_consumed_before_the_configuration_arrived() {
    let herald = start().await;
    let tenant = TenantId::generate();
    let event = event(tenant, DeviceId::generate(), "message.read");
    publish_event(&herald.bus, &event, &event.idempotency_key).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The consumer does not even exist yet: the event waits on the stream.
    let consumer = herald
        .bus
        .jetstream()
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            "fanout",
            herald.bus.topology().events_stream(),
        )
        .await;
    assert!(
        consumer.is_err(),
        "fanout consumed before it knew any subscription"
    );

    let mut handler = herald.subscriptions.handler();
    handler.begin_snapshot();
    handler.upsert(endpoint(tenant, pb::EndpointStatus::Active, &[], &[]).1);
    handler.end_snapshot();
    herald.synced.send_replace(true);
    assert_eq!(wait_for_jobs(&herald.bus, 1).await.len(), 1);
}

#[tokio::test]
async fn a_batch_of_more_jobs_than_async_nats_lets_await_at_once_is_fanned_out() {
    const ENDPOINTS: usize = 100;
    const EVENTS: usize = 200;
    let herald = start().await;
    let tenant = TenantId::generate();
    let device = DeviceId::generate();
    let mut handler = herald.subscriptions.handler();
    handler.begin_snapshot();
    for _ in 0..ENDPOINTS {
        let (_, object) = endpoint(tenant, pb::EndpointStatus::Active, &[], &[]);
        handler.upsert(object);
    }
    handler.end_snapshot();
    // Published before fanout starts consuming, so they come in full
    // batches: 200 events of 100 jobs each, four times what async-nats lets
    // await an acknowledgement at once.
    for index in 0..EVENTS {
        let event = event(tenant, device, "message.received");
        publish_event(&herald.bus, &event, &format!("bulk-{index}")).await;
    }
    herald.synced.send_replace(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while events_outstanding(&herald.bus).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "fanout stalled with {} events outstanding",
            events_outstanding(&herald.bus).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut jobs = herald
        .bus
        .jetstream()
        .get_stream(herald.bus.topology().jobs_stream())
        .await
        .unwrap();
    assert_eq!(
        jobs.info().await.unwrap().state.messages,
        u64::try_from(ENDPOINTS * EVENTS).unwrap()
    );
}

/// Herald's notice that an endpoint was paused, as the config service
/// publishes it.
fn disabled_notice(tenant: TenantId, about: EndpointId) -> Event {
    Event {
        id: EventId::generate(),
        tenant_id: tenant,
        channel: Channel::Internal,
        device_id: None,
        event_type: EventType::endpoint_disabled(),
        occurred_at: OffsetDateTime::now_utc(),
        received_at: OffsetDateTime::now_utc(),
        source_ref: Some(about.to_string()),
        idempotency_key: format!("endpoint.disabled:{about}"),
        data: parse_data(format!(r#"{{"endpoint_id":"{about}"}}"#).as_bytes()).unwrap(),
    }
}

#[tokio::test]
async fn hardening_17_own_disabled_event_not_sent_to_itself() {
    let herald = start().await;
    let tenant = TenantId::generate();
    let mut handler = herald.subscriptions.handler();
    // The paused endpoint is still active here, as in a fanout that has not
    // heard of the pause yet.
    let (paused, paused_object) = endpoint(tenant, pb::EndpointStatus::Active, &[], &[]);
    let (owner, owner_object) = endpoint(tenant, pb::EndpointStatus::Active, &[], &[]);
    handler.upsert(paused_object);
    handler.upsert(owner_object);
    herald.synced.send_replace(true);

    let notice = disabled_notice(tenant, paused);
    publish_event(&herald.bus, &notice, &notice.idempotency_key).await;
    let jobs = wait_for_jobs(&herald.bus, 1).await;
    for _ in 0..100 {
        if events_outstanding(&herald.bus).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs_now = self::jobs(&herald.bus).await;
    let endpoints: Vec<String> = jobs_now
        .iter()
        .map(|(job, _)| job.endpoint_id.clone())
        .collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        endpoints,
        [owner.to_string()],
        "only the owner's other endpoint is told"
    );
}

#[tokio::test]
async fn hardening_15_fanout_matches_nothing_before_the_configuration_revision() {
    let herald = start().await;
    let tenant = TenantId::generate();
    let mut handler = herald.subscriptions.handler();
    let (endpoint_id, object) = endpoint(tenant, pb::EndpointStatus::Active, &[], &[]);
    handler.upsert(object);
    handler.applied(40);
    herald.synced.send_replace(true);
    // The config service answered a disable committed at revision 41.
    herald
        .bus
        .config_revision()
        .await
        .unwrap()
        .raise(41)
        .await
        .unwrap();

    let event = event(tenant, DeviceId::generate(), "contact.created");
    publish_event(&herald.bus, &event, &event.idempotency_key).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        jobs(&herald.bus).await.is_empty(),
        "no match from a stale index"
    );
    assert_ne!(events_outstanding(&herald.bus).await, 0);

    // The Watch stream delivers the disable.
    let (_, mut disabled) = endpoint(tenant, pb::EndpointStatus::Disabled, &[], &[]);
    if let Some(Object::Endpoint(watched)) = &mut disabled.object {
        watched.endpoint.as_mut().unwrap().id = endpoint_id.to_string();
    }
    handler.upsert(disabled);
    handler.applied(41);
    for _ in 0..100 {
        if events_outstanding(&herald.bus).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_outstanding(&herald.bus).await, 0);
    assert!(
        jobs(&herald.bus).await.is_empty(),
        "the disabled endpoint gets nothing"
    );
}

/// The subject of every job on the jobs stream, by event and endpoint.
async fn job_subjects(bus: &Bus) -> BTreeSet<(String, String, String)> {
    let stream = bus
        .jetstream()
        .get_stream(bus.topology().jobs_stream())
        .await
        .unwrap();
    let state = stream.cached_info().state.clone();
    let mut subjects = BTreeSet::new();
    if state.messages == 0 {
        return subjects;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            let job = pb::DeliveryJob::decode(message.payload.as_ref()).unwrap();
            subjects.insert((
                job.event.unwrap().id,
                job.endpoint_id,
                message.subject.to_string(),
            ));
        }
    }
    subjects
}

#[tokio::test]
async fn topology_01_a_backlogged_endpoints_new_jobs_go_straight_to_its_held_lane() {
    let herald = start().await;
    let tenant = TenantId::generate();
    let device = DeviceId::generate();
    let mut handler = herald.subscriptions.handler();
    handler.begin_snapshot();
    let (backlogged, object) = endpoint(tenant, pb::EndpointStatus::Active, &[], &[]);
    handler.upsert(object);
    let (healthy, object) = endpoint(tenant, pb::EndpointStatus::Active, &[], &[]);
    handler.upsert(object);
    handler.end_snapshot();
    herald.synced.send_replace(true);

    // Delivery marks the endpoint as backlogged; fanout watches the marks.
    let marks = herald.bus.backlog().await.unwrap();
    marks.put(backlogged.as_str(), Bytes::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = event(tenant, device, "message.received");
    publish_event(&herald.bus, &first, "first").await;
    wait_for_jobs(&herald.bus, 2).await;
    let topology = herald.bus.topology();
    let expected = |event: &Event, endpoint: &EndpointId, lane| {
        (
            event.id.to_string(),
            endpoint.to_string(),
            topology.job_subject(endpoint, lane),
        )
    };
    assert_eq!(
        job_subjects(&herald.bus).await,
        BTreeSet::from([
            expected(&first, &backlogged, herald_bus::JobLane::Held),
            expected(&first, &healthy, herald_bus::JobLane::Pool),
        ])
    );

    // Once the mark is gone its jobs go through the pool again.
    marks.delete(backlogged.as_str()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = event(tenant, device, "message.read");
    publish_event(&herald.bus, &second, "second").await;
    wait_for_jobs(&herald.bus, 4).await;
    let subjects = job_subjects(&herald.bus).await;
    assert!(
        subjects.contains(&expected(&second, &backlogged, herald_bus::JobLane::Pool)),
        "{subjects:?}"
    );
}
