//! The arguments of every tool. Their doc comments and field docs become the JSON schemas that
//! agents read (`tools/list`), so they are written for the agent: what to pass, and the default.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// `list_workflows`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkflowsArgs {
    /// Kubernetes-style label selector, e.g. `team=qa,tier!=slow`.
    #[serde(default)]
    pub selector: Option<String>,
}

/// `get_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetWorkflowArgs {
    /// Name of a stored workflow (or template).
    pub name: String,
    /// A past revision; default the latest.
    #[serde(default)]
    pub revision: Option<i64>,
}

/// `validate_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateWorkflowArgs {
    /// TestWorkflow / TestWorkflowTemplate YAML (testworkflows.testkube.io/v1); several
    /// documents may be separated by `---`.
    pub yaml: String,
}

/// `create_or_update_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrUpdateWorkflowArgs {
    /// TestWorkflow or TestWorkflowTemplate YAML; every document is validated, then stored as
    /// a new revision of its `metadata.name` (unchanged text stores nothing).
    pub yaml: String,
}

/// `run_workflow`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunWorkflowArgs {
    /// Name of a stored workflow. With `yaml`: which workflow of the text to run.
    #[serde(default)]
    pub name: Option<String>,
    /// Inline workflow YAML to run without storing it (templates in the text are used).
    #[serde(default)]
    pub yaml: Option<String>,
    /// Config values by parameter name, e.g. `{"env": "staging", "workers": 4}`.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
    /// Tags recorded with the execution, e.g. `{"commit": "abc123"}`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Wait for the verdict (default true). false answers at once with the execution's name;
    /// then call `wait_for_execution`.
    #[serde(default)]
    pub wait: Option<bool>,
    /// How long to wait, in seconds (default 300, at most 3600). When the run is not done by
    /// then the answer says so; the run goes on.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// `wait_for_execution`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForExecutionArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
    /// How long to wait, in seconds (default 300, at most 3600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// An execution status to filter on.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum StatusArg {
    Queued,
    Running,
    Paused,
    Passed,
    Failed,
    Aborted,
    Canceled,
}

/// `list_executions`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExecutionsArgs {
    /// Only executions of this workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Only executions with this status.
    #[serde(default)]
    pub status: Option<StatusArg>,
    /// At most this many, newest first (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `get_execution`, `list_artifacts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
}

/// `get_execution_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetExecutionLogsArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
    /// Step ref or step name; default every step, each line prefixed by its step ref.
    #[serde(default)]
    pub step: Option<String>,
    /// Only the last N lines (default 100 when `grep` is not given).
    #[serde(default)]
    pub tail: Option<usize>,
    /// Only lines matching this regular expression (case-sensitive; prefix `(?i)` to ignore
    /// case).
    #[serde(default)]
    pub grep: Option<String>,
}

/// `read_artifact`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArtifactArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
    /// Artifact path as `list_artifacts` shows it.
    pub path: String,
    /// Start at this byte (default 0), to page through a large file.
    #[serde(default)]
    pub offset: Option<u64>,
    /// At most this many bytes (default 16384, at most 65536).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// `abort_execution`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortExecutionArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
    /// Recorded with the execution.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `get_test_results`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetTestResultsArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
}

/// `list_flaky_tests`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFlakyTestsArgs {
    /// Only this workflow's tests.
    #[serde(default)]
    pub workflow: Option<String>,
}

/// `why_failed`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhyFailedArgs {
    /// Execution name (`unit-3`) or id.
    pub execution: String,
}

/// `insights`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsightsArgs {
    /// The window: `30d` (default), `12h`, `2w`, or a date `YYYY-MM-DD`.
    #[serde(default)]
    pub since: Option<String>,
    /// Group by `tool` (default: the AI tool that made the change), `team` or `workflow`.
    #[serde(default)]
    pub by: Option<String>,
}

/// `test_history`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestHistoryArgs {
    /// The workflow the test runs in.
    pub workflow: String,
    /// The test: `class::name` as `get_test_results` and `why_failed` show it, or its bare name.
    pub test: String,
    /// Runs shown, newest first (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list_quarantined_tests`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuarantinedTestsArgs {
    /// Expired entries too (default false).
    #[serde(default)]
    pub all: Option<bool>,
}

/// `quarantine_test`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineTestArgs {
    /// The test: `class::name` as `get_test_results` shows it, or its bare name.
    pub test: String,
    /// Only in this workflow (default: every workflow).
    #[serde(default)]
    pub workflow: Option<String>,
    /// Why (required, not empty): a ticket, a cause.
    pub reason: String,
    /// When the quarantine ends: RFC 3339 or YYYY-MM-DD (00:00 UTC); default: never.
    #[serde(default)]
    pub until: Option<String>,
}

/// `unquarantine_test`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnquarantineTestArgs {
    /// The test, as it was quarantined.
    pub test: String,
    /// The workflow the entry was made for (default: the entry for every workflow).
    #[serde(default)]
    pub workflow: Option<String>,
}

/// `compare_executions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareExecutionsArgs {
    /// The earlier execution (name or id), e.g. the last one that passed.
    pub before: String,
    /// The later execution (name or id), e.g. the one that failed.
    pub after: String,
}

/// `list_failures_since_last_pass`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFailuresSinceLastPassArgs {
    /// The workflow.
    pub workflow: String,
}

/// `ask`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskArgs {
    /// The question in plain words, e.g. "failed tests this week in api".
    pub question: String,
}

/// `draft_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftWorkflowArgs {
    /// The repository's files, relative to its root (`tests/test_api.py`, `package.json`),
    /// without dependencies and build output (node_modules, target, .venv…). At most 50,000.
    pub files: Vec<String>,
    /// The text of the files detection reads, by path: package.json, pyproject.toml,
    /// pytest.ini, setup.cfg, tox.ini, requirements*.txt, k6 scripts. At most 1 MB in all.
    #[serde(default)]
    pub contents: Option<std::collections::BTreeMap<String, String>>,
    /// Where the repository is when the workflow runs (the `repo` config default; "." when
    /// not given).
    #[serde(default)]
    pub repo: Option<String>,
    /// A name for the workflows (made a DNS label; "project" when not given).
    #[serde(default)]
    pub name: Option<String>,
    /// Only these tools (`pytest`, `jest`, `go`…); every tool found when not given.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Parallel workers for tools that can split their tests (1–64, default 4).
    #[serde(default)]
    pub shards: Option<u32>,
}

/// `evaluate_gate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateGateArgs {
    /// The gate as YAML text, e.g. "rules: {noFailingTests: true, noPolicyViolations: {severity:
    /// high}, noNewFlakyTests: true, noSecrets: true, minPassRate: 95, requiredWorkflows: [api]}".
    pub rules: String,
    /// Judge this execution (name like `unit-3`, or id) ...
    #[serde(default)]
    pub execution: Option<String>,
    /// ... or every execution tagged `commit=SHA` (the latest of each workflow).
    #[serde(default)]
    pub commit: Option<String>,
}

/// `get_workflow_metrics`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowMetricsArgs {
    /// The workflow's name.
    pub workflow: String,
    /// How many of its latest executions (default 50, at most 500).
    #[serde(default)]
    pub last: Option<u32>,
}

/// `wait_for_executions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForExecutionsArgs {
    /// Execution names (`unit-3`) or ids, 1 to 20.
    pub executions: Vec<String>,
    /// How long to wait for all of them, in seconds (default 300, at most 3600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// `build_dashboard_url`: one of `execution`, `workflow` or `page`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildDashboardUrlArgs {
    /// Execution name (`unit-3`) or id: its page.
    #[serde(default)]
    pub execution: Option<String>,
    /// Workflow name: its page (definition, history, flaky tests).
    #[serde(default)]
    pub workflow: Option<String>,
    /// A list page: `workflows`, `executions`, `agents` or `insights`.
    #[serde(default)]
    pub page: Option<String>,
}

/// `get_workflow_schema`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSchemaArgs {
    /// `TestWorkflow` (default), `TestWorkflowTemplate` or `TestTrigger`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A part to zoom into, dotted (`spec.steps`, `spec.container`); the whole when not given.
    #[serde(default)]
    pub path: Option<String>,
}
