//! `assay get tests`, `assay get test-history` and `assay get flaky`: test cases parsed from
//! JUnit reports, one test's history, and flaky tests.

use assay_reports::CaseStatus;
use assay_reports::flaky::FlakyPolicy;
use assay_store::{ExecutionRef, Store, now_ms};

use super::history::{self, Format, store_err};

/// `assay get tests EXECUTION`
#[derive(Debug, clap::Args)]
pub struct TestsArgs {
    /// Execution id or name (`workflow-N`)
    execution: String,
    /// Only tests with this status: passed, failed, error, skipped (repeatable)
    #[arg(long, value_parser = parse_case_status)]
    status: Vec<CaseStatus>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// `assay get test-history WORKFLOW TEST`
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    workflow: String,
    /// The test: `class::name` as `assay get tests` shows it, or its bare name
    test: String,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// `assay get flaky`
#[derive(Debug, clap::Args)]
pub struct FlakyArgs {
    /// Only tests of this workflow
    #[arg(long)]
    workflow: Option<String>,
    /// How far back to look (30m, 2h, 14d)
    #[arg(long, value_name = "AGE", value_parser = history::parse_age, default_value = "14d")]
    window: i64,
    /// Passes in a row after the last flake that clear the flag
    #[arg(long, default_value_t = 5)]
    clear_after: u32,
    /// Also list tests that failed recently but are not flaky (broken or regressed)
    #[arg(long)]
    all: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

fn parse_case_status(text: &str) -> Result<CaseStatus, String> {
    CaseStatus::parse(text)
        .ok_or_else(|| format!("`{text}` is not one of passed, failed, error, skipped"))
}

fn ms(d: Option<u64>) -> String {
    d.map(|d| history::duration(d as i64)).unwrap_or_default()
}

/// Failures first (failed, error), then skipped, then passed; report order within each.
pub async fn tests(store: &Store, args: TestsArgs) -> anyhow::Result<()> {
    let reference = ExecutionRef::parse(&args.execution);
    let mut cases = store
        .test_cases(&reference, &args.status)
        .await
        .map_err(store_err)?;
    cases.sort_by_key(|c| c.case.status);
    match args.output {
        Format::Table => {
            let mut t = history::table(&["STATUS", "TEST", "DURATION", "MESSAGE"]);
            for c in &cases {
                let message = c.case.message.as_deref().unwrap_or("");
                let message: String = message.chars().take(100).collect();
                let status = if c.quarantined {
                    format!("{} (quarantined)", c.case.status)
                } else {
                    c.case.status.to_string()
                };
                t.add_row(vec![status, c.key.clone(), ms(c.case.duration_ms), message]);
            }
            history::print_table(&t);
            if cases.is_empty() {
                eprintln!(
                    "no test cases recorded for {reference} (no JUnit report among its artifacts)"
                );
            }
            Ok(())
        }
        format => history::print_doc(&cases, format),
    }
}

pub async fn test_history(store: &Store, args: HistoryArgs) -> anyhow::Result<()> {
    let runs = store
        .test_history(&args.workflow, &args.test)
        .await
        .map_err(store_err)?;
    match args.output {
        Format::Table => {
            let mut t = history::table(&["EXECUTION", "STATUS", "DURATION", "COMMIT", "WHEN"]);
            for r in &runs {
                let mut status = if r.retry || r.failed_reruns > 0 {
                    format!("{} (retried)", r.status)
                } else {
                    r.status.to_string()
                };
                if r.quarantined {
                    status.push_str(" (quarantined)");
                }
                t.add_row(vec![
                    r.execution_name.clone(),
                    status,
                    ms(r.duration_ms),
                    r.commit.clone().unwrap_or_default(),
                    history::ago(r.recorded_at),
                ]);
            }
            history::print_table(&t);
            if runs.is_empty() {
                eprintln!(
                    "no recorded runs of test `{}` in workflow `{}`",
                    args.test, args.workflow
                );
            }
            Ok(())
        }
        format => history::print_doc(&runs, format),
    }
}

pub async fn flaky(store: &Store, args: FlakyArgs) -> anyhow::Result<()> {
    let policy = FlakyPolicy {
        window_ms: args.window,
        clear_after_passes: args.clear_after,
    };
    let mut tests = store
        .flaky_tests(args.workflow.as_deref(), &policy, now_ms())
        .await
        .map_err(store_err)?;
    if !args.all {
        tests.retain(|t| t.verdict.flaky);
    }
    match args.output {
        Format::Table => {
            let mut t = history::table(&[
                "WORKFLOW",
                "TEST",
                "VERDICT",
                "RUNS",
                "FAILURES",
                "LAST FLAKE",
            ]);
            for f in &tests {
                let verdict = match (f.verdict.flaky, f.verdict.broken) {
                    (true, _) => "flaky",
                    (false, true) => "broken",
                    (false, false) => "not flaky",
                };
                t.add_row(vec![
                    f.workflow.clone(),
                    f.key.clone(),
                    verdict.to_string(),
                    f.verdict.runs.to_string(),
                    f.verdict.failures.to_string(),
                    f.verdict
                        .last_flake_at
                        .map(history::ago)
                        .unwrap_or_default(),
                ]);
            }
            history::print_table(&t);
            if tests.is_empty() {
                eprintln!("no flaky tests");
            }
            Ok(())
        }
        format => history::print_doc(&tests, format),
    }
}
