//! Executions: create with an atomically allocated number, record progress, finish, abort,
//! find and list, and recover executions whose process died.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::db::{RowExt, is_busy, is_unique_violation};
use crate::error::{Result, StoreError};
use crate::live::Kind;
use crate::model::*;
use crate::{ExecutionStatus, StepStatus, Store};

pub(crate) const SUMMARY_COLUMNS: &str = "id, name, workflow, number, status, scheduled_at, started_at, \
     finished_at, status_at, tags, config, running_context, error_message, abort_requested_at, \
     record_errors, parent_id, parent_name, parent_step";

/// Statuses of executions that have not ended, as SQL literals.
const ACTIVE_STATUSES: &str = "('queued', 'running', 'paused')";
/// Statuses of ended executions, as SQL literals.
pub(crate) const TERMINAL_STATUSES: &str = "('passed', 'failed', 'aborted', 'canceled')";

/// How many times a write is retried when another process holds the SQLite lock past the busy
/// timeout or wins the race for an execution number.
const WRITE_ATTEMPTS: u32 = 20;

/// The smallest UUID v7 text for a unix-ms time: ids compare as text in time order, so
/// `id >= since_id(t)` means "scheduled at or after t" and uses the id indexes.
pub(crate) fn since_id(ms: UnixMs) -> String {
    let ms = ms.max(0) as u64;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        (ms >> 16) & 0xffff_ffff,
        ms & 0xffff
    )
}

fn uuid_ms(id: &uuid::Uuid) -> UnixMs {
    id.get_timestamp()
        .map(|ts| {
            let (secs, nanos) = ts.to_unix();
            secs as i64 * 1000 + (nanos / 1_000_000) as i64
        })
        .unwrap_or_else(now_ms)
}

/// Keeps an execution's lease fresh while it runs; stops when dropped.
#[derive(Debug)]
pub struct HeartbeatGuard {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeartbeatGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

mod claim;
mod list;
mod read;

pub use list::{PageRecord, SummaryPage};
pub(crate) use read::summary_from_row;

impl Store {
    /// Record a new execution and give it the next number of its workflow.
    ///
    /// The number comes from a per-workflow counter row incremented in the same transaction as
    /// the insert, so concurrent callers (tasks or processes) get distinct consecutive numbers;
    /// the unique index on (workflow, number) backs this up, and a collision (a counter behind
    /// the table) resynchronises the counter and retries.
    pub async fn create_execution(&self, new: NewExecution) -> Result<ExecutionSummary> {
        if new.workflow.trim().is_empty() {
            return Err(StoreError::Invalid(
                "an execution needs a workflow name".into(),
            ));
        }
        let id = match new.scheduled_at {
            None => uuid::Uuid::now_v7(),
            Some(ms) => {
                let ms = ms.max(0) as u64;
                let ts = uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    ms / 1000,
                    ((ms % 1000) * 1_000_000) as u32,
                );
                uuid::Uuid::new_v7(ts)
            }
        };
        let scheduled_at = uuid_ms(&id);
        let id = id.hyphenated().to_string();
        let status = new.status.unwrap_or(ExecutionStatus::Queued);
        let started_at = (status == ExecutionStatus::Running).then_some(scheduled_at);
        let tags = to_json(&new.tags)?;
        let config = to_json(&new.config)?;
        let context = to_json(&new.running_context)?;
        let db = self.db();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let mut tx = db.begin_write().await?;
                let number: i64 = sqlx::query_scalar(
                    "INSERT INTO workflow_counters (workflow, last_number) VALUES ($1, 1) \
                     ON CONFLICT (workflow) DO UPDATE \
                     SET last_number = workflow_counters.last_number + 1 \
                     RETURNING last_number",
                )
                .bind(&new.workflow)
                .fetch_one(&mut *tx)
                .await?;
                let name = format!("{}-{number}", new.workflow);
                let owner = new.owner.as_ref();
                sqlx::query(
                    "INSERT INTO executions (id, name, workflow, number, status, scheduled_at, \
                     started_at, status_at, definition, resolved, config, tags, running_context, \
                     lease_host, lease_pid, lease_token, heartbeat_at, parent_id, parent_name, \
                     parent_step, target) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21)",
                )
                .bind(&id)
                .bind(&name)
                .bind(&new.workflow)
                .bind(number)
                .bind(status.as_str())
                .bind(scheduled_at)
                .bind(started_at)
                .bind(scheduled_at)
                .bind(&new.definition)
                .bind(new.resolved.as_deref())
                .bind(&config)
                .bind(&tags)
                .bind(&context)
                .bind(owner.map(|o| o.host.clone()))
                .bind(owner.map(|o| o.pid as i64))
                .bind(owner.map(|o| o.token.clone()))
                .bind(owner.map(|_| scheduled_at))
                .bind(new.parent.as_ref().map(|p| p.id.clone()))
                .bind(new.parent.as_ref().map(|p| p.name.clone()))
                .bind(new.parent.as_ref().map(|p| p.step_ref.clone()))
                .bind(new.target.clone())
                .execute(&mut *tx)
                .await?;
                for (key, value) in &new.tags {
                    sqlx::query(
                        "INSERT INTO execution_tags (execution_id, key, value) VALUES ($1, $2, $3)",
                    )
                    .bind(&id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>((number, name))
            }
            .await;
            match result {
                Ok((number, name)) => {
                    return Ok(ExecutionSummary {
                        id,
                        name,
                        number,
                        workflow: new.workflow,
                        status,
                        scheduled_at,
                        started_at,
                        finished_at: None,
                        status_at: scheduled_at,
                        tags: new.tags,
                        config: new.config,
                        running_context: new.running_context,
                        error_message: None,
                        abort_requested: false,
                        record_errors: Vec::new(),
                        parent: new.parent,
                    });
                }
                Err(e) if attempt < WRITE_ATTEMPTS && is_unique_violation(&e) => {
                    // The counter is behind the table (rows written by an older version or by
                    // hand): move it to the highest number in use and try again.
                    sqlx::query(
                        "UPDATE workflow_counters SET last_number = \
                         (SELECT COALESCE(MAX(number), 0) FROM executions WHERE workflow = $1) \
                         WHERE workflow = $1",
                    )
                    .bind(&new.workflow)
                    .execute(&db.writer)
                    .await
                    .map_err(|e| db.err("record the execution", e))?;
                }
                Err(e) if attempt < WRITE_ATTEMPTS && is_busy(&e) => backoff(attempt).await,
                Err(e) => return Err(db.err("record the execution", e)),
            }
        }
    }

    /// Store the compiled plan (JSON text) once it is known.
    pub async fn set_resolved(&self, id: &str, plan_json: &str) -> Result<()> {
        self.update_one(
            "record the resolved definition",
            id,
            "UPDATE executions SET resolved = $2 WHERE id = $1",
            |q| q.bind(plan_json.to_string()),
        )
        .await
    }

    /// Replace the tags of an execution (Testkube's `PATCH …/tags`): the stored map and the
    /// index the tag filter reads change together, in one transaction.
    pub async fn set_tags(&self, id: &str, tags: &Tags) -> Result<()> {
        let json = to_json(tags)?;
        let db = self.db();
        let updated = retry_busy(|| async {
            let mut tx = db.begin_write().await?;
            let updated = sqlx::query("UPDATE executions SET tags = $2 WHERE id = $1")
                .bind(id)
                .bind(&json)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM execution_tags WHERE execution_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if updated == 1 {
                for (key, value) in tags {
                    sqlx::query(
                        "INSERT INTO execution_tags (execution_id, key, value) VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(updated)
        })
        .await
        .map_err(|e| db.err("update the tags", e))?;
        if updated == 0 {
            return Err(StoreError::not_found(format!("execution {id}")));
        }
        Ok(())
    }

    /// Every tag key used by the executions of `workflow` (of all workflows when `None`) with
    /// its distinct values, sorted (Testkube's `GET …/tags`).
    pub async fn tag_values(
        &self,
        workflow: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT DISTINCT t.key, t.value FROM execution_tags t \
             JOIN executions e ON e.id = t.execution_id \
             WHERE $1 IS NULL OR e.workflow = $1 ORDER BY t.key, t.value",
        )
        .bind(workflow.map(str::to_string))
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list tags", e))?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            out.entry(row.text("key")?)
                .or_default()
                .push(row.text("value")?);
        }
        Ok(out)
    }

    /// Mark the execution running (it keeps its first `startedAt` if it had one).
    pub async fn start_execution(&self, id: &str, at: UnixMs) -> Result<()> {
        self.update_one(
            "start the execution",
            id,
            "UPDATE executions SET status = 'running', started_at = COALESCE(started_at, $2), \
             status_at = $2 WHERE id = $1",
            |q| q.bind(at),
        )
        .await
    }

    /// Change the status of a running execution (e.g. `paused`). Use
    /// [`Store::finish_execution`] for the final status.
    pub async fn set_status(&self, id: &str, status: ExecutionStatus, at: UnixMs) -> Result<()> {
        self.update_one(
            "update the execution status",
            id,
            "UPDATE executions SET status = $2, status_at = $3 WHERE id = $1",
            |q| q.bind(status.as_str()).bind(at),
        )
        .await
    }

    /// Record the end of an execution: compact its logs, then store the final status and drop the
    /// lease. The owner's word is final, even over a reader that wrongly gave up on it.
    pub async fn finish_execution(&self, id: &str, finish: Finish) -> Result<()> {
        self.files().compact_logs(id).await?;
        self.update_one(
            "record the end of the execution",
            id,
            "UPDATE executions SET status = $2, finished_at = $3, status_at = $3, \
             error_message = COALESCE($4, error_message), lease_host = NULL, lease_pid = NULL, \
             lease_token = NULL, heartbeat_at = NULL WHERE id = $1",
            |q| {
                q.bind(finish.status.as_str())
                    .bind(finish.at)
                    .bind(finish.error_message.clone())
            },
        )
        .await
    }

    /// Keep the problems met while recording an execution (see
    /// [`ExecutionSummary::record_errors`]); they replace the ones stored before.
    pub async fn set_record_errors(&self, id: &str, errors: &[String]) -> Result<()> {
        let text =
            serde_json::to_string(errors).map_err(|e| StoreError::decode("record errors", e))?;
        self.update_one(
            "record the problems met while recording",
            id,
            "UPDATE executions SET record_errors = $2 WHERE id = $1",
            |q| q.bind(text.clone()),
        )
        .await
    }

    /// Insert or replace the result of one step.
    pub async fn record_step(&self, id: &str, step: &StepResult) -> Result<()> {
        self.record_steps(id, std::slice::from_ref(step)).await
    }

    /// Insert or replace the results of several steps at once (e.g. every step as `queued`
    /// when the plan is known, or the results a runner found waiting together). When a step
    /// is given twice, its last result is the one kept.
    ///
    /// Up to [`STEPS_PER_STATEMENT`] results are one statement (several rows of one `INSERT`),
    /// which is atomic by itself: no round trips for BEGIN and COMMIT. More go in one
    /// transaction.
    pub async fn record_steps(&self, id: &str, steps: &[StepResult]) -> Result<()> {
        // One `INSERT … ON CONFLICT DO UPDATE` may not touch a row twice on PostgreSQL.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            last.insert(step.step_ref.as_str(), i);
        }
        let steps: Vec<&StepResult> = steps
            .iter()
            .enumerate()
            .filter(|(i, s)| last.get(s.step_ref.as_str()) == Some(i))
            .map(|(_, s)| s)
            .collect();
        if steps.is_empty() {
            return Ok(());
        }
        let db = self.db();
        retry_busy(|| async {
            if steps.len() <= STEPS_PER_STATEMENT {
                return upsert_steps(id, &steps)
                    .execute(&db.writer)
                    .await
                    .map(|_| ());
            }
            let mut tx = db.begin_write().await?;
            for chunk in steps.chunks(STEPS_PER_STATEMENT) {
                upsert_steps(id, chunk).execute(&mut *tx).await?;
            }
            tx.commit().await
        })
        .await
        .map_err(|e| foreign_key_to_not_found(db.err("record step results", e), id))?;
        self.signal(id, Kind::State);
        Ok(())
    }

    /// Append an output value.
    pub async fn add_output(&self, id: &str, output: &Output) -> Result<()> {
        let value = to_json(&output.value)?;
        let db = self.db();
        retry_busy(|| async {
            sqlx::query(
                "INSERT INTO outputs (execution_id, seq, step_ref, name, value) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM outputs WHERE execution_id = $1",
            )
            .bind(id)
            .bind(output.step_ref.clone())
            .bind(&output.name)
            .bind(&value)
            .execute(&db.writer)
            .await
        })
        .await
        .map(|_| ())
        .map_err(|e| foreign_key_to_not_found(db.err("record an output", e), id))
    }

    /// Append a report.
    pub async fn add_report(&self, id: &str, report: &Report) -> Result<()> {
        let data = to_json(&report.data)?;
        let db = self.db();
        retry_busy(|| async {
            sqlx::query(
                "INSERT INTO reports (execution_id, seq, step_ref, kind, file, data) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM reports WHERE execution_id = $1",
            )
            .bind(id)
            .bind(report.step_ref.clone())
            .bind(&report.kind)
            .bind(report.file.clone())
            .bind(&data)
            .execute(&db.writer)
            .await
        })
        .await
        .map(|_| ())
        .map_err(|e| foreign_key_to_not_found(db.err("record a report", e), id))
    }

    /// Run a single-row update, mapping "no row" to [`StoreError::NotFound`].
    async fn update_one<'q, F>(
        &self,
        action: &'static str,
        id: &str,
        sql: &'static str,
        bind: F,
    ) -> Result<()>
    where
        F: Fn(
            sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    {
        let db = self.db();
        let done = retry_busy(|| async {
            bind(sqlx::query(sql).bind(id.to_string()))
                .execute(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err(action, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("execution `{id}`")));
        }
        self.signal(id, Kind::State);
        Ok(())
    }

    pub(crate) async fn exists(&self, id: &str) -> Result<()> {
        let db = self.db();
        sqlx::query("SELECT id FROM executions WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await
            .map_err(|e| db.err("read the execution", e))?
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found(format!("execution `{id}`")))
    }
}

/// Results of one step per row in [`upsert_steps`]: 12 bound values each, far under the
/// limits of SQLite (32,766) and PostgreSQL (65,535).
const STEPS_PER_STATEMENT: usize = 200;

/// The statement that inserts or replaces the results of `steps` (distinct refs, at most
/// [`STEPS_PER_STATEMENT`]) of execution `id`.
fn upsert_steps<'a>(
    id: &'a str,
    steps: &[&'a StepResult],
) -> sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments> {
    let mut sql = String::from(
        "INSERT INTO step_results (execution_id, ref, position, name, status, exit_code, \
         started_at, finished_at, error_message, peak_memory_bytes, cpu_time_ms, \
         quarantined_failures) VALUES ",
    );
    for i in 0..steps.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..12 {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i * 12 + column + 1));
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (execution_id, ref) DO UPDATE SET position = excluded.position, \
         name = excluded.name, status = excluded.status, exit_code = excluded.exit_code, \
         started_at = excluded.started_at, finished_at = excluded.finished_at, \
         error_message = excluded.error_message, \
         peak_memory_bytes = excluded.peak_memory_bytes, \
         cpu_time_ms = excluded.cpu_time_ms, \
         quarantined_failures = excluded.quarantined_failures",
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for step in steps {
        query =
            query
                .bind(id)
                .bind(&step.step_ref)
                .bind(step.position)
                .bind(step.name.clone())
                .bind(step.status.as_str())
                .bind(step.exit_code)
                .bind(step.started_at)
                .bind(step.finished_at)
                .bind(step.error_message.clone())
                .bind(step.peak_memory_bytes)
                .bind(step.cpu_time_ms)
                .bind((!step.quarantined_failures.is_empty()).then(|| {
                    serde_json::Value::from(step.quarantined_failures.clone()).to_string()
                }));
    }
    query
}

/// Retry a statement while another process holds the SQLite write lock past the busy timeout.
pub(crate) async fn retry_busy<T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if attempt < WRITE_ATTEMPTS && is_busy(&e) => backoff(attempt).await,
            other => return other,
        }
    }
}

async fn backoff(attempt: u32) {
    let jitter = (uuid::Uuid::new_v4().as_u128() % 20) as u64;
    tokio::time::sleep(Duration::from_millis(10 * attempt.min(10) as u64 + jitter)).await;
}

fn foreign_key_to_not_found(err: StoreError, id: &str) -> StoreError {
    if let StoreError::Database {
        source: sqlx::Error::Database(db),
        ..
    } = &err
        && db.is_foreign_key_violation()
    {
        return StoreError::not_found(format!("execution `{id}`"));
    }
    err
}

pub(crate) fn parse_step_status(text: &str) -> Result<StepStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|e| StoreError::decode("step status", e))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("encode JSON: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::decode(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_id_orders_with_real_ids() {
        let id = uuid::Uuid::now_v7();
        let ms = uuid_ms(&id);
        let text = id.hyphenated().to_string();
        assert!(since_id(ms).as_str() <= text.as_str());
        assert!(since_id(ms + 1).as_str() > text.as_str());
    }
}
