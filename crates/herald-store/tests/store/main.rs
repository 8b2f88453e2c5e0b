//! The store against real databases: every behaviour runs on SQLite (in a
//! temporary directory) and on PostgreSQL (`HERALD_TEST_POSTGRES_URL`, in a
//! fresh schema per test, so tests run in parallel and repeat). A PostgreSQL
//! that does not answer fails the test. One module a concern; the harness
//! and the fixtures are here.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use herald_store::{
    AttemptCursor, AttemptFilter, AttemptRecord, ChangeRecord, DeliveryCounts, DeviceRecord,
    EndpointActivity, EndpointFilter, EndpointRecord, EventTypeRecord, ObjectKind, Store,
    StoreError, StoreOptions, TenantQuotasRecord, TenantRecord, TokenRecord,
};
use sea_orm::{ConnectionTrait, Statement};
use time::{Duration, OffsetDateTime};

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

mod attempts;
mod changes;
mod database;
mod devices;
mod endpoints;
mod event_types;
mod tenants;

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
        schema: r#"{"type":"object","required":["a"]}"#.to_owned(),
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
        request_body: br#"{"event":"message.received"}"#.to_vec(),
        request_body_size: 28,
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
