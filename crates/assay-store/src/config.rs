//! Where the store keeps its data: the data dir, the database URL and the object storage URL.
//! The CLI resolves flags and environment variables and hands the values here; nothing in this
//! crate reads argv or the environment except [`StoreConfig::default_data_dir`]'s platform lookup.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// File name of the embedded SQLite database inside the data dir.
pub const SQLITE_FILE: &str = "assay.db";
/// Folder inside the data dir that holds logs and artifacts in the embedded mode.
pub const FILES_DIR: &str = "files";

/// Where to keep records and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Local folder: the SQLite file and, without `artifacts_url`, logs and artifacts.
    pub data_dir: PathBuf,
    /// `postgres://…` (or `sqlite://…`); `None` means `<data_dir>/assay.db`.
    pub database_url: Option<String>,
    /// `s3://bucket/prefix?endpoint=…` (or `file:///path`); `None` means `<data_dir>/files`.
    pub artifacts_url: Option<String>,
}

impl StoreConfig {
    /// Everything local under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            artifacts_url: None,
        }
    }

    /// The platform's data dir for `assay` (`~/.local/share/assay` on Linux,
    /// `~/Library/Application Support/assay` on macOS), used when neither `--data-dir` nor
    /// `ASSAY_DATA_DIR` is given. `None` when the platform has no home directory.
    pub fn default_data_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "assay").map(|d| d.data_dir().to_path_buf())
    }

    /// The database to use: the explicit URL, else the SQLite file in the data dir.
    pub(crate) fn database(&self) -> Result<Database> {
        match &self.database_url {
            None => Ok(Database::Sqlite(self.data_dir.join(SQLITE_FILE))),
            Some(url) => Database::parse(url),
        }
    }
}

/// A resolved database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(StoreError::Config(format!(
                    "database URL `{url}` must name a file: an in-memory database would lose every record"
                )));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_string()));
        }
        Err(StoreError::Config(format!(
            "database URL `{}` has an unsupported scheme; expected postgres://… or sqlite://PATH",
            mask_url(url)
        )))
    }

    /// The location as shown in messages: the file path or the URL with its password masked.
    pub(crate) fn location(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => mask_url(url),
        }
    }

    /// The URL handed to sqlx.
    pub(crate) fn connect_url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite://{}?mode=rwc", encode_path(path)),
            Database::Postgres(url) => url.clone(),
        }
    }
}

/// Percent-encode the characters that would end a URL path (`?`, `#`, `%`, spaces).
fn encode_path(path: &Path) -> String {
    let mut out = String::new();
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", ch as u32)),
            _ => out.push(ch),
        }
    }
    out
}

/// Replace the password of a URL (and secret-looking query values) with [`assay_api::MASK`].
pub fn mask_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        // Not a URL we understand; still hide anything between `:` and `@` after the scheme.
        if let (Some(scheme_end), Some(at)) = (raw.find("://"), raw.rfind('@')) {
            let creds = &raw[scheme_end + 3..at];
            if let Some(colon) = creds.find(':') {
                return format!(
                    "{}{}:{}{}",
                    &raw[..scheme_end + 3],
                    &creds[..colon],
                    assay_api::MASK,
                    &raw[at..]
                );
            }
        }
        return raw.to_string();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some(assay_api::MASK));
    }
    let secret_keys = [
        "password",
        "secret",
        "secret_access_key",
        "token",
        "session_token",
    ];
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let hide = secret_keys
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                (
                    k.into_owned(),
                    if hide {
                        assay_api::MASK.into()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_and_secret_query_values() {
        assert_eq!(
            mask_url("postgres://bob:hunter2@db.example:5432/assay"),
            "postgres://bob:*****@db.example:5432/assay"
        );
        assert_eq!(
            mask_url("s3://b/p?endpoint=http://x:9000&secret_access_key=abc"),
            "s3://b/p?endpoint=http%3A%2F%2Fx%3A9000&secret_access_key=*****"
        );
        assert_eq!(mask_url("postgres://bob@h/db"), "postgres://bob@h/db");
    }

    #[test]
    fn sqlite_urls_need_a_file() {
        assert!(Database::parse("sqlite::memory:").is_err());
        assert_eq!(
            Database::parse("sqlite:///tmp/x.db").unwrap(),
            Database::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert!(Database::parse("mysql://x").is_err());
    }

    #[test]
    fn sqlite_paths_are_encoded() {
        let db = Database::Sqlite(PathBuf::from("/tmp/a b?#%/x.db"));
        assert_eq!(
            db.connect_url(),
            "sqlite:///tmp/a%20b%3F%23%25/x.db?mode=rwc"
        );
    }
}
