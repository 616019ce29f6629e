//! Rule 2: each failing test judged on its own history.

use assay_api::analysis::{FailingTest, FailureClass, Verdict};
use assay_reports::CaseStatus;
use assay_store::{StoredTestCase, TestRun};

use crate::{Facts, MAX_SIMILAR};

fn passed(r: &TestRun) -> bool {
    r.status == CaseStatus::Passed
}

fn failed(r: &TestRun) -> bool {
    matches!(r.status, CaseStatus::Failed | CaseStatus::Error)
}

/// One failing test: its class, failure age, first bad commit and similar failures.
pub(crate) fn judge(t: &StoredTestCase, facts: &Facts<'_>, commit: Option<&str>) -> FailingTest {
    let this = &facts.execution.id;
    let empty = Vec::new();
    let runs = facts.histories.get(&t.key).unwrap_or(&empty);
    let earlier: Vec<&TestRun> = runs.iter().filter(|r| &r.execution_id != this).collect();
    // Failure age: executions in a row (newest first) in which the test failed.
    let mut age = 1u32;
    let mut first_bad: Option<&TestRun> = None;
    let mut last_pass: Option<&TestRun> = None;
    let mut seen = std::collections::HashSet::new();
    for r in &earlier {
        if !seen.insert(r.execution_id.as_str()) {
            continue;
        }
        if passed(r) {
            last_pass = Some(r);
            break;
        }
        if failed(r) {
            age += 1;
            first_bad = Some(r);
        }
    }
    if last_pass.is_none() {
        last_pass = earlier.iter().copied().find(|r| passed(r));
    }
    let retried_pass = facts
        .tests
        .iter()
        .any(|c| c.key == t.key && c.case.status == CaseStatus::Passed)
        || t.case.failed_reruns > 0;
    let same_commit_pass = commit.and_then(|c| {
        earlier
            .iter()
            .find(|r| passed(r) && r.commit.as_deref() == Some(c))
    });
    let class = if earlier.is_empty() {
        FailureClass::NewTest
    } else if retried_pass || same_commit_pass.is_some() {
        FailureClass::Flaky
    } else if last_pass.is_none() {
        FailureClass::Broken
    } else {
        FailureClass::Regression
    };
    let signature = t
        .case
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .or(t.case.output.as_deref())
        .and_then(assay_reports::signature);
    let (similar, similar_count) = signature
        .as_ref()
        .and_then(|s| facts.similar.get(s))
        .map(|(runs, count)| {
            let list = runs
                .iter()
                .take(MAX_SIMILAR as usize)
                .map(|r| format!("{} {}", r.execution_name, r.key))
                .collect();
            (list, (*count).clamp(0, u32::MAX.into()) as u32)
        })
        .unwrap_or_default();
    // The first failing run after the last pass: this one when the streak starts here.
    let (first_bad_execution, first_bad_commit) = match first_bad {
        Some(r) => (Some(r.execution_name.clone()), r.commit.clone()),
        None => (
            Some(facts.execution.name.clone()),
            commit.map(str::to_string),
        ),
    };
    FailingTest {
        key: t.key.clone(),
        message: t
            .case
            .message
            .as_deref()
            .map(|m| crate::lines::clip(m.lines().next().unwrap_or(m), 300)),
        signature,
        class,
        failure_age: age,
        first_bad_execution,
        first_bad_commit,
        last_pass_execution: same_commit_pass
            .copied()
            .or(last_pass)
            .map(|r| r.execution_name.clone()),
        similar_count,
        similar,
    }
}

/// The execution's verdict from its failing tests of the deciding `class`.
pub(crate) fn verdict(
    class: FailureClass,
    these: &[&FailingTest],
    first: &FailingTest,
    all: usize,
) -> Verdict {
    let names: Vec<&str> = these.iter().take(5).map(|t| t.key.as_str()).collect();
    let n = these.len();
    let tests = if n == 1 {
        format!("test `{}`", names[0])
    } else {
        format!("{n} tests ({})", names.join(", "))
    };
    let mut evidence: Vec<String> = these
        .iter()
        .take(5)
        .map(|t| {
            let mut line = format!("{}: {}", t.key, t.message.as_deref().unwrap_or("failed"));
            if t.failure_age > 1 {
                line.push_str(&format!(
                    " (failing {} runs in a row, since {}",
                    t.failure_age,
                    t.first_bad_execution.as_deref().unwrap_or("?")
                ));
                if let Some(c) = &t.first_bad_commit {
                    line.push_str(&format!(" on commit {c}"));
                }
                line.push(')');
            }
            if t.similar_count > 0 {
                line.push_str(&format!("; {} similar earlier failures", t.similar_count));
            }
            line
        })
        .collect();
    if all > n {
        evidence.push(format!(
            "{} other failing tests judged less serious",
            all - n
        ));
    }
    let (rule, summary) = match class {
        FailureClass::Regression => (
            "passed-before",
            format!(
                "{tests} passed in {} and fail{} since {}{}",
                first
                    .last_pass_execution
                    .as_deref()
                    .unwrap_or("an earlier run"),
                if n == 1 { "s" } else { "" },
                first.first_bad_execution.as_deref().unwrap_or("this run"),
                first
                    .first_bad_commit
                    .as_deref()
                    .map(|c| format!(" (commit {c})"))
                    .unwrap_or_default()
            ),
        ),
        FailureClass::Broken => (
            "never-passed",
            format!(
                "{tests} never passed: failing in each of the last {} runs",
                first.failure_age
            ),
        ),
        FailureClass::Flaky => {
            let rule = if first.last_pass_execution.is_some() {
                "passed-on-same-commit"
            } else {
                "passed-on-retry"
            };
            (
                rule,
                format!(
                    "{tests} passed on the same commit before{}: the failure comes and goes without a change",
                    first
                        .last_pass_execution
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            )
        }
        FailureClass::NewTest | FailureClass::Infrastructure => (
            "first-run",
            format!("{tests} ran for the first time and failed: nothing to compare with yet"),
        ),
    };
    Verdict {
        class,
        rule: rule.into(),
        summary,
        evidence,
    }
}
