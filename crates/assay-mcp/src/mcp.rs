//! The MCP binding: the one module that uses rmcp (the SDK breaks its API every few months, so
//! an upgrade touches this file only). Each tool forwards its arguments to [`Tools`] and turns
//! the answer into a tool result; errors the agent can fix become results with `isError`,
//! internal ones protocol errors.
//!
//! The HTTP transport ([`http_router`], mounted by `assay server` at `/mcp`) wraps the same
//! [`AssayMcp`] in rmcp's streamable HTTP service. There the caller's token role (a
//! [`TokenRole`] the server's auth middleware puts in the HTTP request's extensions) is checked
//! per tool call: reads for viewers, running stored workflows, waiting and aborting for runners, storing
//! workflows and running inline YAML (authoring: its steps are arbitrary code) for admins.

use std::sync::Arc;
use std::time::Duration;

use assay_store::TokenRole;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Extensions, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};

use crate::args::*;
use crate::error::ToolResult;
use crate::tools::Tools;

/// What the server tells an agent when it connects.
const INSTRUCTIONS: &str = "Assay runs Testkube-compatible TestWorkflows on this machine and keeps every execution's history. \
Typical loop: list_workflows, then run_workflow {\"name\": …, \"wait\": true}; a failed run's answer names the failing step, its exit code and the error lines of its output; why_failed gives the cause \
(regression, flaky, broken, infrastructure, new-test) with its evidence and what changed since the last pass. \
For more: test_history, compare_executions, list_failures_since_last_pass, get_execution_logs with the step ref (tail or grep). Write workflows with validate_workflow, then create_or_update_workflow. \
insights: first-try pass rate, runs until green and rework per AI tool, team or workflow. \
Answers are plain text and bounded; every error says what to call next.";

/// The MCP server over the tool layer.
#[derive(Clone)]
pub struct AssayMcp {
    tools: Arc<Tools>,
    /// Over HTTP: check the caller's role (from the HTTP request) on each tool call.
    check_roles: bool,
    tool_router: ToolRouter<AssayMcp>,
}

/// The server an HTTP session reached, as `http(s)://HOST`, from the request's `Host` (the
/// server only accepts allowed hosts) and `X-Forwarded-Proto`; `None` on stdio.
fn dashboard_base(ext: &Extensions) -> Option<String> {
    let parts = ext.get::<http::request::Parts>()?;
    let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    let https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    Some(format!("{}://{host}", if https { "https" } else { "http" }))
}

/// Turn a tool layer answer into an MCP tool result.
fn answer(result: ToolResult) -> Result<CallToolResult, ErrorData> {
    match result {
        Ok(text) => Ok(CallToolResult::success(vec![ContentBlock::text(text)])),
        Err(e) if e.is_fixable() => {
            Ok(CallToolResult::error(vec![ContentBlock::text(e.to_text())]))
        }
        Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
    }
}

#[tool_router(router = tool_router)]
impl AssayMcp {
    /// A server over `tools`.
    pub fn new(tools: Arc<Tools>) -> Self {
        Self {
            tools,
            check_roles: false,
            tool_router: Self::tool_router(),
        }
    }

    /// Over HTTP: refuse a tool call whose caller's role is below `needed`, as a tool error
    /// the agent can read. A request without a role (none was authenticated) is refused.
    fn refuse(&self, ext: &Extensions, tool: &str, needed: TokenRole) -> Option<CallToolResult> {
        if !self.check_roles {
            return None;
        }
        let role = ext
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<TokenRole>())
            .copied();
        if role.is_some_and(|r| r >= needed) {
            return None;
        }
        let has = role.map_or("none", TokenRole::as_str);
        let mut text = format!(
            "permission denied: {tool} needs a token with role `{needed}`; this token has role `{has}`.\n",
            needed = needed.as_str()
        );
        if role == Some(TokenRole::Runner) && needed == TokenRole::Admin && tool.contains("yaml") {
            text.push_str(
                "next: run a stored workflow by `name` (an admin stores it with create_or_update_workflow), \
                 passing values in `config`.",
            );
        } else {
            text.push_str(&format!(
                "next: connect with a {needed} token (an admin creates one with `assay token create --role {needed}`).",
                needed = needed.as_str()
            ));
        }
        Some(CallToolResult::error(vec![ContentBlock::text(text)]))
    }

    /// The tool layer behind this server.
    pub fn tools(&self) -> &Arc<Tools> {
        &self.tools
    }

    #[tool(
        description = "List stored workflows: name, revision, labels and the last execution's status. Also names the stored templates.",
        annotations(read_only_hint = true)
    )]
    async fn list_workflows(
        &self,
        Parameters(args): Parameters<ListWorkflowsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_workflows(args).await)
    }

    #[tool(
        description = "The stored YAML of a workflow (or template), latest or a given revision.",
        annotations(read_only_hint = true)
    )]
    async fn get_workflow(
        &self,
        Parameters(args): Parameters<GetWorkflowArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.get_workflow(args).await)
    }

    #[tool(
        description = "Check TestWorkflow/TestWorkflowTemplate YAML without storing or running it: every problem with its line and column, and a hint.",
        annotations(read_only_hint = true)
    )]
    async fn validate_workflow(
        &self,
        Parameters(args): Parameters<ValidateWorkflowArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.validate_workflow(args).await)
    }

    #[tool(
        description = "Validate, then store a workflow or template (each document of the YAML) as a new revision of its metadata.name. Answers the revision.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn create_or_update_workflow(
        &self,
        Parameters(args): Parameters<CreateOrUpdateWorkflowArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = self.refuse(&ext, "create_or_update_workflow", TokenRole::Admin) {
            return Ok(refused);
        }
        answer(self.tools.create_or_update_workflow(args).await)
    }

    #[tool(
        description = "Run a stored workflow (`name`) or inline YAML (`yaml`; over HTTP an admin token is needed for it) on this machine, with config values and tags. Waits for the verdict by default (up to timeout_seconds, default 300): a failure names the failing step, its exit code and its error lines. wait=false answers at once.",
        annotations(destructive_hint = false, open_world_hint = true)
    )]
    async fn run_workflow(
        &self,
        Parameters(args): Parameters<RunWorkflowArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        // Running inline YAML is authoring (its steps are arbitrary code): admins only. A
        // runner runs what an admin stored, with config values.
        let (tool, needed) = if args.yaml.is_some() {
            ("run_workflow with inline `yaml`", TokenRole::Admin)
        } else {
            ("run_workflow", TokenRole::Runner)
        };
        if let Some(refused) = self.refuse(&ext, tool, needed) {
            return Ok(refused);
        }
        answer(self.tools.run_workflow(args).await)
    }

    #[tool(
        description = "Wait for an execution to end (up to timeout_seconds, default 300) and answer its verdict, like run_workflow.",
        annotations(read_only_hint = true)
    )]
    async fn wait_for_execution(
        &self,
        Parameters(args): Parameters<WaitForExecutionArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = self.refuse(&ext, "wait_for_execution", TokenRole::Runner) {
            return Ok(refused);
        }
        answer(self.tools.wait_for_execution(args).await)
    }

    #[tool(
        description = "List executions, newest first, filtered by workflow and status (default 20, at most 100).",
        annotations(read_only_hint = true)
    )]
    async fn list_executions(
        &self,
        Parameters(args): Parameters<ListExecutionsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_executions(args).await)
    }

    #[tool(
        description = "One execution: verdict, the failing step with its error lines, every step's status and exit code, tags and config.",
        annotations(read_only_hint = true)
    )]
    async fn get_execution(
        &self,
        Parameters(args): Parameters<ExecutionArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.get_execution(args).await)
    }

    #[tool(
        description = "Output of one step (by ref or name) or of every step: the last `tail` lines (default 100) or the lines matching `grep`, numbered, bounded to 16 KB. Secrets are masked.",
        annotations(read_only_hint = true)
    )]
    async fn get_execution_logs(
        &self,
        Parameters(args): Parameters<GetExecutionLogsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.get_execution_logs(args).await)
    }

    #[tool(
        description = "Files an execution saved as artifacts: path, size and step.",
        annotations(read_only_hint = true)
    )]
    async fn list_artifacts(
        &self,
        Parameters(args): Parameters<ExecutionArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_artifacts(args).await)
    }

    #[tool(
        description = "Test results of an execution from its JUnit reports: counts, then each failed test with its message, then what to call next.",
        annotations(read_only_hint = true)
    )]
    async fn get_test_results(
        &self,
        Parameters(args): Parameters<GetTestResultsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.get_test_results(args).await)
    }

    #[tool(
        description = "Flaky tests (passed and failed on one commit, or passed on a retry, in the last 14 days) and broken ones (failing every time), optionally of one workflow.",
        annotations(read_only_hint = true)
    )]
    async fn list_flaky_tests(
        &self,
        Parameters(args): Parameters<ListFlakyTestsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_flaky_tests(args).await)
    }

    #[tool(
        description = "Why an execution failed, in one answer under 4 KB: the class (regression, flaky, broken, infrastructure, new-test) with the rule that fired and its evidence, the failing step and the log lines that matter, each failing test's failure age, first bad commit and similar earlier failures, and what changed since the workflow last passed. Deterministic; no LLM.",
        annotations(read_only_hint = true)
    )]
    async fn why_failed(
        &self,
        Parameters(args): Parameters<WhyFailedArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.why_failed(args).await)
    }

    #[tool(
        description = "How changes fare per AI tool (default), team or workflow over a window (default 30d): first-try pass rate, runs until green, rework rate and failure classes, and which teams ran no system-level workflow (label level=system) on AI-made commits. A change is one workflow on one commit.",
        annotations(read_only_hint = true)
    )]
    async fn insights(
        &self,
        Parameters(args): Parameters<InsightsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.insights(args).await)
    }

    #[tool(
        description = "A quality gate's verdict over one execution or every execution of a commit (tagged commit=SHA): rules noFailingTests, noPolicyViolations {severity}, noNewFlakyTests, noSecrets, minPassRate, requiredWorkflows; each rule PASS/FAIL with its evidence (tests, policy results, secret findings masked, workflows).",
        annotations(read_only_hint = true)
    )]
    async fn evaluate_gate(
        &self,
        Parameters(args): Parameters<EvaluateGateArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.evaluate_gate(args).await)
    }

    #[tool(
        description = "One test's latest runs in a workflow, newest first: status, commit, duration, failure message.",
        annotations(read_only_hint = true)
    )]
    async fn test_history(
        &self,
        Parameters(args): Parameters<TestHistoryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.test_history(args).await)
    }

    #[tool(
        description = "What changed from one execution to another: commit, definition lines, config, tags, steps and tests that got twice as slow, tests that newly fail, new log lines.",
        annotations(read_only_hint = true)
    )]
    async fn compare_executions(
        &self,
        Parameters(args): Parameters<CompareExecutionsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.compare_executions(args).await)
    }

    #[tool(
        description = "The executions of a workflow since it last passed (newest first, with commits and errors), and the first failure to ask why_failed about.",
        annotations(read_only_hint = true)
    )]
    async fn list_failures_since_last_pass(
        &self,
        Parameters(args): Parameters<ListFailuresSinceLastPassArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_failures_since_last_pass(args).await)
    }

    #[tool(
        description = "A question about the history in plain words (\"failed playwright tests this week for team payments\", \"flaky tests in api\", \"executions of unit since 2026-01-01\"): the structured query understood, then the matching executions, test results or flaky tests. Offline grammar, no LLM; unknown words are named in the error.",
        annotations(read_only_hint = true)
    )]
    async fn ask(
        &self,
        Parameters(args): Parameters<AskArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.ask(args).await)
    }

    #[tool(
        description = "Draft TestWorkflows for a repository from its file listing (paths relative to its root) and the text of its config files (package.json, pyproject.toml, pytest.ini, k6 scripts…): the test tools found (pytest, Jest, Vitest, node --test, Go, cargo nextest, Playwright, Cypress, k6, Postman/Newman, JMeter) and one valid workflow each, with JUnit reports and shards where the tool can split. Reads nothing from the server's disk.",
        annotations(read_only_hint = true)
    )]
    async fn draft_workflow(
        &self,
        Parameters(args): Parameters<DraftWorkflowArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.draft_workflow(args).await)
    }

    #[tool(
        description = "A workflow's recent health: pass rate, p50/p95/max duration and statuses of its last executions (default 50), newest first as a strip (P passed, F failed, A aborted).",
        annotations(read_only_hint = true)
    )]
    async fn get_workflow_metrics(
        &self,
        Parameters(args): Parameters<WorkflowMetricsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.get_workflow_metrics(args).await)
    }

    #[tool(
        description = "Wait for several executions (names or ids, up to 20) to end, up to timeout_seconds (default 300): one line each with its status, and why_failed to call for a failure.",
        annotations(read_only_hint = true)
    )]
    async fn wait_for_executions(
        &self,
        Parameters(args): Parameters<WaitForExecutionsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.wait_for_executions(args).await)
    }

    #[tool(
        description = "The labels of the stored workflows, each key with its values: what list_workflows' selector can filter by.",
        annotations(read_only_hint = true)
    )]
    async fn list_labels(&self) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_labels().await)
    }

    #[tool(
        description = "The dashboard URL of an execution, a workflow, or a list page (workflows, executions, agents, insights), to give a person. Over HTTP it is on the server this session reached; on stdio it is the path.",
        annotations(read_only_hint = true)
    )]
    async fn build_dashboard_url(
        &self,
        Parameters(args): Parameters<BuildDashboardUrlArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        answer(
            self.tools
                .build_dashboard_url(args, dashboard_base(&ext))
                .await,
        )
    }

    #[tool(
        description = "The fields of a TestWorkflow (or TestWorkflowTemplate, TestTrigger), one line each with its type and meaning, from the CRD schema Assay ships; `path` zooms in (spec.steps, spec.container). For writing workflows before validate_workflow.",
        annotations(read_only_hint = true)
    )]
    async fn get_workflow_schema(
        &self,
        Parameters(args): Parameters<WorkflowSchemaArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.get_workflow_schema(args).await)
    }

    #[tool(
        description = "A page of a text artifact (default 16 KB from `offset`); binary files are refused.",
        annotations(read_only_hint = true)
    )]
    async fn read_artifact(
        &self,
        Parameters(args): Parameters<ReadArtifactArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.read_artifact(args).await)
    }

    #[tool(
        description = "Quarantined tests: each still runs and reports, but a step failing only through quarantined tests passes (its quarantinedFailures name them). Test, workflow, reason, expiry, and the flaky rule of automatic entries. all=true: expired ones too.",
        annotations(read_only_hint = true)
    )]
    async fn list_quarantined_tests(
        &self,
        Parameters(args): Parameters<ListQuarantinedTestsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.tools.list_quarantined_tests(args).await)
    }

    #[tool(
        description = "Quarantine a test (by `class::name` or bare name) in one workflow or all, with a required reason and an optional expiry (RFC 3339 or YYYY-MM-DD): it still runs and reports, but its failure no longer fails a run. Over HTTP an admin token is needed.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn quarantine_test(
        &self,
        Parameters(args): Parameters<QuarantineTestArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = self.refuse(&ext, "quarantine_test", TokenRole::Admin) {
            return Ok(refused);
        }
        answer(self.tools.quarantine_test(args).await)
    }

    #[tool(
        description = "Lift a test's quarantine (for the workflow it was made for; none: the entry for every workflow): its failures fail runs again. Over HTTP an admin token is needed.",
        annotations(destructive_hint = true, idempotent_hint = false)
    )]
    async fn unquarantine_test(
        &self,
        Parameters(args): Parameters<UnquarantineTestArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = self.refuse(&ext, "unquarantine_test", TokenRole::Admin) {
            return Ok(refused);
        }
        answer(self.tools.unquarantine_test(args).await)
    }

    #[tool(
        description = "Abort a running execution: its processes are stopped and it is recorded as aborted.",
        annotations(destructive_hint = true, idempotent_hint = true)
    )]
    async fn abort_execution(
        &self,
        Parameters(args): Parameters<AbortExecutionArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = self.refuse(&ext, "abort_execution", TokenRole::Runner) {
            return Ok(refused);
        }
        answer(self.tools.abort_execution(args).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AssayMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("assay", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The client never completed the MCP handshake, or the transport broke.
    #[error("failed to start the MCP session: {0}")]
    Start(String),
    /// The session ended with an error.
    #[error("the MCP session failed: {0}")]
    Session(String),
}

/// Serve MCP over stdin/stdout until the client closes the connection, then abort the runs
/// still going and wait up to `grace` for them to be recorded. Nothing but JSON-RPC is
/// written to stdout.
pub async fn serve_stdio(tools: Arc<Tools>, grace: Duration) -> Result<(), ServeError> {
    let server = AssayMcp::new(tools.clone());
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServeError::Start(e.to_string()));
    let result = match running {
        Ok(service) => service
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| ServeError::Session(e.to_string())),
        Err(e) => Err(e),
    };
    tools.shutdown(grace).await;
    result
}

/// MCP over streamable HTTP at `/mcp`, as an axum router to merge into the server's app (behind
/// its auth middleware, which must put the caller's [`TokenRole`] in the request extensions).
/// Requests are accepted for loopback host names and `allowed_hosts` (names or `host:port`), so
/// that a web page cannot reach a local server through DNS rebinding. Sessions live in memory.
pub fn http_router(tools: Arc<Tools>, allowed_hosts: &[String]) -> axum::Router {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    hosts.extend(allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let service = StreamableHttpService::new(
        move || {
            let mut server = AssayMcp::new(tools.clone());
            server.check_roles = true;
            Ok(server)
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new().route_service("/mcp", service)
}
