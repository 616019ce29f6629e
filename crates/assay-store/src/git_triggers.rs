//! The heads a git `content` TestTrigger last saw (`0021_git_trigger_heads.sql`): the record
//! that makes a push fire once however many servers share the database. Each server polls the
//! repository; one that sees a ref move writes the new heads with a compare-and-swap on the
//! row's version, and only the server whose write succeeded queues the runs.

use std::collections::BTreeMap;

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::model::now_ms;

/// What one trigger last saw of its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHeads {
    /// A digest of what the heads were read for (URI, event, ref filters).
    pub source: String,
    /// Full ref name (`refs/heads/main`) → commit SHA.
    pub refs: BTreeMap<String, String>,
    /// The compare-and-swap's witness: give it back to [`Store::advance_git_heads`].
    pub version: i64,
}

impl Store {
    /// The heads `trigger` last saw, if it saw any.
    pub async fn git_heads(&self, trigger: &str) -> Result<Option<GitHeads>> {
        let db = self.db();
        let row = sqlx::query(
            "SELECT source, refs, version FROM git_trigger_heads WHERE trigger_name = $1",
        )
        .bind(trigger)
        .fetch_optional(&db.pool)
        .await
        .map_err(|e| db.err("read a git trigger's heads", e))?;
        let Some(row) = row else { return Ok(None) };
        let refs = row.text("refs")?;
        let refs = serde_json::from_str(&refs).map_err(|e| StoreError::Decode {
            what: format!("git_trigger_heads.refs of `{trigger}`"),
            detail: e.to_string(),
        })?;
        Ok(Some(GitHeads {
            source: row.text("source")?,
            refs,
            version: row.int("version")?,
        }))
    }

    /// Record `refs` (seen for `source`) as what `trigger` last saw, if what is stored is still
    /// the version `expected` (`None`: nothing stored yet). `true` when this call wrote: the
    /// caller, and no other server, acts on the change.
    pub async fn advance_git_heads(
        &self,
        trigger: &str,
        source: &str,
        refs: &BTreeMap<String, String>,
        expected: Option<i64>,
        updated_by: &str,
    ) -> Result<bool> {
        let db = self.db();
        let now = now_ms();
        let json = serde_json::to_string(refs).unwrap_or_else(|_| "{}".to_string());
        let done =
            retry_busy(|| async {
                match expected {
                None => sqlx::query(
                    "INSERT INTO git_trigger_heads \
                     (trigger_name, source, refs, version, updated_by, updated_at) \
                     VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (trigger_name) DO NOTHING",
                )
                .bind(trigger)
                .bind(source)
                .bind(&json)
                .bind(updated_by)
                .bind(now)
                .execute(&db.writer)
                .await,
                Some(version) => sqlx::query(
                    "UPDATE git_trigger_heads SET source = $2, refs = $3, version = version + 1, \
                     updated_by = $4, updated_at = $5 WHERE trigger_name = $1 AND version = $6",
                )
                .bind(trigger)
                .bind(source)
                .bind(&json)
                .bind(updated_by)
                .bind(now)
                .bind(version)
                .execute(&db.writer)
                .await,
            }
            })
            .await
            .map_err(|e| db.err("record a git trigger's heads", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Forget the heads of every trigger not in `keep` (deleted, disabled, or no longer a git
    /// trigger): one made again later starts from what it then sees. How many were forgotten.
    pub async fn forget_git_heads_except(&self, keep: &[String]) -> Result<u64> {
        let db = self.db();
        let names: Vec<String> = sqlx::query("SELECT trigger_name FROM git_trigger_heads")
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("list the git triggers' heads", e))?
            .iter()
            .map(|r| r.text("trigger_name"))
            .collect::<Result<_>>()?;
        let mut forgotten = 0;
        for name in names.iter().filter(|n| !keep.contains(n)) {
            let done = retry_busy(|| async {
                sqlx::query("DELETE FROM git_trigger_heads WHERE trigger_name = $1")
                    .bind(name)
                    .execute(&db.writer)
                    .await
            })
            .await
            .map_err(|e| db.err("forget a git trigger's heads", e))?;
            forgotten += done.rows_affected();
        }
        Ok(forgotten)
    }
}
