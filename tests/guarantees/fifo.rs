//! FIFO endpoints: every event in order across replicas and crashes, lanes
//! that never idle, their backlog in the metrics, lost acks recovered.

use crate::*;

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
