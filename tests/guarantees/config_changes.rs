//! Configuration changes reach the services: nothing is delivered once a
//! disable returned, and watchers move to another config replica.

use crate::*;

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
