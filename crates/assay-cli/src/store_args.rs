//! Where history lives: flags shared by every command that opens the store.

use std::path::PathBuf;

use assay_store::{Store, StoreConfig};

use crate::error::UserError;

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Data directory (SQLite database, logs, artifacts) [default: the platform's data dir for assay]
    #[arg(long, env = "ASSAY_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Keep records in PostgreSQL instead (`postgres://user@host/db`)
    #[arg(long, env = "ASSAY_DATABASE", value_name = "URL", global = true)]
    pub database: Option<String>,

    /// Keep logs and artifacts in S3-compatible storage (`s3://bucket/prefix?endpoint=...`)
    #[arg(long, env = "ASSAY_ARTIFACTS", value_name = "URL", global = true)]
    pub artifacts: Option<String>,
}

impl StoreArgs {
    pub fn config(&self) -> anyhow::Result<StoreConfig> {
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => StoreConfig::default_data_dir().ok_or_else(|| {
                UserError::invalid("no data directory: this system has no home directory")
                    .with_hint("pass --data-dir DIR or set ASSAY_DATA_DIR")
            })?,
        };
        let mut config = StoreConfig::new(data_dir);
        config.database_url = self.database.clone();
        config.artifacts_url = self.artifacts.clone();
        Ok(config)
    }

    /// Open the store; an unreachable or corrupt store is an error naming it (exit 3).
    pub async fn open(&self) -> anyhow::Result<Store> {
        let store = self.open_unrecovered().await?;
        // Executions whose process died are shown as aborted before anyone reads them. That is
        // a write: when it fails (a full disk), reading still works, with a warning.
        if let Err(e) = store.recover_abandoned().await {
            eprintln!(
                "warning: failed to mark abandoned executions aborted ({e}); they show as running until this succeeds"
            );
        }
        Ok(store)
    }

    /// Open the store without recovering abandoned executions: for `assay server`, whose
    /// start recovers them itself and logs each one.
    pub async fn open_unrecovered(&self) -> anyhow::Result<Store> {
        self.open_unrecovered_with(assay_store::lease::DEFAULT_LEASE_TIMEOUT)
            .await
    }

    /// [`StoreArgs::open_unrecovered`] with another lease timeout (`assay server
    /// --lease-timeout`: how long an agent or a process on another host may stay silent).
    pub async fn open_unrecovered_with(
        &self,
        lease_timeout: std::time::Duration,
    ) -> anyhow::Result<Store> {
        let store = Store::open_with_lease_timeout(self.config()?, lease_timeout).await?;
        for w in store.warnings() {
            eprintln!("warning: {w}");
        }
        Ok(store)
    }
}
