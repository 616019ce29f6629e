//! One test case and the summary of many, in Testkube's `reports[].summary` shape.

use serde::{Deserialize, Serialize};

/// The outcome of one test case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// An assertion failed (`<failure>`).
    Failed,
    /// The test could not run to an assertion (`<error>`).
    Error,
    /// Skipped, disabled or an expected failure (`<skipped>`).
    Skipped,
    /// None of the above.
    Passed,
}

impl CaseStatus {
    /// The lowercase word used in JSON, the database and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Passed => "passed",
            CaseStatus::Failed => "failed",
            CaseStatus::Error => "error",
            CaseStatus::Skipped => "skipped",
        }
    }

    /// The inverse of [`CaseStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "passed" => CaseStatus::Passed,
            "failed" => CaseStatus::Failed,
            "error" => CaseStatus::Error,
            "skipped" => CaseStatus::Skipped,
            _ => return None,
        })
    }

    /// Failed or error.
    pub fn is_failure(self) -> bool {
        matches!(self, CaseStatus::Failed | CaseStatus::Error)
    }
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One test case as a report gives it. Texts are bounded (see [`crate::ParseOptions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestCase {
    /// The enclosing `<testsuite>` names, outermost first, joined by ` › ` (Jest and Mocha
    /// nest suites). Empty when the case has no suite.
    pub suite: String,
    /// `classname`, when given and not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    pub name: String,
    /// `file` of the case, else of its innermost suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub status: CaseStatus,
    /// `time` in milliseconds, rounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The failure, error or skip message (its `message` attribute, else the first line of
    /// its text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Excerpt of the failure text, `system-out` and `system-err`: head and tail, bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Reruns that failed before the final outcome (nextest and Surefire write
    /// `flakyFailure`/`flakyError` for a test that passed on a rerun, `rerunFailure`/
    /// `rerunError` for one that failed every time).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_reruns: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TestCase {
    /// The name under which a test's history is kept: `class::name`, else `suite::name`,
    /// else `name`.
    pub fn key(&self) -> String {
        match (&self.class, self.suite.is_empty()) {
            (Some(class), _) => format!("{class}::{}", self.name),
            (None, false) => format!("{}::{}", self.suite, self.name),
            (None, true) => self.name.clone(),
        }
    }
}

/// Counts of a report, in Testkube's `TestWorkflowReportSummary` shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub errored: u64,
    /// Sum of the cases' durations, in milliseconds.
    pub duration: u64,
}

impl Summary {
    /// Count one more case.
    pub fn add(&mut self, case: &TestCase) {
        self.tests += 1;
        match case.status {
            CaseStatus::Passed => self.passed += 1,
            CaseStatus::Failed => self.failed += 1,
            CaseStatus::Error => self.errored += 1,
            CaseStatus::Skipped => self.skipped += 1,
        }
        self.duration += case.duration_ms.unwrap_or(0);
    }

    /// Add another summary's counts.
    pub fn merge(&mut self, other: &Summary) {
        self.tests += other.tests;
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.errored += other.errored;
        self.duration += other.duration;
    }
}

/// Durations from one execution's cases for the shard planner: each test by key and bare
/// name, each source ([`assay_shard::source_of`]) as the sum of its cases.
pub fn shard_durations<'a>(
    cases: impl IntoIterator<Item = &'a TestCase>,
) -> assay_shard::Durations {
    let mut d = assay_shard::Durations::default();
    for c in cases {
        if let Some(ms) = c.duration_ms {
            d.add_test(&c.name, c.class.as_deref(), c.file.as_deref(), &c.suite, ms);
        }
    }
    d
}
