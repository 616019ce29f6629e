//! Services in pods of their own, made when their step starts (as Testkube does): what the
//! main pod and the agent say to each other (pure types and checks; the ends live in
//! `assay pod run` and [`crate::runtime`]).
//!
//! The main pod has no Kubernetes credentials. So, through the same channel as parallel
//! workers ([`crate::workers`]): when a step that needs services starts, the main pod's engine
//! expands and renders each instance (run-time matrices and earlier steps' outputs are known
//! there), and asks the agent for its pod with one line on its stdout
//! ([`crate::podlog::SERVICE_PREFIX`], a [`ServiceRequest`]: which instance, and the port of
//! the main pod's endpoint). The agent GETs the instance's [`ServicePod`] there (its plan,
//! rendered, so possibly holding sensitive values: never on the pod log), makes the
//! instance's Job (role `service`, no channel, no token), waits for its pod to run
//! with an IP (and, with an `exec` probe, which the kubelet runs inside the service's
//! container as the container's `readinessProbe`, for the pod's `Ready` condition), then POSTs
//! a [`ServiceAddress`] — the IP, or why there is none — to the main pod's endpoint, and
//! follows the pod's log into the instance's log. The main pod probes `httpGet`/`tcpSocket`
//! itself, as on the host, and says when the engine stopped the instance
//! ([`crate::podlog::SERVICE_DONE_PREFIX`]): the agent deletes its Job.

use assay_spec::plan::Probe;
use serde::{Deserialize, Serialize};

/// The main pod asks the agent for a service instance's pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    /// The main pod's number for it (its endpoint's paths, the Job's name).
    pub key: u64,
    /// The instance's log reference (`<step ref>/service/<name>/<index>`).
    pub log_ref: String,
    pub name: String,
    pub index: u64,
    /// The port of the main pod's endpoint (on its pod IP).
    pub port: u16,
}

/// What the agent GETs from the main pod's endpoint for a service instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePod {
    /// The instance's plan ([`crate::job::service_plan`]).
    pub plan: serde_json::Value,
    /// How long it may take to run (and be ready, with an `exec` probe), its pod's start
    /// included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// An `exec` readiness probe (its command rendered): the service container's
    /// `readinessProbe`; the address is reported once the pod is `Ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
}

impl ServiceRequest {
    /// Whether the request names what it says it is: a log reference that ends with
    /// `/service/<name>/<index>`, so that the instance's log lines cannot be put under
    /// another step's.
    pub fn is_consistent(&self) -> bool {
        let tail = format!("/service/{}/{}", self.name, self.index);
        self.log_ref.ends_with(&tail) && self.log_ref.len() > tail.len()
    }
}

/// Where the main pod reaches one service instance, or why it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The path of one of the endpoint's resources for service instance `key` (`pod`: GET its
/// [`ServicePod`]; `address`: POST its [`ServiceAddress`]).
pub fn path(key: u64, what: &str) -> String {
    format!("/v1/services/{key}/{what}")
}

/// Bytes of a [`ServicePod`] at most.
pub const POD_LIMIT: usize = 8 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_its_own_log_only() {
        let mut r = ServiceRequest {
            key: 1,
            log_ref: "r1/service/db/0".into(),
            name: "db".into(),
            index: 0,
            port: 1,
        };
        assert!(r.is_consistent());
        for bad in ["r1", "/service/db/0", "r1/service/db/1", "r1/service/web/0"] {
            r.log_ref = bad.into();
            assert!(!r.is_consistent(), "{bad}");
        }
    }
}
