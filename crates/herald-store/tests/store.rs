//! The store against real databases: every behaviour runs on SQLite (in a
//! temporary directory) and on PostgreSQL (`HERALD_TEST_POSTGRES_URL`, in a
//! fresh schema per test, so tests run in parallel and repeat). A PostgreSQL
//! that does not answer fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use herald_store::{
    AttemptCursor, AttemptFilter, AttemptRecord, ChangeRecord, DeliveryCounts, DeviceRecord,
    EndpointFilter, EndpointRecord, EventTypeRecord, ObjectKind, Store, StoreError, StoreOptions,
    TenantQuotasRecord, TenantRecord, TokenRecord,
};
use sea_orm::{ConnectionTrait, Statement};
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A migrated store and what keeps its database alive.
struct Db {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

/// Runs each named `async fn(&Store, &Store)` on both backends, with two
/// stores (two pools, as two processes would have) on one database.
macro_rules! on_both_backends_with_two_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = super::Db::sqlite().await;
                    let other = db.another_store().await;
                    super::$name(&db.store, &other).await;
                    db.finish().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let db = super::Db::postgres().await;
                    let other = db.another_store().await;
                    super::$name(&db.store, &other).await;
                    db.finish().await;
                }
            }
        )*
    };
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("herald.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Db {
            store,
            _dir: Some(dir),
            schema: None,
        }
    }

    async fn postgres() -> Db {
        let schema = herald_testkit::fresh_postgres_schema();
        let store = postgres_store(&schema).await;
        store.migrate().await.unwrap();
        Db {
            store,
            _dir: None,
            schema: Some(schema),
        }
    }

    /// A second, independent store on the same database.
    async fn another_store(&self) -> Store {
        match (&self._dir, &self.schema) {
            (Some(dir), _) => {
                let url = format!("sqlite:{}", dir.path().join("herald.db").display());
                Store::connect(&url).await.unwrap()
            }
            (None, Some(schema)) => postgres_store(schema).await,
            (None, None) => unreachable!("every test database is SQLite or a schema"),
        }
    }

    /// Drops the test's schema (only when the test passed, so a failure
    /// leaves it to inspect).
    async fn finish(self) {
        if let Some(schema) = self.schema {
            self.store
                .connection()
                .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
    }
}

async fn postgres_store(schema: &str) -> Store {
    let url = herald_testkit::postgres_url();
    let options = StoreOptions::new(&url).with_schema(schema);
    match Store::connect_with(&options).await {
        Ok(store) => store,
        Err(error) => {
            panic!("PostgreSQL is required for these tests (set HERALD_TEST_POSTGRES_URL): {error}")
        }
    }
}

/// Runs each named `async fn(&Store)` on both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = super::Db::sqlite().await;
                    super::$name(&db.store).await;
                    db.finish().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let db = super::Db::postgres().await;
                    super::$name(&db.store).await;
                    db.finish().await;
                }
            }
        )*
    };
}

on_both_backends!(
    migrating_again_changes_nothing,
    tenants_round_trip,
    tenant_updates_check_the_version,
    tenant_quotas_are_stored_and_kept_by_a_rename,
    tokens_round_trip,
    token_revocation_is_idempotent,
    devices_round_trip_within_their_tenant,
    device_updates_check_the_version,
    endpoints_round_trip_within_their_tenant,
    endpoint_updates_write_every_mutable_column,
    endpoint_secret_bytes_are_stored_verbatim,
    endpoint_search_is_literal_and_ignores_case,
    endpoint_paging_is_stable_under_inserts,
    event_types_round_trip,
    attempts_are_stored_once,
    attempts_list_newest_first_with_filters_and_cursor,
    delivery_counts_classify_deliveries,
    failed_deliveries_are_those_ending_failed_since_a_time,
    endpoints_failing_without_success_are_found,
    retention_deletes_old_attempts,
    every_mutation_logs_one_change,
    deleting_a_tenant_deletes_and_logs_everything_it_owns,
    the_change_log_pages_and_prunes,
    concurrent_writes_get_contiguous_revisions,
    snapshot_matches_the_current_revision,
    corrupt_rows_are_errors,
    hardening_19_attempt_durations_keep_microseconds_and_old_rows_read,
);

on_both_backends_with_two_stores!(two_writers_interleave_revisions_in_commit_order);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A fixed instant with microseconds, `offset` seconds later.
fn at(offset: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap()
        + Duration::seconds(offset)
}

fn tenant(id: &str) -> TenantRecord {
    TenantRecord {
        id: id.to_owned(),
        name: format!("Tenant {id}"),
        created_at: at(0),
        updated_at: at(0),
        version: 1,
        quotas: TenantQuotasRecord::default(),
    }
}

fn token(id: &str, tenant_id: &str) -> TokenRecord {
    TokenRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        name: format!("token {id}"),
        scope: "tenant".to_owned(),
        prefix: "hrld_ab12".to_owned(),
        secret_sha256: format!("sha256-of-{id}"),
        created_at: at(1),
        expires_at: Some(at(86_400)),
        last_used_at: None,
        revoked_at: None,
    }
}

fn device(id: &str, tenant_id: &str, channel: &str) -> DeviceRecord {
    DeviceRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        channel: channel.to_owned(),
        name: format!("device {id}"),
        external_id: format!("ext-{id}"),
        verification_ciphertext: vec![1, 2, 3, 0, 255],
        created_at: at(2),
        updated_at: at(2),
        version: 1,
    }
}

fn endpoint(id: &str, tenant_id: &str) -> EndpointRecord {
    EndpointRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        name: format!("endpoint {id}"),
        url: format!("https://example.com/hooks/{id}"),
        status: "active".to_owned(),
        status_reason: String::new(),
        spec: vec![0x0a, 0x03, b'a', b'b', b'c'],
        secret_ciphertext: vec![0, 1, 2, 254, 255, 0],
        previous_secret_ciphertext: None,
        previous_secret_expires_at: None,
        created_at: at(3),
        updated_at: at(3),
        version: 1,
        revision: 0,
    }
}

fn event_type(tenant_id: &str, name: &str) -> EventTypeRecord {
    EventTypeRecord {
        tenant_id: tenant_id.to_owned(),
        name: name.to_owned(),
        description: format!("{name} happened"),
        sample_data: br#"{"a":1}"#.to_vec(),
        created_at: at(4),
    }
}

fn attempt(id: &str, delivery_id: &str, status: &str, offset: i64) -> AttemptRecord {
    AttemptRecord {
        id: id.to_owned(),
        delivery_id: delivery_id.to_owned(),
        event_id: format!("evt-{delivery_id}"),
        tenant_id: "t1".to_owned(),
        endpoint_id: "ep1".to_owned(),
        device_id: "dev1".to_owned(),
        event_type: "message.received".to_owned(),
        attempt: 1,
        attempted_at: at(offset),
        status: status.to_owned(),
        response_code: 200,
        duration_micros: 42_250,
        response_body: b"ok".to_vec(),
        error: String::new(),
        url: "https://example.com/hooks".to_owned(),
        next_attempt_at: None,
        trigger: "live".to_owned(),
        request_headers_json: r#"{"content-type":"application/json"}"#.to_owned(),
        test: false,
    }
}

/// Every change after `revision`.
async fn changes_after(store: &Store, revision: i64) -> Vec<ChangeRecord> {
    store.changes_since(revision, 10_000).await.unwrap()
}

/// (kind, object id, deleted) of each change.
fn summary(changes: &[ChangeRecord]) -> Vec<(ObjectKind, String, bool)> {
    changes
        .iter()
        .map(|change| (change.kind, change.object_id.clone(), change.deleted))
        .collect()
}

fn ids<T>(records: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    records.iter().map(|record| id(record).to_owned()).collect()
}

/// Runs SQL that returns one value.
async fn query_value<T: sea_orm::TryGetable>(store: &Store, sql: &str, column: &str) -> T {
    let backend = store.connection().get_database_backend();
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", column).unwrap()
}

// ---------------------------------------------------------------------------
// Migrations and connections
// ---------------------------------------------------------------------------

/// How many migrations the store has, each applied once.
const MIGRATIONS: i64 = 3;

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

// ---------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

async fn devices_round_trip_within_their_tenant(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    store
        .insert_device(&device("d2", "t1", "telegram"))
        .await
        .unwrap();
    store
        .insert_device(&device("d1", "t1", "waba"))
        .await
        .unwrap();
    store
        .insert_device(&device("d3", "t1", "waba"))
        .await
        .unwrap();
    store
        .insert_device(&device("dx", "t2", "waba"))
        .await
        .unwrap();

    assert_eq!(
        store.get_device("t1", "d1").await.unwrap(),
        Some(device("d1", "t1", "waba"))
    );
    assert!(store.get_device("t2", "d1").await.unwrap().is_none());
    assert_eq!(
        store.get_device_by_id("dx").await.unwrap(),
        Some(device("dx", "t2", "waba"))
    );

    let error = store
        .insert_device(&device("d1", "t2", "waba"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::AlreadyExists { kind: "device", .. }),
        "{error}"
    );

    let all = store.list_devices("t1", None, 10, None).await.unwrap();
    assert_eq!(ids(&all, |d| &d.id), ["d1", "d2", "d3"]);
    let waba = store
        .list_devices("t1", Some("waba"), 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&waba, |d| &d.id), ["d1", "d3"]);
    let page = store
        .list_devices("t1", Some("waba"), 1, Some("d1"))
        .await
        .unwrap();
    assert_eq!(ids(&page, |d| &d.id), ["d3"]);

    let wanted = ["d3", "dx", "zz", "d1", "d9"].map(str::to_owned);
    assert_eq!(
        store.missing_devices("t1", &wanted).await.unwrap(),
        ["dx", "zz", "d9"]
    );
    assert!(store.missing_devices("t1", &[]).await.unwrap().is_empty());

    assert!(!store.delete_device("t2", "d1").await.unwrap());
    assert!(store.get_device("t1", "d1").await.unwrap().is_some());
    assert!(store.delete_device("t1", "d1").await.unwrap());
    assert!(!store.delete_device("t1", "d1").await.unwrap());
    assert!(store.get_device_by_id("d1").await.unwrap().is_none());

    let devices = store.all_devices().await.unwrap();
    assert_eq!(ids(&devices, |d| &d.id), ["d2", "d3", "dx"]);
}

async fn device_updates_check_the_version(store: &Store) {
    store.insert_tenant(&tenant("t1")).await.unwrap();
    store.insert_tenant(&tenant("t2")).await.unwrap();
    store
        .insert_device(&device("d1", "t1", "waba"))
        .await
        .unwrap();

    let change = DeviceRecord {
        channel: "telegram".to_owned(), // not writable
        name: "renamed".to_owned(),
        external_id: "ext-new".to_owned(),
        verification_ciphertext: vec![9, 9, 0],
        updated_at: at(50),
        created_at: at(-1000), // not writable
        ..device("d1", "t1", "waba")
    };
    let updated = store.update_device(&change, Some(1)).await.unwrap();
    assert_eq!(
        updated,
        DeviceRecord {
            name: "renamed".to_owned(),
            external_id: "ext-new".to_owned(),
            verification_ciphertext: vec![9, 9, 0],
            updated_at: at(50),
            version: 2,
            ..device("d1", "t1", "waba")
        }
    );
    assert_eq!(store.get_device("t1", "d1").await.unwrap(), Some(updated));

    let error = store.update_device(&change, Some(1)).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::VersionConflict {
                kind: "device",
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{error}"
    );
    let other_tenant = DeviceRecord {
        tenant_id: "t2".to_owned(),
        ..change.clone()
    };
    let error = store.update_device(&other_tenant, None).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { kind: "device", .. }),
        "{error}"
    );
    assert_eq!(store.update_device(&change, None).await.unwrap().version, 3);
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Event types
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Attempts
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// The change log
// ---------------------------------------------------------------------------

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
