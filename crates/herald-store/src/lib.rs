//! Herald's database layer: the only crate that imports sea-orm.
//!
//! The same code runs on PostgreSQL (production) and SQLite (the embedded
//! default). Callers hand over a `DATABASE_URL` and get a [`Store`]; the
//! public API speaks only in the plain records of [`records`], never in
//! sea-orm models.
//!
//! # Design
//!
//! - **Migrations** ([`Store::migrate`]) use `sea-orm-migration` with one
//!   initial migration written with sea-query's schema builder. They run in
//!   one transaction; on PostgreSQL that transaction first takes
//!   `pg_advisory_xact_lock` on [`MIGRATION_LOCK_KEY`], so two processes
//!   starting at once apply them one after the other (the second finds nothing
//!   to do). The lock is transaction-scoped, so it is released on commit,
//!   rollback or a dropped connection.
//! - **The change log.** Every method that changes watched state (tenants,
//!   tokens, devices, endpoints, event types) runs in one transaction that
//!   also appends one `config_changes` row per changed object. On PostgreSQL
//!   the transaction starts with `pg_advisory_xact_lock` on
//!   [`CHANGE_LOCK_KEY`]; on SQLite with `BEGIN IMMEDIATE`. Writers are therefore serialised, and the
//!   revision is assigned as `MAX(revision) + 1` inside that critical section:
//!   revisions commit in order and have no gaps, so a watcher that has seen
//!   revision 11 never later finds a 10, and `changes_since(r)` starting
//!   later than `r + 1` means the log was pruned past `r`.
//! - **Timestamps** are BIGINT microseconds since the Unix epoch (UTC) on both
//!   backends (module `timestamp`): ordering and range
//!   filters are integer comparisons, identical everywhere. Sub-microsecond
//!   parts are truncated on write.
//! - **Schemas.** [`StoreOptions::schema`] puts every table in a PostgreSQL
//!   schema of its own (created when missing); tests use one per test. Lock
//!   keys are then derived from the schema name ([`lock_key`]), so stores in
//!   different schemas of one database do not serialise each other.

mod attempts;
pub use attempts::{MAX_COUNTED_FAILURES, MAX_WINDOW_ATTEMPTS};
mod changes;
mod devices;
mod endpoints;
mod entity;
mod event_types;
mod migration;
pub mod records;
mod tenants;
mod timestamp;
mod tokens;

use std::{path::Path, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    DbErr, SqlErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use records::{
    AttemptCursor, AttemptFilter, AttemptRecord, ChangeRecord, DeliveryCounts, DeviceRecord,
    EndpointActivity, EndpointFilter, EndpointRecord, EventTypeRecord, FailedDelivery,
    FailingEndpoint, ObjectKind, Snapshot, TenantQuotasRecord, TenantRecord, TokenRecord,
};

/// The PostgreSQL advisory lock every transaction that appends to the change
/// log holds (`pg_advisory_xact_lock`), so revisions commit in order
/// ("heraldcg" in ASCII). With a schema, see [`lock_key`].
pub const CHANGE_LOCK_KEY: i64 = 0x6865_7261_6C64_6367;

/// The PostgreSQL advisory lock migrations (and schema creation) hold
/// ("heraldmg" in ASCII). With a schema, see [`lock_key`].
pub const MIGRATION_LOCK_KEY: i64 = 0x6865_7261_6C64_6D67;

/// Everything that can go wrong opening or using the database, each naming
/// what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL {url:?}: use postgres://user@host/db or sqlite:path/to/file.db"
    )]
    UnsupportedUrl { url: String },
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("the database did not answer: {0}")]
    Unavailable(String),
    #[error(
        "invalid database schema name {schema:?}: use 1 to 63 ASCII letters, digits and \
         underscores, not starting with a digit"
    )]
    InvalidSchema { schema: String },
    #[error(
        "a database schema ({schema:?}) can only be chosen on PostgreSQL; SQLite databases have \
         none"
    )]
    SchemaNotSupported { schema: String },
    #[error("cannot migrate the database: {source}")]
    Migrate {
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error(
        "{kind} {id:?} was changed concurrently: expected version {expected}, it is at {actual}"
    )]
    VersionConflict {
        kind: &'static str,
        id: String,
        expected: i64,
        actual: i64,
    },
    #[error("{kind} {id:?} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("database error while {operation}: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("corrupt {kind} {id:?} in the database: {detail}")]
    Corrupt {
        kind: &'static str,
        id: String,
        detail: String,
    },
}

impl StoreError {
    /// Whether the database could not be reached (no connection, a connection
    /// lost mid-query, the pool timing out): worth retrying, unlike a query
    /// the database refused.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Connect { .. } => true,
            StoreError::Database { source, .. } | StoreError::Migrate { source } => {
                db_unavailable(source)
            }
            _ => false,
        }
    }
}

fn db_unavailable(error: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error as SqlxError};
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error)) => {
            match error.as_ref() {
                SqlxError::Io(_)
                | SqlxError::Tls(_)
                | SqlxError::PoolTimedOut
                | SqlxError::PoolClosed
                | SqlxError::WorkerCrashed => true,
                // PostgreSQL's connection exceptions (08…) and its operator
                // interventions (57P…: shutting down, terminated backends).
                SqlxError::Database(error) => error
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Wraps a [`DbErr`] with what was being done: `.map_err(db_error("…"))`.
pub(crate) fn db_error(operation: &'static str) -> impl FnOnce(DbErr) -> StoreError {
    move |source| StoreError::Database { operation, source }
}

/// Maps an insert's error: a unique violation is [`StoreError::AlreadyExists`],
/// a foreign-key violation means the tenant does not exist.
pub(crate) fn insert_error(
    operation: &'static str,
    kind: &'static str,
    id: &str,
    tenant_id: Option<&str>,
) -> impl FnOnce(DbErr) -> StoreError {
    move |source| match (source.sql_err(), tenant_id) {
        (Some(SqlErr::UniqueConstraintViolation(_)), _) => StoreError::AlreadyExists {
            kind,
            id: id.to_owned(),
        },
        (Some(SqlErr::ForeignKeyConstraintViolation(_)), Some(tenant_id)) => StoreError::NotFound {
            kind: "tenant",
            id: tenant_id.to_owned(),
        },
        _ => StoreError::Database { operation, source },
    }
}

/// How to open the database.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// `postgres://…`, `postgresql://…` or `sqlite:path`.
    pub url: String,
    /// PostgreSQL only: the schema every table lives in, created when
    /// missing. `None` uses the server's default search path.
    pub schema: Option<String>,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> StoreOptions {
        StoreOptions {
            url: url.into(),
            schema: None,
        }
    }

    pub fn with_schema(mut self, schema: impl Into<String>) -> StoreOptions {
        self.schema = Some(schema.into());
        self
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &redact_password(&self.url))
            .field("schema", &self.schema)
            .finish()
    }
}

/// A pool of connections to Herald's database.
#[derive(Clone, Debug)]
pub struct Store {
    connection: DatabaseConnection,
    /// The advisory lock keys this store takes on PostgreSQL (see
    /// [`lock_key`]).
    change_lock: i64,
    migration_lock: i64,
}

impl Store {
    /// Opens the database, creating the SQLite file (and its directory) when
    /// it does not exist yet. Same as [`Store::connect_with`] without a schema.
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        Store::connect_with(&StoreOptions::new(database_url)).await
    }

    /// Opens the database. With a schema (PostgreSQL only), creates it when
    /// missing and sets every pooled connection's `search_path` to it.
    pub async fn connect_with(store_options: &StoreOptions) -> Result<Store, StoreError> {
        let database_url = store_options.url.as_str();
        let url = normalise_url(database_url)?;
        let sqlite = url.starts_with("sqlite:");
        if let Some(schema) = &store_options.schema {
            if sqlite {
                return Err(StoreError::SchemaNotSupported {
                    schema: schema.clone(),
                });
            }
            validate_schema(schema)?;
        }
        let mut options = ConnectOptions::new(url.clone());
        options
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            // Ping only connections idle long enough to have been dropped,
            // not every checkout (a round trip per call).
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .sqlx_logging(false);
        if sqlite {
            // SQLite serialises writers; one connection avoids "database is
            // locked" errors under concurrent writes from the same process.
            options.max_connections(1).min_connections(1);
            if !url.contains(":memory:") && !url.contains("mode=ro") {
                // Write-ahead logging: readers in other processes do not
                // block the writer. With `synchronous = NORMAL` a commit
                // appends to the log without syncing it; the log is synced
                // at checkpoints. A crash of the process loses nothing; a
                // power cut can lose the last commits, as it can lose
                // JetStream's unsynced writes on its default configuration.
                options.map_sqlx_sqlite_opts(|options| {
                    options
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                });
            }
        } else {
            options.max_connections(16);
        }
        if let Some(schema) = &store_options.schema {
            options.set_schema_search_path(schema.clone());
        }
        let connection = sea_orm::Database::connect(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_password(database_url),
                source,
            })?;
        let schema = store_options.schema.as_deref();
        let store = Store {
            connection,
            change_lock: lock_key(CHANGE_LOCK_KEY, schema),
            migration_lock: lock_key(MIGRATION_LOCK_KEY, schema),
        };
        if let Some(schema) = &store_options.schema {
            store.create_schema(schema).await?;
        }
        Ok(store)
    }

    /// `CREATE SCHEMA IF NOT EXISTS`, under the migration lock: concurrent
    /// `CREATE SCHEMA IF NOT EXISTS` can fail on PostgreSQL with a unique
    /// violation in its catalog.
    async fn create_schema(&self, schema: &str) -> Result<(), StoreError> {
        let operation = "creating the database schema";
        let txn = begin_locked(&self.connection, self.migration_lock)
            .await
            .map_err(db_error(operation))?;
        // `schema` was validated as a plain identifier; quoting keeps its case,
        // as sea-orm's `SET search_path` does.
        txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(db_error(operation))?;
        txn.commit().await.map_err(db_error(operation))
    }

    /// Applies every pending migration. Idempotent: a second run does
    /// nothing, and concurrent runs (several processes starting at once)
    /// apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrate = |source| StoreError::Migrate { source };
        let txn = begin_locked(&self.connection, self.migration_lock)
            .await
            .map_err(migrate)?;
        migration::Migrator::up(&txn, None).await.map_err(migrate)?;
        txn.commit().await.map_err(migrate)?;
        tracing::debug!(
            backend = self.backend_name(),
            "database schema is up to date"
        );
        Ok(())
    }

    /// Answers whether the database responds now; used by readiness.
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(timeout, self.connection.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(StoreError::Unavailable(error.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {timeout:?}"
            ))),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match self.connection.get_database_backend() {
            DatabaseBackend::Postgres => "postgres",
            DatabaseBackend::Sqlite => "sqlite",
            _ => "other",
        }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Starts a transaction that changes watched state: serialised with every
    /// other such transaction (see the crate documentation).
    pub(crate) async fn begin_write(
        &self,
        operation: &'static str,
    ) -> Result<DatabaseTransaction, StoreError> {
        begin_locked(&self.connection, self.change_lock)
            .await
            .map_err(db_error(operation))
    }

    /// Starts a transaction that writes nothing watched (attempts, pruning).
    pub(crate) async fn begin_plain(
        &self,
        operation: &'static str,
    ) -> Result<DatabaseTransaction, StoreError> {
        match self.connection.get_database_backend() {
            DatabaseBackend::Sqlite => self.connection.begin_with_options(immediate()).await,
            _ => self.connection.begin().await,
        }
        .map_err(db_error(operation))
    }
}

fn immediate() -> TransactionOptions {
    TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    }
}

/// Begins a transaction holding the advisory lock `key` on PostgreSQL, or a
/// write lock (`BEGIN IMMEDIATE`) on SQLite.
async fn begin_locked(
    connection: &DatabaseConnection,
    key: i64,
) -> Result<DatabaseTransaction, DbErr> {
    match connection.get_database_backend() {
        DatabaseBackend::Postgres => {
            let txn = connection.begin().await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [key.into()],
            ))
            .await?;
            Ok(txn)
        }
        DatabaseBackend::Sqlite => connection.begin_with_options(immediate()).await,
        _ => connection.begin().await,
    }
}

/// The advisory lock key for `base` in `schema`. Advisory locks are
/// database-wide; stores in different schemas of one database share nothing,
/// so each schema gets its own key (FNV-1a of its name mixed into `base`,
/// the same in every process) and they do not serialise each other.
pub fn lock_key(base: i64, schema: Option<&str>) -> i64 {
    let Some(schema) = schema else {
        return base;
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    base ^ i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A schema name is interpolated into SQL, so it must be a plain identifier.
fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let valid = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidSchema {
            schema: schema.to_owned(),
        })
    }
}

/// Fails with [`StoreError::VersionConflict`] when the caller expected
/// another version than the stored one.
pub(crate) fn check_version(
    kind: &'static str,
    id: &str,
    expected: Option<i64>,
    actual: i64,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::VersionConflict {
            kind,
            id: id.to_owned(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

/// Clamps a page size to what the databases accept as a LIMIT.
pub(crate) fn clamp_limit(limit: u64) -> u64 {
    limit.min(i64::MAX as u64)
}

/// Accepts `postgres://`, `postgresql://` and `sqlite:` URLs. A SQLite URL
/// gets `mode=rwc` (create when missing) unless it names a mode itself, and
/// its directory is created.
fn normalise_url(database_url: &str) -> Result<String, StoreError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return Ok(database_url.to_owned());
    }
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return Err(StoreError::UnsupportedUrl {
            url: redact_password(database_url),
        });
    };
    let path_and_query = rest.trim_start_matches("//");
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    if path.is_empty() {
        return Err(StoreError::UnsupportedUrl {
            url: database_url.to_owned(),
        });
    }
    let parent = Path::new(path)
        .parent()
        .filter(|parent| path != ":memory:" && !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDirectory {
            path: parent.display().to_string(),
            source,
        })?;
    }
    Ok(match query {
        Some(query) if query.contains("mode=") => format!("sqlite://{path}?{query}"),
        Some(query) => format!("sqlite://{path}?{query}&mode=rwc"),
        None => format!("sqlite://{path}?mode=rwc"),
    })
}

/// Hides the password of a URL in error messages and logs.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/herald.db");
        let url = normalise_url(&format!("sqlite:{}", path.display())).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", path.display()));
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(
            normalise_url("sqlite::memory:").unwrap(),
            "sqlite://:memory:?mode=rwc"
        );
        assert_eq!(
            normalise_url("sqlite:///tmp/x.db?mode=ro").unwrap(),
            "sqlite:///tmp/x.db?mode=ro"
        );
    }

    #[test]
    fn other_schemes_are_refused_with_the_password_hidden() {
        let error = normalise_url("mysql://root:hunter2@localhost/db").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("mysql://root:***@localhost/db"),
            "{message}"
        );
        assert!(!message.contains("hunter2"));
        assert!(normalise_url("sqlite:").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn schema_names_must_be_plain_identifiers() {
        for good in ["herald", "_x", "test_0123456789abcdef", &"a".repeat(63)] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in ["", "9lives", "a-b", "a b", "a\"b", "é", &"a".repeat(64)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_keys_are_per_schema_and_stable() {
        assert_eq!(lock_key(CHANGE_LOCK_KEY, None), CHANGE_LOCK_KEY);
        let a = lock_key(CHANGE_LOCK_KEY, Some("tenant_a"));
        assert_eq!(a, lock_key(CHANGE_LOCK_KEY, Some("tenant_a")));
        assert_ne!(a, lock_key(CHANGE_LOCK_KEY, Some("tenant_b")));
        assert_ne!(a, CHANGE_LOCK_KEY);
        assert_ne!(a, lock_key(MIGRATION_LOCK_KEY, Some("tenant_a")));
    }

    #[tokio::test]
    async fn sqlite_database_is_created_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("a/b.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.ping(Duration::from_secs(2)).await.unwrap();
        assert_eq!(store.backend_name(), "sqlite");
    }

    #[tokio::test]
    async fn postgres_answers() {
        let url = herald_testkit::postgres_url();
        let store = Store::connect(&url).await.unwrap();
        store.ping(Duration::from_secs(2)).await.unwrap();
        assert_eq!(store.backend_name(), "postgres");
    }
}
