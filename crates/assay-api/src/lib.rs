//! Wire types of Assay's REST API.
//!
//! Paths and shapes follow Testkube's `/v1` API where one exists (design.md §4): executions are
//! Testkube's `TestWorkflowExecution` ([`TestWorkflowExecution`], defined once in
//! `assay-store` and reused here, not copied), live notifications are its
//! `TestWorkflowExecutionNotification`. Errors are `{"title","detail","status"}` (RFC 9457's
//! core members), with the validation problems of a rejected document when there are some.
//! Every field is camelCase. Only these types are serialized on the wire.
//!
//! This crate depends on no other Assay crate: a client of the API (`assay-client`) or an
//! agent links these types without the store, the engine or the compiler. The crates that
//! produce the data (`assay-store` for executions, `assay-spec` for statuses) name the types
//! defined here rather than keeping copies.

pub mod agents;
pub mod analysis;
pub mod execution;
pub mod gate;
pub mod insights;
pub mod quarantine;
pub mod status;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use execution::{
    Artifact, CiContext, ConfigValue, ContextType, DefinitionKind, Output, Report, RunningContext,
    TestWorkflowExecution, TestWorkflowResult, TestWorkflowSignature, TestWorkflowStepResult,
    WorkflowRef,
};
pub use status::{ExecutionStatus, StepStatus};

/// What a secret is replaced with wherever Assay writes it down or shows it: step logs, API
/// answers, webhook delivery logs, URLs in messages, MCP answers. One string, so a reader (or a
/// scanner) knows it everywhere.
pub const MASK: &str = "*****";

/// The body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Short, stable summary of the kind of problem (`Bad Request`, `Not Found`).
    pub title: String,
    /// What went wrong with this request, as a lowercase fragment.
    pub detail: String,
    /// The HTTP status code, repeated.
    pub status: u16,
    /// Each problem of a rejected workflow or template, with its place in the document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// On a 403: the role the request needs (`viewer`, `runner` or `admin`), so a client can
    /// say which token to make without reading `detail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_role: Option<String>,
}

/// One problem of a submitted document (see `assay validate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// 1-based line in the submitted text; 0 when unknown.
    pub line: usize,
    /// 1-based column in characters; 0 when unknown.
    pub column: usize,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// JSON path of the field (`spec.steps[0].shell`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Body of `POST /v1/test-workflows/{name}/executions` (Testkube's
/// `TestWorkflowExecutionRequest`, the fields Assay supports; others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRequest {
    /// Config values by parameter name (strings or JSON values).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Tags recorded with the execution.
    #[serde(default)]
    #[schema(schema_with = <TagMap as utoipa::PartialSchema>::schema)]
    pub tags: BTreeMap<String, String>,
    /// Testkube's execution target: which agents may run it (see [`agents::ExecutionTarget`]);
    /// overrides the workflow's `spec.execution.target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<agents::ExecutionTarget>,
}

/// One page of `GET /v1/test-workflow-executions`: Testkube's `TestWorkflowExecutionsResult`
/// (`totals`, `filtered`, `results`); paging here is by cursor (`next`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionsPage {
    /// The executions of the listed workflow (all workflows when none is named), by status.
    #[serde(default)]
    pub totals: ExecutionsTotals,
    /// The executions the filters match over all pages, by status.
    #[serde(default)]
    pub filtered: ExecutionsTotals,
    /// Newest first, without step results.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<TestWorkflowExecution>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Testkube's `ExecutionsTotals`: numbers of executions by status. As in Testkube, `failed`
/// counts aborted and canceled executions too; `results` counts all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionsTotals {
    pub results: i64,
    pub passed: i64,
    pub failed: i64,
    pub queued: i64,
    pub running: i64,
    pub paused: i64,
}

/// Response of `POST /v1/test-workflow-executions/{id}/abort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbortResponse {
    pub id: String,
    /// `aborted` when it was still queued (it never runs), `requested` when it was running
    /// (its runner stops it within about a second), `finished` when it had already ended.
    pub outcome: String,
}

/// One Server-Sent Event of `GET /v1/test-workflow-executions/{id}/notifications`: a log line
/// (`ref`, `log`) or the execution's result after a status change (`result`). Testkube's
/// `TestWorkflowExecutionNotification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// When the line was captured or the change was seen (RFC 3339).
    pub ts: String,
    /// Step ref of a log line.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub step_ref: Option<String>,
    /// One log line, with its newline when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The whole result (status and every step) after a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<TestWorkflowResult>,
}

/// One event of the `text/event-stream` of notifications, as it travels: `event` is `log` or
/// `result`, `id` the sequence number to resume from (`Last-Event-ID`), and `data` the JSON of
/// a [`Notification`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationEvent {
    /// `log` or `result`.
    pub event: String,
    /// Where the stream stands: `SEQ;step=offset;…` (SEQ, the sum of the offsets, never goes
    /// down); send it back as `Last-Event-ID` to resume exactly after this event.
    pub id: String,
    /// A `Notification` as JSON text.
    pub data: String,
}

/// Tags as a JSON object of strings; keys are not empty and have no `,` or `=` (tag filters
/// are written `key=value,…`). The OpenAPI schema of tag maps.
pub struct TagMap;

impl utoipa::PartialSchema for TagMap {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[^,=]+$")),
            ))
            .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some("tags: keys without `,` or `=`, string values"))
            .into()
    }
}

impl ToSchema for TagMap {}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `GET /v1/test-workflows/{name}/metrics` (Testkube's `ExecutionsMetrics`): over the newest
/// ended executions of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMetrics {
    /// Percentage of the ended executions that passed (0–100).
    pub pass_fail_ratio: f64,
    pub execution_duration_p50: String,
    pub execution_duration_p50ms: i64,
    pub execution_duration_p90: String,
    pub execution_duration_p90ms: i64,
    pub execution_duration_p99: String,
    pub execution_duration_p99ms: i64,
    pub total_executions: usize,
    pub failed_executions: usize,
    /// The executions counted, newest first.
    pub executions: Vec<ExecutionMetric>,
}

/// One execution in [`WorkflowMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionMetric {
    pub execution_id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub status: ExecutionStatus,
    pub duration: String,
    pub duration_ms: i64,
    /// RFC 3339.
    pub start_time: String,
}

/// What a token may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Read everything.
    Viewer,
    /// Read, run and abort.
    Runner,
    /// Everything, tokens included.
    Admin,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Viewer => "viewer",
            TokenRole::Runner => "runner",
            TokenRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<TokenRole> {
        match text {
            "viewer" => Some(TokenRole::Viewer),
            "runner" => Some(TokenRole::Runner),
            "admin" => Some(TokenRole::Admin),
            _ => None,
        }
    }
}
