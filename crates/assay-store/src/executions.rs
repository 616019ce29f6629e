//! Executions: create with an atomically allocated number, record progress, finish, abort,
//! find and list, and recover executions whose process died.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use crate::db::{Backend, RowExt, is_busy, is_unique_violation};
use crate::error::{Result, StoreError};
use crate::lease::{self, LeaseOwner, Liveness};
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

    /// Ask the process that runs the execution to abort it. Returns `false` when the execution
    /// has already ended.
    pub async fn request_abort(&self, id: &str, reason: Option<&str>) -> Result<bool> {
        let db = self.db();
        let now = now_ms();
        let done = retry_busy(|| async {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE executions SET abort_requested_at = COALESCE(abort_requested_at, $2), \
                 abort_reason = COALESCE(abort_reason, $3) \
                 WHERE id = $1 AND status IN {ACTIVE_STATUSES}"
            )))
            .bind(id)
            .bind(now)
            .bind(reason.map(str::to_string))
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("request the abort", e))?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.exists(id).await?;
        Ok(false)
    }

    /// Whether an abort was requested (one indexed lookup; poll it every second or so). Gives
    /// the reason when one was given.
    pub async fn abort_requested(&self, id: &str) -> Result<Option<String>> {
        let db = self.db();
        let row =
            sqlx::query("SELECT abort_requested_at, abort_reason FROM executions WHERE id = $1")
                .bind(id)
                .fetch_optional(&db.pool)
                .await
                .map_err(|e| db.err("check for an abort request", e))?
                .ok_or_else(|| StoreError::not_found(format!("execution `{id}`")))?;
        Ok(match row.opt_int("abort_requested_at")? {
            Some(_) => Some(
                row.opt_text("abort_reason")?
                    .unwrap_or_else(|| "abort requested".into()),
            ),
            None => None,
        })
    }

    /// Refresh the lease of an execution this process owns. Returns `false` when this process
    /// no longer holds the lease (the execution ended or another owner claimed it).
    pub async fn heartbeat(&self, id: &str) -> Result<bool> {
        let me = LeaseOwner::current();
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query(
                "UPDATE executions SET heartbeat_at = $2 \
                 WHERE id = $1 AND lease_host = $3 AND lease_pid = $4 AND lease_token = $5",
            )
            .bind(id)
            .bind(now_ms())
            .bind(&me.host)
            .bind(me.pid as i64)
            .bind(&me.token)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("refresh the execution's heartbeat", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Refresh the lease every [`lease::HEARTBEAT_INTERVAL`] until the guard is dropped.
    /// Needs a tokio runtime.
    pub fn spawn_heartbeat(&self, id: &str) -> HeartbeatGuard {
        let store = self.clone();
        let id = id.to_string();
        let task = tokio::spawn(async move {
            // Not at once: every lease starts with a fresh heartbeat (create, claim, take).
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + lease::HEARTBEAT_INTERVAL,
                lease::HEARTBEAT_INTERVAL,
            );
            loop {
                tick.tick().await;
                // A failed heartbeat is retried on the next tick; readers allow for a few.
                let _ = store.heartbeat(&id).await;
            }
        });
        HeartbeatGuard { task }
    }

    /// Take ownership of an execution that has no live owner (e.g. a queued one). Returns
    /// `false` when someone else holds it or it has ended.
    pub async fn claim_execution(&self, id: &str, owner: &LeaseOwner) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE executions SET lease_host = $2, lease_pid = $3, lease_token = $4, \
                 heartbeat_at = $5 WHERE id = $1 AND lease_host IS NULL AND status IN {ACTIVE_STATUSES}"
            )))
            .bind(id)
            .bind(&owner.host)
            .bind(owner.pid as i64)
            .bind(&owner.token)
            .bind(now_ms())
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("claim the execution", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Take a queued execution that `owner` holds (it was created `queued` with `owner` as its
    /// lease because that process keeps its sensitive config values in memory). Returns `false`
    /// when it is not queued any more or someone else holds it. The caller makes sure it calls
    /// this once per execution (whoever took the values from memory).
    pub async fn claim_held_execution(&self, id: &str, owner: &LeaseOwner) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query(
                "UPDATE executions SET heartbeat_at = $5 WHERE id = $1 AND status = 'queued' \
                 AND lease_host = $2 AND lease_pid = $3 AND COALESCE(lease_token, '') = $4",
            )
            .bind(id)
            .bind(&owner.host)
            .bind(owner.pid as i64)
            .bind(&owner.token)
            .bind(now_ms())
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("claim the execution", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Take a queued execution for `owner` and mark it running, in one statement: the claim of
    /// [`Store::claim_execution`] (or of [`Store::claim_held_execution`] with `held`: the run
    /// whose sensitive values `owner` holds), the abort check and the start, which took four
    /// round trips before. An execution asked to abort while it waited is taken but not
    /// started ([`Taken::AbortRequested`]): the caller records its end.
    pub async fn take_queued(
        &self,
        id: &str,
        owner: &LeaseOwner,
        held: bool,
        at: UnixMs,
    ) -> Result<Taken> {
        let claim = if held {
            "status = 'queued' AND lease_host = $2 AND lease_pid = $3 \
             AND COALESCE(lease_token, '') = $4"
                .to_string()
        } else {
            format!("lease_host IS NULL AND status IN {ACTIVE_STATUSES}")
        };
        let sql = format!(
            "UPDATE executions SET lease_host = $2, lease_pid = $3, lease_token = $4, \
             heartbeat_at = $5, \
             status = CASE WHEN abort_requested_at IS NULL THEN 'running' ELSE status END, \
             started_at = CASE WHEN abort_requested_at IS NULL \
                 THEN COALESCE(started_at, $5) ELSE started_at END, \
             status_at = CASE WHEN abort_requested_at IS NULL THEN $5 ELSE status_at END \
             WHERE id = $1 AND {claim} RETURNING {SUMMARY_COLUMNS}, abort_reason"
        );
        let db = self.db();
        let row = retry_busy(|| async {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(id)
                .bind(&owner.host)
                .bind(owner.pid as i64)
                .bind(&owner.token)
                .bind(at)
                .fetch_optional(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err("take the queued execution", e))?;
        let Some(row) = row else {
            return Ok(Taken::NotAvailable);
        };
        let summary = summary_from_row(&row)?;
        if summary.abort_requested {
            return Ok(Taken::AbortRequested(
                row.opt_text("abort_reason")?
                    .unwrap_or_else(|| "abort requested".into()),
            ));
        }
        self.signal(id, Kind::State);
        Ok(Taken::Started(Box::new(summary)))
    }

    /// Mark as `aborted` every unfinished execution whose owner is gone (see [`crate::lease`]).
    /// Readers call this before they show executions; it costs one indexed query when nothing
    /// is abandoned. Executions without an owner (queued on a server) are left alone. A queued
    /// execution with an owner is one whose sensitive config values that process held in
    /// memory (they are never stored): when the process is gone it is marked `failed`, saying
    /// the values were lost.
    pub async fn recover_abandoned(&self) -> Result<Vec<Recovered>> {
        let db = self.db();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, name, status, lease_host, lease_pid, lease_token, heartbeat_at FROM executions \
             WHERE status IN {ACTIVE_STATUSES} AND lease_host IS NOT NULL"
        )))
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("look for abandoned executions", e))?;
        let now = now_ms();
        let mut recovered = Vec::new();
        for row in rows {
            let owner = LeaseOwner {
                host: row.text("lease_host")?,
                pid: row.opt_int("lease_pid")?.unwrap_or(0) as u32,
                token: row.opt_text("lease_token")?.unwrap_or_default(),
            };
            let heartbeat = row.opt_int("heartbeat_at")?;
            let Liveness::Dead(reason) =
                lease::judge(&owner, heartbeat, now, self.inner.lease_timeout)
            else {
                continue;
            };
            let id = row.text("id")?;
            let held = row.text("status")? == "queued";
            let (status, reason) = if held {
                (
                    "failed",
                    format!(
                        "the sensitive config values given for this run were held in memory only \
                         (they are never stored) by the server process {} on {}, which stopped \
                         before the run started: run it again and give them again",
                        owner.pid, owner.host
                    ),
                )
            } else {
                ("aborted", format!("aborted: {reason}"))
            };
            let aborted = retry_busy(|| async {
                let mut tx = db.begin_write().await?;
                // Compare-and-set on the lease we judged: a heartbeat or a finish that happened
                // meanwhile wins.
                let done = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE executions SET status = $8, finished_at = $2, status_at = $2, \
                     error_message = $3, lease_host = NULL, lease_pid = NULL, lease_token = NULL, \
                     heartbeat_at = NULL \
                     WHERE id = $1 AND status IN {ACTIVE_STATUSES} AND lease_host = $4 \
                     AND lease_pid = $5 AND COALESCE(lease_token, '') = $6 \
                     AND COALESCE(heartbeat_at, -1) = $7"
                )))
                .bind(&id)
                .bind(now)
                .bind(&reason)
                .bind(&owner.host)
                .bind(owner.pid as i64)
                .bind(&owner.token)
                .bind(heartbeat.unwrap_or(-1))
                .bind(status)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE step_results SET status = 'aborted', \
                     finished_at = COALESCE(finished_at, $2), \
                     error_message = COALESCE(error_message, $3) \
                     WHERE execution_id = $1 AND status IN {ACTIVE_STATUSES}"
                )))
                .bind(&id)
                .bind(now)
                .bind(&reason)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
            .map_err(|e| db.err("mark an abandoned execution aborted", e))?;
            if aborted {
                self.signal(&id, Kind::State);
                // Logs of a crashed run stay readable uncompressed if this fails.
                let _ = self.files().compact_logs(&id).await;
                recovered.push(Recovered {
                    id,
                    name: row.text("name")?,
                    reason,
                });
            }
        }
        Ok(recovered)
    }

    /// Find an execution by id, name or workflow + number.
    pub async fn find_execution(&self, reference: &ExecutionRef) -> Result<ExecutionSummary> {
        let db = self.db();
        let query = match reference {
            ExecutionRef::Id(id) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE id = $1"
            )))
            .bind(id.clone()),
            ExecutionRef::Name(name) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE name = $1"
            )))
            .bind(name.clone()),
            ExecutionRef::Number { workflow, number } => sqlx::query(AssertSqlSafe(format!(
                "SELECT {SUMMARY_COLUMNS} FROM executions WHERE workflow = $1 AND number = $2"
            )))
            .bind(workflow.clone())
            .bind(*number),
        };
        let row = query
            .fetch_optional(&db.pool)
            .await
            .map_err(|e| db.err("read the execution", e))?
            .ok_or_else(|| StoreError::not_found(reference.to_string()))?;
        summary_from_row(&row)
    }

    /// Everything recorded about one execution.
    pub async fn get_execution(&self, reference: &ExecutionRef) -> Result<Execution> {
        let summary = self.find_execution(reference).await?;
        let db = self.db();
        let id = summary.id.clone();
        let err = |e| db.err("read the execution", e);
        let row = sqlx::query("SELECT definition, resolved FROM executions WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .map_err(err)?;
        let definition = row.text("definition")?;
        let resolved = row.opt_text("resolved")?;
        let steps = self.steps(&id).await?;
        let outputs = sqlx::query(
            "SELECT step_ref, name, value FROM outputs WHERE execution_id = $1 ORDER BY seq",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| {
            Ok(Output {
                step_ref: r.opt_text("step_ref")?,
                name: r.text("name")?,
                value: from_json("output value", &r.text("value")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let reports = sqlx::query(
            "SELECT step_ref, kind, file, data FROM reports WHERE execution_id = $1 ORDER BY seq",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| {
            Ok(Report {
                step_ref: r.opt_text("step_ref")?,
                kind: r.text("kind")?,
                file: r.opt_text("file")?,
                data: from_json("report data", &r.text("data")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let artifacts = self.list_artifacts(&id).await?;
        let children = self.children(&id).await?;
        Ok(Execution {
            summary,
            definition,
            resolved,
            steps,
            outputs,
            reports,
            artifacts,
            children,
        })
    }

    /// The executions that `execute` steps of execution `id` started, oldest first.
    pub async fn children(&self, id: &str) -> Result<Vec<ChildExecution>> {
        let db = self.db();
        sqlx::query(
            "SELECT id, name, workflow, number, status, parent_step FROM executions \
             WHERE parent_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read the executions it started", e))?
        .iter()
        .map(|r| {
            Ok(ChildExecution {
                id: r.text("id")?,
                name: r.text("name")?,
                workflow: r.text("workflow")?,
                number: r.int("number")?,
                status: r
                    .text("status")?
                    .parse()
                    .map_err(|e| StoreError::decode("execution status", e))?,
                step_ref: r.opt_text("parent_step")?.unwrap_or_default(),
            })
        })
        .collect()
    }

    /// Step results of an execution in plan order.
    pub async fn steps(&self, id: &str) -> Result<Vec<StepResult>> {
        let db = self.db();
        sqlx::query(
            "SELECT ref, position, name, status, exit_code, started_at, finished_at, \
             error_message, peak_memory_bytes, cpu_time_ms, quarantined_failures \
             FROM step_results \
             WHERE execution_id = $1 ORDER BY position, ref",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("read step results", e))?
        .iter()
        .map(|r| {
            Ok(StepResult {
                step_ref: r.text("ref")?,
                position: r.int("position")?,
                name: r.opt_text("name")?,
                status: parse_step_status(&r.text("status")?)?,
                exit_code: r.opt_int("exit_code")?,
                started_at: r.opt_int("started_at")?,
                finished_at: r.opt_int("finished_at")?,
                error_message: r.opt_text("error_message")?,
                peak_memory_bytes: r.opt_int("peak_memory_bytes")?,
                cpu_time_ms: r.opt_int("cpu_time_ms")?,
                quarantined_failures: match r.opt_text("quarantined_failures")? {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|e| StoreError::decode("quarantined failures", e))?,
                    None => Vec::new(),
                },
            })
        })
        .collect()
    }

    /// Executions matching `filter`, newest first. The database builds the whole page as one
    /// JSON text (see [`SummaryPage`]) and returns it as ONE row: sqlx hands each row of a
    /// SQLite query from its worker thread through a channel and converts it for the `Any`
    /// driver, which cost more than the query itself once per row.
    pub async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>> {
        self.list_page(filter).await?.summaries()
    }

    /// [`Store::list_executions`] as the database wrote it, for callers that turn the page into
    /// JSON again (the REST list) and need no [`ExecutionSummary`] values.
    pub async fn list_page(&self, filter: &ExecutionFilter) -> Result<SummaryPage> {
        let db = self.db();
        let (sql, binds) = page_sql(db.backend, filter);
        let row = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.err("list executions", e))?;
        Ok(SummaryPage(row.text("page")?))
    }

    /// [`Store::list_page`] of `filter` and [`Store::count_executions`] of `counted` in one
    /// statement (one trip to the database instead of two), when `counted` has neither tags
    /// nor `since` (it then reads `execution_counts`); otherwise the two calls.
    pub async fn list_and_count(
        &self,
        filter: &ExecutionFilter,
        counted: &ExecutionFilter,
    ) -> Result<(SummaryPage, StatusCounts)> {
        if !counted.tags.is_empty() || counted.since.is_some() {
            let page = self.list_page(filter).await?;
            return Ok((page, self.count_executions(counted).await?));
        }
        let db = self.db();
        let (page, binds) = page_sql(db.backend, filter);
        let (counts, binds) = counters_sql(counted, binds);
        let concat = match db.backend {
            Backend::Sqlite => "group_concat(status || '=' || n, ',')",
            Backend::Postgres => "string_agg(status || '=' || n, ',')",
        };
        let sql = format!(
            "SELECT ({page}) AS page, \
             (SELECT {concat} FROM ({counts} GROUP BY status) AS counted) AS counts"
        );
        let row = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.err("list executions", e))?;
        let mut totals = StatusCounts::default();
        for pair in row.opt_text("counts")?.iter().flat_map(|t| t.split(',')) {
            let (status, n) = pair
                .split_once('=')
                .ok_or_else(|| StoreError::decode("execution counts", pair))?;
            let status: ExecutionStatus = status
                .parse()
                .map_err(|e| StoreError::decode("execution status", e))?;
            let n: i64 = n
                .parse()
                .map_err(|e| StoreError::decode("execution count", e))?;
            totals.0.insert(status, n);
        }
        Ok((SummaryPage(row.text("page")?), totals))
    }

    /// How many executions match `filter` (its paging, `limit` and `before_id`, ignored), by
    /// status, no rows loaded. Filters by workflow and status only read the counters the
    /// database keeps per workflow and status (`execution_counts`, migration 0017: a few rows
    /// whatever the history's size); tags or `since` count the matching rows.
    pub async fn count_executions(&self, filter: &ExecutionFilter) -> Result<StatusCounts> {
        let (mut sql, binds) = if filter.tags.is_empty() && filter.since.is_none() {
            counters_sql(filter, Vec::new())
        } else {
            let (sql, binds, _) = filter_sql(filter, "SELECT status, COUNT(*) AS n");
            (sql, binds)
        };
        sql.push_str(" GROUP BY status");
        let db = self.db();
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_all(&db.pool)
            .await
            .map_err(|e| db.err("count executions", e))?;
        let mut counts = StatusCounts::default();
        for row in &rows {
            let status: ExecutionStatus = row
                .text("status")?
                .parse()
                .map_err(|e| StoreError::decode("execution status", e))?;
            counts.0.insert(status, row.int("n")?);
        }
        Ok(counts)
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

enum Bind {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

/// The statement giving the page of `filter` as one JSON array text in a column `page` (see
/// [`SummaryPage`]), with its binds.
fn page_sql(backend: Backend, filter: &ExecutionFilter) -> (String, Vec<Bind>) {
    let (mut sql, mut binds, order) =
        filter_sql(filter, &format!("SELECT {} AS r", summary_json(backend)));
    if let Some(before) = &filter.before_id {
        binds.push(Bind::Text(before.clone()));
        sql.push_str(&format!(" AND {order} < ${}", binds.len()));
    }
    let limit = filter.limit.unwrap_or(100).max(1) as i64;
    binds.push(Bind::Int(limit));
    sql.push_str(&format!(" ORDER BY {order} DESC LIMIT ${}", binds.len()));
    let concat = match backend {
        Backend::Sqlite => "group_concat(r, ',')",
        Backend::Postgres => "string_agg(r, ',')",
    };
    (
        format!("SELECT '[' || COALESCE({concat}, '') || ']' AS page FROM ({sql}) AS page_rows"),
        binds,
    )
}

/// A page of executions as the database wrote it: a JSON array with one array per execution,
/// its `SUMMARY_FIELDS` in order (no keys: the page is a third shorter and decodes faster).
#[derive(Debug, Clone)]
pub struct SummaryPage(String);

impl SummaryPage {
    /// The summaries, newest first.
    pub fn summaries(&self) -> Result<Vec<ExecutionSummary>> {
        let records: Vec<SummaryRecord> = from_json("executions list", &self.0)?;
        let mut page = records
            .into_iter()
            .map(SummaryRecord::into_summary)
            .collect::<Result<Vec<_>>>()?;
        // An aggregate's input order is the subquery's in practice, but no SQL standard says
        // so; the order key is the execution id in both forms of `filter_sql`.
        page.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        Ok(page)
    }

    /// The page's executions one by one as the database wrote them, in the page's order (the
    /// REST list keeps entries of ended executions by their record: [`crate::testkube::ListCache`]).
    pub fn records(&self) -> Result<Vec<PageRecord<'_>>> {
        split_array(&self.0)
            .map(|texts| texts.into_iter().map(PageRecord).collect())
            .ok_or_else(|| StoreError::decode("executions list", "not a JSON array of arrays"))
    }
}

/// One execution of a [`SummaryPage`]: its stored summary columns as one JSON text. Two equal
/// texts are the same summary.
#[derive(Debug, Clone, Copy)]
pub struct PageRecord<'a>(&'a str);

impl<'a> PageRecord<'a> {
    /// The record's text.
    pub fn text(&self) -> &'a str {
        self.0
    }

    /// The summary the record holds.
    pub fn summary(&self) -> Result<ExecutionSummary> {
        from_json::<SummaryRecord>("executions list", self.0)?.into_summary()
    }
}

/// The texts of the elements of the JSON array `text`, or `None` when its brackets, strings
/// or nesting do not close. The elements themselves are checked where they are decoded.
/// Not serde_json's `Vec<&RawValue>` (feature `raw_value`): that parses and validates every
/// element on every request, and the REST list decodes only the elements its cache does not
/// hold (a held one was decoded, so checked, when it was kept); this only finds the commas
/// between elements (`memchr` through strings). Not measured against `RawValue`.
fn split_array(text: &str) -> Option<Vec<&str>> {
    let body = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let bytes = body.as_bytes();
    let mut elements = Vec::new();
    let (mut depth, mut start, mut at) = (0usize, 0, 0);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                // To the closing quote, skipping escaped characters (most of a page is text).
                at += 1;
                loop {
                    at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
                    if bytes[at] == b'"' {
                        break;
                    }
                    at += 2;
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                elements.push(&body[start..at]);
                start = at + 1;
            }
            _ => {}
        }
        at += 1;
    }
    if depth != 0 {
        return None;
    }
    let last = &body[start..];
    if !elements.is_empty() || !last.trim().is_empty() {
        elements.push(last);
    }
    Some(elements)
}

/// `SELECT status, n FROM execution_counts WHERE …` for the workflow and statuses of `filter`
/// (without a `GROUP BY`), with its binds. Statuses with no execution are left out, as a
/// count of the rows would.
fn counters_sql(filter: &ExecutionFilter, mut binds: Vec<Bind>) -> (String, Vec<Bind>) {
    // PostgreSQL's SUM of a BIGINT is a NUMERIC, which the `Any` driver cannot read.
    let mut sql =
        "SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM execution_counts WHERE n > 0".to_string();
    if let Some(workflow) = &filter.workflow {
        binds.push(Bind::Text(workflow.clone()));
        sql.push_str(&format!(" AND workflow = ${}", binds.len()));
    }
    if !filter.statuses.is_empty() {
        let ps: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| {
                binds.push(Bind::Text(s.as_str().into()));
                format!("${}", binds.len())
            })
            .collect();
        sql.push_str(&format!(" AND status IN ({})", ps.join(", ")));
    }
    (sql, binds)
}

/// `{select} FROM … WHERE …` for the conditions of `filter` but its paging, with its binds and
/// the id column to order and page by.
fn filter_sql(filter: &ExecutionFilter, select: &str) -> (String, Vec<Bind>, &'static str) {
    let mut binds: Vec<Bind> = Vec::new();
    let next = |binds: &mut Vec<Bind>, value: Bind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    // With tags, the first tag's index drives the query in id order (a tag can match a large
    // share of all executions; `id IN (subquery)` would collect all of them first).
    let (mut sql, order) = match filter.tags.first() {
        Some((key, value)) => {
            let k = next(&mut binds, Bind::Text(key.clone()));
            let v = next(&mut binds, Bind::Text(value.clone()));
            (
                format!(
                    "{select} FROM execution_tags t0 \
                     JOIN executions ON executions.id = t0.execution_id \
                     WHERE t0.key = {k} AND t0.value = {v}"
                ),
                "t0.execution_id",
            )
        }
        None => (format!("{select} FROM executions WHERE 1 = 1"), "id"),
    };
    if let Some(workflow) = &filter.workflow {
        let p = next(&mut binds, Bind::Text(workflow.clone()));
        sql.push_str(&format!(" AND workflow = {p}"));
    }
    if !filter.statuses.is_empty() {
        let ps: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| next(&mut binds, Bind::Text(s.as_str().into())))
            .collect();
        sql.push_str(&format!(" AND status IN ({})", ps.join(", ")));
    }
    if let Some(since) = filter.since {
        let p = next(&mut binds, Bind::Text(since_id(since)));
        sql.push_str(&format!(" AND {order} >= {p}"));
    }
    for (key, value) in filter.tags.iter().skip(1) {
        let k = next(&mut binds, Bind::Text(key.clone()));
        let v = next(&mut binds, Bind::Text(value.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM execution_tags t WHERE t.execution_id = executions.id \
             AND t.key = {k} AND t.value = {v})"
        ));
    }
    (sql, binds, order)
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

/// How a summary column is written into a page's JSON.
#[derive(Clone, Copy)]
enum Field {
    /// A string (or NULL), quoted.
    Text,
    /// An integer (or NULL).
    Int,
    /// JSON text (or NULL), embedded as it is stored.
    Json,
}

/// The columns of an [`ExecutionSummary`] in the order of `SUMMARY_COLUMNS` (and of the fields
/// of [`SummaryRecord`], which reads them by position), with their kind.
const SUMMARY_FIELDS: [(&str, Field); 18] = [
    ("id", Field::Text),
    ("name", Field::Text),
    ("workflow", Field::Text),
    ("number", Field::Int),
    ("status", Field::Text),
    ("scheduled_at", Field::Int),
    ("started_at", Field::Int),
    ("finished_at", Field::Int),
    ("status_at", Field::Int),
    ("tags", Field::Json),
    ("config", Field::Json),
    ("running_context", Field::Json),
    ("error_message", Field::Text),
    ("abort_requested_at", Field::Int),
    ("record_errors", Field::Json),
    ("parent_id", Field::Text),
    ("parent_name", Field::Text),
    ("parent_step", Field::Text),
];

/// A SQL expression making one JSON array text of an execution row's summary columns, by
/// concatenation: SQLite's `json_object` with `json()` of the JSON columns parsed those again for
/// every row (a stored JSON column is written as it is; it was written by serde_json and is
/// decoded by it again in [`SummaryRecord`]). On SQLite one `concat()` of all the pieces: a chain
/// of `||` made (and allocated) a longer intermediate string per piece, 36 per execution.
fn summary_json(backend: Backend) -> String {
    let items: Vec<String> = SUMMARY_FIELDS
        .iter()
        .map(|(column, kind)| match (backend, kind) {
            (Backend::Sqlite, Field::Text) => format!("json_quote({column})"),
            (Backend::Postgres, Field::Text) => {
                format!("COALESCE(CAST(to_json({column}) AS text), 'null')")
            }
            (_, Field::Int) => format!("COALESCE(CAST({column} AS TEXT), 'null')"),
            (_, Field::Json) => format!("COALESCE({column}, 'null')"),
        })
        .collect();
    match backend {
        Backend::Sqlite => format!("concat('[', {}, ']')", items.join(", ',', ")),
        Backend::Postgres => format!("'[' || {} || ']'", items.join(" || ',' || ")),
    }
}

/// The stored columns of one execution's summary, read from a row or from `summary_json` (by
/// position: keep the fields in the order of `SUMMARY_FIELDS`).
#[derive(serde::Deserialize)]
struct SummaryRecord {
    id: String,
    name: String,
    workflow: String,
    number: i64,
    status: String,
    scheduled_at: UnixMs,
    started_at: Option<UnixMs>,
    finished_at: Option<UnixMs>,
    status_at: UnixMs,
    tags: Tags,
    config: BTreeMap<String, ConfigValue>,
    running_context: RunningContext,
    error_message: Option<String>,
    abort_requested_at: Option<UnixMs>,
    record_errors: Option<Vec<String>>,
    parent_id: Option<String>,
    parent_name: Option<String>,
    parent_step: Option<String>,
}

impl SummaryRecord {
    fn into_summary(self) -> Result<ExecutionSummary> {
        Ok(ExecutionSummary {
            status: self
                .status
                .parse()
                .map_err(|e| StoreError::decode("execution status", e))?,
            id: self.id,
            name: self.name,
            number: self.number,
            workflow: self.workflow,
            scheduled_at: self.scheduled_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            status_at: self.status_at,
            tags: self.tags,
            config: self.config,
            running_context: self.running_context,
            error_message: self.error_message,
            abort_requested: self.abort_requested_at.is_some(),
            record_errors: self.record_errors.unwrap_or_default(),
            parent: match (self.parent_id, self.parent_name) {
                (Some(id), Some(name)) => Some(ParentExecution {
                    id,
                    name,
                    step_ref: self.parent_step.unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }
}

pub(crate) fn summary_from_row(row: &AnyRow) -> Result<ExecutionSummary> {
    SummaryRecord {
        id: row.text("id")?,
        name: row.text("name")?,
        workflow: row.text("workflow")?,
        number: row.int("number")?,
        status: row.text("status")?,
        scheduled_at: row.int("scheduled_at")?,
        started_at: row.opt_int("started_at")?,
        finished_at: row.opt_int("finished_at")?,
        status_at: row.int("status_at")?,
        tags: from_json("tags", &row.text("tags")?)?,
        config: from_json("config", &row.text("config")?)?,
        running_context: from_json("running context", &row.text("running_context")?)?,
        error_message: row.opt_text("error_message")?,
        abort_requested_at: row.opt_int("abort_requested_at")?,
        record_errors: match row.opt_text("record_errors")? {
            Some(text) => Some(from_json("record errors", &text)?),
            None => None,
        },
        parent_id: row.opt_text("parent_id")?,
        parent_name: row.opt_text("parent_name")?,
        parent_step: row.opt_text("parent_step")?,
    }
    .into_summary()
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
    fn summary_fields_are_the_summary_columns() {
        let names: Vec<&str> = SUMMARY_FIELDS.iter().map(|(name, _)| *name).collect();
        let columns: Vec<&str> = SUMMARY_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(names, columns);
    }

    #[test]
    fn split_array_gives_each_element() {
        let text = r#"[["a,]\\\"[",{"k":[1,2]},null],["b"],[]]"#;
        assert_eq!(
            split_array(text).unwrap(),
            [r#"["a,]\\\"[",{"k":[1,2]},null]"#, r#"["b"]"#, "[]"]
        );
        assert_eq!(split_array("[]").unwrap(), Vec::<&str>::new());
        for bad in [
            "",
            "[",
            "[[]",
            r#"[["a]]"#,
            r#"[["a\"]]"#,
            r#"[["\]"#,
            "[]]",
            "[[]]]",
        ] {
            assert_eq!(split_array(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_id_orders_with_real_ids() {
        let id = uuid::Uuid::now_v7();
        let ms = uuid_ms(&id);
        let text = id.hyphenated().to_string();
        assert!(since_id(ms).as_str() <= text.as_str());
        assert!(since_id(ms + 1).as_str() > text.as_str());
    }
}
