//! Herald's database layer: the only crate that imports sea-orm.
//!
//! The same code runs on PostgreSQL (production) and SQLite (the embedded
//! default). Callers hand over a `DATABASE_URL` and get a [`Store`].

use std::{path::Path, time::Duration};

use sea_orm::{ConnectOptions, DatabaseBackend, DatabaseConnection};

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
}

/// A pool of connections to Herald's database.
#[derive(Clone, Debug)]
pub struct Store {
    connection: DatabaseConnection,
}

impl Store {
    /// Opens the database, creating the SQLite file (and its directory) when
    /// it does not exist yet.
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        let url = normalise_url(database_url)?;
        let mut options = ConnectOptions::new(url.clone());
        options
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // SQLite serialises writers; one connection avoids "database is
            // locked" errors under concurrent writes from the same process.
            options.max_connections(1).min_connections(1);
        } else {
            options.max_connections(16);
        }
        let connection = sea_orm::Database::connect(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_password(database_url),
                source,
            })?;
        Ok(Store { connection })
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
