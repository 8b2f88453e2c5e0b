//! Dead letters redriven once, failures recovered since a time, events
//! replayed, and a disabled endpoint's retries dead-lettered and redriven.

use crate::*;

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
