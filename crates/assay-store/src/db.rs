//! Opening the database: one `AnyPool` for SQLite and PostgreSQL, the right migration folder for
//! each, and the SQLite settings that let several `assay` processes share one file.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::config::Database;
use crate::error::{Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite connection waits for another process's write lock before it gives up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;
/// How long opening the database may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Which SQL dialect is behind the pool (for the few statements that differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The pool plus what is needed to name it in errors.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    /// Reads (and, on PostgreSQL, writes).
    pub pool: AnyPool,
    /// Writes: on SQLite one connection, so this process's writers wait their turn in the pool's
    /// queue instead of in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries
    /// (the queue benchmark's 16 executions at a time left the machine idle a quarter of the
    /// time). Another process writing the same file is still waited for by `busy_timeout`.
    /// On PostgreSQL the same pool as `pool`.
    pub writer: AnyPool,
    pub backend: Backend,
    pub location: String,
}

impl Db {
    /// Connect, configure and migrate.
    pub async fn open(database: &Database) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let location = database.location();
        let backend = match database {
            Database::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| StoreError::io("create the data dir", parent, e))?;
                }
                Backend::Sqlite
            }
            Database::Postgres(_) => Backend::Postgres,
        };
        // One direct connection first: the pool would retry a failing connect until its
        // acquire timeout and then report only "pool timed out", hiding the real cause.
        let url = database.connect_url();
        let probe = async {
            let mut conn = sqlx::AnyConnection::connect(&url).await?;
            if backend == Backend::Sqlite {
                // Reads the file header: "file is not a database" shows up here.
                sqlx::query("SELECT COUNT(*) FROM sqlite_master")
                    .fetch_one(&mut conn)
                    .await?;
            }
            conn.close().await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, probe).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(classify(backend, &location, "open the database", e)),
            Err(_) => {
                return Err(StoreError::Timeout {
                    action: "open the database",
                    location,
                    seconds: CONNECT_TIMEOUT.as_secs(),
                });
            }
        }
        let mut options = AnyPoolOptions::new()
            .acquire_timeout(CONNECT_TIMEOUT)
            .max_connections(match backend {
                // SQLite serialises writers anyway; a few readers are enough for one process.
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            });
        if backend == Backend::Sqlite {
            // No ping before each statement: a SQLite connection is a file handle that cannot
            // go stale, and the ping was one more round trip to the connection's worker thread
            // (two thread wake-ups) for every statement.
            options = options.test_before_acquire(false);
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                         PRAGMA foreign_keys = ON; \
                         PRAGMA synchronous = NORMAL; \
                         PRAGMA secure_delete = ON;"
                    )))
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .clone()
            .connect(&url)
            .await
            .map_err(|e| classify(backend, &location, "open the database", e))?;
        let writer = match backend {
            // Connected on first use, after the migrations below.
            Backend::Sqlite => options
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
                .connect_lazy(&url)
                .map_err(|e| classify(backend, &location, "open the database", e))?,
            Backend::Postgres => pool.clone(),
        };
        let db = Db {
            pool,
            writer,
            backend,
            location,
        };
        if backend == Backend::Sqlite {
            db.enable_wal().await?;
        }
        db.migrate().await?;
        Ok(db)
    }

    /// Closes both pools, waiting for their connections to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// WAL lets readers go on while one process writes. The mode is stored in the file, so it is
    /// only switched once; switching needs an exclusive lock that busy_timeout does not wait
    /// for, hence the retries.
    async fn enable_wal(&self) -> Result<()> {
        let mut attempt = 0;
        loop {
            let mode: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| self.err("open the database", e))?;
            if mode.eq_ignore_ascii_case("wal") {
                return Ok(());
            }
            match sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&self.pool)
                .await
            {
                Ok(_) => continue,
                Err(e) if attempt < 50 && is_busy(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(self.err("switch the database to WAL mode", e)),
            }
        }
    }

    /// Apply migrations. Two processes may open a fresh SQLite file at once; the loser of that
    /// race sees "table exists" and succeeds on a retry once the winner has committed.
    async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(source) => {
                    if let sqlx::migrate::MigrateError::Execute(inner) = &source
                        && self.backend == Backend::Sqlite
                        && is_not_a_database(inner)
                    {
                        return Err(StoreError::CorruptDatabase {
                            location: self.location.clone(),
                            detail: inner.to_string(),
                        });
                    }
                    return Err(StoreError::Migrate {
                        location: self.location.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Wrap a sqlx error with what we were doing and where.
    pub fn err(&self, action: &'static str, e: sqlx::Error) -> StoreError {
        classify(self.backend, &self.location, action, e)
    }

    /// Begin a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so that two processes never deadlock upgrading read locks; the busy
    /// timeout then queues writers instead of failing them.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }
}

fn classify(backend: Backend, location: &str, action: &'static str, e: sqlx::Error) -> StoreError {
    if backend == Backend::Sqlite && is_not_a_database(&e) {
        return StoreError::CorruptDatabase {
            location: location.to_string(),
            detail: e.to_string(),
        };
    }
    StoreError::Database {
        action,
        location: location.to_string(),
        source: e,
    }
}

/// SQLite's "file is not a database" / "database disk image is malformed".
fn is_not_a_database(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), possibly extended.
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
            primary == 11 || primary == 26
        }
        _ => false,
    }
}

/// A write that is worth trying again as a whole: SQLite's SQLITE_BUSY / SQLITE_LOCKED (another
/// process holds the lock), or PostgreSQL's `40P01` (the server broke a deadlock by rolling this
/// transaction back) and `40001` (a serialization failure). Callers retry whole transactions
/// or single autocommit statements only, so nothing half-done is repeated.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code == "40P01" || code == "40001" {
                return true;
            }
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
            primary == 5 || primary == 6
        }
        _ => false,
    }
}

/// Whether the error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Typed column access that names the column in decode errors.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
}

impl RowExt for AnyRow {
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(|e| StoreError::decode(col, e))
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(|e| StoreError::decode(col, e))
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(|e| StoreError::decode(col, e))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col).map_err(|e| StoreError::decode(col, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite is built as `.cargo/config.toml` says: no page cache shared by all
    /// connections and no allocation counter behind a process-wide lock.
    #[tokio::test]
    async fn the_bundled_sqlite_takes_no_process_wide_lock_per_page_or_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Database::Sqlite(dir.path().join("options.db")))
            .await
            .unwrap();
        let options: Vec<String> = sqlx::query("PRAGMA compile_options")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>(0).unwrap())
            .collect();
        assert!(
            options.iter().any(|o| o == "THREADSAFE=1"),
            "not the bundled build? {options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }
}
