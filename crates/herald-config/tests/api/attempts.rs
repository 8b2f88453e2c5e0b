//! Attempt records from the bus into the attempt log.

use std::{collections::BTreeSet, time::Duration};

use herald_bus::async_nats;
use herald_proto::v1 as pb;
use herald_testkit_stack::{Backend, ConfigStack, authed, endpoint_spec, eventually};
use prost::Message;

use crate::{PATIENCE, attempt};

on_both_databases!(
    attempt_records_are_stored_once,
    attempt_writer_stores_large_batches_once_and_acknowledges_every_record,
    hardening_19_attempt_duration_keeps_microseconds,
);

async fn attempt_records_are_stored_once(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let tenant_id = herald_core::id::TenantId::parse(&tenant.id).unwrap();
    let endpoint_id = herald_core::id::EndpointId::parse(&endpoint.id).unwrap();
    let subject = herald
        .bus
        .topology()
        .attempt_subject(&tenant_id, &endpoint_id);
    let record = attempt(&tenant.id, &endpoint.id, "dlv_one", 1);
    // The same record three times under different message ids: redeliveries
    // from outside the bus's duplicate window.
    for copy in 0..3 {
        herald
            .bus
            .publish(
                subject.clone(),
                &format!("{}:{copy}", record.id),
                async_nats::HeaderMap::new(),
                record.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let other = attempt(&tenant.id, &endpoint.id, "dlv_two", 1);
    herald
        .bus
        .publish(
            subject,
            &other.id,
            async_nats::HeaderMap::new(),
            other.encode_to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let mut attempts = herald.attempts();
    let listed = eventually("both attempt records", PATIENCE, || {
        let mut attempts = attempts.clone();
        let request = authed(
            &tenant.token,
            pb::ListAttemptsRequest {
                endpoint_id: endpoint.id.clone(),
                ..Default::default()
            },
        );
        async move {
            let listed = attempts.list_attempts(request).await.unwrap().into_inner();
            (listed.attempts.len() >= 2).then_some(listed)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = attempts
        .list_attempts(authed(
            &tenant.token,
            pb::ListAttemptsRequest {
                endpoint_id: endpoint.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.attempts.len(), 2, "{again:?}");
    assert_eq!(listed.attempts.len(), 2);
    let one = attempts
        .get_attempt(authed(
            &tenant.token,
            pb::GetAttemptRequest {
                attempt_id: record.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.response_code, 200);
    assert_eq!(one.status(), pb::AttemptStatus::Succeeded);
    let summary = herald
        .config()
        .get_summary(authed(&tenant.token, pb::GetSummaryRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.deliveries_succeeded, 2);
}

async fn hardening_19_attempt_duration_keeps_microseconds(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let tenant_id = herald_core::id::TenantId::parse(&tenant.id).unwrap();
    let endpoint_id = herald_core::id::EndpointId::parse(&endpoint.id).unwrap();
    let subject = herald
        .bus
        .topology()
        .attempt_subject(&tenant_id, &endpoint_id);
    // As the delivery service records them: a sub-millisecond answer and
    // one of a little over a millisecond (nanoseconds beyond the microsecond
    // are not kept).
    let durations = [
        ("dlv_fast", Duration::from_nanos(250_400)),
        ("dlv_slow", Duration::from_nanos(1_037_999)),
    ];
    for (delivery, duration) in durations {
        let mut record = attempt(&tenant.id, &endpoint.id, delivery, 1);
        record.duration = Some(prost_types::Duration::try_from(duration).unwrap());
        herald
            .bus
            .publish(
                subject.clone(),
                &record.id,
                async_nats::HeaderMap::new(),
                record.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let attempts = herald.attempts();
    for (delivery, expected_micros) in [("dlv_fast", 250), ("dlv_slow", 1_037)] {
        let stored = eventually("the attempt record", PATIENCE, || {
            let mut attempts = attempts.clone();
            let request = authed(
                &tenant.token,
                pb::GetAttemptRequest {
                    attempt_id: format!("att_{delivery}_1"),
                },
            );
            async move { attempts.get_attempt(request).await.ok() }
        })
        .await
        .into_inner();
        let duration = stored.duration.unwrap();
        assert_eq!(
            (duration.seconds, duration.nanos),
            (0, expected_micros * 1_000),
            "{delivery}"
        );
    }
}

/// Many records at once (the writer's batches fill, each spanning several
/// INSERTs), some redelivered under other message ids and one undecodable:
/// each attempt is stored once, and every message is settled (acknowledged
/// after its batch committed, the undecodable one terminated).
async fn attempt_writer_stores_large_batches_once_and_acknowledges_every_record(backend: Backend) {
    let herald = ConfigStack::start(backend).await;
    let tenant = herald.tenant("Acme").await;
    let endpoint = herald
        .create_endpoint(
            &tenant,
            endpoint_spec("Orders", "https://hooks.example.com/x"),
        )
        .await
        .unwrap()
        .endpoint
        .unwrap();
    let tenant_id = herald_core::id::TenantId::parse(&tenant.id).unwrap();
    let endpoint_id = herald_core::id::EndpointId::parse(&endpoint.id).unwrap();
    let subject = herald
        .bus
        .topology()
        .attempt_subject(&tenant_id, &endpoint_id);
    let records: Vec<pb::Attempt> = (0..1_500)
        .map(|i| attempt(&tenant.id, &endpoint.id, &format!("dlv_{i:05}"), 1))
        .collect();
    let outgoing = |message_id: String, payload: Vec<u8>| herald_bus::Outgoing {
        subject: subject.clone(),
        message_id,
        headers: async_nats::HeaderMap::new(),
        payload: payload.into(),
    };
    let mut messages: Vec<herald_bus::Outgoing> = records
        .iter()
        .map(|record| outgoing(record.id.clone(), record.encode_to_vec()))
        .collect();
    messages.push(outgoing("garbage".into(), vec![0xff; 16]));
    // Redeliveries from outside the bus's duplicate window, among the rest.
    for i in [0, 499, 500, 1_499] {
        messages.push(outgoing(
            format!("{}:again", records[i].id),
            records[i].encode_to_vec(),
        ));
    }
    for result in herald.bus.publish_all(messages).await {
        result.unwrap();
    }

    eventually("every attempt record settled", PATIENCE, || {
        let bus = herald.bus.clone();
        async move {
            let lag = bus
                .consumer_lag(herald_bus::ConsumerRole::AttemptWriter)
                .await
                .unwrap()?;
            (lag.pending == 0 && lag.ack_pending == 0).then_some(())
        }
    })
    .await;
    let stored = herald
        .store
        .list_attempts(
            &tenant.id,
            &herald_store::AttemptFilter::default(),
            10_000,
            None,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), records.len());
    let ids: BTreeSet<&str> = stored.iter().map(|stored| stored.id.as_str()).collect();
    assert_eq!(ids.len(), records.len());
    assert!(
        records
            .iter()
            .all(|record| ids.contains(record.id.as_str()))
    );
}
