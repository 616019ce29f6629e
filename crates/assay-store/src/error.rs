//! The store's one error type. Every variant names the location it was talking to (a file path or
//! a URL with its password masked) so that a user can act on the message.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store. Messages are lowercase fragments that read after
/// "failed to".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, migrated or queried.
    #[error("{action} at {location}: {source}")]
    Database {
        /// What the store was doing ("open the database", "list executions").
        action: &'static str,
        /// The SQLite file or the PostgreSQL URL with the password masked.
        location: String,
        #[source]
        source: sqlx::Error,
    },
    /// The database file exists but is not a usable SQLite database.
    #[error("open the database at {location}: the file is not a valid SQLite database ({detail})")]
    CorruptDatabase {
        /// The SQLite file.
        location: String,
        /// SQLite's own words.
        detail: String,
    },
    /// The database did not answer in time.
    #[error("{action} at {location}: no answer within {seconds}s")]
    Timeout {
        /// What the store was doing.
        action: &'static str,
        /// The SQLite file or masked PostgreSQL URL.
        location: String,
        /// How long it waited.
        seconds: u64,
    },
    /// Schema migrations could not be applied.
    #[error("migrate the database at {location}: {source}")]
    Migrate {
        /// The SQLite file or masked PostgreSQL URL.
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Local file I/O (data dir, local logs) failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What the store was doing ("write log file").
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The object store (local folder or S3-compatible) failed.
    #[error("{action} {location}: {source}")]
    Object {
        /// What the store was doing.
        action: &'static str,
        /// Object URL (`s3://bucket/prefix/...` or a local path).
        location: String,
        #[source]
        source: object_store::Error,
    },
    /// A configuration value (URL, data dir) is not usable.
    #[error("{0}")]
    Config(String),
    /// The addressed record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// For instance "execution `abc-3`".
        what: String,
    },
    /// A stored value could not be decoded (JSON column, status string). Points at a bug or a
    /// hand-edited database.
    #[error("decode {what}: {detail}")]
    Decode {
        /// Which column or record.
        what: String,
        /// Why.
        detail: String,
    },
    /// A caller broke a precondition (e.g. an invalid artifact path).
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the error means "the record does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub(crate) fn decode(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
