//! The lean read behind insights (`assay_service::insights`): the finished executions of a time
//! window with only the columns the figures need, in one range of the primary key (ids are
//! UUIDv7, so a time window is an id range), so the cost grows with the window, not the history.

use sqlx::AssertSqlSafe;

use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::{from_json, since_id};
use crate::model::{RunningContext, Tags, UnixMs};
use crate::{ExecutionStatus, Store};

/// One finished execution as insights count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightRow {
    pub id: String,
    pub name: String,
    pub workflow: String,
    /// `passed` or `failed`.
    pub status: ExecutionStatus,
    pub scheduled_at: UnixMs,
    pub tags: Tags,
    /// The CI system's commit and branch, when the run had one.
    pub ci_commit: Option<String>,
    pub ci_branch: Option<String>,
}

impl Store {
    /// Executions that passed or failed, scheduled at or after `since`, oldest first, at most
    /// `limit` (the caller asks for one more to know it was cut).
    pub async fn insight_rows(&self, since: UnixMs, limit: u32) -> Result<Vec<InsightRow>> {
        let db = self.db();
        let rows = sqlx::query(AssertSqlSafe(
            "SELECT id, name, workflow, status, scheduled_at, tags, running_context FROM executions \
             WHERE id >= $1 AND status IN ('passed', 'failed') ORDER BY id LIMIT $2",
        ))
        .bind(since_id(since))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read executions for insights", e))?;
        rows.iter()
            .map(|row| {
                let context: RunningContext =
                    from_json("running context", &row.text("running_context")?)?;
                let ci = context.ci.unwrap_or_default();
                Ok(InsightRow {
                    id: row.text("id")?,
                    name: row.text("name")?,
                    workflow: row.text("workflow")?,
                    status: row
                        .text("status")?
                        .parse()
                        .map_err(|e| StoreError::decode("execution status", e))?,
                    scheduled_at: row.int("scheduled_at")?,
                    tags: from_json("tags", &row.text("tags")?)?,
                    ci_commit: ci.commit,
                    ci_branch: ci.branch,
                })
            })
            .collect()
    }
}
