//! Who runs an execution: abort requests, heartbeats, claims, taking a queued one, and
//! recovering those whose process died.

use sqlx::AssertSqlSafe;

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::lease::{self, LeaseOwner, Liveness};
use crate::live::Kind;
use crate::model::*;

use super::read::summary_from_row;
use super::{ACTIVE_STATUSES, HeartbeatGuard, SUMMARY_COLUMNS, retry_busy};

impl Store {
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
}
