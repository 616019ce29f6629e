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
