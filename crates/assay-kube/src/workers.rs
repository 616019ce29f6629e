//! Parallel workers in pods of their own: what the main pod, the agent and a worker pod say
//! to each other (pure types and checks; the HTTP ends live in `assay pod run` and
//! [`crate::runtime`]).
//!
//! The main pod has no Kubernetes credentials, and the agent no channel into it. So: the main
//! pod's engine, when a `parallel` step starts a worker, asks the agent for a pod with one line
//! on its stdout ([`crate::podlog::WORKER_PREFIX`], a [`WorkerRequest`]: the worker's plan and
//! the port of the main pod's worker endpoint); the agent makes the worker's Job (role
//! `worker`) whose Secret holds a [`Channel::Worker`] (the endpoint at the main pod's IP, and
//! the bearer token the agent gave the main pod in its own Secret, [`Channel::Serve`]). The
//! worker pod's `assay pod run` GETs its [`StartBundle`] (the `transfer`red files and its
//! `fetch` rules) from the endpoint, runs its plan, POSTs its protocol lines there (which the
//! main pod writes on its own stdout under the worker's refs: one ordered stream for the
//! agent), then its fetched files ([`FileBundle`]) and its [`WorkerReport`]. When the worker's
//! pod cannot start (an image pull error, a quota), the agent POSTs the report instead, so the
//! waiting step fails with the reason. When the worker ends, or the main pod stops waiting for
//! it (fail-fast, abort, deadline), the main pod says so ([`crate::podlog::WORKER_DONE_PREFIX`])
//! and the agent deletes the worker's Job.

use assay_api::agents::AgentEvent;
use assay_spec::plan::PlanTransfer;
use assay_spec::status::ExecutionStatus;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The key of the channel file in a pod's Secret.
pub const CHANNEL_KEY: &str = "channel.json";
/// Where a pod reads it.
pub const CHANNEL_FILE: &str = "/.assay/work/channel.json";
/// Bytes of one POST of protocol lines at most.
pub const LINES_LIMIT: usize = 8 * 1024 * 1024;
/// Bytes of a start or fetch bundle at most (base64 included).
pub const BUNDLE_LIMIT: usize = 96 * 1024 * 1024;
/// Bytes of a report at most.
pub const REPORT_LIMIT: usize = 64 * 1024;

/// What a pod's channel file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum Channel {
    /// The main pod: serve the worker endpoint, asking this bearer token.
    Serve { token: String },
    /// A worker pod: the main pod's endpoint (`http://IP:PORT`), its token, and which worker
    /// this is there.
    Worker {
        url: String,
        token: String,
        key: u64,
    },
}

/// The main pod asks the agent for a worker pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRequest {
    /// The main pod's number for this worker (its endpoint's paths, the Job's name).
    pub key: u64,
    /// The parallel step's ref and the worker's index (labels, messages).
    pub reference: String,
    pub index: u64,
    /// The port of the main pod's worker endpoint (on its pod IP).
    pub port: u16,
    /// The worker's plan ([`crate::job::worker_plan`]).
    pub plan: serde_json::Value,
}

/// One file crossing between pods: its path as the steps of the receiving side see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    pub path: String,
    /// Base64.
    pub data: String,
}

impl FileEntry {
    pub fn new(path: &str, bytes: &[u8]) -> Self {
        FileEntry {
            path: path.to_string(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, FileDecodeError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|source| FileDecodeError {
                path: self.path.clone(),
                source,
            })
    }
}

/// A [`FileEntry`] whose data is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileDecodeError {
    pub path: String,
    pub source: base64::DecodeError,
}

/// What a worker pod gets before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartBundle {
    pub files: Vec<FileEntry>,
    pub fetch: Vec<PlanTransfer>,
}

/// Files a worker sends back (`fetch`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileBundle {
    pub files: Vec<FileEntry>,
}

/// How a worker ended (from the worker pod, or from the agent when its pod did not start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerReport {
    pub status: ExecutionStatus,
    #[serde(default)]
    pub error: Option<String>,
}

/// The path of one of the endpoint's resources for worker `key` (`start`, `lines`, `fetch`,
/// `report`).
pub fn path(key: u64, what: &str) -> String {
    format!("/v1/workers/{key}/{what}")
}

/// A fresh bearer token (244 random bits).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `given` is `expected`, in a time that does not tell how much of it matched.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0 && !expected.is_empty()
}

/// A worker pod's event as the main execution records it: its refs under `prefix`
/// (`<parallel ref>/<index>/`), as the engine names a worker's steps; its own end is not the
/// execution's (`None`).
pub fn rereference(mut event: AgentEvent, prefix: &str) -> Option<AgentEvent> {
    let reference = match &mut event {
        AgentEvent::StepStarted { reference, .. }
        | AgentEvent::StepFinished { reference, .. }
        | AgentEvent::Log { reference, .. }
        | AgentEvent::Output { reference, .. }
        | AgentEvent::Warning { reference, .. }
        | AgentEvent::Worker { reference, .. } => reference,
        AgentEvent::ExecutionFinished { .. } => return None,
    };
    reference.insert_str(0, prefix);
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(token_matches(&t, &t));
        assert!(!token_matches(&t, &t[..63]));
        assert!(!token_matches(&t, &format!("{t}x")));
        assert!(!token_matches(&t, ""));
        assert!(!token_matches("", ""));
        assert_ne!(t, new_token());
    }

    #[test]
    fn worker_events_go_under_the_workers_refs_and_its_end_is_not_the_executions() {
        let log = AgentEvent::Log {
            reference: "r1".into(),
            at: 1,
            text: "hi".into(),
        };
        assert_eq!(
            rereference(log, "rpar/1/"),
            Some(AgentEvent::Log {
                reference: "rpar/1/r1".into(),
                at: 1,
                text: "hi".into()
            })
        );
        let end = AgentEvent::ExecutionFinished {
            status: ExecutionStatus::Passed,
            error: None,
            at: 1,
        };
        assert_eq!(rereference(end, "rpar/1/"), None);
    }
}
