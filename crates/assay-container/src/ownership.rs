//! Who owns what the runtime creates, and the sweep of what a dead owner left: every container
//! and network carries [`LABEL_OWNER`] (`HOST/PID/START` of the owning process), and [`sweep`]
//! removes those whose owner on this machine is gone.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use crate::client::Engine;
use crate::runtime::LABEL_OWNER;

/// Removes the containers and networks of executions whose owner on this machine is gone
/// (an `assay` killed with `kill -9`, a machine restarted). Returns what it removed.
pub async fn sweep(engine: &Engine) -> Vec<String> {
    let docker = engine.docker();
    let host = hostname();
    let dead = |labels: Option<&HashMap<String, String>>| {
        labels
            .and_then(|l| l.get(LABEL_OWNER))
            .is_some_and(|o| owner_is_gone(o, &host))
    };
    let filters = HashMap::from([("label", vec![LABEL_OWNER])]);
    let mut removed = Vec::new();
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    for c in docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
    {
        if let Some(id) = c.id.filter(|_| dead(c.labels.as_ref())) {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            if docker.remove_container(&id, Some(options)).await.is_ok() {
                removed.push(id);
            }
        }
    }
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    for n in docker
        .list_networks(Some(options))
        .await
        .unwrap_or_default()
    {
        if let Some(name) = n.name.filter(|_| dead(n.labels.as_ref()))
            && docker.remove_network(&name).await.is_ok()
        {
            removed.push(name);
        }
    }
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let volumes = docker.list_volumes(Some(options)).await.ok();
    for v in volumes.and_then(|l| l.volumes).unwrap_or_default() {
        if dead(Some(&v.labels)) {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            if docker.remove_volume(&v.name, Some(options)).await.is_ok() {
                removed.push(v.name);
            }
        }
    }
    removed
}

/// `HOST/PID/START` of this process.
pub(crate) fn owner() -> String {
    let pid = std::process::id();
    format!("{}/{pid}/{}", hostname(), start_time(pid).unwrap_or(0))
}

/// Whether the owner named by a label was a process on this machine that no longer runs.
fn owner_is_gone(owner: &str, host: &str) -> bool {
    let mut parts = owner.rsplitn(3, '/');
    let (Some(start), Some(pid), Some(h)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if h != host {
        return false;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) != Some(start)
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`), which
/// tells a live owner from a later process that got the same pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let me = owner();
        assert!(!owner_is_gone(&me, &hostname()));
        // Same pid, another start time: a later process, so the owner is gone.
        let pid = std::process::id();
        assert!(owner_is_gone(
            &format!("{}/{pid}/1", hostname()),
            &hostname()
        ));
        // Another machine's owners are never judged here.
        assert!(!owner_is_gone(&format!("elsewhere/{pid}/1"), &hostname()));
    }
}
