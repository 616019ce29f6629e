//! Helpers for building plans by hand and running them through the engine.
#![allow(dead_code)]

use std::time::Duration;

use assay_engine::{Event, ExecutionOutcome, RunOptions};
use assay_spec::plan::{Plan, PlanEnv, PlanProcess, PlanStep, PlanWorkflow};
use assay_spec::status::StepStatus;

/// A step running a bash script.
pub fn shell(reference: &str, script: &str) -> PlanStep {
    PlanStep {
        reference: reference.into(),
        name: reference.into(),
        condition: "passed".into(),
        commands: vec![PlanProcess {
            shell: Some(script.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A group of steps.
pub fn group(reference: &str, steps: Vec<PlanStep>) -> PlanStep {
    PlanStep {
        reference: reference.into(),
        name: reference.into(),
        condition: "passed".into(),
        steps,
        ..Default::default()
    }
}

pub fn env(name: &str, value: &str) -> PlanEnv {
    PlanEnv {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub fn plan(steps: Vec<PlanStep>) -> Plan {
    Plan {
        version: assay_spec::plan::PLAN_VERSION,
        workflow: PlanWorkflow {
            name: "test".into(),
            ..Default::default()
        },
        config: Default::default(),
        tags: Default::default(),
        silent: false,
        concurrency: None,
        schedules: vec![],
        deadline_ms: None,
        disable_webhooks: false,
        kubernetes: None,
        notes: vec![],
        root: group("root", steps),
    }
}

/// Options in a fresh temporary folder (kept alive by the returned guard).
pub fn options() -> (RunOptions, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(dir.path().join("exec"));
    opts.kill_grace = Duration::from_millis(500);
    (opts, dir)
}

/// Runs a plan and collects every event.
pub async fn run(plan: Plan, opts: RunOptions) -> (ExecutionOutcome, Vec<Event>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    let outcome = assay_engine::run(plan, opts, tx).await;
    let events = collector.await.unwrap();
    (outcome, events)
}

/// Everything a step logged.
pub fn logs(events: &[Event], reference: &str) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Log(c) if c.reference == reference => Some(c.text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn status(outcome: &ExecutionOutcome, reference: &str) -> StepStatus {
    outcome
        .steps
        .get(reference)
        .unwrap_or_else(|| panic!("no result for {reference}: {:?}", outcome.steps.keys()))
        .status
}

/// Whether a process is gone (or a zombie nobody reaps: it runs no more).
pub fn is_gone(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Err(_) => true,
        Ok(()) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true),
    }
}

/// A marker unique to one test, to find its processes in `/proc` (steps run in their own PID
/// namespace, so the pids they print are not ours).
pub fn unique_marker(dir: &tempfile::TempDir) -> String {
    format!(
        "marker-{}",
        dir.path().file_name().unwrap().to_string_lossy()
    )
}

/// Running processes whose command line contains `marker`, as `(pid, command line)`.
pub fn with_marker(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) && !is_gone(pid) {
            found.push((pid, cmd));
        }
    }
    found
}

/// Waits until `file` exists, then whether a process with `marker` runs (for 5 s at most).
pub async fn wait_for_marker(file: std::path::PathBuf, marker: String) -> bool {
    for _ in 0..250 {
        if file.exists() && !with_marker(&marker).is_empty() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
