//! Why did it fail? The deterministic failure analysis of one execution.
//!
//! [`analyze`] takes what the store knows about a failed execution ([`Facts`]: the execution,
//! the step to blame and its log, its test cases, the last passing execution of the same
//! workflow, each failing test's recent runs, earlier failures with the same error signature)
//! and returns an [`Analysis`]: a [`FailureClass`] with the rule that fired and its evidence, the
//! diff against the last pass, and per failing test its failure age and first bad commit.
//!
//! The rules, first that fires wins:
//!
//! 1. **infrastructure** — the failing step was killed (exit 137) or says it ran out of memory
//!    (`oom`), timed out (`timeout`), could not reach a host (`network`: connection refused, DNS),
//!    could not get its image or was refused a permission (`image-or-permission`), or a service
//!    never became ready (`service-not-ready`).
//! 2. With failing test cases, each test is judged on its own history: no earlier run is
//!    **new-test** (`first-run`); a pass on the same commit, or a pass on a retry in this
//!    execution, is **flaky** (`passed-on-same-commit`, `passed-on-retry`); never a pass is
//!    **broken** (`never-passed`); otherwise **regression** (`passed-before`). The execution
//!    takes the most serious: regression, then broken, then flaky, then new-test.
//! 3. Without test cases, the workflow's history decides: its first execution is
//!    **new-test**; no pass ever is **broken**; a pass on the same commit, definition and config
//!    is **flaky**; otherwise **regression**.
//!
//! Pure: no I/O, no clock. The same facts give the same analysis.

pub mod diff;
mod infra;
mod lines;
mod render;
mod tests_history;

use std::collections::HashMap;

pub use assay_api::analysis::{
    Analysis, Change, Diff, ExecutionBrief, FailingStep, FailingTest, FailureClass, Slower, Verdict,
};
use assay_reports::CaseStatus;
use assay_store::{
    Execution, ExecutionStatus, ExecutionSummary, StepResult, StoredTestCase, TestRun,
};

pub use diff::{compare, describe};
pub use lines::{clean_line, looks_like_error, pick_lines};
pub use render::render_text;

/// Failing tests listed at most (the rest are counted).
pub const MAX_FAILING_TESTS: usize = 10;
/// Recent runs of a test the caller should hand in ([`Facts::histories`]).
pub const HISTORY_DEPTH: u32 = 100;
/// Similar failures listed per test.
pub const MAX_SIMILAR: u32 = 3;

/// An earlier execution to compare with, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Baseline<'a> {
    pub execution: &'a Execution,
    pub tests: &'a [StoredTestCase],
    /// The log of the step with the same ref as the failing step, when it ran.
    pub step_log: &'a [String],
}

/// What the store knows about a failed execution.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub execution: &'a Execution,
    /// The step to blame ([`assay_store::blame::failed_step`]).
    pub failing_step: Option<&'a StepResult>,
    /// Its log lines.
    pub step_log: &'a [String],
    /// The execution's test cases.
    pub tests: &'a [StoredTestCase],
    /// The last passing execution of the workflow before this one.
    pub last_pass: Option<Baseline<'a>>,
    /// Executions of the workflow after the last pass up to this one (all of them when it
    /// never passed), newest first; bounded by the caller.
    pub since_last_pass: &'a [ExecutionSummary],
    /// Recent runs of each failing test by key, newest first, this execution's included (at
    /// most [`HISTORY_DEPTH`]).
    pub histories: &'a HashMap<String, Vec<TestRun>>,
    /// Earlier failures by signature: the most recent ones and how many there are.
    pub similar: &'a HashMap<String, (Vec<TestRun>, i64)>,
}

/// The commit an execution ran on: its `commit` tag, else the CI commit.
pub fn commit_of(e: &ExecutionSummary) -> Option<String> {
    e.tags.get("commit").cloned().or_else(|| {
        e.running_context
            .ci
            .as_ref()
            .and_then(|ci| ci.commit.clone())
    })
}

/// An execution as an analysis names it.
pub fn brief(e: &ExecutionSummary) -> ExecutionBrief {
    ExecutionBrief {
        id: e.id.clone(),
        name: e.name.clone(),
        workflow: e.workflow.clone(),
        status: e.status,
        commit: commit_of(e),
    }
}

/// Whether an execution is a failure to explain.
pub fn failed(status: ExecutionStatus) -> bool {
    matches!(
        status,
        ExecutionStatus::Failed | ExecutionStatus::Aborted | ExecutionStatus::Canceled
    )
}

/// The failed test cases of an execution, one per key (a test retried by its step counts once,
/// by its last run), in report order.
pub fn failing_cases(tests: &[StoredTestCase]) -> Vec<&StoredTestCase> {
    let mut last: HashMap<&str, &StoredTestCase> = HashMap::new();
    for t in tests {
        last.insert(t.key.as_str(), t);
    }
    let mut seen = std::collections::HashSet::new();
    tests
        .iter()
        .filter(|t| seen.insert(t.key.as_str()))
        .map(|t| last[t.key.as_str()])
        .filter(|t| matches!(t.case.status, CaseStatus::Failed | CaseStatus::Error))
        .collect()
}

/// The analysis of one execution.
pub fn analyze(facts: &Facts<'_>) -> Analysis {
    let exec = facts.execution;
    let failing_step = facts.failing_step.map(|s| FailingStep {
        step_ref: s.step_ref.clone(),
        name: s.name.clone(),
        status: s.status,
        exit_code: s.exit_code,
        error_message: s.error_message.clone(),
        lines: pick_lines(facts.step_log, 10, 5, 2500),
    });
    let failing = failing_cases(facts.tests);
    let commit = commit_of(exec);
    let judged: Vec<FailingTest> = failing
        .iter()
        .take(MAX_FAILING_TESTS)
        .map(|t| tests_history::judge(t, facts, commit.as_deref()))
        .collect();
    let since_last_pass = facts.last_pass.map(|b| diff::diff(facts, &b));
    let failures_since_last_pass = facts
        .since_last_pass
        .iter()
        .filter(|e| failed(e.status))
        .count() as u32;
    let verdict = failed(exec.status).then(|| {
        infra::classify(facts, failing_step.as_ref(), &failing)
            .unwrap_or_else(|| by_history(facts, &judged, since_last_pass.as_ref()))
    });
    Analysis {
        execution: brief(exec),
        verdict,
        failing_step,
        more_failing_tests: failing.len().saturating_sub(MAX_FAILING_TESTS) as u32,
        failing_tests: judged,
        since_last_pass,
        failures_since_last_pass,
    }
}

/// Rules 2 and 3: the history of the failing tests, else of the workflow.
fn by_history(facts: &Facts<'_>, tests: &[FailingTest], diff: Option<&Diff>) -> Verdict {
    if !tests.is_empty() {
        for class in [
            FailureClass::Regression,
            FailureClass::Broken,
            FailureClass::Flaky,
            FailureClass::NewTest,
        ] {
            let these: Vec<&FailingTest> = tests.iter().filter(|t| t.class == class).collect();
            if let Some(first) = these.first() {
                return tests_history::verdict(class, &these, first, tests.len());
            }
        }
    }
    let workflow = &facts.execution.workflow;
    let Some(diff) = diff else {
        let earlier = facts.since_last_pass.len().saturating_sub(1);
        if earlier == 0 {
            return Verdict {
                class: FailureClass::NewTest,
                rule: "first-run".into(),
                summary: format!(
                    "the first execution of workflow `{workflow}` failed: nothing to compare with yet"
                ),
                evidence: vec![format!("no earlier execution of `{workflow}`")],
            };
        }
        return Verdict {
            class: FailureClass::Broken,
            rule: "never-passed".into(),
            summary: format!(
                "workflow `{workflow}` has never passed: {} earlier execution{} failed too",
                earlier,
                if earlier == 1 { "" } else { "s" }
            ),
            evidence: vec![format!(
                "no passing execution of `{workflow}` among the last {}",
                facts.since_last_pass.len()
            )],
        };
    };
    let last = &diff.last_pass.name;
    let mut evidence = diff::describe(diff);
    if diff.is_unchanged() {
        evidence.insert(
            0,
            format!("{last} passed with the same commit, definition and config"),
        );
        return Verdict {
            class: FailureClass::Flaky,
            rule: "passed-on-same-commit".into(),
            summary: format!(
                "nothing changed since {last} passed: the same commit, definition and config fail now"
            ),
            evidence,
        };
    }
    evidence.insert(0, format!("{last} passed"));
    Verdict {
        class: FailureClass::Regression,
        rule: "passed-before".into(),
        summary: format!(
            "it passed in {last} and fails since something changed: {}",
            diff::changed_what(diff)
        ),
        evidence,
    }
}
