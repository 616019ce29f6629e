//! How a pod stands, from its status; and sweeping what an earlier process of the agent left.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

use crate::Connection;
use crate::job;

use super::{PodState, STUCK_REASONS};

/// How a pod stands, from its status.
pub(super) fn classify(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Waiting;
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let main = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == job::CONTAINER);
    if main
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    {
        return PodState::Started;
    }
    if phase == "Failed" {
        return PodState::Failed(pod_failure(pod).unwrap_or_else(|| "phase Failed".into()));
    }
    if phase == "Succeeded" || phase == "Running" {
        return PodState::Started;
    }
    // Pending: stuck on an image, a config, or scheduling?
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            if STUCK_REASONS.contains(&reason) {
                return PodState::Stuck(format!(
                    "container {}: {reason}{}",
                    c.name,
                    w.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            return PodState::Failed(format!(
                "init container {} exited with {}{}",
                c.name,
                t.exit_code,
                t.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    for cond in status.conditions.iter().flatten() {
        if cond.type_ == "PodScheduled"
            && cond.status == "False"
            && cond.reason.as_deref() == Some("Unschedulable")
        {
            return PodState::Stuck(format!(
                "Unschedulable{}",
                cond.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        }
    }
    PodState::Waiting
}

/// Whether a pod's `Ready` condition is true (its readiness probes passed).
pub(super) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a pod failed, when it did (evicted, killed, a container's exit).
pub(super) fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == job::CONTAINER)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let phase = status.phase.as_deref().unwrap_or_default();
    if phase != "Failed" && terminated.is_none() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(r) = &status.reason {
        parts.push(r.clone());
    }
    if let Some(m) = &status.message {
        parts.push(m.clone());
    }
    if let Some(t) = terminated {
        parts.push(format!(
            "container {} exited with {}{}",
            job::CONTAINER,
            t.exit_code,
            t.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    Some(if parts.is_empty() {
        format!("phase {phase}")
    } else {
        parts.join(": ")
    })
}

/// Whether an object has every `key=value` of an equality selector.
pub(super) fn has_labels(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    selector: &str,
) -> bool {
    selector.split(',').all(|pair| {
        let Some((k, v)) = pair.split_once('=') else {
            return false;
        };
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|have| have == v)
    })
}

/// Deletes the Jobs labelled with `agent`'s name that an earlier process of the agent left
/// (it runs nothing yet, so none of them is in use), with background propagation: their pods,
/// and their Secrets, which they own, go with them. Secrets are not listed: that permission
/// would let the agent read every Secret of the namespace. How many Jobs.
pub async fn sweep(connection: &Connection, agent: &str) -> Result<usize, kube::Error> {
    let selector = job::agent_selector(agent);
    let params = ListParams::default().labels(&selector);
    let jobs: Api<Job> = Api::namespaced(connection.client.clone(), &connection.namespace);
    let mut count = 0;
    // The selector is checked here too: deleting another agent's Job on the word of an API
    // server that ignored the selector would be worse than listing twice.
    for j in jobs.list(&params).await?.items {
        if !has_labels(&j.metadata, &selector) {
            continue;
        }
        if let Some(name) = j.metadata.name {
            match jobs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => count += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn pod_states_from_their_status() {
        let pull = pod(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "run", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"nope:1\""}}}],
        }));
        assert!(
            matches!(classify(&pull), PodState::Stuck(w) if w.contains("ImagePullBackOff") && w.contains("nope:1"))
        );
        let unschedulable = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available"}],
        }));
        assert!(matches!(classify(&unschedulable), PodState::Stuck(w) if w.contains("0/3 nodes")));
        let running = pod(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{"name": "run", "image": "x", "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {}}}],
        }));
        assert!(matches!(classify(&running), PodState::Started));
        let evicted = pod(serde_json::json!({
            "phase": "Failed", "reason": "Evicted", "message": "low on memory",
        }));
        assert!(
            matches!(classify(&evicted), PodState::Failed(w) if w.contains("Evicted") && w.contains("low on memory"))
        );
        assert!(matches!(
            classify(&pod(serde_json::json!({"phase": "Pending"}))),
            PodState::Waiting
        ));
    }
}
