//! Holding back for an endpoint: rate limits and circuits shared by
//! replicas, and pausing an endpoint that fails too long.

use crate::*;

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
