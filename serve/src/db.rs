//! The metadata database: SQLite for one machine, PostgreSQL in production,
//! through one sqlx `Any` pool so every query is written once.
//!
//! Portability rules the schema and queries follow: ids are UUID strings,
//! times are Unix milliseconds in `BIGINT`, no booleans, placeholders are
//! `$1, $2, …` (which SQLite accepts too). Each database has its own
//! migrations directory only where DDL must differ (identity columns).

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;

pub use sqlx::AnyPool;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl DbKind {
    /// The kind of `url`, or `None` for a scheme Reelflow does not speak.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// An open, migrated database.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connection pool.
    pub pool: AnyPool,
    /// What is behind it.
    pub kind: DbKind,
}

impl Db {
    /// Connects to `url` and applies every pending migration.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        install_default_drivers();
        let kind = DbKind::of(url).context("database URL must start with sqlite:, postgres:// or postgresql://")?;
        let shown = crate::config::mask_url_password(url);
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve reads.
            .max_connections(if kind == DbKind::Sqlite { 4 } else { 16 })
            .connect(url)
            .await
            .with_context(|| format!("connecting to {shown}"))?;
        if kind == DbKind::Sqlite {
            // Readers do not block the writer, and a commit is one fsync of
            // the write-ahead log.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .context("enabling WAL")?;
        }
        let migrator = match kind {
            DbKind::Sqlite => &SQLITE_MIGRATIONS,
            DbKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .with_context(|| format!("migrating {shown}"))?;
        if kind == DbKind::Sqlite {
            restrict_sqlite_files(url);
        }
        Ok(Self { pool, kind })
    }
}

/// Now, in Unix milliseconds (the schema's time unit).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Makes the SQLite file and its WAL and shared-memory files private
/// (0600): they hold password and refresh-token hashes and emails. New
/// files are private already (the process's umask); this fixes files an
/// older version created open to others.
fn restrict_sqlite_files(url: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        if std::path::Path::new(&file).exists()
            && let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file, error = %e, "could not make the database file private");
        }
    }
}
