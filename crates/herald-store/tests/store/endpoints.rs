//! Endpoints: round trips, updates, secrets, search and paging.

use crate::*;

on_both_backends!(
    endpoints_round_trip_within_their_tenant,
    endpoint_updates_write_every_mutable_column,
    endpoint_secret_bytes_are_stored_verbatim,
    endpoint_search_is_literal_and_ignores_case,
    endpoint_paging_is_stable_under_inserts,
);

async fn endpoints_round_trip_within_their_tenant(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    let mut given = endpoint("ep1", "t1");
    given.version = 99; // set by the store
    given.revision = 99;
    let inserted = store.insert_endpoint(&given).await.unwrap();
    let revision = store.current_revision().await.unwrap();
    assert_eq!(
        inserted,
        EndpointRecord {
            revision,
            ..endpoint("ep1", "t1")
        }
    );
    assert_eq!(
        store.get_endpoint("t1", "ep1").await.unwrap(),
        Some(inserted.clone())
    );
    assert!(store.get_endpoint("t2", "ep1").await.unwrap().is_none());
    assert_eq!(
        store.get_endpoint_by_id("ep1").await.unwrap(),
        Some(inserted.clone())
    );
    let error = store.insert_endpoint(&given).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::AlreadyExists {
                kind: "endpoint",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(store.current_revision().await.unwrap(), revision);

    let disabled = EndpointRecord {
        status: "disabled".to_owned(),
        ..endpoint("ep2", "t1")
    };
    store.insert_endpoint(&disabled).await.unwrap();
    store.insert_endpoint(&endpoint("ep3", "t1")).await.unwrap();
    store.insert_endpoint(&endpoint("epx", "t2")).await.unwrap();
    assert_eq!(
        store.count_endpoints_by_status("t1").await.unwrap(),
        [("active".to_owned(), 2), ("disabled".to_owned(), 1)]
    );
    assert!(
        store
            .count_endpoints_by_status("nobody")
            .await
            .unwrap()
            .is_empty()
    );
    let active = EndpointFilter {
        status: Some("active".to_owned()),
        ..EndpointFilter::default()
    };
    let listed = store.list_endpoints("t1", &active, 10, None).await.unwrap();
    assert_eq!(ids(&listed, |e| &e.id), ["ep1", "ep3"]);

    assert!(store.delete_endpoint("t2", "ep1").await.unwrap().is_none());
    assert!(store.delete_endpoint("t1", "ep1").await.unwrap().is_some());
    assert!(store.delete_endpoint("t1", "ep1").await.unwrap().is_none());
    let all = store.all_endpoints().await.unwrap();
    assert_eq!(ids(&all, |e| &e.id), ["ep2", "ep3", "epx"]);
}

async fn endpoint_updates_write_every_mutable_column(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    let inserted = store.insert_endpoint(&endpoint("ep1", "t1")).await.unwrap();
    let change = EndpointRecord {
        name: "new name".to_owned(),
        url: "https://other.example/h".to_owned(),
        status: "failing".to_owned(),
        status_reason: "HTTP 500 for 3 days".to_owned(),
        spec: vec![7, 7, 7],
        secret_ciphertext: vec![4, 5, 6],
        previous_secret_ciphertext: Some(vec![0, 1, 2, 254, 255, 0]),
        previous_secret_expires_at: Some(at(3_600)),
        updated_at: at(60),
        created_at: at(-5), // not writable
        ..inserted.clone()
    };
    let updated = store.update_endpoint(&change, Some(1)).await.unwrap();
    let revision = store.current_revision().await.unwrap();
    assert!(revision > inserted.revision);
    assert_eq!(
        updated,
        EndpointRecord {
            created_at: inserted.created_at,
            version: 2,
            revision,
            ..change.clone()
        }
    );
    assert_eq!(
        store.get_endpoint("t1", "ep1").await.unwrap(),
        Some(updated.clone())
    );

    // Clearing the previous secret writes NULLs.
    let cleared = EndpointRecord {
        previous_secret_ciphertext: None,
        previous_secret_expires_at: None,
        ..updated.clone()
    };
    let stored = store.update_endpoint(&cleared, Some(2)).await.unwrap();
    assert_eq!(stored.previous_secret_ciphertext, None);
    assert_eq!(stored.previous_secret_expires_at, None);
    assert_eq!(stored.version, 3);

    let error = store.update_endpoint(&change, Some(2)).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::VersionConflict {
                kind: "endpoint",
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{error}"
    );
    let other_tenant = EndpointRecord {
        tenant_id: "t2".to_owned(),
        ..change.clone()
    };
    let error = store
        .update_endpoint(&other_tenant, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotFound {
                kind: "endpoint",
                ..
            }
        ),
        "{error}"
    );
    // Neither failure logged a change.
    assert_eq!(store.current_revision().await.unwrap(), stored.revision);
}

async fn endpoint_secret_bytes_are_stored_verbatim(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    let secret: Vec<u8> = (0..=255).rev().chain(0..=255).collect();
    let given = EndpointRecord {
        secret_ciphertext: secret.clone(),
        ..endpoint("ep1", "t1")
    };
    store.insert_endpoint(&given).await.unwrap();
    let raw: Vec<u8> = query_value(
        store,
        "SELECT secret_ciphertext FROM endpoints WHERE id = 'ep1'",
        "secret_ciphertext",
    )
    .await;
    assert_eq!(raw, secret);
    let length: i64 = query_value(
        store,
        "SELECT CAST(length(secret_ciphertext) AS BIGINT) AS n FROM endpoints WHERE id = 'ep1'",
        "n",
    )
    .await;
    assert_eq!(length, 512);
}

async fn endpoint_search_is_literal_and_ignores_case(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    let named = |id: &str, tenant_id: &str, name: &str, url: &str| EndpointRecord {
        name: name.to_owned(),
        url: url.to_owned(),
        ..endpoint(id, tenant_id)
    };
    for record in [
        named(
            "e1",
            "t1",
            "Billing Service",
            "https://billing.example/hook",
        ),
        named("e2", "t1", "Orders", "https://api.EXAMPLE.com/Orders"),
        named("e3", "t1", "100% uptime", "https://a.example/x"),
        named("e4", "t1", "1000 uptime", "https://b.example/x"),
        named("e5", "t1", "snake_case", "https://c.example/x"),
        named("e6", "t1", "snakeXcase", "https://d.example/x"),
        named("e7", "t1", "back\\slash", "https://e.example/x"),
        named(
            "e8",
            "t2",
            "Billing elsewhere",
            "https://billing.example/other",
        ),
    ] {
        store.insert_endpoint(&record).await.unwrap();
    }
    let search = |text: &str| EndpointFilter {
        search: Some(text.to_owned()),
        status: None,
    };
    let cases: [(&str, &[&str]); 10] = [
        ("billing", &["e1"]),
        ("BILLING", &["e1"]),
        ("example.com/orders", &["e2"]),
        ("ORD", &["e2"]),
        ("0%", &["e3"]),
        ("%", &["e3"]),
        ("_", &["e5"]),
        ("e_c", &["e5"]),
        ("\\", &["e7"]),
        ("", &["e1", "e2", "e3", "e4", "e5", "e6", "e7"]),
    ];
    for (text, expected) in cases {
        let found = store
            .list_endpoints("t1", &search(text), 100, None)
            .await
            .unwrap();
        assert_eq!(ids(&found, |e| &e.id), expected, "search {text:?}");
    }
    let both = EndpointFilter {
        search: Some("uptime".to_owned()),
        status: Some("disabled".to_owned()),
    };
    assert!(
        store
            .list_endpoints("t1", &both, 100, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn endpoint_paging_is_stable_under_inserts(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    // Even ids exist before paging starts; odd ids arrive between pages,
    // both before and after the cursor.
    let existing: Vec<String> = (0..1_000).map(|i| format!("ep{:05}", i * 2)).collect();
    let writers: Vec<_> = existing
        .chunks(125)
        .map(|chunk| {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for id in chunk {
                    store.insert_endpoint(&endpoint(&id, "t1")).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let filter = EndpointFilter::default();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut page_number = 0;
    loop {
        let page = store
            .list_endpoints("t1", &filter, 97, after.as_deref())
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.iter().map(|e| e.id.clone()));
        for offset in [1, 401] {
            let id = format!("ep{:05}", (page_number * 194 + offset) % 2_000);
            store.insert_endpoint(&endpoint(&id, "t1")).await.unwrap();
        }
        page_number += 1;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages come in id order");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no endpoint is returned twice");
    let old: Vec<&String> = seen
        .iter()
        .filter(|id| existing.binary_search(id).is_ok())
        .collect();
    assert_eq!(old, existing.iter().collect::<Vec<_>>());
}
