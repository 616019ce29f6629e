//! Execution answers: a status line, and for a failure the innermost failing step with its exit
//! code, the lines of its output that matter and what to call next — under
//! [`ANSWER_LIMIT`](crate::text::ANSWER_LIMIT) bytes.

use std::collections::HashMap;
use std::fmt::Write;

use assay_store::{Execution, ExecutionStatus, StepResult, StepStatus, now_ms};
use serde_json::json;

use crate::text::{self, ANSWER_LIMIT, Relevant};

/// How much of an execution to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The verdict, the failure, what next (`run_workflow`, `wait_for_execution`).
    Verdict,
    /// Also every step, tags and config (`get_execution`).
    Full,
}

/// Error-like lines and tail lines shown for a failed step, and their byte budget.
const MAX_ERROR_LINES: usize = 12;
const TAIL_LINES: usize = 8;
const LINES_BUDGET: usize = 2200;
/// Steps listed by [`Detail::Full`].
const MAX_STEPS: usize = 60;

/// A tool call written the way an agent makes it: `name {json args}`.
pub fn call(tool: &str, args: serde_json::Value) -> String {
    format!("{tool} {args}")
}

/// Duration as `480ms`, `12.3s`, `3m05s`: the formatter of the CLI and the dashboard.
pub use assay_store::format::duration;

/// How long ago `at` was, as `5s ago`, `3m ago`, `2h ago`, `4d ago`.
pub fn ago(at: i64) -> String {
    assay_store::format::ago(at, now_ms())
}

/// The step to blame for a failed execution: the one rule shared with the CLI and the server
/// ([`assay_store::blame::failed_step`]).
pub fn failed_step(exec: &Execution) -> Option<&StepResult> {
    assay_store::blame::failed_step(exec)
}

/// A step as `name (ref r)`, or just `r` when its name is its ref.
pub fn step_label(step: &StepResult) -> String {
    match &step.name {
        Some(n) if n != &step.step_ref => format!("{} (ref {})", n, step.step_ref),
        _ => step.step_ref.clone(),
    }
}

/// The first line of an execution answer: `unit-3 failed in 0.48s (workflow unit, id …)`.
pub fn headline(exec: &Execution) -> String {
    let status = exec.status;
    let took = match (exec.started_at, exec.finished_at) {
        (Some(s), Some(f)) => format!(" in {}", duration(f - s)),
        (Some(s), None) => format!(" for {}", duration(now_ms() - s)),
        _ => String::new(),
    };
    let verb = if status == ExecutionStatus::Running {
        "running".to_string()
    } else {
        status.as_str().to_string()
    };
    format!(
        "{} {verb}{took} (workflow {}, id {})",
        exec.name, exec.workflow, exec.id
    )
}

/// Render an execution for an agent. `failed_lines` are the stored output lines of
/// [`failed_step`] (the caller reads them from the store).
pub fn render(exec: &Execution, detail: Detail, failed_lines: Option<&[String]>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(exec));
    let name = exec.name.as_str();
    let counts = count_steps(exec);
    match exec.status {
        ExecutionStatus::Passed => {
            let _ = writeln!(out, "steps: {counts}");
            let quarantined: Vec<&str> = exec
                .steps
                .iter()
                .flat_map(|s| s.quarantined_failures.iter().map(String::as_str))
                .collect();
            if !quarantined.is_empty() {
                let line = format!(
                    "quarantined failures (they did not fail the run): {}",
                    quarantined.join(", ")
                );
                let _ = writeln!(out, "{}", text::clip_line(&line, 600));
            }
        }
        ExecutionStatus::Queued | ExecutionStatus::Running | ExecutionStatus::Paused => {
            if let Some(now) = exec
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Running && s.step_ref != "root")
                .max_by_key(|s| s.position)
            {
                let _ = writeln!(out, "running step: {}", step_label(now));
            }
            let _ = writeln!(out, "steps so far: {counts}");
        }
        ExecutionStatus::Failed | ExecutionStatus::Aborted | ExecutionStatus::Canceled => {
            if let Some(msg) = &exec.error_message {
                let _ = writeln!(out, "reason: {}", text::clip_line(msg, 600));
            }
            if let Some(step) = failed_step(exec) {
                render_failed_step(&mut out, step, failed_lines);
            }
        }
    }
    // `execute` started these executions: each by name, with its status.
    for c in exec.children.iter().take(MAX_STEPS) {
        let _ = writeln!(
            out,
            "executed: {} (workflow {}, step {}) {}",
            c.name, c.workflow, c.step_ref, c.status
        );
    }
    if exec.children.len() > MAX_STEPS {
        let _ = writeln!(
            out,
            "… and {} more executed",
            exec.children.len() - MAX_STEPS
        );
    }
    if detail == Detail::Full {
        render_full(&mut out, exec);
    }
    render_next(&mut out, exec, name);
    text::clip_text(
        &out,
        ANSWER_LIMIT,
        &format!(
            "see {}",
            call("get_execution_logs", json!({"execution": name}))
        ),
    )
}

fn count_steps(exec: &Execution) -> String {
    let mut counts: Vec<(StepStatus, usize)> = Vec::new();
    for s in exec.steps.iter().filter(|s| s.step_ref != "root") {
        match counts.iter_mut().find(|(st, _)| *st == s.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.status, 1)),
        }
    }
    if counts.is_empty() {
        return "none recorded".into();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_failed_step(out: &mut String, step: &StepResult, lines: Option<&[String]>) {
    let mut line = format!("failed step: {}", step_label(step));
    if step.status != StepStatus::Failed {
        let _ = write!(line, ", {}", step.status);
    }
    if let Some(code) = step.exit_code {
        let _ = write!(line, ", exit code {code}");
    }
    if let (Some(s), Some(f)) = (step.started_at, step.finished_at) {
        let _ = write!(line, ", after {}", duration(f - s));
    }
    let _ = writeln!(out, "{line}");
    if let Some(msg) = &step.error_message {
        let _ = writeln!(out, "step error: {}", text::clip_line(msg, 600));
    }
    match lines {
        Some(lines) if !lines.is_empty() => {
            Relevant::pick(lines, MAX_ERROR_LINES, TAIL_LINES, LINES_BUDGET).render(out);
        }
        _ => {
            let _ = writeln!(out, "(the step wrote no output)");
        }
    }
}

fn render_full(out: &mut String, exec: &Execution) {
    if !exec.tags.is_empty() {
        let tags: Vec<String> = exec.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "tags: {}", tags.join(", "));
    }
    let config: Vec<String> = exec
        .config
        .iter()
        .map(|(k, v)| match (&v.value, v.sensitive) {
            (_, true) => format!("{k}={}", assay_store::MASK),
            (Some(v), _) => format!("{k}={}", text::clip_line(v, 80)),
            (None, _) => format!("{k}=(default)"),
        })
        .collect();
    if !config.is_empty() {
        let _ = writeln!(out, "config: {}", config.join(", "));
    }
    let results: HashMap<&str, &StepResult> = exec
        .steps
        .iter()
        .map(|s| (s.step_ref.as_str(), s))
        .collect();
    let order: Vec<(String, usize)> = match assay_store::blame::plan_of(exec) {
        Some(plan) => assay_store::blame::plan_order(&plan),
        None => {
            let mut steps: Vec<&StepResult> = exec.steps.iter().collect();
            steps.sort_by_key(|s| s.position);
            steps.iter().map(|s| (s.step_ref.clone(), 1)).collect()
        }
    };
    let _ = writeln!(out, "steps (status, exit code, time):");
    let mut shown = 0;
    for (r, depth) in order.iter().filter(|(r, _)| r != "root") {
        let Some(s) = results.get(r.as_str()) else {
            continue;
        };
        if shown == MAX_STEPS {
            let _ = writeln!(out, "  … more steps not shown");
            break;
        }
        shown += 1;
        let mut line = format!("{}{} {}", "  ".repeat(*depth), s.status, step_label(s));
        if let Some(c) = s.exit_code {
            let _ = write!(line, " exit {c}");
        }
        if let (Some(a), Some(b)) = (s.started_at, s.finished_at) {
            let _ = write!(line, " {}", duration(b - a));
        }
        let _ = writeln!(out, "{line}");
    }
    for o in exec.outputs.iter().take(10) {
        let _ = writeln!(
            out,
            "output {}: {}",
            o.name,
            text::clip_line(&o.value.to_string(), 120)
        );
    }
}

fn render_next(out: &mut String, exec: &Execution, name: &str) {
    let mut next: Vec<String> = Vec::new();
    match exec.status {
        ExecutionStatus::Queued | ExecutionStatus::Running | ExecutionStatus::Paused => {
            next.push(call("wait_for_execution", json!({"execution": name})));
            next.push(call("abort_execution", json!({"execution": name})));
        }
        ExecutionStatus::Failed | ExecutionStatus::Aborted | ExecutionStatus::Canceled => {
            next.push(format!(
                "{} for the cause (class and evidence)",
                call("why_failed", json!({"execution": name}))
            ));
            if let Some(step) = failed_step(exec) {
                next.push(format!(
                    "{} for its whole output",
                    call(
                        "get_execution_logs",
                        json!({"execution": name, "step": step.step_ref})
                    )
                ));
            }
        }
        ExecutionStatus::Passed => {}
    }
    // A child that did not pass is where its parent's failure is explained.
    for c in exec
        .children
        .iter()
        .filter(|c| c.status != ExecutionStatus::Passed && c.status.is_terminal())
        .take(3)
    {
        next.push(call("get_execution", json!({"execution": c.name})));
    }
    if !exec.artifacts.is_empty() {
        next.push(format!(
            "{} ({} files)",
            call("list_artifacts", json!({"execution": name})),
            exec.artifacts.len()
        ));
    }
    if !next.is_empty() {
        let _ = writeln!(out, "next: {}", next.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_in_the_cli_and_the_dashboard() {
        assert_eq!(duration(480), "480ms");
        assert_eq!(duration(12_340), "12.3s");
        assert_eq!(duration(185_000), "3m05s");
    }
}
