//! Chaos: events stream at a steady rate through separate `herald ingest`,
//! `fanout`, two `delivery` and a `config` process while each of them is
//! SIGKILLed and restarted in turn, the NATS server is restarted (storage
//! intact) and one receiver fails for a while. At the end every accepted
//! event reached every endpoint it matches, each only once under its
//! webhook-id (repeats carry an id the receiver has already seen).
//!
//! `HERALD_CHAOS_EVENTS` (default 20,000) and `HERALD_CHAOS_RATE` (events
//! per second, default 400) size it; `make chaos N=200000` runs it big.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use herald_proto::v1::{
    self as pb, ingest_service_client::IngestServiceClient, publish_result::Outcome,
};
use herald_tests::{
    HeraldProcess, Receiver,
    signatures::standard_signers,
    stack::{Stack, authed, spec},
};

/// Event types in the order events cycle through them.
const TYPES: [&str; 4] = [
    "message.received",
    "message.read",
    "contact.created",
    "form.submitted",
];
/// Items per Publish call at most; a backlog after an outage goes in a few.
const MAX_BATCH: usize = 2_000;
/// How long the publisher may go without a single accepted item.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(120);
/// The pause between two chaos actions.
const CHAOS_GAP: Duration = Duration::from_secs(4);

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
        })
        .unwrap_or(default)
}

/// Events alternate between the two tenants; each tenant's events cycle
/// through [`TYPES`].
fn tenant_of(index: usize) -> usize {
    index % 2
}

fn type_of(index: usize) -> &'static str {
    TYPES[(index / 2) % TYPES.len()]
}

/// One endpoint, its receiver and what it should get.
struct Subscriber {
    name: &'static str,
    tenant: usize,
    /// `None`: every type.
    types: Option<&'static [&'static str]>,
    receiver: Receiver,
    secret: String,
}

impl Subscriber {
    fn matches(&self, index: usize) -> bool {
        tenant_of(index) == self.tenant
            && self
                .types
                .is_none_or(|types| types.contains(&type_of(index)))
    }
}

/// An event ingest accepted: its id, and when the call that ingest
/// answered with its acceptance was sent (latencies are measured from
/// there, so they include the way to ingest).
#[derive(Clone, Debug)]
struct Accepted {
    event_id: String,
    sent_at: Instant,
}

#[derive(Debug, Default)]
struct PublishStats {
    failed_calls: BTreeMap<String, usize>,
    retried_items: usize,
}

#[test]
fn no_accepted_event_is_lost_while_every_process_and_nats_restart() {
    let events = setting("HERALD_CHAOS_EVENTS", 20_000);
    let rate = setting("HERALD_CHAOS_RATE", 400);
    let mut stack = Stack::start(
        2,
        &[
            // A receiver back from its outage is probed within seconds.
            ("HERALD_CIRCUIT_COOLDOWN", "1s"),
            ("HERALD_CIRCUIT_MAX_COOLDOWN", "4s"),
            ("RUST_LOG", "warn"),
        ],
    );
    let mut ingest = stack.start_ingest();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tenants = [stack.tenant().await, stack.tenant().await];
        let subscriptions: [(&'static str, usize, Option<&'static [&'static str]>); 3] = [
            ("tenant 0, every type", 0, None),
            ("tenant 0, message.received", 0, Some(&["message.received"])),
            (
                "tenant 1, contact.created and message.read",
                1,
                Some(&["contact.created", "message.read"]),
            ),
        ];
        let mut subscribers = Vec::new();
        for (name, tenant, types) in subscriptions {
            let receiver = Receiver::start(Duration::ZERO).await;
            let mut endpoint = spec(&receiver.url(), &[1_000; 20]);
            match types {
                None => endpoint.all_event_types = true,
                Some(types) => {
                    endpoint.event_types = types.iter().map(|kind| (*kind).to_owned()).collect();
                }
            }
            let created = tenants[tenant].clone().active_endpoint(endpoint).await;
            subscribers.push(Subscriber {
                name,
                tenant,
                types,
                receiver,
                secret: created.secret,
            });
        }

        let accepted: Arc<Mutex<Vec<Option<Accepted>>>> = Arc::new(Mutex::new(vec![None; events]));
        let started = Instant::now();
        let publisher = tokio::spawn(publish_steadily(
            ingest.ingest_addr,
            [tenants[0].token.clone(), tenants[1].token.clone()],
            events,
            rate,
            accepted.clone(),
        ));

        // Each process in turn, the NATS server, and one receiver's outage,
        // over and over until every event is accepted.
        let failing = &subscribers[2].receiver;
        let mut step = 0;
        while !publisher.is_finished() {
            tokio::time::sleep(CHAOS_GAP).await;
            if publisher.is_finished() {
                break;
            }
            let at = started.elapsed().as_secs_f64();
            let restart = Duration::from_secs(60);
            match step % 8 {
                0 => {
                    println!("chaos {at:6.1}s: SIGKILL fanout, restart");
                    stack.fanout.restart(restart);
                }
                1 => {
                    println!("chaos {at:6.1}s: SIGKILL delivery 1 of 2, restart");
                    stack.deliveries[0].restart(restart);
                }
                2 => {
                    println!("chaos {at:6.1}s: {} answers 500", subscribers[2].name);
                    failing.answer(500);
                }
                3 => {
                    println!("chaos {at:6.1}s: SIGKILL ingest, restart");
                    ingest.restart(restart);
                }
                4 => {
                    println!("chaos {at:6.1}s: {} answers 200 again", subscribers[2].name);
                    failing.answer(200);
                }
                5 => {
                    println!("chaos {at:6.1}s: SIGKILL config, restart");
                    stack.config.restart(restart);
                }
                6 => {
                    println!("chaos {at:6.1}s: SIGKILL nats-server, restart on its storage");
                    stack.nats.stop();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    stack.nats.restart();
                }
                _ => {
                    println!("chaos {at:6.1}s: SIGKILL delivery 2 of 2, restart");
                    stack.deliveries[1].restart(restart);
                }
            }
            step += 1;
            for (name, process) in [
                ("config", &mut stack.config),
                ("fanout", &mut stack.fanout),
                ("ingest", &mut ingest),
            ]
            .into_iter()
            .chain(stack.deliveries.iter_mut().map(|p| ("delivery", p)))
            {
                assert_running(name, process);
            }
        }
        failing.answer(200);
        let stats = publisher.await.unwrap();
        let publish_time = started.elapsed();
        assert!(step >= 8, "the run ended before every chaos action ran; raise HERALD_CHAOS_EVENTS");
        let accepted: Vec<Accepted> = accepted
            .lock()
            .unwrap()
            .iter()
            .map(|accepted| accepted.clone().unwrap())
            .collect();

        // Wait until each receiver holds as many distinct webhook-ids as it
        // has matching events (cheap), then check everything (thorough).
        let expected: Vec<usize> = subscribers
            .iter()
            .map(|subscriber| (0..events).filter(|index| subscriber.matches(*index)).count())
            .collect();
        let patience = Duration::from_secs(300) + Duration::from_secs((events / rate.max(1)) as u64);
        let deadline = Instant::now() + patience;
        let mut last_report = Instant::now();
        loop {
            let delivered: Vec<usize> = subscribers
                .iter()
                .map(|subscriber| subscriber.receiver.inspect(distinct_successes))
                .collect();
            if delivered.iter().zip(&expected).all(|(got, want)| got >= want) {
                break;
            }
            if Instant::now() > deadline {
                // The thorough check names what is missing.
                break;
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                println!("waiting: delivered {delivered:?} of {expected:?}");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let drain_time = started.elapsed();

        let tenant_ids = [tenants[0].id.as_str(), tenants[1].id.as_str()];
        let mut totals = Totals::default();
        for subscriber in &subscribers {
            let checked = subscriber.receiver.inspect(|received| {
                check_subscriber(subscriber, received, &accepted, tenant_ids)
            });
            totals.add(&checked);
        }
        totals.latencies.sort_unstable();
        let quantile = |q: f64| {
            totals.latencies[((totals.latencies.len() as f64 - 1.0) * q).round() as usize]
        };
        println!(
            "chaos: {events} events accepted in {publish_time:.1?} at {rate}/s \
             ({} publish calls failed: {:?}; {} items retried), {} deliveries expected, \
             {} delivered, {} duplicates, {} attempts answered 500, all delivered after {drain_time:.1?}; \
             latency from the accepted publish to the first 2xx: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            stats.failed_calls.values().sum::<usize>(),
            stats.failed_calls,
            stats.retried_items,
            expected.iter().sum::<usize>(),
            totals.delivered,
            totals.duplicates,
            totals.failed,
            quantile(0.5),
            quantile(0.99),
            quantile(1.0),
        );
        assert_eq!(totals.delivered, expected.iter().sum::<usize>());
    });
    drop(ingest);
}

fn assert_running(name: &str, process: &mut HeraldProcess) {
    if let Some(status) = process.exit_status() {
        panic!("herald {name} exited on its own ({status})");
    }
}

/// Distinct webhook-ids answered 2xx, the test delivery aside.
fn distinct_successes(received: &[herald_tests::Received]) -> usize {
    received
        .iter()
        .filter(|received| received.succeeded())
        .map(|received| received.header("webhook-id"))
        .collect::<BTreeSet<_>>()
        .len()
        .saturating_sub(1)
}

#[derive(Debug, Default)]
struct Totals {
    delivered: usize,
    duplicates: usize,
    failed: usize,
    latencies: Vec<Duration>,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.failed += other.failed;
        self.latencies.extend_from_slice(&other.latencies);
    }
}

/// Checks everything one receiver got: only its tenant's events of the
/// types it subscribed to, each the very event ingest accepted, signed with
/// its secret, one webhook-id per event, and every matching event there.
fn check_subscriber(
    subscriber: &Subscriber,
    received: &[herald_tests::Received],
    accepted: &[Accepted],
    tenant_ids: [&str; 2],
) -> Totals {
    let name = subscriber.name;
    let mut totals = Totals::default();
    let mut webhook_ids: HashMap<String, usize> = HashMap::new();
    let mut succeeded: BTreeSet<usize> = BTreeSet::new();
    for request in received {
        assert_eq!(
            standard_signers(request, &[&subscriber.secret]),
            [0],
            "{name}: signature"
        );
        let envelope: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        if envelope["test"] == true {
            continue;
        }
        assert_eq!(
            envelope["organizationId"], tenant_ids[subscriber.tenant],
            "{name} got another tenant's event: {envelope}"
        );
        let index = usize::try_from(envelope["data"]["index"].as_u64().unwrap()).unwrap();
        assert!(
            subscriber.matches(index),
            "{name} got event {index} ({}), which it does not subscribe to",
            envelope["event"]
        );
        assert_eq!(envelope["event"], type_of(index), "{name}: event {index}");
        assert_eq!(
            envelope["id"], accepted[index].event_id,
            "{name}: event {index} is not the event ingest accepted (a retried publish made a second one)"
        );
        let webhook_id = request.header("webhook-id").to_owned();
        let known = *webhook_ids.entry(webhook_id.clone()).or_insert(index);
        assert_eq!(
            known, index,
            "{name}: webhook-id {webhook_id} names two events"
        );
        if !request.succeeded() {
            totals.failed += 1;
            continue;
        }
        if succeeded.insert(index) {
            totals.latencies.push(
                request
                    .at
                    .saturating_duration_since(accepted[index].sent_at),
            );
        } else {
            totals.duplicates += 1;
        }
    }
    let events_per_webhook_id: BTreeSet<usize> = webhook_ids.values().copied().collect();
    assert_eq!(
        events_per_webhook_id.len(),
        webhook_ids.len(),
        "{name}: an event arrived under two webhook-ids"
    );
    let missing: Vec<usize> = (0..accepted.len())
        .filter(|index| subscriber.matches(*index) && !succeeded.contains(index))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: {} accepted events never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    totals.delivered = succeeded.len();
    totals
}

/// Publishes events `0..total` through ingest's gRPC `Publish` at `rate`
/// per second, as a careful client does: an item counts as accepted only
/// once ingest answered it so, and anything else (ingest down, NATS down,
/// a lost answer) is sent again later with the same idempotency key.
async fn publish_steadily(
    ingest: SocketAddr,
    tokens: [String; 2],
    total: usize,
    rate: usize,
    accepted: Arc<Mutex<Vec<Option<Accepted>>>>,
) -> PublishStats {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{ingest}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .connect_lazy();
    let mut client = IngestServiceClient::new(channel);
    let mut stats = PublishStats::default();
    let mut pending: [VecDeque<usize>; 2] = Default::default();
    let mut next = 0;
    let mut last_progress = Instant::now();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(25));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
        for index in next..due {
            pending[tenant_of(index)].push_back(index);
        }
        next = due;
        if next == total && pending.iter().all(VecDeque::is_empty) {
            return stats;
        }
        for tenant in 0..2 {
            if pending[tenant].is_empty() {
                continue;
            }
            let batch: Vec<usize> = pending[tenant].iter().take(MAX_BATCH).copied().collect();
            let request = pb::PublishRequest {
                items: batch.iter().map(|index| item(*index)).collect(),
            };
            let sent_at = Instant::now();
            let results = match client.publish(authed(&tokens[tenant], request)).await {
                Ok(response) => response.into_inner().results,
                Err(status) => {
                    *stats
                        .failed_calls
                        .entry(format!("{:?}", status.code()))
                        .or_default() += 1;
                    assert!(
                        last_progress.elapsed() < PUBLISH_PATIENCE,
                        "nothing accepted for {PUBLISH_PATIENCE:?}; last answer: {status:?}"
                    );
                    continue;
                }
            };
            assert_eq!(results.len(), batch.len());
            let mut again = Vec::new();
            {
                let mut accepted = accepted.lock().unwrap();
                for (index, result) in batch.iter().zip(results) {
                    match result.outcome {
                        Some(Outcome::Accepted(item)) => {
                            accepted[*index] = Some(Accepted {
                                event_id: item.event_id,
                                sent_at,
                            });
                        }
                        Some(Outcome::Error(error)) => {
                            assert!(
                                error.message.contains("retry"),
                                "item {index} refused: {error:?}"
                            );
                            again.push(*index);
                        }
                        None => panic!("item {index} has no outcome"),
                    }
                }
            }
            if again.len() < batch.len() {
                last_progress = Instant::now();
            }
            stats.retried_items += again.len();
            pending[tenant].drain(..batch.len());
            for index in again.into_iter().rev() {
                pending[tenant].push_front(index);
            }
        }
    }
}

fn item(index: usize) -> pb::PublishItem {
    pb::PublishItem {
        r#type: type_of(index).into(),
        // Every type's required fields (its schema), whatever the type.
        data: format!(
            r#"{{"index":{index},"contact_id":"ct_{index}","form_id":"frm_chaos","answers":{{}}}}"#
        )
        .into(),
        idempotency_key: format!("chaos-{index}"),
        ..Default::default()
    }
}
