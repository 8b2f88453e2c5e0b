//! Tenants and their tokens.

use crate::*;

on_both_backends!(
    tenants_round_trip,
    tenant_updates_check_the_version,
    tenant_quotas_are_stored_and_kept_by_a_rename,
    tokens_round_trip,
    token_revocation_is_idempotent,
);

async fn tenants_round_trip(store: &Store) {
    for id in ["t3", "t1", "t2"] {
        store.insert_tenant(&tenant(id)).await.unwrap();
    }
    let mut stale = tenant("t1");
    stale.version = 7; // the store sets the version
    assert_eq!(store.get_tenant("t1").await.unwrap(), Some(tenant("t1")));
    assert!(store.get_tenant("nope").await.unwrap().is_none());

    let error = store.insert_tenant(&stale).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { kind: "tenant", id } if id == "t1"),
        "{error}"
    );

    let all = store.list_tenants(10, None).await.unwrap();
    assert_eq!(ids(&all, |t| &t.id), ["t1", "t2", "t3"]);
    let page = store.list_tenants(1, Some("t1")).await.unwrap();
    assert_eq!(ids(&page, |t| &t.id), ["t2"]);
    assert!(store.list_tenants(10, Some("t3")).await.unwrap().is_empty());
    assert_eq!(store.all_tenants().await.unwrap(), all);

    assert!(store.delete_tenant("t2").await.unwrap());
    assert!(!store.delete_tenant("t2").await.unwrap());
    assert!(store.get_tenant("t2").await.unwrap().is_none());
}

async fn tenant_updates_check_the_version(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    let updated = store
        .update_tenant("t1", Some("Renamed"), None, Some(1), at(100))
        .await
        .unwrap();
    assert_eq!(
        updated,
        TenantRecord {
            name: "Renamed".to_owned(),
            updated_at: at(100),
            version: 2,
            ..tenant("t1")
        }
    );
    assert_eq!(store.get_tenant("t1").await.unwrap(), Some(updated));

    let error = store
        .update_tenant("t1", Some("Stale"), None, Some(1), at(101))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::VersionConflict { kind: "tenant", id, expected: 1, actual: 2 } if id == "t1"
        ),
        "{error}"
    );
    assert_eq!(
        store.get_tenant("t1").await.unwrap().unwrap().name,
        "Renamed"
    );

    // No expected version: last writer wins.
    let forced = store
        .update_tenant("t1", Some("Forced"), None, None, at(102))
        .await
        .unwrap();
    assert_eq!(forced.version, 3);

    let error = store
        .update_tenant("nope", Some("x"), None, None, at(103))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { kind: "tenant", id } if id == "nope"),
        "{error}"
    );
}

async fn tokens_round_trip(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    for (id, tenant_id) in [
        ("tok2", "t1"),
        ("tok1", "t1"),
        ("tok3", "t1"),
        ("tokx", "t2"),
    ] {
        store.insert_token(&token(id, tenant_id)).await.unwrap();
    }
    assert_eq!(
        store.get_token("tok1").await.unwrap(),
        Some(token("tok1", "t1"))
    );
    assert_eq!(
        store
            .find_token_by_secret_hash("sha256-of-tok2")
            .await
            .unwrap(),
        Some(token("tok2", "t1"))
    );
    assert!(
        store
            .find_token_by_secret_hash("unknown")
            .await
            .unwrap()
            .is_none()
    );

    let error = store.insert_token(&token("tok1", "t1")).await.unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { kind: "token", .. }),
        "{error}"
    );
    let same_secret = TokenRecord {
        id: "tok9".to_owned(),
        ..token("tok1", "t1")
    };
    let error = store.insert_token(&same_secret).await.unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { kind: "token", .. }),
        "{error}"
    );
    let error = store
        .insert_token(&token("tok8", "ghost"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { kind: "tenant", id } if id == "ghost"),
        "{error}"
    );

    let listed = store.list_tokens("t1", true, 10, None).await.unwrap();
    assert_eq!(ids(&listed, |t| &t.id), ["tok1", "tok2", "tok3"]);
    let page = store
        .list_tokens("t1", true, 1, Some("tok1"))
        .await
        .unwrap();
    assert_eq!(ids(&page, |t| &t.id), ["tok2"]);

    let before = store.current_revision().await.unwrap();
    store.touch_token("tok1", at(500)).await.unwrap();
    assert_eq!(
        store.get_token("tok1").await.unwrap().unwrap().last_used_at,
        Some(at(500))
    );
    assert_eq!(store.current_revision().await.unwrap(), before);
    let error = store.touch_token("nope", at(500)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { kind: "token", .. }),
        "{error}"
    );

    store.revoke_token("tok2", at(600)).await.unwrap();
    let active = store.list_tokens("t1", false, 10, None).await.unwrap();
    assert_eq!(ids(&active, |t| &t.id), ["tok1", "tok3"]);
    let all = store.all_tokens().await.unwrap();
    assert_eq!(ids(&all, |t| &t.id), ["tok1", "tok3", "tokx"]);
}

async fn token_revocation_is_idempotent(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_token(&token("tok1", "t1")).await.unwrap();
    let revoked = store.revoke_token("tok1", at(10)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let revision = store.current_revision().await.unwrap();

    let again = store.revoke_token("tok1", at(20)).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(10)));
    assert_eq!(again, revoked);
    assert_eq!(store.current_revision().await.unwrap(), revision);
    // Still found by its hash: the caller decides it is revoked.
    let found = store
        .find_token_by_secret_hash("sha256-of-tok1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(at(10)));

    let error = store.revoke_token("nope", at(30)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { kind: "token", .. }),
        "{error}"
    );
}

async fn tenant_quotas_are_stored_and_kept_by_a_rename(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    let quotas = TenantQuotasRecord {
        events_per_second: Some(2.5),
        events_burst: Some(10),
        max_in_flight_deliveries: Some(4),
        max_dead_letters: Some(1_000_000_000),
    };
    let updated = store
        .update_tenant("t1", None, Some(&quotas), Some(1), at(100))
        .await
        .unwrap();
    assert_eq!(updated.quotas, quotas);
    assert_eq!(updated.name, "Tenant t1", "no name given keeps it");
    assert_eq!(store.get_tenant("t1").await.unwrap(), Some(updated));

    let renamed = store
        .update_tenant("t1", Some("Renamed"), None, Some(2), at(101))
        .await
        .unwrap();
    assert_eq!(renamed.quotas, quotas, "a rename keeps the quotas");
    let cleared = store
        .update_tenant(
            "t1",
            None,
            Some(&TenantQuotasRecord::default()),
            None,
            at(102),
        )
        .await
        .unwrap();
    assert_eq!(cleared.quotas, TenantQuotasRecord::default());
    assert_eq!(store.get_tenant("t1").await.unwrap(), Some(cleared));
}
