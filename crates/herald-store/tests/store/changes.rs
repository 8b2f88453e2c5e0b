//! The change log the Watch stream serves: one change a mutation, in
//! commit order, paged and pruned, and snapshots.

use crate::*;

on_both_backends!(
    every_mutation_logs_one_change,
    deleting_a_tenant_deletes_and_logs_everything_it_owns,
    the_change_log_pages_and_prunes,
    concurrent_writes_get_contiguous_revisions,
    snapshot_matches_the_current_revision,
);

on_both_backends_with_two_stores!(two_writers_interleave_revisions_in_commit_order);

async fn every_mutation_logs_one_change(store: &Store) {
    use ObjectKind::*;
    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(store.oldest_revision().await.unwrap(), None);

    let mut expected = Vec::new();
    let mut revisions = Vec::new();
    let mut expect = |kind, id: &str, deleted| expected.push((kind, id.to_owned(), deleted));

    revisions.push(store.insert_tenant(&tenant("t1")).await.unwrap());
    expect(Tenant, "t1", false);
    store
        .update_tenant("t1", Some("renamed"), None, Some(1), at(10))
        .await
        .unwrap();
    expect(Tenant, "t1", false);
    revisions.push(store.insert_token(&token("tok1", "t1")).await.unwrap());
    expect(Token, "tok1", false);
    store.revoke_token("tok1", at(11)).await.unwrap();
    expect(Token, "tok1", false);
    store.touch_token("tok1", at(12)).await.unwrap(); // not logged
    revisions.push(
        store
            .insert_device(&device("d1", "t1", "waba"))
            .await
            .unwrap(),
    );
    expect(Device, "d1", false);
    store
        .update_device(&device("d1", "t1", "waba"), Some(1))
        .await
        .unwrap();
    expect(Device, "d1", false);
    assert!(store.delete_device("t1", "d1").await.unwrap());
    expect(Device, "d1", true);
    let inserted = store.insert_endpoint(&endpoint("ep1", "t1")).await.unwrap();
    revisions.push(inserted.revision);
    expect(Endpoint, "ep1", false);
    let updated = store.update_endpoint(&inserted, Some(1)).await.unwrap();
    revisions.push(updated.revision);
    expect(Endpoint, "ep1", false);
    assert!(store.delete_endpoint("t1", "ep1").await.unwrap().is_some());
    expect(Endpoint, "ep1", true);
    revisions.push(
        store
            .insert_event_type(&event_type("t1", "x.y"))
            .await
            .unwrap(),
    );
    expect(EventType, "x.y", false);
    assert!(store.delete_event_type("t1", "x.y").await.unwrap());
    expect(EventType, "x.y", true);
    store
        .insert_attempts(&[attempt("a1", "d1", "succeeded", 0)])
        .await
        .unwrap(); // not logged

    // Failures and no-ops log nothing.
    store.insert_tenant(&tenant("t1")).await.unwrap_err();
    store
        .update_tenant("t1", Some("stale"), None, Some(1), at(13))
        .await
        .unwrap_err();
    store.revoke_token("tok1", at(14)).await.unwrap();
    assert!(!store.delete_device("t1", "d1").await.unwrap());
    assert!(store.delete_endpoint("t1", "ep1").await.unwrap().is_none());
    assert!(!store.delete_event_type("t1", "x.y").await.unwrap());
    assert!(!store.delete_tenant("nope").await.unwrap());

    let changes = changes_after(store, 0).await;
    assert_eq!(summary(&changes), expected);
    let logged: Vec<i64> = changes.iter().map(|c| c.revision).collect();
    let contiguous: Vec<i64> = (1..=expected.len() as i64).collect();
    assert_eq!(logged, contiguous, "revisions increase without gaps");
    for revision in revisions {
        assert!(logged.contains(&revision));
    }
    assert!(changes.iter().all(|c| c.tenant_id == "t1"));
    let now = OffsetDateTime::now_utc();
    assert!(
        changes
            .iter()
            .all(|c| (now - c.changed_at).abs() < Duration::minutes(5))
    );
    assert_eq!(
        store.current_revision().await.unwrap(),
        expected.len() as i64
    );
    assert_eq!(store.oldest_revision().await.unwrap(), Some(1));
}

async fn deleting_a_tenant_deletes_and_logs_everything_it_owns(store: &Store) {
    use ObjectKind::*;
    for id in ["t1", "t2"] {
        store.insert_tenant(&tenant(id)).await.unwrap();
        store
            .insert_token(&token(&format!("tok-{id}"), id))
            .await
            .unwrap();
        store
            .insert_device(&device(&format!("dev-{id}"), id, "waba"))
            .await
            .unwrap();
        store
            .insert_endpoint(&endpoint(&format!("ep-{id}"), id))
            .await
            .unwrap();
        store
            .insert_event_type(&event_type(id, "x.y"))
            .await
            .unwrap();
        let mut record = attempt(&format!("a-{id}"), "d", "succeeded", 0);
        record.tenant_id = id.to_owned();
        store.insert_attempts(&[record]).await.unwrap();
    }
    store.insert_token(&token("tok-b", "t1")).await.unwrap();
    store.revoke_token("tok-b", at(5)).await.unwrap();
    let before = store.current_revision().await.unwrap();

    assert!(store.delete_tenant("t1").await.unwrap());
    let changes = changes_after(store, before).await;
    let mut logged = summary(&changes);
    logged.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    assert_eq!(
        logged,
        [
            (Device, "dev-t1".to_owned(), true),
            (Endpoint, "ep-t1".to_owned(), true),
            (EventType, "x.y".to_owned(), true),
            (Tenant, "t1".to_owned(), true),
            (Token, "tok-b".to_owned(), true),
            (Token, "tok-t1".to_owned(), true),
        ]
    );
    assert!(changes.iter().all(|c| c.tenant_id == "t1"));
    assert_eq!(changes.last().unwrap().kind, Tenant);

    assert!(store.get_tenant("t1").await.unwrap().is_none());
    assert!(store.get_token("tok-t1").await.unwrap().is_none());
    assert!(store.get_device_by_id("dev-t1").await.unwrap().is_none());
    assert!(store.get_endpoint_by_id("ep-t1").await.unwrap().is_none());
    assert!(store.get_event_type("t1", "x.y").await.unwrap().is_none());
    assert!(store.get_attempt("t1", "a-t1").await.unwrap().is_none());
    // The other tenant is untouched.
    assert!(store.get_tenant("t2").await.unwrap().is_some());
    assert!(store.get_token("tok-t2").await.unwrap().is_some());
    assert!(store.get_device("t2", "dev-t2").await.unwrap().is_some());
    assert!(store.get_endpoint("t2", "ep-t2").await.unwrap().is_some());
    assert!(store.get_event_type("t2", "x.y").await.unwrap().is_some());
    assert!(store.get_attempt("t2", "a-t2").await.unwrap().is_some());

    // Objects cannot be created for a tenant that is gone.
    let error = store
        .insert_device(&device("dev-late", "t1", "waba"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { kind: "tenant", .. }),
        "{error}"
    );
}

async fn the_change_log_pages_and_prunes(store: &Store) {
    for i in 0..10 {
        store
            .insert_tenant(&tenant(&format!("t{i}")))
            .await
            .unwrap();
    }
    let page = store.changes_since(3, 4).await.unwrap();
    let revisions: Vec<i64> = page.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, [4, 5, 6, 7]);
    assert!(store.changes_since(10, 5).await.unwrap().is_empty());

    let past = OffsetDateTime::now_utc() - Duration::hours(1);
    assert_eq!(store.prune_changes_before(past).await.unwrap(), 0);
    let future = OffsetDateTime::now_utc() + Duration::hours(1);
    // Everything is older than the cutoff, but the newest change stays.
    assert_eq!(store.prune_changes_before(future).await.unwrap(), 9);
    assert_eq!(store.prune_changes_before(future).await.unwrap(), 0);
    assert_eq!(store.oldest_revision().await.unwrap(), Some(10));
    assert_eq!(store.current_revision().await.unwrap(), 10);
    assert_eq!(
        summary(&changes_after(store, 0).await),
        [(ObjectKind::Tenant, "t9".to_owned(), false)]
    );
    // Revisions continue after pruning.
    assert_eq!(store.insert_tenant(&tenant("t10")).await.unwrap(), 11);
}

async fn concurrent_writes_get_contiguous_revisions(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_device(&device(&format!("d{i:02}"), "t1", "waba"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut returned = Vec::new();
    for task in tasks {
        returned.push(task.await.unwrap());
    }
    returned.sort_unstable();
    let expected: Vec<i64> = (2..=41).collect();
    assert_eq!(returned, expected);
    let changes = changes_after(store, 1).await;
    let logged: HashSet<String> = changes.iter().map(|c| c.object_id.clone()).collect();
    assert_eq!(logged.len(), 40);
    assert_eq!(
        changes.iter().map(|c| c.revision).collect::<Vec<_>>(),
        expected
    );
}

async fn two_writers_interleave_revisions_in_commit_order(one: &Store, two: &Store) {
    one.insert_tenant(&tenant("t1")).await.unwrap();
    let writer = |store: &Store, prefix: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..15 {
                let id = format!("{prefix}{i:02}");
                revisions.push(
                    store
                        .insert_device(&device(&id, "t1", "waba"))
                        .await
                        .unwrap(),
                );
            }
            revisions
        })
    };
    let (a, b) = (writer(one, "a"), writer(two, "b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    // Each writer sees its own revisions increase.
    assert!(a.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(b.windows(2).all(|pair| pair[0] < pair[1]));
    let mut all: Vec<i64> = a.into_iter().chain(b).collect();
    all.sort_unstable();
    assert_eq!(all, (2..=31).collect::<Vec<_>>());
    let logged = changes_after(two, 1).await;
    assert_eq!(logged.len(), 30);
    assert_eq!(two.current_revision().await.unwrap(), 31);
}

async fn snapshot_matches_the_current_revision(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_token(&token("tok1", "t1")).await.unwrap();
    store.insert_token(&token("tok2", "t1")).await.unwrap();
    store.revoke_token("tok2", at(1)).await.unwrap();
    store
        .insert_device(&device("d1", "t1", "waba"))
        .await
        .unwrap();
    let ep = store.insert_endpoint(&endpoint("ep1", "t1")).await.unwrap();
    store
        .insert_event_type(&event_type("t1", "x.y"))
        .await
        .unwrap();

    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.revision, store.current_revision().await.unwrap());
    assert_eq!(snapshot.tenants, [tenant("t1")]);
    assert_eq!(snapshot.tokens, [token("tok1", "t1")]);
    assert_eq!(snapshot.devices, [device("d1", "t1", "waba")]);
    assert_eq!(snapshot.endpoints, [ep]);
    assert_eq!(snapshot.event_types, [event_type("t1", "x.y")]);
}
