//! Execution history for Assay: executions, step results, outputs, reports, artifacts, logs and
//! stored workflow definitions.
//!
//! One code path for SQLite (the embedded default, a file in the data dir) and PostgreSQL (for
//! teams), through sqlx's `Any` driver with runtime queries. Logs and artifacts go to files: a
//! local folder under the data dir, or S3-compatible object storage.
//!
//! The engine writes through [`Store`] (create → steps → logs/artifacts → finish, holding a
//! lease while it runs); the CLI and the server read through it and call
//! [`Store::recover_abandoned`] first so that executions whose process died show as `aborted`.
//!
//! ```no_run
//! # async fn f() -> assay_store::Result<()> {
//! use assay_store::{Store, StoreConfig, NewExecution, ExecutionFilter};
//! let store = Store::open(StoreConfig::new("/tmp/assay")).await?;
//! let exec = store
//!     .create_execution(NewExecution { workflow: "smoke".into(), ..Default::default() })
//!     .await?;
//! assert_eq!(exec.name, format!("smoke-{}", exec.number));
//! let newest = store.list_executions(&ExecutionFilter::default()).await?;
//! # Ok(()) }
//! ```

mod agents;
mod analysis;
pub mod blame;
mod config;
mod dashboard;
mod db;
mod definitions;
mod error;
mod executions;
mod files;
pub mod format;
mod git_triggers;
mod hooks;
mod insights;
pub mod lease;
pub mod live;
pub mod logs;
mod model;
mod named_secrets;
mod prune;
mod quarantines;
mod schedules;
mod secrets;
mod test_cases;
pub mod testkube;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use agents::{AGENT_HOST_PREFIX, AgentInfo, AgentRecord, Claimable, Registration, agent_owner};
pub use analysis::SIMILAR_COUNT_CAP;
pub use assay_api::MASK;
pub use assay_spec::status::{ExecutionStatus, StepStatus};
pub use config::{FILES_DIR, SQLITE_FILE, StoreConfig, mask_url};
pub use dashboard::RunPoint;
pub use error::{Result, StoreError};
pub use executions::{HeartbeatGuard, PageRecord, SummaryPage};
pub use files::ArtifactDownload;
pub use git_triggers::GitHeads;
pub use hooks::{
    CUT_MARKER, Hook, HookDelivery, MAX_DELIVERIES, MAX_ERROR_BYTES, MAX_EVENT_CHARS, NewHook,
    StartedExecution, StoredResource, WebhookAttempt,
};
pub use insights::InsightRow;
pub use lease::LeaseOwner;
pub use live::{Changes, Watch};
pub use logs::{LogLine, LogReader, LogWriter};
pub use model::*;
pub use named_secrets::{
    NAMED_SECRET_NAME_MAX, NAMED_SECRET_VALUE_MAX, NamedSecretInfo, NamedSecretValues,
    check_secret_key, check_secret_name,
};
pub use quarantines::{
    AUTO_QUARANTINE_DAYS, AUTO_QUARANTINE_LABEL, NewQuarantine, QUARANTINE_REASON_MAX,
    QUARANTINE_TEST_MAX, Quarantine, covering, flaky_rule, parse_until,
};
pub use schedules::{ClaimedTick, ScheduleTick};
pub use secrets::KEY_FILE;
pub use test_cases::{CaseSource, FlakyTest, StoredTestCase, TestRun};
pub use tokens::{TOKEN_CACHE_TTL, TokenInfo, TokenRole, hash_token};

/// Handle to the history. Cheap to clone; all clones share its connection pools.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    db: db::Db,
    files: files::Files,
    /// Change signals for followers ([`Store::watch`]).
    live: Arc<live::Live>,
    lease_timeout: Duration,
    secrets: secrets::SecretBox,
    /// Permissions narrowed on open, for the caller to show.
    warnings: Vec<String>,
    /// API tokens looked up recently ([`Store::authenticate`]).
    tokens: tokens::TokenCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.inner.db.location)
            .field("files", &self.inner.files.location())
            .finish()
    }
}

impl Store {
    /// Open (and create or migrate) the database and the file storage named by `config`.
    pub async fn open(config: StoreConfig) -> Result<Store> {
        Self::open_with_lease_timeout(config, lease::DEFAULT_LEASE_TIMEOUT).await
    }

    /// Like [`Store::open`], with another heartbeat timeout for owners on other hosts.
    pub async fn open_with_lease_timeout(
        config: StoreConfig,
        lease_timeout: Duration,
    ) -> Result<Store> {
        let database = config.database()?;
        // The data dir holds the key, the SQLite file and the files: this user's only.
        let mut warnings = Vec::new();
        secrets::private_dir(&config.data_dir, &mut warnings)?;
        let files = files::Files::open(&config)?;
        if let config::Database::Sqlite(path) = &database {
            // SQLite would make a new file (and its journals, which take the file's mode) with
            // the umask's 0644: make it 0600 first, so a new data dir needs no narrowing.
            secrets::create_private_file(path)?;
        }
        let db = db::Db::open(&database).await?;
        if let config::Database::Sqlite(path) = &database {
            for file in secrets::sqlite_files(path) {
                secrets::narrow(&file, 0o600, &mut warnings)?;
            }
        }
        let secrets = secrets::SecretBox::open(&config.data_dir, &mut warnings)?;
        let live = Arc::new(match &database {
            config::Database::Sqlite(_) => live::Live::local(),
            config::Database::Postgres(_) => {
                live::Live::postgres(db.pool.clone(), database.connect_url(), db.location.clone())
            }
        });
        let store = Store {
            inner: Arc::new(Inner {
                config,
                db,
                files,
                live,
                lease_timeout,
                secrets,
                warnings,
                tokens: tokens::TokenCache::default(),
            }),
        };
        store.seal_clear_hook_secrets().await?;
        Ok(store)
    }

    /// What opening changed that the user should know (permissions narrowed).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The database as shown to users: SQLite path or PostgreSQL URL with the password masked.
    pub fn database_location(&self) -> &str {
        &self.inner.db.location
    }

    /// Where logs and artifacts live, as shown to users.
    pub fn files_location(&self) -> String {
        self.inner.files.location()
    }

    /// Whether records live in PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.inner.db.backend == db::Backend::Postgres
    }

    /// Close the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    fn db(&self) -> &db::Db {
        &self.inner.db
    }

    fn files(&self) -> &files::Files {
        &self.inner.files
    }

    fn token_cache(&self) -> &tokens::TokenCache {
        &self.inner.tokens
    }

    fn inner_secrets(&self) -> &secrets::SecretBox {
        &self.inner.secrets
    }
}
