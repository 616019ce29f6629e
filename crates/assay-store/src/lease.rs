//! Liveness of the process that runs an execution.
//!
//! The owner of a running execution holds a *lease* on its row: host name, pid, a token that
//! identifies this incarnation of the process (boot id + process start time, so a recycled pid
//! or a reboot does not look alive) and a heartbeat timestamp it refreshes every few seconds.
//!
//! A reader declares an execution abandoned only when
//! - the owner is on this host and its process is gone (no such pid, or the pid now belongs to a
//!   process with another start time, or the machine rebooted), or
//! - the owner is on another host (or on a platform without `/proc`) and its heartbeat is older
//!   than a generous timeout.
//!
//! An execution whose owner is alive is never touched.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often an owner refreshes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How old a heartbeat from another host must be before its execution counts as abandoned.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(120);

/// The process that owns an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseOwner {
    pub host: String,
    pub pid: u32,
    /// `"{boot_id}/{start_time}"` on Linux; empty where it cannot be known.
    pub token: String,
}

impl LeaseOwner {
    /// The calling process.
    pub fn current() -> Self {
        let pid = std::process::id();
        LeaseOwner {
            host: host_name(),
            pid,
            token: process_token(pid).unwrap_or_default(),
        }
    }
}

/// What a reader concludes about a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// Dead, with the reason to record.
    Dead(String),
}

/// Judge a stored lease.
pub(crate) fn judge(
    owner: &LeaseOwner,
    heartbeat_at: Option<i64>,
    now: i64,
    timeout: Duration,
) -> Liveness {
    let me = host_name();
    if owner.host == me && !owner.token.is_empty() {
        if let Some(boot) = boot_id()
            && !owner.token.starts_with(&format!("{boot}/"))
        {
            return Liveness::Dead(format!(
                "the machine restarted while process {} on {} was running this execution",
                owner.pid, owner.host
            ));
        }
        return match process_token(owner.pid) {
            Some(token) if token == owner.token => Liveness::Alive,
            Some(_) | None => Liveness::Dead(format!(
                "process {} on {} that was running this execution ended without finishing it",
                owner.pid, owner.host
            )),
        };
    }
    let age_ms = heartbeat_at.map(|h| now - h).unwrap_or(i64::MAX);
    if age_ms > timeout.as_millis() as i64 {
        let age = if age_ms == i64::MAX {
            "ever".to_string()
        } else {
            format!("{}s", age_ms / 1000)
        };
        Liveness::Dead(format!(
            "no heartbeat from process {} on {} for {age}",
            owner.pid, owner.host
        ))
    } else {
        Liveness::Alive
    }
}

/// This machine's name.
pub fn host_name() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            let name = text.trim();
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown-host".to_string())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `"{boot_id}/{start_time}"` of a live process, `None` when it does not exist (or no /proc).
fn process_token(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None; // a zombie has finished running
    }
    let start = fields.get(19)?;
    Some(format!("{}/{start}", boot_id().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_process_is_alive() {
        let me = LeaseOwner::current();
        assert!(!me.token.is_empty(), "this test expects Linux /proc");
        assert_eq!(judge(&me, None, 0, DEFAULT_LEASE_TIMEOUT), Liveness::Alive);
    }

    #[test]
    fn a_finished_process_is_dead_and_a_recycled_pid_too() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut owner = LeaseOwner::current();
        owner.pid = pid;
        assert!(matches!(
            judge(&owner, Some(0), 0, DEFAULT_LEASE_TIMEOUT),
            Liveness::Dead(_)
        ));
        // Our own pid with another start time: a recycled pid.
        let mut recycled = LeaseOwner::current();
        recycled.token.push('9');
        assert!(matches!(
            judge(&recycled, Some(0), 0, DEFAULT_LEASE_TIMEOUT),
            Liveness::Dead(_)
        ));
    }

    #[test]
    fn other_hosts_are_judged_by_heartbeat() {
        let owner = LeaseOwner {
            host: "elsewhere.invalid".into(),
            pid: 1,
            token: "x/1".into(),
        };
        let t = DEFAULT_LEASE_TIMEOUT.as_millis() as i64;
        assert_eq!(
            judge(&owner, Some(1_000), 1_000 + t, DEFAULT_LEASE_TIMEOUT),
            Liveness::Alive
        );
        assert!(matches!(
            judge(&owner, Some(1_000), 2_000 + t, DEFAULT_LEASE_TIMEOUT),
            Liveness::Dead(_)
        ));
    }
}
