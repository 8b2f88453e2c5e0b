//! herald-bus against a real nats-server.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use herald_bus::{Bus, BusConfig, ConsumerRole, Outgoing, async_nats};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::Event,
    id::{EventId, TenantId},
};
use herald_testkit::{NatsServer, free_port};

fn config(nats: &NatsServer, namespace: &str) -> BusConfig {
    BusConfig {
        namespace: namespace.to_owned(),
        ..BusConfig::for_url(nats.url())
    }
}

#[tokio::test]
async fn setup_creates_every_stream_and_is_idempotent() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    bus.ensure_streams().await.unwrap();

    let mut names: Vec<String> = bus
        .jetstream()
        .stream_names()
        .map(|name| name.unwrap())
        .collect()
        .await;
    names.sort();
    assert_eq!(
        names,
        [
            "HERALD_ATTEMPTS",
            "HERALD_DEAD",
            "HERALD_EVENTS",
            "HERALD_JOBS",
            "KV_HERALD_BACKLOG",
            "KV_HERALD_CIRCUITS",
            "KV_HERALD_CONFIG",
            "KV_HERALD_DEDUPE",
            "KV_HERALD_DEVICE_HEALTH",
            "KV_HERALD_HANDBACKS",
            "KV_HERALD_RATE",
            "KV_HERALD_RECOVERY"
        ]
    );

    let mut events = bus.jetstream().get_stream("HERALD_EVENTS").await.unwrap();
    let info = events.info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(3600));
    assert_eq!(info.config.subjects, ["herald.events.>"]);
    let mut jobs = bus.jetstream().get_stream("HERALD_JOBS").await.unwrap();
    assert_eq!(
        jobs.info().await.unwrap().config.retention,
        async_nats::jetstream::stream::RetentionPolicy::WorkQueue
    );
}

#[tokio::test]
async fn a_restart_with_new_limits_updates_the_streams() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();

    let changed = BusConfig {
        event_retention: Duration::from_secs(3 * 24 * 3600),
        duplicate_window: Duration::from_secs(600),
        ..config(&nats, "herald")
    };
    let bus = Bus::connect(&changed, "test").await.unwrap();
    bus.ensure_streams().await.unwrap();
    let mut events = bus.jetstream().get_stream("HERALD_EVENTS").await.unwrap();
    let info = events.info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(3 * 24 * 3600));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(600));
}

#[tokio::test]
async fn a_repeated_message_id_is_stored_once() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let subject = bus.topology().event_subject(&event(
        TenantId::generate(),
        Channel::Waba,
        EventType::parse("message.received").unwrap(),
    ));
    let mut duplicates = Vec::new();
    for _ in 0..3 {
        let ack = bus
            .publish(
                subject.clone(),
                "wamid.HBgL:received",
                async_nats::HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        duplicates.push(ack.duplicate);
    }
    assert_eq!(duplicates, [false, true, true]);
    let mut events = bus.jetstream().get_stream("HERALD_EVENTS").await.unwrap();
    assert_eq!(events.info().await.unwrap().state.messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_all_pipelines_more_than_async_nats_lets_await_at_once() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let subject = bus.topology().event_subject(&event(
        TenantId::generate(),
        Channel::Internal,
        EventType::parse("message.received").unwrap(),
    ));
    // async-nats lets 5,000 acknowledgements be awaited per connection;
    // one caller with 12,000 and four at once with 3,000 each go past it.
    let messages = |caller: usize, count: usize| -> Vec<Outgoing> {
        (0..count)
            .map(|index| Outgoing {
                subject: subject.clone(),
                message_id: format!("bulk-{caller}-{index}"),
                headers: async_nats::HeaderMap::new(),
                payload: Bytes::from_static(b"{}"),
            })
            .collect()
    };
    let publish = |caller: usize, count: usize| {
        let (bus, messages) = (bus.clone(), messages(caller, count));
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), bus.publish_all(messages))
                .await
                .expect("publish_all returns")
        })
    };
    let mut callers = vec![publish(0, 12_000)];
    callers.extend((1..=4).map(|caller| publish(caller, 3_000)));
    let mut sequences = Vec::new();
    for caller in callers {
        for ack in caller.await.unwrap() {
            let ack = ack.unwrap();
            assert!(!ack.duplicate);
            sequences.push(ack.sequence);
        }
    }
    // Each caller's messages were stored in the order given.
    assert!(sequences[..12_000].is_sorted());
    assert_eq!(sequences.len(), 24_000);
    let mut events = bus.jetstream().get_stream("HERALD_EVENTS").await.unwrap();
    assert_eq!(events.info().await.unwrap().state.messages, 24_000);
}

#[tokio::test]
async fn consumers_are_durable_and_shared_by_replicas() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    for role in [
        ConsumerRole::Fanout,
        ConsumerRole::Delivery,
        ConsumerRole::AttemptWriter,
    ] {
        let mut first = bus.consumer(role).await.unwrap();
        let mut second = bus.consumer(role).await.unwrap();
        let first_info = first.info().await.unwrap().clone();
        let second_info = second.info().await.unwrap().clone();
        assert_eq!(first_info.name, role.durable_name());
        assert_eq!(first_info.name, second_info.name);
        assert_eq!(first_info.stream_name, second_info.stream_name);
    }
}

#[tokio::test]
async fn namespaces_isolate_installations_on_one_server() {
    let nats = NatsServer::start();
    let one = Bus::connect(&config(&nats, "one"), "test").await.unwrap();
    let two = Bus::connect(&config(&nats, "two"), "test").await.unwrap();
    one.ensure_streams().await.unwrap();
    two.ensure_streams().await.unwrap();
    let tenant = TenantId::generate();
    let event_type = EventType::parse("contact.created").unwrap();
    one.publish(
        one.topology()
            .event_subject(&event(tenant, Channel::Internal, event_type)),
        "a",
        async_nats::HeaderMap::new(),
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut one_events = one.jetstream().get_stream("ONE_EVENTS").await.unwrap();
    let mut two_events = two.jetstream().get_stream("TWO_EVENTS").await.unwrap();
    assert_eq!(one_events.info().await.unwrap().state.messages, 1);
    assert_eq!(two_events.info().await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn ping_follows_the_server() {
    let mut nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    bus.ping(Duration::from_secs(2)).await.unwrap();
    nats.stop();
    assert!(bus.ping(Duration::from_secs(1)).await.is_err());
    nats.restart();
    let mut answered = false;
    for _ in 0..100 {
        if bus.ping(Duration::from_secs(1)).await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "the client reconnected after the server came back"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_naming_the_url() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let config = BusConfig {
        connect_timeout: Duration::from_secs(1),
        ..BusConfig::for_url(url.clone())
    };
    let error = Bus::connect(&config, "test").await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot connect to NATS at {url}")),
        "{error}"
    );
}

fn event(tenant_id: TenantId, channel: Channel, event_type: EventType) -> Event {
    let now = time::OffsetDateTime::now_utc();
    Event {
        id: EventId::generate(),
        tenant_id,
        channel,
        device_id: None,
        event_type,
        occurred_at: now,
        received_at: now,
        source_ref: None,
        idempotency_key: "key".to_owned(),
        data: serde_json::value::RawValue::from_string("{}".to_owned()).unwrap(),
    }
}

#[tokio::test]
async fn an_event_is_found_by_id_and_only_within_its_tenant() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let tenant = TenantId::generate();
    let events: Vec<Event> = (0..3)
        .map(|_| {
            event(
                tenant,
                Channel::Waba,
                EventType::parse("message.received").unwrap(),
            )
        })
        .collect();
    for event in &events {
        bus.publish(
            bus.topology().event_subject(event),
            event.id.as_str(),
            async_nats::HeaderMap::new(),
            Bytes::from(event.id.to_string()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let found = bus
        .find_event(&tenant, &events[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.payload, events[1].id.as_str().as_bytes());
    assert!(
        bus.find_event(&TenantId::generate(), &events[1].id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        bus.find_event(&tenant, &EventId::generate())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn hardening_15_the_configuration_revision_only_rises() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&config(&nats, "herald"), "test")
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let revision = bus.config_revision().await.unwrap();
    assert_eq!(revision.current().await.unwrap(), 0);
    // Replicas raising at once: the highest wins, whatever the order.
    let raises = [7_u64, 3, 12, 5].map(|value| {
        let revision = revision.clone();
        async move { revision.raise(value).await }
    });
    for raised in futures::future::join_all(raises).await {
        raised.unwrap();
    }
    assert_eq!(revision.current().await.unwrap(), 12);
    revision.raise(4).await.unwrap();
    assert_eq!(revision.current().await.unwrap(), 12);
    // Lowered only from the value seen, and only downwards.
    revision.lower(11, 9).await.unwrap();
    assert_eq!(revision.current().await.unwrap(), 12);
    revision.lower(12, 9).await.unwrap();
    assert_eq!(revision.current().await.unwrap(), 9);

    let handbacks = bus.handbacks().await.unwrap();
    assert_eq!(handbacks.count(42).await.unwrap(), 0);
    assert_eq!(handbacks.add(42).await.unwrap(), 1);
    assert_eq!(handbacks.add(42).await.unwrap(), 2);
    assert_eq!(handbacks.count(42).await.unwrap(), 2);
    handbacks.forget(42).await.unwrap();
    assert_eq!(handbacks.count(42).await.unwrap(), 0);
    assert_eq!(handbacks.add(42).await.unwrap(), 1);
}
