//! Runner agents: Testkube's execution target, and the protocol `assay agent` speaks with a
//! server under `/v1/agents` (plain HTTP + JSON, runner tokens).
//!
//! An agent connects out: it claims work with a long poll (`POST /v1/agents/{name}/claim`),
//! runs the plan it is handed, sends the engine's events back in order (`…/events`) and each
//! artifact file before the event that names it (`…/artifacts`), and heartbeats
//! (`…/heartbeat`), which refreshes the lease of every execution it runs and tells it which
//! ones to abort. Every request carries the agent's session (a random id of that agent
//! process); the server accepts writes to an execution only from the session that claimed it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::status::{ExecutionStatus, StepStatus};

/// Testkube's `ExecutionTarget` (`target` of a run request and of a workflow's `execution`
/// section): which runners may take an execution.
///
/// - `match`: for every key, the agent's label of that key is one of the values (the key
///   `name` is the agent's name);
/// - `not`: for no key is the agent's label one of the values;
/// - `replicate`: label keys to run one copy per distinct value combination of among the agents
///   that match (`replicate: [name]`: one copy on every matching agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionTarget {
    /// Only `OnlyWhenMatches` (Testkube's one value); accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_policy: Option<String>,
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicate: Vec<String>,
}

impl ExecutionTarget {
    /// Nothing asked: any runner (the server itself included) may take it.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.not.is_empty() && self.replicate.is_empty()
    }

    /// Whether an agent with `name` and `labels` may run it (`replicate` is applied when the
    /// run is submitted, into `match`).
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        let value_of = |key: &str| -> Option<&str> {
            if key == "name" {
                Some(name)
            } else {
                labels.get(key).map(String::as_str)
            }
        };
        let wanted = self.match_labels.iter().all(|(key, values)| {
            value_of(key).is_some_and(|v| values.is_empty() || values.iter().any(|x| x == v))
        });
        let refused = self.not.iter().any(|(key, values)| {
            value_of(key).is_some_and(|v| values.is_empty() || values.iter().any(|x| x == v))
        });
        wanted && !refused
    }

    /// Testkube's `replicate`: one concrete target per distinct combination of values of the
    /// `replicate` keys among the `agents` (name, labels) this target matches, in order of
    /// the values; each is this target with `match` narrowed to its values (`name`: the
    /// agent itself) and no `replicate`, with the values it was made for. Agents without one of
    /// the keys give no copy. Empty when no agent fits (or nothing is to be replicated).
    pub fn replicas<'a>(
        &self,
        agents: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    ) -> Vec<(ExecutionTarget, BTreeMap<String, String>)> {
        if self.replicate.is_empty() {
            return Vec::new();
        }
        let mut combinations = std::collections::BTreeSet::new();
        for (name, labels) in agents {
            if !self.matches(name, labels) {
                continue;
            }
            let values: Option<BTreeMap<String, String>> = self
                .replicate
                .iter()
                .map(|key| {
                    let value = if key == "name" {
                        Some(name.to_string())
                    } else {
                        labels.get(key).cloned()
                    };
                    value.map(|v| (key.clone(), v))
                })
                .collect();
            if let Some(values) = values {
                combinations.insert(values);
            }
        }
        combinations
            .into_iter()
            .map(|values| {
                let mut target = self.clone();
                target.replicate.clear();
                for (key, value) in &values {
                    target.match_labels.insert(key.clone(), vec![value.clone()]);
                }
                (target, values)
            })
            .collect()
    }
}

/// A connected (or once connected) agent, as `GET /v1/agents` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `host` or `container`.
    pub runtime: String,
    /// The machine it runs on, as it says.
    pub host: String,
    pub version: String,
    /// RFC 3339.
    pub registered_at: String,
    /// RFC 3339: its last claim or heartbeat.
    pub last_seen_at: String,
    /// Seen within the lease timeout.
    pub connected: bool,
    /// Executions it runs now.
    pub running: u64,
}

/// What an agent says of itself with every claim (it registers with its first claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentHello {
    /// A random id of this agent process; writes are accepted only from the session that
    /// claimed the execution.
    pub session: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub runtime: String,
    pub host: String,
    #[serde(default)]
    pub version: String,
    /// Its process id (shown in lease messages).
    #[serde(default)]
    pub pid: u32,
    /// How long the server may hold the claim open when there is no work, in milliseconds
    /// (20 s at most; absent: answer at once).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// An execution handed to an agent: what it needs to run the plan and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentWork {
    pub id: String,
    pub name: String,
    pub workflow: String,
    pub number: i64,
    /// The compiled `Plan` (assay-spec's), as JSON.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// Values of `sensitive` config parameters by name (for `{{ config.NAME }}` at run time);
    /// never stored, masked by the agent's engine.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Further values to mask.
    #[serde(default)]
    pub masked: Vec<String>,
    /// The named secrets (`assay secret`, kept where the server runs) that the plan's
    /// `secretKeyRef`/`configMapKeyRef`/`secretRef`/`configMapRef`/`tokenFrom`/… name, by name
    /// and key: only those; never stored by the agent, masked by its engine.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub named_secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Environment variables given to every step on top of the agent's own.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Top-level expression variables (`execution`, `workflow`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Tests in quarantine for this run (keys or bare names): a step failing only through
    /// them in its JUnit reports passes.
    #[serde(default)]
    pub quarantined: Vec<String>,
}

/// The heartbeat of an agent: the executions it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentHeartbeat {
    pub session: String,
    #[serde(default)]
    pub running: Vec<String>,
}

/// The answer to a heartbeat: what to stop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentHeartbeatReply {
    /// Executions to abort, with the reason.
    #[serde(default)]
    pub abort: Vec<AgentAbort>,
    /// Executions the agent must drop: their lease is not this session's any more (ended,
    /// or declared abandoned).
    #[serde(default)]
    pub lost: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentAbort {
    pub id: String,
    pub reason: String,
}

/// A batch of engine events, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentEvents {
    pub session: String,
    pub events: Vec<AgentEvent>,
}

/// One event of the engine as it crosses the wire (the engine's `Event`; times are unix
/// milliseconds). Artifacts are uploaded with `…/artifacts` instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AgentEvent {
    #[serde(rename_all = "camelCase")]
    StepStarted {
        reference: String,
        name: String,
        at: i64,
    },
    #[serde(rename_all = "camelCase")]
    StepFinished {
        reference: String,
        /// A step status (`passed`, `failed`, `skipped`, `timeout`, …).
        #[schema(value_type = String)]
        status: StepStatus,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        started_at: Option<i64>,
        finished_at: i64,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        peak_rss_bytes: Option<u64>,
        #[serde(default)]
        cpu_time_ms: Option<u64>,
        #[serde(default)]
        attempts: u32,
        /// The quarantined failures the step passed in spite of.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        quarantined_failures: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Log {
        reference: String,
        at: i64,
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    Output {
        reference: String,
        key: String,
        value: String,
    },
    #[serde(rename_all = "camelCase")]
    Warning { reference: String, message: String },
    /// A parallel worker was made at run time (names its steps).
    #[serde(rename_all = "camelCase")]
    Worker {
        reference: String,
        index: u64,
        count: u64,
    },
    /// The last event.
    #[serde(rename_all = "camelCase")]
    ExecutionFinished {
        /// `passed`, `failed`, `aborted`, …
        #[schema(value_type = String)]
        status: ExecutionStatus,
        #[serde(default)]
        error: Option<String>,
        at: i64,
    },
}

/// An agent asks the server to queue one copy of an `execute` step of a run it holds
/// (`POST /v1/agents/{name}/executions/{id}/execute`), or asks again how it is doing: the same
/// `step`, `workflow` and `index` name the same child, so a retried request queues nothing new.
/// The server queues only workflows the run's own plan names in an `execute` step, with config
/// keys that step gives (and its literal values as written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentExecute {
    pub session: String,
    /// The ref of the `execute` step.
    pub step: String,
    /// The stored workflow to run.
    pub workflow: String,
    /// Which copy of the workflow's strategy.
    #[serde(default)]
    pub index: u64,
    /// Its config values, rendered by the agent.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// How long the server may wait for the child to end before answering, in milliseconds
    /// (20 s at most; absent: answer at once).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// A child execution queued for an `execute` step, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentChild {
    pub id: String,
    /// `<workflow>-<number>`.
    pub name: String,
    /// `queued`, `running`, … `passed`, `failed`, `aborted`.
    #[schema(value_type = String)]
    pub status: ExecutionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `POST …/events` and `PUT …/artifacts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentAck {
    /// Recorded events (or 1 for an artifact).
    pub recorded: u64,
    /// Problems met while recording (kept with the execution too); the run goes on.
    #[serde(default)]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn targets_match_by_labels_and_name_and_exclude_with_not() {
        let t: ExecutionTarget = serde_json::from_value(serde_json::json!({
            "match": {"env": ["staging", "prod"], "name": []},
            "not": {"name": ["b"]}
        }))
        .unwrap();
        assert!(t.matches("a", &labels(&[("env", "prod")])));
        assert!(!t.matches("a", &labels(&[("env", "dev")])));
        assert!(!t.matches("a", &labels(&[])));
        assert!(!t.matches("b", &labels(&[("env", "prod")])));
        assert!(ExecutionTarget::default().matches("x", &labels(&[])));
    }

    #[test]
    fn replicate_gives_one_target_per_distinct_value_among_matching_agents() {
        let t: ExecutionTarget = serde_json::from_value(serde_json::json!({
            "match": {"tier": ["x"]},
            "replicate": ["env"]
        }))
        .unwrap();
        let agents = [
            ("a1", labels(&[("env", "a"), ("tier", "x")])),
            ("a2", labels(&[("env", "a"), ("tier", "x")])),
            ("a3", labels(&[("env", "b"), ("tier", "x")])),
            // Does not match; has no env: neither gives a copy.
            ("a4", labels(&[("env", "c"), ("tier", "y")])),
            ("a5", labels(&[("tier", "x")])),
        ];
        let copies = t.replicas(agents.iter().map(|(n, l)| (*n, l)));
        let values: Vec<_> = copies.iter().map(|(_, v)| v["env"].as_str()).collect();
        assert_eq!(values, ["a", "b"]);
        let (first, _) = &copies[0];
        assert!(first.replicate.is_empty());
        assert_eq!(first.match_labels["env"], ["a"]);
        assert_eq!(first.match_labels["tier"], ["x"]);
        assert!(first.matches("a2", &agents[1].1) && !first.matches("a3", &agents[2].1));
        // `name`: one copy per matching agent.
        let by_name = ExecutionTarget {
            replicate: vec!["name".into()],
            ..ExecutionTarget::default()
        };
        assert_eq!(
            by_name.replicas(agents.iter().map(|(n, l)| (*n, l))).len(),
            5
        );
        // None match: no copy.
        assert!(
            t.replicas(agents[3..4].iter().map(|(n, l)| (*n, l)))
                .is_empty()
        );
    }
}
