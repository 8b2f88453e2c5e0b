//! Migrations, connections, schemas and the errors the store answers.

use crate::*;

on_both_backends!(migrating_again_changes_nothing, corrupt_rows_are_errors,);

/// How many migrations the store has, each applied once.
const MIGRATIONS: i64 = 5;

async fn migrating_again_changes_nothing(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.get_tenant("t1").await.unwrap(), Some(tenant("t1")));
    let applied: i64 = query_value(store, "SELECT COUNT(*) AS n FROM seaql_migrations", "n").await;
    assert_eq!(applied, MIGRATIONS);
    assert_eq!(store.current_revision().await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_migrations_on_sqlite_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("herald.db").display());
    let (a, b) = (
        Store::connect(&url).await.unwrap(),
        Store::connect(&url).await.unwrap(),
    );
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    a.insert_tenant(&tenant("t1")).await.unwrap();
    assert!(b.get_tenant("t1").await.unwrap().is_some());
}

#[tokio::test]
async fn concurrent_migrations_on_postgres_apply_once() {
    let schema = herald_testkit::fresh_postgres_schema();
    let stores = [
        postgres_store(&schema).await,
        postgres_store(&schema).await,
        postgres_store(&schema).await,
    ];
    let (ra, rb, rc) = tokio::join!(
        stores[0].migrate(),
        stores[1].migrate(),
        stores[2].migrate()
    );
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    let applied: i64 = query_value(
        &stores[0],
        "SELECT COUNT(*) AS n FROM seaql_migrations",
        "n",
    )
    .await;
    assert_eq!(applied, MIGRATIONS);
    stores[1].insert_tenant(&tenant("t1")).await.unwrap();
    assert!(stores[2].get_tenant("t1").await.unwrap().is_some());
    Db {
        store: stores[0].clone(),
        _dir: None,
        schema: Some(schema),
    }
    .finish()
    .await;
}

#[tokio::test]
async fn schemas_isolate_postgres_stores() {
    let (one, two) = (Db::postgres().await, Db::postgres().await);
    one.store.insert_tenant(&tenant("t1")).await.unwrap();
    assert!(two.store.get_tenant("t1").await.unwrap().is_none());
    assert_eq!(two.store.current_revision().await.unwrap(), 0);
    one.finish().await;
    two.finish().await;
}

#[tokio::test]
async fn sqlite_refuses_a_schema_and_bad_schema_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("herald.db").display());
    let error = Store::connect_with(&StoreOptions::new(&url).with_schema("test_x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaNotSupported { .. }),
        "{error}"
    );
    for bad in [
        "",
        "1abc",
        "a;drop table x",
        "a\"b",
        "x".repeat(64).as_str(),
    ] {
        let options = StoreOptions::new("postgres://u:secret@127.0.0.1:1/db").with_schema(bad);
        let error = Store::connect_with(&options).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidSchema { .. }), "{error}");
    }
    let options = StoreOptions::new("postgres://u:secret@h/db");
    assert!(!format!("{options:?}").contains("secret"));
}

#[tokio::test]
async fn database_errors_name_the_operation_and_keep_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("herald.db").display());
    let store = Store::connect(&url).await.unwrap(); // not migrated: no tables
    let error = store.get_tenant("t1").await.unwrap_err();
    assert!(matches!(error, StoreError::Database { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("database error while reading a tenant: "),
        "{error}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

async fn corrupt_rows_are_errors(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store
        .connection()
        .execute_unprepared("UPDATE tenants SET created_at = 9223372036854775807")
        .await
        .unwrap();
    let error = store.get_tenant("t1").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { kind: "tenant", id, .. } if id == "t1"),
        "{error}"
    );
    assert!(store.all_tenants().await.is_err());

    store
        .connection()
        .execute_unprepared("UPDATE config_changes SET kind = 'gremlin'")
        .await
        .unwrap();
    let error = store.changes_since(0, 10).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Corrupt { kind: "change", .. }),
        "{error}"
    );
}
