//! The attempt log: stored once, listed, counted, retained, and the
//! queries recovery plans with.

use crate::*;

on_both_backends!(
    attempts_are_stored_once,
    attempts_list_newest_first_with_filters_and_cursor,
    delivery_counts_classify_deliveries,
    failed_deliveries_are_those_ending_failed_since_a_time,
    endpoints_failing_without_success_are_found,
    retention_deletes_old_attempts,
    hardening_19_attempt_durations_keep_microseconds_and_old_rows_read,
    request_bodies_are_kept_and_purged_by_endpoint,
    attempts_filter_by_device_and_channel,
    endpoint_activity_is_read_for_a_page_of_endpoints_at_once,
);
on_both_backends_with_two_stores!(attempts_written_by_two_writers_at_once_are_stored_once);

async fn attempts_are_stored_once(store: &Store) {
    let batch = [
        attempt("a1", "d1", "retrying", 0),
        attempt("a2", "d1", "succeeded", 10),
        attempt("a3", "d2", "failed", 20),
    ];
    assert_eq!(store.insert_attempts(&batch).await.unwrap(), 3);
    assert_eq!(store.insert_attempts(&batch).await.unwrap(), 0);
    assert_eq!(store.insert_attempts(&[]).await.unwrap(), 0);
    // Partly new, with a duplicate inside the batch itself.
    let mixed = [
        attempt("a3", "d2", "failed", 20),
        attempt("a4", "d3", "dead", 30),
        attempt("a4", "d3", "dead", 30),
    ];
    assert_eq!(store.insert_attempts(&mixed).await.unwrap(), 1);
    // More than one INSERT's worth.
    let many: Vec<AttemptRecord> = (0..1_200)
        .map(|i| attempt(&format!("b{i:04}"), &format!("db{i}"), "succeeded", 100))
        .collect();
    assert_eq!(store.insert_attempts(&many).await.unwrap(), 1_200);
    assert_eq!(store.insert_attempts(&many).await.unwrap(), 0);
    // A pulled batch spanning several INSERTs, with a record redelivered
    // from an earlier batch and one listed twice across an INSERT boundary
    // (256 rows per statement at most).
    let mut redelivered: Vec<AttemptRecord> = (0..600)
        .map(|i| attempt(&format!("c{i:04}"), &format!("dc{i}"), "succeeded", 200))
        .collect();
    redelivered[0] = attempt("b0007", "db7", "succeeded", 100);
    redelivered[256] = redelivered[255].clone();
    redelivered[599] = AttemptRecord {
        next_attempt_at: Some(at(300)),
        response_body: vec![1, 2, 3],
        ..attempt("c0599", "dc599", "retrying", 250)
    };
    assert_eq!(store.insert_attempts(&redelivered).await.unwrap(), 598);
    assert_eq!(
        store.get_attempt("t1", "c0599").await.unwrap().as_ref(),
        redelivered.last()
    );
    let stored: i64 = query_value(store, "SELECT COUNT(*) AS n FROM attempts", "n").await;
    assert_eq!(stored, 4 + 1_200 + 598);

    let full = AttemptRecord {
        next_attempt_at: Some(at(70)),
        test: true,
        error: "connection refused".to_owned(),
        response_body: vec![0, 255, 10],
        ..attempt("a9", "d9", "retrying", 40)
    };
    store
        .insert_attempts(std::slice::from_ref(&full))
        .await
        .unwrap();
    assert_eq!(store.get_attempt("t1", "a9").await.unwrap(), Some(full));
    assert!(store.get_attempt("t2", "a9").await.unwrap().is_none());
    // Attempts are not watched state.
    assert_eq!(store.current_revision().await.unwrap(), 0);
}

async fn endpoint_activity_is_read_for_a_page_of_endpoints_at_once(store: &Store) {
    let on = |endpoint: &str, tenant: &str, id: &str, status: &str, offset: i64, code: i32| {
        AttemptRecord {
            endpoint_id: endpoint.to_owned(),
            tenant_id: tenant.to_owned(),
            response_code: code,
            ..attempt(id, &format!("d-{id}"), status, offset)
        }
    };
    store
        .insert_attempts(&[
            on("ep1", "t1", "a1", "succeeded", 0, 200),
            on("ep1", "t1", "a2", "failed", 10, 500),
            on("ep1", "t1", "a3", "retrying", 20, 503),
            on("ep2", "t1", "b1", "dead", 0, 0),
            on("ep2", "t1", "b2", "failed", 30, 404),
            // Another tenant's attempts on an endpoint of the same id.
            on("ep1", "t2", "c1", "succeeded", 40, 200),
        ])
        .await
        .unwrap();
    let ids = ["ep1", "ep2", "ep3"].map(str::to_owned);
    let activity = store.endpoint_activity("t1", &ids, at(5)).await.unwrap();
    assert_eq!(
        activity.get("ep1"),
        Some(&EndpointActivity {
            last_attempt: Some((at(20), "retrying".to_owned(), 503)),
            last_success_at: Some(at(0)),
            consecutive_failures: 2,
            window_attempts: 2,
            window_succeeded: 0,
        })
    );
    assert_eq!(
        activity.get("ep2"),
        Some(&EndpointActivity {
            last_attempt: Some((at(30), "failed".to_owned(), 404)),
            last_success_at: None,
            consecutive_failures: 2,
            window_attempts: 1,
            window_succeeded: 0,
        })
    );
    assert!(!activity.contains_key("ep3"));
    assert!(
        store
            .endpoint_activity("t1", &[], at(0))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn attempts_filter_by_device_and_channel(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    for record in [
        device("waba1", "t1", "waba"),
        device("waba2", "t1", "waba"),
        device("tg1", "t1", "telegram"),
        // Another tenant's WABA line with a colliding attempt device id
        // must not widen t1's channel filter.
        device("waba9", "t2", "waba"),
    ] {
        store.insert_device(&record).await.unwrap();
    }
    let from = |id: &str, device: &str| AttemptRecord {
        device_id: device.to_owned(),
        ..attempt(id, &format!("d-{id}"), "succeeded", 0)
    };
    store
        .insert_attempts(&[
            from("a1", "waba1"),
            from("a2", "waba2"),
            from("a3", "tg1"),
            from("a4", ""),
            from("a5", "waba9"),
        ])
        .await
        .unwrap();
    let ids = async |filter: AttemptFilter| {
        let mut ids: Vec<String> = store
            .list_attempts("t1", &filter, 100, None)
            .await
            .unwrap()
            .into_iter()
            .map(|attempt| attempt.id)
            .collect();
        ids.sort();
        ids
    };
    let channel = |name: &str| AttemptFilter {
        channel: Some(name.to_owned()),
        ..AttemptFilter::default()
    };
    assert_eq!(ids(channel("waba")).await, ["a1", "a2"]);
    assert_eq!(ids(channel("telegram")).await, ["a3"]);
    assert_eq!(ids(channel("internal")).await, ["a4"]);
    assert!(ids(channel("whatsapp")).await.is_empty());
    let by_device = AttemptFilter {
        device_id: Some("waba2".to_owned()),
        ..AttemptFilter::default()
    };
    assert_eq!(ids(by_device).await, ["a2"]);
}

async fn request_bodies_are_kept_and_purged_by_endpoint(store: &Store) {
    let big = AttemptRecord {
        request_body: vec![b'x'; 65_536],
        request_body_size: 100_000,
        ..attempt("big", "d1", "succeeded", 0)
    };
    let other_endpoint = AttemptRecord {
        endpoint_id: "ep2".to_owned(),
        ..attempt("other", "d2", "succeeded", 10)
    };
    let other_tenant = AttemptRecord {
        tenant_id: "t2".to_owned(),
        ..attempt("foreign", "d3", "succeeded", 20)
    };
    store
        .insert_attempts(&[big.clone(), other_endpoint.clone(), other_tenant.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.get_attempt("t1", "big").await.unwrap(),
        Some(big.clone())
    );

    assert_eq!(store.purge_request_bodies("t1", "ep1").await.unwrap(), 1);
    assert_eq!(store.purge_request_bodies("t1", "ep1").await.unwrap(), 0);
    let purged = store.get_attempt("t1", "big").await.unwrap().unwrap();
    assert!(purged.request_body.is_empty());
    assert_eq!(purged.request_body_size, 100_000);
    assert_eq!(
        store.get_attempt("t1", "other").await.unwrap(),
        Some(other_endpoint)
    );
    assert_eq!(
        store.get_attempt("t2", "foreign").await.unwrap(),
        Some(other_tenant)
    );
}

async fn hardening_19_attempt_durations_keep_microseconds_and_old_rows_read(store: &Store) {
    let fast = AttemptRecord {
        duration_micros: 250,
        ..attempt("fast", "d1", "succeeded", 0)
    };
    let old = attempt("old", "d2", "succeeded", 10);
    store.insert_attempts(&[fast.clone(), old]).await.unwrap();
    assert_eq!(
        store
            .get_attempt("t1", "fast")
            .await
            .unwrap()
            .unwrap()
            .duration_micros,
        250
    );
    // Whole milliseconds are still written, for releases that read only them.
    assert_eq!(
        query_value::<i64>(
            store,
            "SELECT duration_ms FROM attempts WHERE id = 'old'",
            "duration_ms"
        )
        .await,
        42
    );
    // A row written before the microseconds column existed has none.
    store
        .connection()
        .execute_unprepared("UPDATE attempts SET duration_micros = NULL WHERE id = 'old'")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_attempt("t1", "old")
            .await
            .unwrap()
            .unwrap()
            .duration_micros,
        42_000
    );
}

async fn attempts_list_newest_first_with_filters_and_cursor(store: &Store) {
    let mut records = Vec::new();
    for i in 0..30_i64 {
        let mut record = attempt(
            &format!("a{i:02}"),
            &format!("d{}", i / 3),
            ["succeeded", "retrying", "failed"][(i % 3) as usize],
            // Pairs share an instant, so the id breaks ties.
            i / 2,
        );
        record.endpoint_id = if i % 2 == 0 { "ep1" } else { "ep2" }.to_owned();
        record.event_type = if i < 10 { "a.b" } else { "c.d" }.to_owned();
        records.push(record);
    }
    let mut elsewhere = attempt("z1", "dz", "succeeded", 5);
    elsewhere.tenant_id = "t2".to_owned();
    records.push(elsewhere);
    store.insert_attempts(&records).await.unwrap();

    let list = |filter: AttemptFilter, limit: u64, after: Option<AttemptCursor>| {
        let store = store.clone();
        async move {
            let found = store
                .list_attempts("t1", &filter, limit, after.as_ref())
                .await
                .unwrap();
            ids(&found, |a| &a.id)
        }
    };
    let newest_first: Vec<String> = (0..30).rev().map(|i| format!("a{i:02}")).collect();
    assert_eq!(
        list(AttemptFilter::default(), 100, None).await,
        newest_first
    );

    // Paging with the cursor walks the same order, ties included.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_attempts("t1", &AttemptFilter::default(), 7, cursor.as_ref())
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(AttemptCursor::after(last));
        paged.extend(ids(&page, |a| &a.id));
    }
    assert_eq!(paged, newest_first);

    let by_endpoint = AttemptFilter {
        endpoint_id: Some("ep2".to_owned()),
        ..AttemptFilter::default()
    };
    let expected: Vec<String> = (0..30)
        .rev()
        .filter(|i| i % 2 == 1)
        .map(|i| format!("a{i:02}"))
        .collect();
    assert_eq!(list(by_endpoint, 100, None).await, expected);

    let by_type_and_status = AttemptFilter {
        event_type: Some("a.b".to_owned()),
        status: Some("failed".to_owned()),
        ..AttemptFilter::default()
    };
    assert_eq!(
        list(by_type_and_status, 100, None).await,
        ["a08", "a05", "a02"]
    );

    let by_event = AttemptFilter {
        event_id: Some("evt-d4".to_owned()),
        ..AttemptFilter::default()
    };
    assert_eq!(list(by_event, 100, None).await, ["a14", "a13", "a12"]);

    // since is inclusive, until exclusive: instants 3 and 4 are a06..a09.
    let window = AttemptFilter {
        since: Some(at(3)),
        until: Some(at(5)),
        ..AttemptFilter::default()
    };
    assert_eq!(
        list(window.clone(), 100, None).await,
        ["a09", "a08", "a07", "a06"]
    );
    let cursor = AttemptCursor {
        attempted_at: at(4),
        id: "a09".to_owned(),
    };
    assert_eq!(list(window, 2, Some(cursor)).await, ["a08", "a07"]);
}

async fn delivery_counts_classify_deliveries(store: &Store) {
    let mut records = vec![
        // Succeeded after a retry.
        attempt("a1", "ok", "retrying", 10),
        attempt("a2", "ok", "succeeded", 20),
        // Failed for good.
        attempt("a3", "bad", "retrying", 10),
        attempt("a4", "bad", "failed", 20),
        // Dead-lettered.
        attempt("a5", "dead", "dead", 10),
        // Still retrying.
        attempt("a6", "wait", "retrying", 10),
        attempt("a7", "wait", "retrying", 20),
        // Skipped: no outcome.
        attempt("a8", "skip", "skipped", 10),
        // Succeeded, though an earlier attempt was recorded as failed.
        attempt("a9", "both", "failed", 10),
        attempt("a10", "both", "succeeded", 11),
        // Its only attempt in the window is a retry; the success is older.
        attempt("a11", "old", "succeeded", -100),
        attempt("a12", "old", "retrying", 10),
    ];
    let mut elsewhere = attempt("z1", "other", "succeeded", 10);
    elsewhere.tenant_id = "t2".to_owned();
    records.push(elsewhere);
    store.insert_attempts(&records).await.unwrap();

    assert_eq!(
        store.delivery_counts("t1", at(0)).await.unwrap(),
        DeliveryCounts {
            succeeded: 2,
            failed: 2,
            pending: 2,
        }
    );
    // since is inclusive.
    assert_eq!(
        store.delivery_counts("t1", at(20)).await.unwrap(),
        DeliveryCounts {
            succeeded: 1,
            failed: 1,
            pending: 1,
        }
    );
    assert_eq!(
        store.delivery_counts("t1", at(1_000)).await.unwrap(),
        DeliveryCounts::default()
    );
    assert_eq!(
        store.delivery_counts("nobody", at(0)).await.unwrap(),
        DeliveryCounts::default()
    );
}

async fn retention_deletes_old_attempts(store: &Store) {
    let mut records = vec![
        attempt("a1", "d1", "succeeded", -20),
        attempt("a2", "d2", "succeeded", -10),
        attempt("a3", "d3", "succeeded", 0),
        attempt("a4", "d4", "succeeded", 10),
    ];
    let mut elsewhere = attempt("z1", "dz", "succeeded", -30);
    elsewhere.tenant_id = "t2".to_owned();
    records.push(elsewhere);
    store.insert_attempts(&records).await.unwrap();

    assert_eq!(store.delete_attempts_before(at(0)).await.unwrap(), 3);
    assert_eq!(store.delete_attempts_before(at(0)).await.unwrap(), 0);
    let left = store
        .list_attempts("t1", &AttemptFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&left, |a| &a.id), ["a4", "a3"]);
    assert!(store.get_attempt("t2", "z1").await.unwrap().is_none());
}

async fn failed_deliveries_are_those_ending_failed_since_a_time(store: &Store) {
    let numbered =
        |id: &str, delivery: &str, status: &str, offset: i64, number: i32| AttemptRecord {
            attempt: number,
            ..attempt(id, delivery, status, offset)
        };
    store
        .insert_attempts(&[
            // Dead after two attempts, within the window.
            numbered("a1", "d1", "retrying", 10, 1),
            numbered("a2", "d1", "dead", 20, 2),
            // Dead, but before the window.
            numbered("a3", "d2", "dead", 1, 1),
            // Failed, then succeeded when redriven.
            numbered("a4", "d3", "dead", 20, 1),
            numbered("a5", "d3", "succeeded", 30, 2),
            // Still retrying.
            numbered("a6", "d4", "retrying", 20, 1),
            // Failed, then retrying again after a recovery.
            numbered("a7", "d5", "failed", 20, 1),
            numbered("a8", "d5", "retrying", 30, 2),
            // A failed test.
            AttemptRecord {
                test: true,
                ..numbered("a9", "d6", "failed", 20, 1)
            },
            // Another endpoint's.
            AttemptRecord {
                endpoint_id: "ep2".to_owned(),
                ..numbered("a10", "d7", "dead", 20, 1)
            },
        ])
        .await
        .unwrap();
    let failed = store
        .failed_deliveries("t1", "ep1", at(5), 100)
        .await
        .unwrap();
    assert_eq!(
        failed,
        [herald_store::FailedDelivery {
            delivery_id: "d1".to_owned(),
            event_id: "evt-d1".to_owned(),
            last_attempt: 2,
        }]
    );
    assert_eq!(
        store.last_attempt_number("t1", "d5").await.unwrap(),
        Some(2)
    );
    assert_eq!(store.last_attempt_number("t1", "nope").await.unwrap(), None);
    assert_eq!(store.last_attempt_number("t2", "d5").await.unwrap(), None);
}

async fn endpoints_failing_without_success_are_found(store: &Store) {
    let on = |endpoint: &str, id: &str, status: &str, offset: i64| AttemptRecord {
        endpoint_id: endpoint.to_owned(),
        ..attempt(id, id, status, offset)
    };
    store
        .insert_attempts(&[
            // Succeeded, then failing since 10 and still being tried at 50.
            on("long", "a1", "succeeded", 5),
            on("long", "a2", "retrying", 10),
            on("long", "a3", "dead", 50),
            // Failing only since 40.
            on("recent", "a4", "retrying", 40),
            on("recent", "a5", "dead", 50),
            // Failing long ago, but it succeeded since.
            on("healed", "a6", "dead", 10),
            on("healed", "a7", "succeeded", 45),
            // Failed long ago and nothing since.
            on("idle", "a8", "dead", 10),
        ])
        .await
        .unwrap();
    let failing = store.endpoints_failing_since(at(30)).await.unwrap();
    assert_eq!(
        failing,
        [herald_store::FailingEndpoint {
            tenant_id: "t1".to_owned(),
            endpoint_id: "long".to_owned(),
            failing_since: at(10),
        }]
    );
}

/// Two config replicas writing overlapping batches at once (a record
/// redelivered to the other replica while the first still writes it): each
/// attempt is stored once.
async fn attempts_written_by_two_writers_at_once_are_stored_once(one: &Store, two: &Store) {
    let records: Vec<AttemptRecord> = (0..1_000)
        .map(|i| attempt(&format!("r{i:04}"), &format!("dr{i}"), "succeeded", 0))
        .collect();
    // The second writer sees its records in the opposite order.
    let first = records[..700].to_vec();
    let second: Vec<AttemptRecord> = records[300..].iter().rev().cloned().collect();
    let write = |store: &Store, batch: Vec<AttemptRecord>| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut inserted = 0;
            for chunk in batch.chunks(200) {
                inserted += store.insert_attempts(chunk).await.unwrap();
            }
            inserted
        })
    };
    let (one_inserted, two_inserted) = (write(one, first), write(two, second));
    let inserted = one_inserted.await.unwrap() + two_inserted.await.unwrap();
    assert_eq!(inserted, 1_000);
    let stored: i64 = query_value(one, "SELECT COUNT(*) AS n FROM attempts", "n").await;
    assert_eq!(stored, 1_000);
}
