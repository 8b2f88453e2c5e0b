//! The tenant's event-type catalog.

use crate::*;

on_both_backends!(event_types_round_trip, a_schema_is_optional,);

/// The schema column (m0004) stores the text as given, and empty stays
/// empty: a type without a schema accepts any data.
async fn a_schema_is_optional(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    let mut without = event_type("t1", "order.paid");
    without.schema = String::new();
    store.insert_event_type(&without).await.unwrap();
    let with = event_type("t1", "order.sent");
    store.insert_event_type(&with).await.unwrap();
    assert_eq!(
        store.get_event_type("t1", "order.paid").await.unwrap(),
        Some(without)
    );
    let stored = store
        .get_event_type("t1", "order.sent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.schema, r#"{"type":"object","required":["a"]}"#);
}

async fn event_types_round_trip(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    for name in ["order.paid", "invoice.sent", "order.created"] {
        store
            .insert_event_type(&event_type("t1", name))
            .await
            .unwrap();
    }
    // The same name in another tenant is another type.
    store
        .insert_event_type(&event_type("t2", "order.paid"))
        .await
        .unwrap();
    let error = store
        .insert_event_type(&event_type("t1", "order.paid"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { kind: "event_type", id } if id == "order.paid"),
        "{error}"
    );

    assert_eq!(
        store.get_event_type("t1", "order.paid").await.unwrap(),
        Some(event_type("t1", "order.paid"))
    );
    assert!(
        store
            .get_event_type("t2", "invoice.sent")
            .await
            .unwrap()
            .is_none()
    );
    let listed = store.list_event_types("t1", 10, None).await.unwrap();
    assert_eq!(
        ids(&listed, |e| &e.name),
        ["invoice.sent", "order.created", "order.paid"]
    );
    let page = store
        .list_event_types("t1", 1, Some("invoice.sent"))
        .await
        .unwrap();
    assert_eq!(ids(&page, |e| &e.name), ["order.created"]);

    assert!(!store.delete_event_type("t2", "invoice.sent").await.unwrap());
    assert!(store.delete_event_type("t1", "order.paid").await.unwrap());
    assert!(!store.delete_event_type("t1", "order.paid").await.unwrap());
    let all = store.all_event_types().await.unwrap();
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|e| (e.tenant_id.clone(), e.name.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("t1".to_owned(), "invoice.sent".to_owned()),
            ("t1".to_owned(), "order.created".to_owned()),
            ("t2".to_owned(), "order.paid".to_owned()),
        ]
    );
}
