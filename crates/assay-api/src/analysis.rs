//! Why an execution failed (`GET /v1/test-workflow-executions/{id}/analysis`, `assay explain`,
//! MCP `why_failed`): a class with the rule that fired, the evidence, the diff against the last
//! passing execution and each failing test's history. Made by `assay-analysis`, offline and
//! deterministic: the same history gives the same answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of failure it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Worked before, fails since a change (commit, definition, config).
    Regression,
    /// Passes and fails without a change (same commit), or passed on a retry.
    Flaky,
    /// Fails every time it ran: never passed.
    Broken,
    /// Not the code under test: out of memory, timeout, network (DNS, connection refused),
    /// image or permission errors, a service that never became ready.
    Infrastructure,
    /// Fails on its first run: a test (or workflow) nobody saw pass yet.
    NewTest,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Regression => "regression",
            FailureClass::Flaky => "flaky",
            FailureClass::Broken => "broken",
            FailureClass::Infrastructure => "infrastructure",
            FailureClass::NewTest => "new-test",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The analysis of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub execution: ExecutionBrief,
    /// `None` when the execution did not fail (passed, or has not finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The step to blame, with the lines of its log that matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_step: Option<FailingStep>,
    /// Failed test cases (from JUnit reports), each with its history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_tests: Vec<FailingTest>,
    /// Failed test cases left out of `failingTests` (the list is bounded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_failing_tests: u32,
    /// What changed since the last passing execution of the same workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_last_pass: Option<Diff>,
    /// Executions of the workflow that failed since its last pass (this one included).
    pub failures_since_last_pass: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An execution named in an analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionBrief {
    pub id: String,
    pub name: String,
    pub workflow: String,
    #[schema(value_type = String)]
    pub status: crate::ExecutionStatus,
    /// The `commit` tag (or the CI commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The class and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub class: FailureClass,
    /// The rule that fired, by name (`oom`, `timeout`, `network`, `image-or-permission`,
    /// `service-not-ready`, `passed-on-same-commit`, `passed-on-retry`, `never-passed`,
    /// `first-run`, `passed-before`).
    pub rule: String,
    /// One sentence a person reads first.
    pub summary: String,
    /// The facts the rule fired on.
    pub evidence: Vec<String>,
}

/// The step to blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailingStep {
    #[serde(rename = "ref")]
    pub step_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[schema(value_type = String)]
    pub status: crate::StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The log lines that matter (error-like lines, then the last lines), each `N: text`.
    pub lines: Vec<String>,
}

/// One failed test with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailingTest {
    /// `class::name`.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The normalized error signature similar failures share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// `regression`, `flaky`, `broken` or `new-test` for this test alone.
    pub class: FailureClass,
    /// Runs in a row that failed, this one included (counted over the recent history).
    pub failure_age: u32,
    /// The first failing run after the last pass: its execution and commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_execution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_commit: Option<String>,
    /// The last execution in which it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pass_execution: Option<String>,
    /// Earlier failures of this workflow's tests with the same signature (up to 1000).
    pub similar_count: u32,
    /// The most recent of them: `execution test`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<String>,
}

/// What changed between the last passing execution and this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// The last passing execution of the workflow before this one.
    pub last_pass: ExecutionBrief,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Change>,
    /// The definition (YAML) as run: lines removed (`- `) and added (`+ `).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definition: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<Change>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Change>,
    /// Steps and tests that took at least twice as long (and a second more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slower: Vec<Slower>,
    /// Tests that passed then and fail now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newly_failing: Vec<String>,
    /// Lines of the failing step's log that its log then did not have (numbers ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_log_lines: Vec<String>,
}

impl Diff {
    /// Whether the code and the workflow are the same: commit, definition and config (tags
    /// other than `commit` describe a run, not what ran).
    pub fn is_unchanged(&self) -> bool {
        self.commit.is_none() && self.definition.is_empty() && self.config.is_empty()
    }
}

/// A value then and now (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A step or test whose duration jumped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Slower {
    pub name: String,
    pub before_ms: u64,
    pub after_ms: u64,
}
