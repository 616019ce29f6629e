//! `get_test_results` and `list_flaky_tests`: what the JUnit reports of executions say.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use assay_reports::CaseStatus;
use assay_reports::flaky::FlakyPolicy;
use assay_store::ExecutionRef;
use serde_json::json;

use super::Tools;
use crate::args::{GetTestResultsArgs, ListFlakyTestsArgs};
use crate::error::ToolResult;
use crate::summary::call;

/// Failures listed in full; the rest are counted.
const MAX_FAILURES: usize = 15;
/// An answer stays under this many bytes.
const MAX_ANSWER: usize = 4000;

impl Tools {
    /// `get_test_results`: failures first, with their messages; passes only counted.
    pub async fn get_test_results(&self, args: GetTestResultsArgs) -> ToolResult {
        let exec = self.execution(&args.execution).await?;
        let name = exec.summary.name.clone();
        let mut cases = self
            .store
            .test_cases(&ExecutionRef::Id(exec.summary.id.clone()), &[])
            .await?;
        if cases.is_empty() {
            return Ok(format!(
                "{name} has no test results: none of its artifacts is a JUnit report\nnext: {}\n",
                call("list_artifacts", json!({"execution": name}))
            ));
        }
        let count = |s: CaseStatus| cases.iter().filter(|c| c.case.status == s).count();
        let mut out = format!(
            "{name}: {} tests, {} passed, {} failed, {} errors, {} skipped\n",
            cases.len(),
            count(CaseStatus::Passed),
            count(CaseStatus::Failed),
            count(CaseStatus::Error),
            count(CaseStatus::Skipped)
        );
        cases.retain(|c| matches!(c.case.status, CaseStatus::Failed | CaseStatus::Error));
        let quarantined = cases.iter().filter(|c| c.quarantined).count();
        if quarantined > 0 {
            let _ = writeln!(
                out,
                "quarantined failures (they did not fail the run): {quarantined}"
            );
        }
        for c in cases.iter().take(MAX_FAILURES) {
            let where_ = c
                .case
                .file
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            let mark = if c.quarantined { " (quarantined)" } else { "" };
            let _ = writeln!(out, "{} {}{where_}{mark}", c.case.status, c.key);
            if let Some(m) = &c.case.message {
                let _ = writeln!(out, "  {}", m.lines().next().unwrap_or(""));
            }
            if out.len() > MAX_ANSWER {
                break;
            }
        }
        if cases.len() > MAX_FAILURES {
            let _ = writeln!(out, "… and {} more failures", cases.len() - MAX_FAILURES);
        }
        if let Some(first) = cases.first() {
            let mut args = json!({"execution": name, "tail": 60});
            if let Some(step) = &first.step_ref {
                args["step"] = json!(step);
            }
            let _ = writeln!(out, "next: {}", call("get_execution_logs", args));
        }
        truncate(&mut out);
        Ok(out)
    }

    /// `list_flaky_tests`: tests that passed and failed on one commit, or passed on a retry,
    /// within 14 days and not cleared by 5 passes in a row; tests failing every time apart.
    pub async fn list_flaky_tests(&self, args: ListFlakyTestsArgs) -> ToolResult {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let all = self
            .store
            .flaky_tests(args.workflow.as_deref(), &FlakyPolicy::default(), now)
            .await?;
        let flaky: Vec<_> = all.iter().filter(|t| t.verdict.flaky).collect();
        let broken: Vec<_> = all.iter().filter(|t| t.verdict.broken).collect();
        let mut out = String::new();
        if flaky.is_empty() {
            out.push_str("no flaky tests in the last 14 days\n");
        } else {
            let _ = writeln!(out, "{} flaky tests:", flaky.len());
            for t in flaky.iter().take(MAX_FAILURES) {
                let why = match &t.verdict.reason {
                    Some(assay_reports::flaky::FlakyReason::SameCommit { commit }) => {
                        format!("passed and failed on commit {commit}")
                    }
                    Some(assay_reports::flaky::FlakyReason::PassedOnRetry) => {
                        "failed, then passed on a retry".to_string()
                    }
                    None => "flaky".to_string(),
                };
                let _ = writeln!(out, "{} {}: {why}", t.workflow, t.key);
            }
        }
        if !broken.is_empty() {
            let _ = writeln!(
                out,
                "{} tests fail every time (broken, not flaky):",
                broken.len()
            );
            for t in broken.iter().take(MAX_FAILURES) {
                let _ = writeln!(out, "{} {}", t.workflow, t.key);
            }
        }
        truncate(&mut out);
        Ok(out)
    }
}

fn truncate(out: &mut String) {
    if out.len() > MAX_ANSWER {
        let mut cut = MAX_ANSWER;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n… (cut to 4 KB)\n");
    }
}
