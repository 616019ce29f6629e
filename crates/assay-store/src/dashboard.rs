//! Lean reads for the dashboard's charts: only the columns a chart needs, driven by the
//! `(workflow, id)` index so that the cost grows with the rows asked for, not with the history.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

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

/// Workflows per statement of [`Store::recent_runs_of`] (SQLite allows 500 compound terms).
const WORKFLOWS_PER_QUERY: usize = 100;

const POINT_COLUMNS: &str =
    "workflow, id, name, number, status, scheduled_at, started_at, finished_at, status_at";

impl Store {
    /// The newest `limit` executions of `workflow`, newest first, as chart points.
    pub async fn recent_runs(&self, workflow: &str, limit: u32) -> Result<Vec<RunPoint>> {
        let mut by_workflow = self.recent_runs_of(&[workflow.to_string()], limit).await?;
        Ok(by_workflow.remove(workflow).unwrap_or_default())
    }

    /// [`Store::recent_runs`] of several workflows in one round trip: one index range per
    /// workflow, joined with `UNION ALL`. Workflows without executions are absent.
    pub async fn recent_runs_of(
        &self,
        workflows: &[String],
        limit: u32,
    ) -> Result<HashMap<String, Vec<RunPoint>>> {
        let db = self.db();
        let mut out: HashMap<String, Vec<RunPoint>> = HashMap::new();
        for chunk in workflows.chunks(WORKFLOWS_PER_QUERY) {
            let sql = (0..chunk.len())
                .map(|i| {
                    format!(
                        "SELECT * FROM (SELECT {POINT_COLUMNS} FROM executions \
                         WHERE workflow = ${} ORDER BY id DESC LIMIT $1) AS w{i}",
                        i + 2
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(i64::from(limit.max(1)));
            for workflow in chunk {
                query = query.bind(workflow.clone());
            }
            let rows = query
                .fetch_all(&db.pool)
                .await
                .map_err(|e| db.err("read recent executions", e))?;
            for row in &rows {
                let status = row.text("status")?;
                let point = RunPoint {
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
                };
                out.entry(row.text("workflow")?).or_default().push(point);
            }
        }
        // Each subquery is ordered, but UNION ALL keeps no order: sort again, newest first.
        for points in out.values_mut() {
            points.sort_by(|a, b| b.id.cmp(&a.id));
        }
        Ok(out)
    }
}
