//! The history a failure analysis reads: bounded, indexed lookups only, so that explaining one
//! execution costs the same on ten executions or on millions.

use sqlx::AssertSqlSafe;

use crate::Store;
use crate::error::Result;
use crate::executions::{SUMMARY_COLUMNS, summary_from_row};
use crate::model::ExecutionSummary;
use crate::test_cases::{RUN_COLUMNS, TestRun, run_from_row};

/// Similar failures counted at most this far ("1000 or more").
pub const SIMILAR_COUNT_CAP: i64 = 1000;

impl Store {
    /// Executions of `workflow` after `after_id` (exclusive; `None`: from the first) up to
    /// `up_to_id` (inclusive), newest first, at most `limit` (through `executions_workflow_id`).
    pub async fn executions_between(
        &self,
        workflow: &str,
        after_id: Option<&str>,
        up_to_id: &str,
        limit: u32,
    ) -> Result<Vec<ExecutionSummary>> {
        let db = self.db();
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM executions WHERE workflow = $1 AND id <= $2 \
             AND id > $3 ORDER BY id DESC LIMIT $4"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(workflow)
            .bind(up_to_id)
            .bind(after_id.unwrap_or(""))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("list executions since the last pass", e))?
            .iter()
            .map(summary_from_row)
            .collect()
    }

    /// The latest runs of one test (by key) of `workflow` in executions up to `up_to_id`
    /// (inclusive), newest first, at most `limit` (through `test_cases_workflow_key`).
    pub async fn recent_test_runs(
        &self,
        workflow: &str,
        key: &str,
        up_to_id: &str,
        limit: u32,
    ) -> Result<Vec<TestRun>> {
        let db = self.db();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM test_cases t JOIN executions e ON e.id = t.execution_id \
             WHERE t.workflow = $1 AND t.test_key = $2 AND t.execution_id <= $3 \
             ORDER BY t.recorded_at DESC, t.seq DESC LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(workflow)
            .bind(key)
            .bind(up_to_id)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("read a test's recent runs", e))?;
        rows.iter().map(run_from_row).collect()
    }

    /// Failed test cases of `workflow` with this error signature
    /// ([`assay_reports::signature`]) in executions before `before_id`, newest first, at most
    /// `limit`, and how many there are (counted up to [`SIMILAR_COUNT_CAP`]); through
    /// `test_cases_workflow_signature`.
    pub async fn similar_failures(
        &self,
        workflow: &str,
        signature: &str,
        before_id: &str,
        limit: u32,
    ) -> Result<(Vec<TestRun>, i64)> {
        let db = self.db();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM test_cases t JOIN executions e ON e.id = t.execution_id \
             WHERE t.workflow = $1 AND t.signature = $2 AND t.execution_id < $3 \
             ORDER BY t.recorded_at DESC, t.seq DESC LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(workflow)
            .bind(signature)
            .bind(before_id)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("read similar failures", e))?;
        let runs = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM test_cases WHERE workflow = $1 \
             AND signature = $2 AND execution_id < $3 LIMIT $4) capped",
        )
        .bind(workflow)
        .bind(signature)
        .bind(before_id)
        .bind(SIMILAR_COUNT_CAP)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| db.err("count similar failures", e))?;
        Ok((runs, count))
    }
}
