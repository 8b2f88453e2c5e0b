//! One tenant's flood to slow or failing endpoints must not delay another
//! tenant's deliveries (issue 18, item 1), through separate `config`,
//! `fanout` and `delivery` processes with real receivers.
//!
//! Tenant B publishes 20 events/s to a healthy endpoint: alone, then while
//! tenant A floods 10 endpoints that answer at once, then after 200 ms, then
//! 500. B's p99 from publish to receipt while A's endpoints are slow or
//! failing must stay within twice its p99 alone, or alone plus a small floor
//! (`HERALD_FAIRNESS_FLOOR_MS`, 20 ms), since the alone figure is a few
//! milliseconds; or within twice its p99 beside A's flood to healthy
//! endpoints, which is what the flood's volume alone costs B on this machine
//! (CPU, fanout and NATS are shared; per-tenant quotas bound that, not
//! delivery). A's backlog must drain once its endpoints recover.
//!
//! `HERALD_FAIRNESS_EVENTS` (default 6,000) is the size of each flood and
//! `HERALD_FAIRNESS_RATE` (default 300 events/s) its pace, which a debug
//! build's fanout keeps up with on 2 busy cores; each endpoint of A takes 2
//! requests at a time (100 deliveries/s in all at 200 ms), so A's endpoints
//! fall far behind. Beyond 20,000 events per flood the run also shows the
//! old failure: a shared consumer filled with one tenant's jobs.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use bytes::Bytes;
use herald_bus::{Bus, Outgoing, async_nats};
use herald_core::{
    catalog::EventType,
    channel::Channel,
    event::{Event, parse_data},
    id::{EventId, TenantId},
};
use herald_proto::v1 as pb;
use herald_tests::{
    Receiver, http_get,
    stack::{Stack, spec},
};
use prost::Message;
use time::OffsetDateTime;

/// One event type per endpoint of A, so each event of the flood is one job.
const A_TYPES: [&str; 10] = [
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "form.submitted",
    "conversation.opened",
    "conversation.resolved",
    "contact.created",
    "contact.updated",
];
/// B's pace: 20 events/s.
const B_INTERVAL: Duration = Duration::from_millis(50);
/// How long B runs alone.
const ALONE: Duration = Duration::from_secs(10);
/// How long after a phase its last events of B may still arrive.
const GRACE: Duration = Duration::from_secs(10);
/// How long A's backlog may take to drain once its endpoints answer again.
const DRAIN: Duration = Duration::from_secs(240);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn event(tenant: TenantId, event_type: &str, index: usize) -> Event {
    let now = OffsetDateTime::now_utc();
    Event {
        id: EventId::generate(),
        tenant_id: tenant,
        channel: Channel::Internal,
        device_id: None,
        event_type: EventType::parse(event_type).unwrap(),
        occurred_at: now,
        received_at: now,
        source_ref: None,
        idempotency_key: format!("fairness-{tenant}-{event_type}-{index}"),
        data: parse_data(format!(r#"{{"index":{index}}}"#).as_bytes()).unwrap(),
    }
}

fn outgoing(bus: &Bus, event: &Event) -> Outgoing {
    Outgoing {
        subject: bus.topology().event_subject(event),
        message_id: event.idempotency_key.clone(),
        headers: async_nats::HeaderMap::new(),
        payload: Bytes::from(pb::Event::from(event).encode_to_vec()),
    }
}

/// Publishes `count` events of A, round robin over its event types, at
/// `rate` events/s in pipelined chunks.
async fn flood(bus: Bus, tenant: TenantId, first: usize, count: usize, rate: u64) {
    const CHUNK: usize = 50;
    let tick = Duration::from_secs_f64(CHUNK as f64 / rate.max(1) as f64);
    let mut ticks = tokio::time::interval(tick);
    let mut index = first;
    while index < first + count {
        ticks.tick().await;
        let end = (index + CHUNK).min(first + count);
        let chunk: Vec<Outgoing> = (index..end)
            .map(|index| outgoing(&bus, &event(tenant, A_TYPES[index % A_TYPES.len()], index)))
            .collect();
        for result in bus.publish_all(chunk).await {
            result.unwrap();
        }
        index = end;
    }
}

/// Publishes B's events at 20/s for `duration`, each index's publish
/// instant recorded just before it is published.
async fn tenant_b(
    bus: &Bus,
    tenant: TenantId,
    first: usize,
    duration: Duration,
) -> BTreeMap<usize, Instant> {
    let mut sent = BTreeMap::new();
    let mut ticks = tokio::time::interval(B_INTERVAL);
    let end = Instant::now() + duration;
    let mut index = first;
    while Instant::now() < end {
        ticks.tick().await;
        let event = event(tenant, "payment.completed", index);
        let message = outgoing(bus, &event);
        sent.insert(index, Instant::now());
        bus.publish(
            message.subject,
            &message.message_id,
            message.headers,
            message.payload,
        )
        .await
        .unwrap()
        .await
        .unwrap();
        index += 1;
    }
    sent
}

/// Each sent event's latency, from publish to its first arrival, waiting up
/// to [`GRACE`] for the last ones; panics naming what never arrived.
async fn latencies(
    receiver: &Receiver,
    sent: &BTreeMap<usize, Instant>,
    phase: &str,
) -> Vec<Duration> {
    let deadline = Instant::now() + GRACE;
    loop {
        let arrived: BTreeMap<usize, Instant> = receiver.inspect(|received| {
            let mut first = BTreeMap::new();
            for request in received.iter().filter(|request| request.succeeded()) {
                if let Some(index) = request.data()["index"].as_u64() {
                    first.entry(index as usize).or_insert(request.at);
                }
            }
            first
        });
        let missing: Vec<usize> = sent
            .keys()
            .filter(|index| !arrived.contains_key(index))
            .copied()
            .collect();
        if missing.is_empty() {
            let mut latencies: Vec<Duration> = sent
                .iter()
                .map(|(index, at)| arrived[index].saturating_duration_since(*at))
                .collect();
            latencies.sort();
            return latencies;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: {} of B's {} events never arrived (first: {:?})",
            missing.len(),
            sent.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Distinct deliveries A's receivers answered with a 2xx, each endpoint's
/// activating test excluded.
fn delivered(receivers: &[Receiver]) -> usize {
    receivers
        .iter()
        .map(|receiver| {
            receiver.inspect(|received| {
                received
                    .iter()
                    .filter(|request| request.succeeded())
                    .map(|request| request.header("webhook-id"))
                    .collect::<BTreeSet<_>>()
                    .len()
                    .saturating_sub(1)
            })
        })
        .sum()
}

/// The held-lane counters of a delivery process, as exposed.
fn held_jobs(stack: &Stack) -> String {
    let (_, body) = http_get(stack.deliveries[0].ops_addr, "/metrics").unwrap_or_default();
    body.lines()
        .filter(|line| line.starts_with("herald_delivery_jobs_held_total"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn topology_01_a_flooding_tenant_never_delays_another() {
    let flood_events = usize::try_from(setting("HERALD_FAIRNESS_EVENTS", 6_000)).unwrap();
    let rate = setting("HERALD_FAIRNESS_RATE", 300);
    let floor = Duration::from_millis(setting("HERALD_FAIRNESS_FLOOR_MS", 20));
    let stack = Stack::start(
        1,
        &[
            ("HERALD_DELIVERY_MAX_PER_ENDPOINT", "2"),
            ("HERALD_CIRCUIT_COOLDOWN", "2s"),
            ("HERALD_CIRCUIT_MAX_COOLDOWN", "4s"),
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let b_receiver = Receiver::start(Duration::ZERO).await;
        let mut b = stack.tenant().await;
        b.active_endpoint(spec(&b_receiver.url(), &[1_000])).await;
        let b_id = TenantId::parse(&b.id).unwrap();

        let a = stack.tenant().await;
        let a_id = TenantId::parse(&a.id).unwrap();
        let mut a_receivers = Vec::new();
        for _ in A_TYPES {
            a_receivers.push(Receiver::start(Duration::ZERO).await);
        }
        // Retries far apart: the failing phase must not exhaust them.
        let retries = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000, 60_000, 60_000, 60_000, 60_000];
        let activations: Vec<_> = a_receivers
            .iter()
            .zip(A_TYPES)
            .map(|(receiver, event_type)| {
                let mut endpoint = spec(&receiver.url(), &retries);
                endpoint.event_types = vec![event_type.to_owned()];
                let mut a = a.clone();
                async move { a.active_endpoint(endpoint).await }
            })
            .collect();
        futures::future::join_all(activations).await;
        let bus = stack.bus().await;

        let alone = tenant_b(&bus, b_id, 0, ALONE).await;
        let alone = latencies(&b_receiver, &alone, "alone").await;
        let (alone_p50, alone_p99) = (percentile(&alone, 0.5), percentile(&alone, 0.99));
        let bound = (alone_p99 * 2).max(alone_p99 + floor);
        println!(
            "B alone: {} events, p50 {:.1} ms, p99 {:.1} ms; bound {:.1} ms",
            alone.len(),
            millis(alone_p50),
            millis(alone_p99),
            millis(bound)
        );

        let flood_time = Duration::from_secs_f64(flood_events as f64 / rate.max(1) as f64);
        let mut failures = Vec::new();
        let mut healthy_p99 = Duration::ZERO;
        for (number, (phase, status, delay)) in [
            ("A's endpoints answer at once", 200, Duration::ZERO),
            ("A's endpoints answer after 200 ms", 200, Duration::from_millis(200)),
            ("A's endpoints answer 500", 500, Duration::ZERO),
        ]
        .into_iter()
        .enumerate()
        {
            let first = number * flood_events;
            for receiver in &a_receivers {
                receiver.answer(status);
                receiver.delay(delay);
            }
            let started = Instant::now();
            let flooding = tokio::spawn(flood(bus.clone(), a_id, first, flood_events, rate));
            let sent = tenant_b(&bus, b_id, 100_000 * (number + 1), flood_time).await;
            flooding.await.unwrap();
            let published_in = started.elapsed();
            let flooded = latencies(&b_receiver, &sent, phase).await;
            let (p50, p99) = (percentile(&flooded, 0.5), percentile(&flooded, 0.99));
            println!(
                "{phase}: A published {flood_events} events in {:.1} s, A delivered {} so far; B: {} events, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, p99 {:.2}× alone; held: {}",
                published_in.as_secs_f64(),
                delivered(&a_receivers),
                flooded.len(),
                millis(p50),
                millis(p99),
                millis(*flooded.last().unwrap()),
                p99.as_secs_f64() / alone_p99.as_secs_f64().max(1e-6),
                held_jobs(&stack),
            );
            if number == 0 {
                // What the flood's volume alone costs B on this machine
                // (shared CPU, fanout, NATS): A's endpoints keep up.
                healthy_p99 = p99;
                continue;
            }
            let bound = bound.max(healthy_p99 * 2);
            if p99 > bound {
                failures.push(format!(
                    "{phase}: B's p99 {:.1} ms is over {:.1} ms",
                    millis(p99),
                    millis(bound)
                ));
            }
        }
        let total = 3 * flood_events;
        let backlog = total - delivered(&a_receivers);
        assert!(
            backlog > flood_events / 2,
            "A's endpoints kept up ({backlog} behind): the test proves nothing"
        );

        // A's endpoints recover: everything A published arrives.
        for receiver in &a_receivers {
            receiver.answer(200);
            receiver.delay(Duration::ZERO);
        }
        let recovered = Instant::now();
        loop {
            let arrived = delivered(&a_receivers);
            if arrived >= total {
                println!(
                    "A's backlog of {backlog} drained in {:.1} s",
                    recovered.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                recovered.elapsed() < DRAIN,
                "A's backlog did not drain: {arrived} of {total} delivered"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(failures.is_empty(), "{failures:#?}");
    });
}
