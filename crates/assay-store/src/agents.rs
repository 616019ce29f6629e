//! Runner agents (`0011_agents.sql`): who is connected, and the leases of the executions they
//! run.
//!
//! An agent runs an execution under a lease like any process does (see [`crate::lease`]), with
//! the owner `agent/NAME` as host and its session as token: no reader can check such a process
//! by pid, so it counts as abandoned once its heartbeat (refreshed by the server on each of the
//! agent's heartbeats) is older than the store's lease timeout, and is then marked `aborted`
//! with the reason by [`Store::recover_abandoned`].

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::Store;
use crate::db::RowExt;
use crate::error::{Result, StoreError};
use crate::executions::retry_busy;
use crate::lease::LeaseOwner;
use crate::live::Kind;
use crate::model::{UnixMs, now_ms};

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub runtime: String,
    pub host: String,
    pub version: String,
    pub registered_at: UnixMs,
    pub last_seen_at: UnixMs,
    /// Executions it runs now.
    pub running: u64,
}

/// What an agent says of itself when it claims work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentInfo {
    pub session: String,
    pub labels: BTreeMap<String, String>,
    pub runtime: String,
    pub host: String,
    pub version: String,
    pub pid: u32,
}

/// The result of [`Store::register_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Recorded (new, or the same session again, or taking over a name whose agent is gone).
    Registered,
    /// Another live agent process holds the name.
    Taken { last_seen_at: UnixMs },
}

/// The lease owner of executions an agent runs.
pub fn agent_owner(name: &str, session: &str, pid: u32) -> LeaseOwner {
    LeaseOwner {
        host: format!("{AGENT_HOST_PREFIX}{name}"),
        pid,
        token: session.to_string(),
    }
}

/// `lease_host` of executions run by agents: `agent/NAME`.
pub const AGENT_HOST_PREFIX: &str = "agent/";

/// A queued execution an agent might take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimable {
    pub id: String,
    /// Testkube's execution target as JSON text; `None`: any runner.
    pub target: Option<String>,
}

impl Store {
    /// How old an owner's heartbeat must be before its execution counts as abandoned (an agent
    /// as disconnected).
    pub fn lease_timeout(&self) -> Duration {
        self.inner.lease_timeout
    }

    /// Record the agent `name` as seen now. Refused when another session holds the name and
    /// was seen within the lease timeout (two processes with one name).
    pub async fn register_agent(&self, name: &str, info: &AgentInfo) -> Result<Registration> {
        let db = self.db();
        let now = now_ms();
        let labels = serde_json::to_string(&info.labels)
            .map_err(|e| StoreError::Invalid(format!("agent labels: {e}")))?;
        let stale_before = now - self.lease_timeout().as_millis() as i64;
        let done = retry_busy(|| async {
            // Insert, or update when the name is ours or its holder is gone.
            sqlx::query(
                "INSERT INTO agents (name, labels, runtime, host, version, session, registered_at, \
                 last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                 ON CONFLICT (name) DO UPDATE SET labels = $2, runtime = $3, host = $4, \
                 version = $5, session = $6, last_seen_at = $7, \
                 registered_at = CASE WHEN agents.session = $6 THEN agents.registered_at ELSE $7 END \
                 WHERE agents.session = $6 OR agents.last_seen_at < $8",
            )
            .bind(name)
            .bind(&labels)
            .bind(&info.runtime)
            .bind(&info.host)
            .bind(&info.version)
            .bind(&info.session)
            .bind(now)
            .bind(stale_before)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("register the agent", e))?;
        if done.rows_affected() == 1 {
            return Ok(Registration::Registered);
        }
        let last_seen_at: i64 =
            sqlx::query_scalar("SELECT last_seen_at FROM agents WHERE name = $1")
                .bind(name)
                .fetch_one(&db.pool)
                .await
                .map_err(|e| db.err("read the agent", e))?;
        Ok(Registration::Taken { last_seen_at })
    }

    /// Mark the agent seen now; `false` when `session` does not hold the name.
    pub async fn touch_agent(&self, name: &str, session: &str) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query("UPDATE agents SET last_seen_at = $3 WHERE name = $1 AND session = $2")
                .bind(name)
                .bind(session)
                .bind(now_ms())
                .execute(&db.writer)
                .await
        })
        .await
        .map_err(|e| db.err("refresh the agent", e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Every agent ever registered, by name, with the executions each runs now.
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT name, labels, runtime, host, version, registered_at, last_seen_at \
             FROM agents ORDER BY name",
        )
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("list agents", e))?;
        let counts = sqlx::query(
            "SELECT lease_host, COUNT(*) AS n FROM executions \
             WHERE status IN ('running', 'paused') AND lease_host LIKE 'agent/%' \
             GROUP BY lease_host",
        )
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("count the agents' executions", e))?;
        let mut running = BTreeMap::new();
        for row in counts {
            running.insert(row.text("lease_host")?, row.int("n")? as u64);
        }
        rows.iter()
            .map(|row| {
                let name = row.text("name")?;
                let labels = row.text("labels")?;
                Ok(AgentRecord {
                    running: running
                        .get(&format!("{AGENT_HOST_PREFIX}{name}"))
                        .copied()
                        .unwrap_or(0),
                    labels: serde_json::from_str(&labels)
                        .map_err(|e| StoreError::decode("agent labels", e))?,
                    runtime: row.text("runtime")?,
                    host: row.text("host")?,
                    version: row.text("version")?,
                    registered_at: row.int("registered_at")?,
                    last_seen_at: row.int("last_seen_at")?,
                    name,
                })
            })
            .collect()
    }

    /// Queued executions an agent served by the process `me` may take, oldest first: those
    /// nobody holds, and those `me` holds (their sensitive values are in its memory).
    /// With `targeted_only`, only those with a target.
    pub async fn claimable(&self, me: &LeaseOwner, targeted_only: bool) -> Result<Vec<Claimable>> {
        let db = self.db();
        let only = if targeted_only {
            " AND target IS NOT NULL"
        } else {
            ""
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, target FROM executions WHERE status = 'queued'{only} \
             AND (lease_host IS NULL OR (lease_host = $1 AND lease_pid = $2 \
             AND COALESCE(lease_token, '') = $3)) ORDER BY id LIMIT 1000"
        )))
        .bind(&me.host)
        .bind(me.pid as i64)
        .bind(&me.token)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("look for queued executions", e))?;
        rows.iter()
            .map(|row| {
                Ok(Claimable {
                    id: row.text("id")?,
                    target: row.opt_text("target")?,
                })
            })
            .collect()
    }

    /// Queued executions without a target, oldest first: what a server's own runner takes.
    pub async fn queued_untargeted(&self) -> Result<Vec<String>> {
        let db = self.db();
        let rows = sqlx::query(
            "SELECT id FROM executions WHERE status = 'queued' AND target IS NULL ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.err("look for queued executions", e))?;
        rows.iter().map(|row| row.text("id")).collect()
    }

    /// The target of an execution (JSON text), `None` when it has none.
    pub async fn execution_target(&self, id: &str) -> Result<Option<String>> {
        let db = self.db();
        let row = sqlx::query("SELECT target FROM executions WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await
            .map_err(|e| db.err("read the execution's target", e))?
            .ok_or_else(|| StoreError::not_found(format!("execution `{id}`")))?;
        row.opt_text("target")
    }

    /// Hand a queued execution to an agent: its lease becomes `agent`'s. Taken only when nobody
    /// holds it or `me` (the serving process, which holds its sensitive values) does.
    pub async fn claim_for_agent(
        &self,
        id: &str,
        agent: &LeaseOwner,
        me: &LeaseOwner,
    ) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query(
                "UPDATE executions SET lease_host = $2, lease_pid = $3, lease_token = $4, \
                 heartbeat_at = $5 WHERE id = $1 AND status = 'queued' AND (lease_host IS NULL \
                 OR (lease_host = $6 AND lease_pid = $7 AND COALESCE(lease_token, '') = $8))",
            )
            .bind(id)
            .bind(&agent.host)
            .bind(agent.pid as i64)
            .bind(&agent.token)
            .bind(now_ms())
            .bind(&me.host)
            .bind(me.pid as i64)
            .bind(&me.token)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("hand the execution to an agent", e))?;
        if done.rows_affected() == 1 {
            self.signal(id, Kind::State);
        }
        Ok(done.rows_affected() == 1)
    }

    /// Whether `owner` holds the lease of the unfinished execution `id`.
    pub async fn holds_lease(&self, id: &str, owner: &LeaseOwner) -> Result<bool> {
        let db = self.db();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE id = $1 AND lease_host = $2 \
             AND COALESCE(lease_token, '') = $3 AND status IN ('queued', 'running', 'paused')",
        )
        .bind(id)
        .bind(&owner.host)
        .bind(&owner.token)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| db.err("check the execution's lease", e))?;
        Ok(n == 1)
    }

    /// Refresh the lease `owner` holds on `id` (an agent's heartbeat, relayed by the server).
    /// `false` when it does not hold it any more.
    pub async fn heartbeat_as(&self, id: &str, owner: &LeaseOwner) -> Result<bool> {
        let db = self.db();
        let done = retry_busy(|| async {
            sqlx::query(
                "UPDATE executions SET heartbeat_at = $2 \
                 WHERE id = $1 AND lease_host = $3 AND COALESCE(lease_token, '') = $4 \
                 AND status IN ('queued', 'running', 'paused')",
            )
            .bind(id)
            .bind(now_ms())
            .bind(&owner.host)
            .bind(&owner.token)
            .execute(&db.writer)
            .await
        })
        .await
        .map_err(|e| db.err("refresh the execution's heartbeat", e))?;
        Ok(done.rows_affected() == 1)
    }
}
