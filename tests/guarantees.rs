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
    stack::{Stack, TenantClient, authed, publish_events, spec},
};
use time::OffsetDateTime;

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

#[test]
fn dead_letters_are_redriven_once_with_their_original_webhook_ids() {
    let stack = Stack::start(1, &[NO_CIRCUIT]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let created = tenant
            .active_endpoint(spec(&receiver.url(), &[100, 100]))
            .await;
        let endpoint_id = created.endpoint.unwrap().id;
        receiver.answer(500);
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, 5).await;

        let dead = eventually("five dead letters", Duration::from_secs(30), || async {
            let dead = dead_letters(&mut tenant.clone(), &endpoint_id).await;
            let complete = dead.len() == 5 && dead.iter().all(|letter| letter.attempts.len() == 3);
            complete.then_some(dead)
        })
        .await;
        for letter in &dead {
            let statuses: Vec<_> = letter.attempts.iter().map(pb::Attempt::status).collect();
            assert_eq!(
                statuses,
                [
                    pb::AttemptStatus::Retrying,
                    pb::AttemptStatus::Retrying,
                    pb::AttemptStatus::Dead
                ]
            );
            assert_eq!(letter.attempts[2].response_code, 500);
            assert_eq!(letter.endpoint_id, endpoint_id);
            assert!(letter.event.is_some());
        }
        let summary = |mut tenant: TenantClient| async move {
            tenant
                .config
                .get_summary(authed(&tenant.token, pb::GetSummaryRequest::default()))
                .await
                .unwrap()
                .into_inner()
        };
        assert_eq!(summary(tenant.clone()).await.dead_letters, 5);
        let failed_ids: BTreeSet<String> = webhook_ids(&receiver, 0).into_iter().collect();
        assert_eq!(failed_ids.len(), 5);
        let dead_ids: BTreeSet<String> = dead.iter().map(|letter| letter.id.clone()).collect();
        assert_eq!(
            dead_ids, failed_ids,
            "dead letters are keyed by delivery id"
        );

        receiver.answer(200);
        let before = receiver.received().len();
        let redrive = pb::RedriveDeadLettersRequest {
            all_of_endpoint: endpoint_id.clone(),
            use_current_endpoint: true,
            ..Default::default()
        };
        let job = tenant
            .recovery
            .redrive_dead_letters(authed(&tenant.token, redrive.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(job.kind(), pb::DeliveryTrigger::Redrive);
        let done = finished(&mut tenant, job.clone()).await;
        assert_eq!((done.total, done.enqueued, done.skipped), (5, 5, 0));

        let redriven = eventually(
            "five redriven deliveries",
            Duration::from_secs(15),
            || async {
                let ids = webhook_ids(&receiver, before);
                (ids.len() >= 5).then_some(ids)
            },
        )
        .await;
        let redriven_set: BTreeSet<String> = redriven.iter().cloned().collect();
        assert_eq!(redriven_set, failed_ids, "redrive keeps the delivery ids");
        assert!(dead_letters(&mut tenant, &endpoint_id).await.is_empty());
        assert_eq!(summary(tenant.clone()).await.dead_letters, 0);

        // The same request again is the same job; naming the deliveries
        // again finds nothing left to redrive.
        let again = tenant
            .recovery
            .redrive_dead_letters(authed(&tenant.token, redrive))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.id, job.id);
        let by_id = tenant
            .recovery
            .redrive_dead_letters(authed(
                &tenant.token,
                pb::RedriveDeadLettersRequest {
                    delivery_ids: failed_ids.iter().cloned().collect(),
                    use_current_endpoint: true,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let by_id = finished(&mut tenant, by_id).await;
        assert_eq!((by_id.enqueued, by_id.skipped), (0, 5));
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let counts = receiver.counts_by_webhook_id();
        for id in &failed_ids {
            // Three failed attempts, then exactly one redriven success.
            assert_eq!(counts[id], 4, "{id}");
        }

        // Bad requests name their field; other tenants see nothing.
        let error = tenant
            .recovery
            .redrive_dead_letters(authed(
                &tenant.token,
                pb::RedriveDeadLettersRequest::default(),
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().contains("delivery_ids"), "{error:?}");
        let mut other = stack.tenant().await;
        assert!(dead_letters(&mut other, "").await.is_empty());
    });
}

#[test]
fn recover_failed_resends_exactly_the_failures_since_a_time() {
    let stack = Stack::start(1, &[NO_CIRCUIT]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let created = tenant.active_endpoint(spec(&receiver.url(), &[])).await;
        let endpoint_id = created.endpoint.unwrap().id;
        receiver.answer(500);
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, 3).await;
        eventually("the first failures", Duration::from_secs(30), || async {
            (dead_letters(&mut tenant.clone(), &endpoint_id).await.len() == 3).then_some(())
        })
        .await;
        let early_ids: BTreeSet<String> = webhook_ids(&receiver, 0).into_iter().collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let since = OffsetDateTime::now_utc();
        tokio::time::sleep(Duration::from_millis(50)).await;
        publish_events(&bus, &tenant.id, 3, 4).await;
        eventually("the later failures", Duration::from_secs(30), || async {
            (dead_letters(&mut tenant.clone(), &endpoint_id).await.len() == 7).then_some(())
        })
        .await;
        let all_ids: BTreeSet<String> = webhook_ids(&receiver, 0).into_iter().collect();
        let late_ids: BTreeSet<String> = all_ids.difference(&early_ids).cloned().collect();
        assert_eq!(late_ids.len(), 4);

        receiver.answer(200);
        let before = receiver.received().len();
        let request = pb::RecoverFailedRequest {
            endpoint_id: endpoint_id.clone(),
            since: Some(timestamp_to_wire(since)),
        };
        // The attempt log is written asynchronously: wait until it holds
        // every failure before recovering.
        let done = eventually("a recovery of four", Duration::from_secs(15), || {
            let mut client = tenant.clone();
            let request = request.clone();
            async move {
                let job = client
                    .recovery
                    .recover_failed(authed(&client.token, request))
                    .await
                    .unwrap()
                    .into_inner();
                let done = finished(&mut client, job).await;
                (done.enqueued == 4).then_some(done)
            }
        })
        .await;
        assert_eq!(done.kind(), pb::DeliveryTrigger::Recover);
        let resent = eventually(
            "four recovered deliveries",
            Duration::from_secs(15),
            || async {
                let ids = webhook_ids(&receiver, before);
                (ids.len() >= 4).then_some(ids)
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(webhook_ids(&receiver, before).len(), 4);
        assert_eq!(resent.into_iter().collect::<BTreeSet<_>>(), late_ids);
        // The early failures stay dead; the recovered ones left the dead letters.
        let remaining: BTreeSet<String> = dead_letters(&mut tenant, &endpoint_id)
            .await
            .into_iter()
            .map(|letter| letter.id)
            .collect();
        assert_eq!(remaining, early_ids);
        // Asked again, the recovery is the same job: nothing is sent twice.
        let again = tenant
            .recovery
            .recover_failed(authed(&tenant.token, request))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.id, done.id);

        // What is left can be purged deliberately.
        let purged = tenant
            .recovery
            .purge_dead_letters(authed(
                &tenant.token,
                pb::PurgeDeadLettersRequest {
                    all_of_endpoint: endpoint_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(purged.purged, 3);
        assert!(dead_letters(&mut tenant, &endpoint_id).await.is_empty());
    });
}

#[test]
fn a_replay_resends_one_event_with_its_delivery_id() {
    let stack = Stack::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let first = Receiver::start(Duration::ZERO).await;
        let second = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let first_id = tenant
            .active_endpoint(spec(&first.url(), &[]))
            .await
            .endpoint
            .unwrap()
            .id;
        tenant.active_endpoint(spec(&second.url(), &[])).await;
        let bus = stack.bus().await;
        let events = publish_events(&bus, &tenant.id, 0, 2).await;
        for receiver in [&first, &second] {
            eventually("the live deliveries", Duration::from_secs(15), || async {
                (webhook_ids(receiver, 0).len() == 2).then_some(())
            })
            .await;
        }
        let replay = |endpoint_id: &str| pb::ReplayEventRequest {
            event_id: events[0].id.to_string(),
            endpoint_id: endpoint_id.to_owned(),
        };

        // To one endpoint.
        let job = tenant
            .recovery
            .replay_event(authed(&tenant.token, replay(&first_id)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(job.kind(), pb::DeliveryTrigger::Replay);
        assert_eq!(finished(&mut tenant, job).await.enqueued, 1);
        let replayed = eventually("the replay", Duration::from_secs(15), || async {
            let ids = webhook_ids(&first, 0);
            (ids.len() == 3).then_some(ids)
        })
        .await;
        let original = first
            .received()
            .into_iter()
            .find(|received| received.data()["index"] == 0)
            .unwrap();
        assert_eq!(
            replayed[2],
            original.header("webhook-id"),
            "a replay keeps the delivery id"
        );

        // To every endpoint the event matches now.
        let job = tenant
            .recovery
            .replay_event(authed(&tenant.token, replay("")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(finished(&mut tenant, job).await.enqueued, 2);
        for (receiver, count) in [(&first, 4), (&second, 3)] {
            eventually(
                "the replay to every match",
                Duration::from_secs(15),
                || async { (webhook_ids(receiver, 0).len() == count).then_some(()) },
            )
            .await;
        }

        // Unknown events and other tenants' events are not found.
        let mut other = stack.tenant().await;
        for (client, event_id) in [
            (
                &mut tenant,
                herald_core::id::EventId::generate().to_string(),
            ),
            (&mut other, events[1].id.to_string()),
        ] {
            let error = client
                .recovery
                .replay_event(authed(
                    &client.token,
                    pb::ReplayEventRequest {
                        event_id,
                        endpoint_id: String::new(),
                    },
                ))
                .await
                .unwrap_err();
            assert_eq!(error.code(), tonic::Code::NotFound, "{error:?}");
        }
        let error = tenant
            .recovery
            .replay_event(authed(
                &tenant.token,
                pb::ReplayEventRequest {
                    event_id: "evt_nope".into(),
                    endpoint_id: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
    });
}

#[test]
fn a_fifo_endpoint_gets_every_event_in_order_across_two_replicas_and_a_crash() {
    const EVENTS: usize = 200;
    let mut stack = Stack::start(2, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let mut fifo = spec(&receiver.url(), &[20; 20]);
        fifo.ordering = pb::Ordering::Fifo.into();
        tenant.active_endpoint(fifo).await;
        receiver.fail_randomly(0.3);
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS).await;

        let succeeded = |receiver: &Receiver| {
            receiver
                .received()
                .iter()
                .filter(|received| received.succeeded() && received.data().get("index").is_some())
                .count()
        };
        eventually("a quarter delivered", Duration::from_secs(60), || async {
            (succeeded(&receiver) >= EVENTS / 4).then_some(())
        })
        .await;
        stack.deliveries.remove(0).kill();
        let restarted = stack.start_delivery();
        stack.deliveries.push(restarted);

        let delivered: BTreeSet<i64> =
            eventually("every event", Duration::from_secs(120), || async {
                let indexes: BTreeSet<i64> = receiver
                    .received()
                    .iter()
                    .filter(|received| received.succeeded())
                    .filter_map(|received| received.data()["index"].as_i64())
                    .collect();
                (indexes.len() == EVENTS).then_some(indexes)
            })
            .await;
        assert_eq!(delivered.len(), EVENTS);

        // In arrival order, no event is sent before every earlier one has
        // succeeded; a repeat (at-least-once after the crash) only ever
        // repeats the latest.
        let mut highest_succeeded: i64 = -1;
        let mut failures = 0;
        for received in receiver.received() {
            let Some(index) = received.data()["index"].as_i64() else {
                continue;
            };
            assert!(
                index <= highest_succeeded + 1,
                "event {index} was sent before event {} succeeded",
                highest_succeeded + 1
            );
            if received.succeeded() {
                highest_succeeded = highest_succeeded.max(index);
            } else {
                failures += 1;
            }
        }
        assert_eq!(highest_succeeded, i64::try_from(EVENTS).unwrap() - 1);
        assert!(failures > 20, "the receiver failed only {failures} times");
        println!("fifo: {EVENTS} events in order, {failures} failed attempts retried in place");
    });
}

/// Two fanout replicas used to publish a lane's jobs in whichever order
/// their batches finished; now one pinned replica publishes each lane in
/// stream order, and another takes over when it dies.
#[test]
fn topology_02_fifo_order_holds_with_two_fanout_replicas_and_a_fanout_crash() {
    const EVENTS: usize = 2_000;
    let mut stack = Stack::start(2, &[]);
    let mut fanouts = [stack.start_fanout()];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let mut fifo = spec(&receiver.url(), &[20; 20]);
        fifo.ordering = pb::Ordering::Fifo.into();
        tenant.active_endpoint(fifo).await;
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS / 2).await;
        let delivered = |receiver: &Receiver| {
            receiver
                .received()
                .iter()
                .filter_map(|received| received.data()["index"].as_i64())
                .collect::<BTreeSet<i64>>()
                .len()
        };
        eventually("a quarter delivered", Duration::from_secs(60), || async {
            (delivered(&receiver) >= EVENTS / 4).then_some(())
        })
        .await;
        // Whichever replica holds the pin dies: each is killed in turn
        // (and started again) while the lane is busy.
        let killed = std::time::Instant::now();
        stack.fanout.restart(Duration::from_secs(30));
        publish_events(&bus, &tenant.id, EVENTS / 2, EVENTS / 2).await;
        eventually("half delivered", Duration::from_secs(60), || async {
            (delivered(&receiver) >= EVENTS / 2).then_some(())
        })
        .await;
        fanouts[0].restart(Duration::from_secs(30));

        eventually("every event", Duration::from_secs(180), || async {
            (delivered(&receiver) == EVENTS).then_some(())
        })
        .await;

        let arrivals: Vec<(i64, std::time::Instant)> = receiver
            .received()
            .iter()
            .filter_map(|received| Some((received.data()["index"].as_i64()?, received.at)))
            .collect();
        let mut highest: i64 = -1;
        let mut out_of_order = Vec::new();
        for (index, _) in &arrivals {
            if *index > highest + 1 || *index < highest {
                out_of_order.push(*index);
            }
            highest = highest.max(*index);
        }
        let longest_pause = arrivals
            .windows(2)
            .filter(|pair| pair[1].1 > killed)
            .map(|pair| pair[1].1 - pair[0].1)
            .max()
            .unwrap_or_default();
        println!(
            "fifo with 2 fanout replicas: {EVENTS} events, {} out of order, longest pause after the fanout crash {longest_pause:?}",
            out_of_order.len()
        );
        assert!(out_of_order.is_empty(), "out of order: {out_of_order:?}");
        assert!(
            longest_pause <= Duration::from_secs(10),
            "a pause of {longest_pause:?} after the fanout crash"
        );
    });
}

#[test]
fn a_rate_limit_holds_across_two_replicas() {
    const EVENTS: usize = 1_000;
    const RATE: f64 = 50.0;
    let stack = Stack::start(2, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let mut limited = spec(&receiver.url(), &[1_000]);
        limited.rate_limit = Some(pb::RateLimit {
            per_second: RATE,
            burst: 1,
        });
        tenant.active_endpoint(limited).await;
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS).await;
        let arrivals = eventually("every delivery", Duration::from_secs(60), || async {
            let arrivals: Vec<Instant> = receiver
                .received()
                .iter()
                .filter(|received| received.data().get("index").is_some())
                .map(|received| received.at)
                .collect();
            (arrivals.len() >= EVENTS).then_some(arrivals)
        })
        .await;
        let span = arrivals[EVENTS - 1] - arrivals[0];
        let rate = (EVENTS - 1) as f64 / span.as_secs_f64();
        println!("rate limit {RATE}/s: measured {rate:.1}/s over {span:?}");
        assert!(
            (RATE * 0.9..=RATE * 1.1).contains(&rate),
            "measured {rate:.1}/s for a limit of {RATE}/s"
        );
        // Both replicas took part.
        for delivery in &stack.deliveries {
            let (_, metrics) = delivery.get("/metrics").unwrap();
            let succeeded = metrics
                .lines()
                .find(|line| line.starts_with("herald_deliveries_total{outcome=\"succeeded\"}"))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0);
            assert!(succeeded > 50.0, "a replica delivered only {succeeded}");
        }
    });
}

/// With per-replica circuits every replica sent its own probe per cooldown;
/// shared ones let one through for all of them.
#[test]
fn topology_shared_circuit_sends_one_probe_per_cooldown_across_replicas() {
    const EVENTS: usize = 50;
    const OUTAGE: Duration = Duration::from_secs(16);
    let stack = Stack::start(
        2,
        &[
            ("HERALD_CIRCUIT_FAILURES", "5"),
            ("HERALD_CIRCUIT_COOLDOWN", "1s"),
            ("HERALD_CIRCUIT_MAX_COOLDOWN", "2s"),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        tenant
            .active_endpoint(spec(&receiver.url(), &[500; 20]))
            .await;
        receiver.answer(503);
        let outage = Instant::now();
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS).await;
        tokio::time::sleep(OUTAGE).await;
        let late: Vec<Duration> = receiver
            .received()
            .iter()
            .filter(|received| received.at > outage + Duration::from_secs(2))
            .map(|received| received.at - outage)
            .collect();
        // Cooldowns of 1 s, then 2 s: about 7 probes in the 14 s after the
        // first burst, and twice as many if each replica probed on its own.
        println!(
            "shared circuit, 2 replicas: {} probes in the last {} s of the outage: {late:?}",
            late.len(),
            OUTAGE.as_secs() - 2
        );
        assert!(
            late.len() <= 9,
            "{} probes reached a dead receiver: {late:?}",
            late.len()
        );

        receiver.answer(200);
        eventually("the backlog", Duration::from_secs(30), || async {
            let delivered: BTreeSet<String> = receiver
                .received()
                .iter()
                .filter(|received| received.succeeded() && received.data().get("index").is_some())
                .map(|received| received.header("webhook-id").to_owned())
                .collect();
            (delivered.len() == EVENTS).then_some(())
        })
        .await;
    });
}

#[test]
fn an_open_circuit_sends_only_probes_and_the_backlog_drains_after() {
    const EVENTS: usize = 50;
    let stack = Stack::start(
        1,
        &[
            ("HERALD_CIRCUIT_FAILURES", "5"),
            ("HERALD_CIRCUIT_COOLDOWN", "1s"),
            ("HERALD_CIRCUIT_MAX_COOLDOWN", "4s"),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        tenant
            .active_endpoint(spec(&receiver.url(), &[500; 20]))
            .await;
        receiver.answer(503);
        let outage = Instant::now();
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let arrivals: Vec<Duration> = receiver
            .received()
            .iter()
            .filter(|received| received.at > outage)
            .map(|received| received.at - outage)
            .collect();
        // The first failures arrive together (as many as run at once);
        // after the circuit opened only probes get through.
        let late: Vec<&Duration> = arrivals
            .iter()
            .filter(|at| **at > Duration::from_secs(2))
            .collect();
        println!(
            "circuit: {} requests during a 10 s outage, {} after its first 2 s: {late:?}",
            arrivals.len(),
            late.len()
        );
        assert!(
            late.len() <= 5,
            "{} requests reached a dead receiver: {late:?}",
            late.len()
        );

        receiver.answer(200);
        let counts: HashMap<String, usize> =
            eventually("the backlog", Duration::from_secs(30), || async {
                let succeeded: HashMap<String, usize> = receiver
                    .received()
                    .iter()
                    .filter(|received| {
                        received.succeeded() && received.data().get("index").is_some()
                    })
                    .fold(HashMap::new(), |mut counts, received| {
                        *counts
                            .entry(received.header("webhook-id").to_owned())
                            .or_default() += 1;
                        counts
                    });
                (succeeded.len() == EVENTS).then_some(succeeded)
            })
            .await;
        assert!(counts.values().all(|count| *count == 1));
    });
}

#[test]
fn an_endpoint_failing_too_long_is_paused_its_backlog_dead_lettered_and_its_owner_told() {
    const EVENTS: usize = 5;
    let stack = Stack::start(
        1,
        &[
            NO_CIRCUIT,
            ("HERALD_AUTO_DISABLE_AFTER", "3s"),
            ("HERALD_RETENTION_SWEEP_INTERVAL", "500ms"),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let failing_receiver = Receiver::start(Duration::ZERO).await;
        let owner_receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let failing = tenant
            .active_endpoint(spec(&failing_receiver.url(), &[500; 20]))
            .await
            .endpoint
            .unwrap()
            .id;
        let mut notifications = spec(&owner_receiver.url(), &[]);
        notifications.event_types = vec!["endpoint.disabled".into()];
        tenant.active_endpoint(notifications).await;
        failing_receiver.answer(500);
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, EVENTS).await;

        let paused = eventually("the endpoint paused", Duration::from_secs(30), || {
            let mut client = tenant.clone();
            let failing = failing.clone();
            async move {
                let endpoint = client
                    .config
                    .get_endpoint(authed(
                        &client.token,
                        pb::GetEndpointRequest {
                            endpoint_id: failing,
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                (endpoint.status() == pb::EndpointStatus::Failing).then_some(endpoint)
            }
        })
        .await;
        assert!(
            paused.status_reason.contains("paused automatically"),
            "{}",
            paused.status_reason
        );
        let told = eventually("endpoint.disabled", Duration::from_secs(15), || async {
            owner_receiver
                .received()
                .into_iter()
                .find(|received| received.data()["endpoint_id"] == failing.as_str())
        })
        .await;
        assert_eq!(told.data()["status"], "failing");
        let dead = eventually(
            "the backlog in the dead letters",
            Duration::from_secs(15),
            || async {
                // Never its own endpoint.disabled: it is not sent to itself.
                let dead = dead_letters(&mut tenant.clone(), &failing).await;
                (dead.len() >= EVENTS).then_some(dead)
            },
        )
        .await;
        assert!(
            dead.iter()
                .all(|letter| letter.reason.contains("paused automatically")),
            "{dead:?}"
        );
        assert!(
            dead.iter().all(|letter| letter
                .event
                .as_ref()
                .is_some_and(|event| event.r#type == "contact.created")),
            "{dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(dead_letters(&mut tenant, &failing).await.len(), EVENTS);
    });
}

/// Publishes one `contact.created` event of the tenant carrying `data`, as
/// ingest does (accepted once JetStream acknowledged it).
async fn publish_one(bus: &herald_bus::Bus, tenant_id: &str, data: serde_json::Value) -> String {
    use herald_core::{
        catalog::EventType,
        channel::Channel,
        event::{Event, parse_data},
        id::{EventId, TenantId},
    };
    use prost::Message as _;
    let event = Event {
        id: EventId::generate(),
        tenant_id: TenantId::parse(tenant_id).unwrap(),
        channel: Channel::Internal,
        device_id: None,
        event_type: EventType::parse("contact.created").unwrap(),
        occurred_at: OffsetDateTime::now_utc(),
        received_at: OffsetDateTime::now_utc(),
        source_ref: None,
        idempotency_key: format!("e2e-{}", EventId::generate()),
        data: parse_data(data.to_string().as_bytes()).unwrap(),
    };
    bus.publish(
        bus.topology().event_subject(&event),
        &event.idempotency_key,
        herald_bus::async_nats::HeaderMap::new(),
        pb::Event::from(&event).encode_to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
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

#[test]
fn hardening_15_no_delivery_after_disable_returned() {
    // Each trial: an endpoint that fanout has seen active (a probe event
    // reached it) is disabled, or deleted, and an event of its tenant is
    // accepted right after the call returned. 50 endpoints (one per tenant)
    // run their trials side by side, 20 rounds: 950 disables, 50 deletes.
    const ENDPOINTS: usize = 50;
    const ROUNDS: usize = 20;
    let stack = Stack::start(1, &[NO_CIRCUIT]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let bus = stack.bus().await;
        let setups = (0..ENDPOINTS).map(|_| async {
            let mut tenant = stack.tenant().await;
            let endpoint_id = tenant
                .active_endpoint(spec(&receiver.url(), &[]))
                .await
                .endpoint
                .unwrap()
                .id;
            (tenant, endpoint_id)
        });
        let endpoints: Vec<(TenantClient, String)> = futures::future::join_all(setups).await;
        let mut trial_events = BTreeSet::new();
        let started = Instant::now();
        for round in 0..ROUNDS {
            if round > 0 {
                let enables = endpoints.iter().map(|(tenant, endpoint_id)| {
                    let mut tenant = tenant.clone();
                    async move {
                        tenant
                            .config
                            .enable_endpoint(authed(
                                &tenant.token,
                                pb::EnableEndpointRequest {
                                    endpoint_id: endpoint_id.clone(),
                                },
                            ))
                            .await
                            .unwrap()
                            .into_inner()
                    }
                });
                for enabled in futures::future::join_all(enables).await {
                    assert_eq!(enabled.status(), pb::EndpointStatus::Active);
                }
            }
            // Fanout has seen every endpoint active once its probe arrived.
            for (tenant, _) in &endpoints {
                publish_one(&bus, &tenant.id, serde_json::json!({ "probe": round })).await;
            }
            eventually("every probe", Duration::from_secs(30), || async {
                let probes = receiver.inspect(|received| {
                    received
                        .iter()
                        .filter(|request| request.data()["probe"] == round)
                        .count()
                });
                (probes >= ENDPOINTS).then_some(())
            })
            .await;

            let last_round = round + 1 == ROUNDS;
            let trials = endpoints.iter().map(|(tenant, endpoint_id)| {
                let mut tenant = tenant.clone();
                let bus = bus.clone();
                async move {
                    if last_round {
                        tenant
                            .config
                            .delete_endpoint(authed(
                                &tenant.token,
                                pb::DeleteEndpointRequest {
                                    endpoint_id: endpoint_id.clone(),
                                },
                            ))
                            .await
                            .unwrap();
                    } else {
                        tenant
                            .config
                            .disable_endpoint(authed(
                                &tenant.token,
                                pb::DisableEndpointRequest {
                                    endpoint_id: endpoint_id.clone(),
                                    reason: String::new(),
                                },
                            ))
                            .await
                            .unwrap();
                    }
                    publish_one(&bus, &tenant.id, serde_json::json!({ "trial": round })).await
                }
            });
            trial_events.extend(futures::future::join_all(trials).await);
            // Every trial event is fanned out before the next enable, which
            // would rightly let a late one through.
            eventually("fanout idle", Duration::from_secs(30), || async {
                (fanout_outstanding(&bus).await == 0).then_some(())
            })
            .await;
        }
        assert_eq!(trial_events.len(), ENDPOINTS * ROUNDS);
        eprintln!("{} trials in {:?}", trial_events.len(), started.elapsed());

        // Nothing reached a receiver, and no job was even made: a job for a
        // disabled endpoint would leave an attempt record (a dead letter).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let delivered = receiver.inspect(|received| {
            received
                .iter()
                .filter(|request| request.data().get("trial").is_some())
                .count()
        });
        assert_eq!(delivered, 0, "trial events delivered");
        let mut attempted = 0;
        let mut attempts =
            pb::attempt_service_client::AttemptServiceClient::new(stack.channel().await);
        for (tenant, endpoint_id) in &endpoints {
            attempted += endpoint_attempts(&mut attempts, &tenant.token, endpoint_id)
                .await
                .iter()
                .filter(|attempt| trial_events.contains(&attempt.event_id))
                .count();
        }
        assert_eq!(attempted, 0, "jobs made for trial events");
    });
}

#[test]
fn hardening_16_retry_of_a_disabled_endpoint_is_dead_lettered_and_redriven() {
    let stack = Stack::start(1, &[NO_CIRCUIT]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        let endpoint_id = tenant
            .active_endpoint(spec(&receiver.url(), &[3_000]))
            .await
            .endpoint
            .unwrap()
            .id;
        receiver.answer(500);
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, 1).await;
        let failed = eventually("the first attempt", Duration::from_secs(15), || async {
            webhook_ids(&receiver, 0).first().cloned()
        })
        .await;

        // The retry waits in JetStream while its endpoint is disabled.
        tenant
            .config
            .disable_endpoint(authed(
                &tenant.token,
                pb::DisableEndpointRequest {
                    endpoint_id: endpoint_id.clone(),
                    reason: "maintenance".into(),
                },
            ))
            .await
            .unwrap();
        let dead = eventually(
            "the retry dead-lettered",
            Duration::from_secs(15),
            || async {
                let dead = dead_letters(&mut tenant.clone(), &endpoint_id).await;
                (!dead.is_empty()).then_some(dead)
            },
        )
        .await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, failed, "the dead letter is the delivery");
        assert!(dead[0].reason.contains("is disabled"), "{}", dead[0].reason);
        assert_eq!(webhook_ids(&receiver, 0).len(), 1, "the retry was not sent");

        receiver.answer(200);
        tenant
            .config
            .enable_endpoint(authed(
                &tenant.token,
                pb::EnableEndpointRequest {
                    endpoint_id: endpoint_id.clone(),
                },
            ))
            .await
            .unwrap();
        let job = tenant
            .recovery
            .redrive_dead_letters(authed(
                &tenant.token,
                pb::RedriveDeadLettersRequest {
                    all_of_endpoint: endpoint_id.clone(),
                    use_current_endpoint: true,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let done = finished(&mut tenant, job).await;
        assert_eq!((done.total, done.enqueued), (1, 1));
        eventually("the redriven delivery", Duration::from_secs(15), || async {
            receiver
                .received()
                .into_iter()
                .find(|received| received.header("webhook-id") == failed && received.succeeded())
        })
        .await;
        assert!(dead_letters(&mut tenant, &endpoint_id).await.is_empty());
    });
}

/// The FIFO scenario of the test above, for a new tenant (event ids are
/// deduplicated per tenant): `EVENTS` events, 30 % of requests failing at
/// random, retried after 20 ms. Returns the longest silence between one
/// request and the next while events were still waiting.
async fn fifo_run(stack: &Stack) -> Duration {
    const EVENTS: usize = 200;
    let mut tenant = stack.tenant().await;
    let receiver = Receiver::start(Duration::ZERO).await;
    let mut fifo = spec(&receiver.url(), &[20; 20]);
    fifo.ordering = pb::Ordering::Fifo.into();
    tenant.active_endpoint(fifo).await;
    receiver.fail_randomly(0.3);
    let bus = stack.bus().await;
    publish_events(&bus, &tenant.id, 0, EVENTS).await;
    eventually("every event", Duration::from_secs(120), || async {
        let delivered: BTreeSet<i64> = receiver
            .received()
            .iter()
            .filter(|received| received.succeeded())
            .filter_map(|received| received.data()["index"].as_i64())
            .collect();
        (delivered.len() == EVENTS).then_some(())
    })
    .await;
    let requests: Vec<Instant> = receiver
        .received()
        .iter()
        .filter(|received| received.data().get("index").is_some())
        .map(|received| received.at)
        .collect();
    requests
        .windows(2)
        .map(|pair| pair[1].saturating_duration_since(pair[0]))
        .max()
        .unwrap_or_default()
}

#[test]
fn hardening_13_fifo_lane_never_idles() {
    // As many runs as fit the budget (the stall was seen once in ~24 runs).
    let budget = Duration::from_secs(
        std::env::var("HERALD_TEST_FIFO_BUDGET_SECS")
            .ok()
            .and_then(|secs| secs.parse().ok())
            .unwrap_or(60),
    );
    let stack = Stack::start(2, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let mut runs = 0;
        while runs < 2 || started.elapsed() < budget {
            let longest = fifo_run(&stack).await;
            runs += 1;
            println!("run {runs}: longest silence between two requests {longest:?}");
            // Retries wait 20 ms; anything near a second is a lane idling.
            assert!(
                longest <= Duration::from_secs(1),
                "run {runs}: the lane idled {longest:?} with jobs waiting"
            );
        }
    });
}

#[test]
fn hardening_14_fifo_lane_backlog_is_in_the_metrics() {
    const WAITING: usize = 5;
    let stack = Stack::start(1, &[NO_CIRCUIT]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let mut tenant = stack.tenant().await;
        // The head fails and waits a minute for its retry: the lane is stuck.
        let mut fifo = spec(&receiver.url(), &[60_000]);
        fifo.ordering = pb::Ordering::Fifo.into();
        tenant.active_endpoint(fifo).await;
        receiver.answer(500);
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, WAITING).await;
        eventually(
            "the head's first attempt",
            Duration::from_secs(30),
            || async {
                (!receiver
                    .received()
                    .iter()
                    .all(|received| received.data().get("index").is_none()))
                .then_some(())
            },
        )
        .await;
        let ops = stack.deliveries[0].ops_addr;
        let exposition = eventually(
            "the stuck lane in delivery's metrics",
            Duration::from_secs(30),
            || async {
                let exposition = herald_tests::scrape(ops);
                let age = exposition.value("herald_fifo_lane_oldest_job_age_seconds", &[])?;
                (exposition.value("herald_fifo_lane_jobs", &[]) == Some(WAITING as f64)
                    && age >= 3.0)
                    .then_some(exposition)
            },
        )
        .await;
        assert_eq!(
            exposition.value("herald_fifo_lanes_backlogged", &[]),
            Some(1.0)
        );
        // One series each, whatever the number of lanes: no endpoint label.
        for family in [
            "herald_fifo_lanes_backlogged",
            "herald_fifo_lane_jobs",
            "herald_fifo_lane_oldest_job_age_seconds",
        ] {
            assert_eq!(
                exposition.families[family].samples.len(),
                1,
                "{family} has more than one series"
            );
        }
    });
}

#[test]
fn topology_07_a_fifo_lane_recovers_from_a_lost_ack_in_seconds() {
    // The production ack wait for the pool: the lane must not wait for it.
    let mut stack = Stack::start(1, &[("HERALD_DELIVERY_ACK_WAIT", "30s")]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::from_secs(3)).await;
        let mut tenant = stack.tenant().await;
        let mut fifo = spec(&receiver.url(), &[20; 5]);
        fifo.ordering = pb::Ordering::Fifo.into();
        fifo.timeout = Some(herald_tests::stack::millis(10_000));
        tenant.active_endpoint(fifo).await;
        let bus = stack.bus().await;
        publish_events(&bus, &tenant.id, 0, 3).await;
        let head_requests = |receiver: &Receiver| {
            receiver
                .received()
                .iter()
                .filter(|received| received.data()["index"].as_i64() == Some(0))
                .map(|received| received.at)
                .collect::<Vec<_>>()
        };
        eventually("the head's request", Duration::from_secs(30), || async {
            (!head_requests(&receiver).is_empty()).then_some(())
        })
        .await;
        // The worker dies with the request in flight: its ack never comes.
        stack.deliveries.remove(0).kill();
        let killed = Instant::now();
        let restarted = stack.start_delivery();
        stack.deliveries.push(restarted);
        let again = eventually("the head sent again", Duration::from_secs(60), || async {
            head_requests(&receiver).get(1).copied()
        })
        .await;
        let pause = again.saturating_duration_since(killed);
        println!("the lane resumed {pause:?} after its worker died");
        assert!(
            pause <= Duration::from_secs(10),
            "the lane waited {pause:?} for a lost acknowledgement"
        );
    });
}

#[test]
fn topology_06_watchers_move_to_another_config_replica_when_one_dies() {
    const ADMIN: &str = "hrld_admin_shared-by-both-configs";
    let nats = herald_tests::NatsServer::start();
    let nats_url = nats.url();
    let database_url = herald_tests::postgres_url();
    let schema = herald_testkit::fresh_postgres_schema();
    let shared: Vec<(&str, &str)> = vec![
        ("NATS_URL", &nats_url),
        ("HERALD_SERVICE_TOKEN", herald_tests::stack::SERVICE_TOKEN),
        ("HERALD_ADMIN_TOKEN", ADMIN),
        (
            "HERALD_MASTER_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ),
        ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
    ];
    let mut config_envs = shared.clone();
    config_envs.extend([
        ("DATABASE_URL", database_url.as_str()),
        ("HERALD_DATABASE_SCHEMA", schema.as_str()),
    ]);
    let mut configs: Vec<HeraldProcess> = (0..2)
        .map(|_| HeraldProcess::start(&["config"], &config_envs))
        .collect();
    for config in &mut configs {
        config.wait_until_ready(Duration::from_secs(30));
    }
    let config_url = configs
        .iter()
        .map(|config| format!("http://{}", config.config_addr))
        .collect::<Vec<_>>()
        .join(",");
    let mut follower_envs = shared.clone();
    follower_envs.push(("HERALD_CONFIG_URL", &config_url));
    let mut followers: Vec<HeraldProcess> = ["fanout", "delivery"]
        .into_iter()
        .map(|service| HeraldProcess::start(&[service], &follower_envs))
        .collect();
    for follower in &mut followers {
        follower.wait_until_ready(Duration::from_secs(30));
    }

    // The followers watch the first replica; it dies.
    configs.remove(0).kill();
    let survivor = format!("http://{}", configs[0].config_addr);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let receiver = Receiver::start(Duration::ZERO).await;
        let channel = tonic::transport::Endpoint::from_shared(survivor)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut tenant = herald_tests::stack::tenant_client(channel, ADMIN).await;
        // Its test delivery needs delivery to know the endpoint, and the
        // events need fanout to: both only through the surviving replica.
        tenant
            .active_endpoint(spec(&receiver.url(), &[20; 5]))
            .await;
        let bus = herald_bus::Bus::connect(&herald_bus::BusConfig::for_url(nats.url()), "e2e")
            .await
            .unwrap();
        publish_events(&bus, &tenant.id, 0, 10).await;
        eventually("every event delivered", Duration::from_secs(30), || async {
            let delivered: BTreeSet<i64> = receiver
                .received()
                .iter()
                .filter(|received| received.succeeded())
                .filter_map(|received| received.data()["index"].as_i64())
                .collect();
            (delivered.len() == 10).then_some(())
        })
        .await;
    });
    for follower in &mut followers {
        assert!(follower.exit_status().is_none(), "a follower exited");
    }
}
