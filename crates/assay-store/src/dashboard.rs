//! Lean reads for the dashboard's charts: only the columns a chart needs, driven by the
//! `(workflow, id)` index so that the cost grows with the rows asked for, not with the history.

use serde::{Deserialize, Serialize};

use crate::ExecutionStatus;
use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::model::UnixMs;

/// One execution as a point of a chart: identity, status and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPoint {
    pub id: String,
    pub name: String,
    pub number: i64,
    pub status: ExecutionStatus,
    pub scheduled_at: UnixMs,
    pub started_at: Option<UnixMs>,
    pub finished_at: Option<UnixMs>,
    pub status_at: UnixMs,
}

impl RunPoint {
    /// How long it ran: start (or schedule) to finish, or to its last status change while it
    /// runs.
    pub fn duration_ms(&self) -> i64 {
        let start = self.started_at.unwrap_or(self.scheduled_at);
        (self.finished_at.unwrap_or(self.status_at) - start).max(0)
    }
}

impl Store {
    /// The newest `limit` executions of `workflow`, newest first, as chart points.
    pub async fn recent_runs(&self, workflow: &str, limit: u32) -> Result<Vec<RunPoint>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT id, name, number, status, scheduled_at, started_at, finished_at, status_at \
             FROM executions WHERE workflow = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(workflow)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read recent executions", e))?;
        rows.iter()
            .map(|row| {
                let status = row.text("status")?;
                Ok(RunPoint {
                    id: row.text("id")?,
                    name: row.text("name")?,
                    number: row.int("number")?,
                    status: status
                        .parse()
                        .map_err(|e| StoreError::decode("execution status", e))?,
                    scheduled_at: row.int("scheduled_at")?,
                    started_at: row.opt_int("started_at")?,
                    finished_at: row.opt_int("finished_at")?,
                    status_at: row.int("status_at")?,
                })
            })
            .collect()
    }
}
