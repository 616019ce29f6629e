//! Retention: delete old executions with their logs and artifacts.

use sqlx::AssertSqlSafe;

use crate::Store;
use crate::db::RowExt;
use crate::error::Result;
use crate::executions::{TERMINAL_STATUSES, retry_busy, since_id};
use crate::model::{PruneReport, now_ms};

/// Executions are deleted in batches of this many per transaction.
const BATCH: usize = 200;

impl Store {
    /// Delete ended executions scheduled more than `keep_days` days ago, and ended executions
    /// beyond the newest `keep_per_workflow` of their workflow. Unfinished executions are never
    /// deleted (they still count towards `keep_per_workflow`).
    ///
    /// `keep_days` also deletes hook deliveries and outbound webhook attempts older than that.
    ///
    /// Rows go first, files after: a crash in between leaves unreachable files, never a record
    /// whose logs are missing.
    pub async fn prune(
        &self,
        keep_days: Option<u32>,
        keep_per_workflow: Option<u32>,
    ) -> Result<PruneReport> {
        let db = self.db();
        let ids: Vec<String> = self
            .prune_candidates(keep_days, keep_per_workflow)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut report = PruneReport::default();
        if let Some(days) = keep_days {
            let cutoff = now_ms() - i64::from(days) * 86_400_000;
            for sql in [
                "DELETE FROM hook_deliveries WHERE received_at < $1",
                "DELETE FROM webhook_deliveries WHERE at < $1",
            ] {
                let done = retry_busy(|| async {
                    sqlx::query(sql).bind(cutoff).execute(&db.writer).await
                })
                .await
                .map_err(|e| db.err("delete old deliveries", e))?;
                report.deliveries += done.rows_affected();
            }
        }
        for batch in ids.chunks(BATCH) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "DELETE FROM executions WHERE id IN ({}) AND status IN {TERMINAL_STATUSES}",
                placeholders.join(", ")
            );
            let deleted = retry_busy(|| async {
                let mut tx = db.begin_write().await?;
                // Child rows go through ON DELETE CASCADE.
                let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
                for id in batch {
                    query = query.bind(id.clone());
                }
                let done = query.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            })
            .await
            .map_err(|e| db.err("delete pruned executions", e))?;
            report.executions += deleted;
            for id in batch {
                self.files().delete_execution(id).await?;
            }
        }
        Ok(report)
    }

    /// What [`Store::prune`] would delete now, as `(id, name)` pairs in id order: the dry run.
    pub async fn prune_candidates(
        &self,
        keep_days: Option<u32>,
        keep_per_workflow: Option<u32>,
    ) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let mut found: Vec<(String, String)> = Vec::new();
        if let Some(days) = keep_days {
            let cutoff = now_ms() - i64::from(days) * 86_400_000;
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, name FROM executions WHERE id < $1 AND status IN {TERMINAL_STATUSES}"
            )))
            .bind(since_id(cutoff))
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("find executions to prune", e))?;
            for row in rows {
                found.push((row.text("id")?, row.text("name")?));
            }
        }
        if let Some(keep) = keep_per_workflow {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, name FROM (SELECT id, name, status, ROW_NUMBER() OVER \
                 (PARTITION BY workflow ORDER BY id DESC) AS position FROM executions) ranked \
                 WHERE position > $1 AND status IN {TERMINAL_STATUSES}"
            )))
            .bind(i64::from(keep))
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("find executions to prune", e))?;
            for row in rows {
                found.push((row.text("id")?, row.text("name")?));
            }
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}
