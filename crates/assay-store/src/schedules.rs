//! Claims of schedule ticks (`0004_schedules.sql`): the record that makes a scheduled run
//! happen once per tick however many servers share the database. A server that reaches a tick
//! claims it with an insert that only one server can make; the winner queues the run.

use serde::{Deserialize, Serialize};

use crate::Store;
use crate::db::RowExt;
use crate::error::Result;
use crate::executions::retry_busy;
use crate::model::{UnixMs, now_ms};

/// One tick of one schedule, as a server claims it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleTick {
    /// The workflow's name.
    pub workflow: String,
    /// The position of the event in the workflow's `spec.events`.
    pub event_index: i64,
    /// When the schedule fires, Unix milliseconds.
    pub tick_at: UnixMs,
    /// The pattern (and time zone) as written, for people reading the table.
    pub cron: String,
    /// Who claims it (host and pid of the server).
    pub claimed_by: String,
}

/// A claimed tick as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTick {
    #[serde(flatten)]
    pub tick: ScheduleTick,
    /// When the claim was made.
    pub claimed_at: UnixMs,
    /// The execution queued for the tick, once it is.
    pub execution_id: Option<String>,
}

impl Store {
    /// Claim `tick`: `true` when this call created the claim (the caller queues the run),
    /// `false` when someone had claimed it already.
    pub async fn claim_schedule_tick(&self, tick: &ScheduleTick) -> Result<bool> {
        let db = self.db();
        let now = now_ms();
        let done = retry_busy(|| async {
            sqlx::query(
                "INSERT INTO schedule_ticks \
                 (workflow, event_index, tick_at, cron, claimed_by, claimed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (workflow, event_index, tick_at) DO NOTHING",
            )
            .bind(&tick.workflow)
            .bind(tick.event_index)
            .bind(tick.tick_at)
            .bind(&tick.cron)
            .bind(&tick.claimed_by)
            .bind(now)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("claim the schedule tick", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Record which execution a claimed tick queued.
    pub async fn set_schedule_tick_execution(
        &self,
        workflow: &str,
        event_index: i64,
        tick_at: UnixMs,
        execution_id: &str,
    ) -> Result<()> {
        let db = self.db();
        retry_busy(|| async {
            sqlx::query(
                "UPDATE schedule_ticks SET execution_id = $4 \
                 WHERE workflow = $1 AND event_index = $2 AND tick_at = $3",
            )
            .bind(workflow)
            .bind(event_index)
            .bind(tick_at)
            .bind(execution_id)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("record the execution of the schedule tick", e))?;
        Ok(())
    }

    /// The latest claimed tick of one schedule, if any.
    pub async fn last_schedule_tick(
        &self,
        workflow: &str,
        event_index: i64,
    ) -> Result<Option<UnixMs>> {
        let db = self.db();
        let row = sqlx::query(
            "SELECT MAX(tick_at) AS tick_at FROM schedule_ticks \
             WHERE workflow = $1 AND event_index = $2",
        )
        .bind(workflow)
        .bind(event_index)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| db.err("read the last schedule tick", e))?;
        row.opt_int("tick_at")
    }

    /// The claimed ticks of `workflow`, oldest first.
    pub async fn list_schedule_ticks(&self, workflow: &str) -> Result<Vec<ClaimedTick>> {
        let db = self.db();
        sqlx::query(
            "SELECT workflow, event_index, tick_at, cron, claimed_by, claimed_at, execution_id \
             FROM schedule_ticks WHERE workflow = $1 ORDER BY tick_at, event_index",
        )
        .bind(workflow)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list schedule ticks", e))?
        .iter()
        .map(|row| {
            Ok(ClaimedTick {
                tick: ScheduleTick {
                    workflow: row.text("workflow")?,
                    event_index: row.int("event_index")?,
                    tick_at: row.int("tick_at")?,
                    cron: row.text("cron")?,
                    claimed_by: row.text("claimed_by")?,
                },
                claimed_at: row.int("claimed_at")?,
                execution_id: row.opt_text("execution_id")?,
            })
        })
        .collect()
    }

    /// Forget claims of ticks before `before`, except the latest of each schedule (which tells
    /// a starting server how long it was away). Returns how many were deleted.
    pub async fn prune_schedule_ticks(&self, before: UnixMs) -> Result<u64> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query(
                "DELETE FROM schedule_ticks WHERE tick_at < $1 AND tick_at < \
                 (SELECT MAX(t.tick_at) FROM schedule_ticks t \
                  WHERE t.workflow = schedule_ticks.workflow \
                  AND t.event_index = schedule_ticks.event_index)",
            )
            .bind(before)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("prune schedule ticks", e))?;
        Ok(done.rows_affected())
    }
}
