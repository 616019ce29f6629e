//! Testkube's execution JSON shape (`TestWorkflowExecution`) and the records it is made of, for
//! `-o json|yaml` and the API. Field names follow Testkube's OpenAPI model; times are RFC 3339
//! in UTC with milliseconds, durations are Go duration strings plus `…Ms` integers, as Testkube
//! sends them. `assay-store` builds them from its records (`assay_store::testkube`) and keeps
//! the parts it stores as they are here (config values, running context, outputs, reports,
//! artifacts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::status::{ExecutionStatus, StepStatus};

/// `TestWorkflowExecution` (and, without steps/outputs, the list summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestWorkflowExecution {
    pub id: String,
    pub name: String,
    pub number: i64,
    pub workflow: WorkflowRef,
    pub scheduled_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub status_at: String,
    pub result: TestWorkflowResult,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_params: BTreeMap<String, ConfigValue>,
    pub running_context: RunningContext,
    /// The steps in plan order with their names (Testkube's `signature`, flat: Assay's step
    /// refs are unique in an execution). Absent from list summaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature: Vec<TestWorkflowSignature>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<Report>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<Output>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Assay's: problems met while recording the execution (an artifact that could not be
    /// stored, ...). The status is the run's own verdict whatever is listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_errors: Vec<String>,
    /// Assay's: the ref of the step that failed the run (`assay_store::blame::failed_step`), so a
    /// remote client names the same step as the server's own views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
}

/// `workflow: {name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRef {
    pub name: String,
}

/// One entry of `signature`: a step's ref and its human name, when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestWorkflowSignature {
    #[serde(rename = "ref")]
    pub step_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `TestWorkflowResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestWorkflowResult {
    pub status: ExecutionStatus,
    pub queued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<String>,
    pub duration_ms: i64,
    pub total_duration_ms: i64,
    /// Carries the execution-level error (e.g. why it was aborted), as Testkube does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<TestWorkflowStepResult>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, TestWorkflowStepResult>,
}

/// `TestWorkflowStepResult`, plus the resource use Assay records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestWorkflowStepResult {
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<i64>,
}

/// Who or what started an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContextType {
    /// `assay run` on a terminal.
    #[default]
    Cli,
    /// The REST API or MCP.
    Api,
    /// A cron schedule.
    Schedule,
    /// A webhook or test trigger.
    Trigger,
    /// A CI pipeline (detected from the environment).
    Ci,
}

/// CI details detected from the environment of the process that started the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_url: Option<String>,
}

/// The running context of an execution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningContext {
    #[serde(rename = "type")]
    pub kind: ContextType,
    /// User, token name, schedule or trigger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiContext>,
}

/// One config value as recorded (Testkube's `TestWorkflowExecutionConfigValue`). The caller masks
/// sensitive values before they reach the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_value: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_default_value: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// A value a step produced (`/testkube/outputs/<key>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub step_ref: Option<String>,
    pub name: String,
    pub value: serde_json::Value,
}

/// A test report attached to an execution (JUnit and friends; its data is opaque JSON here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub step_ref: Option<String>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// A stored artifact file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Path relative to the execution's artifact root, `/`-separated.
    pub path: String,
    pub size: u64,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub step_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Kind of stored definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DefinitionKind {
    #[serde(rename = "TestWorkflow")]
    Workflow,
    #[serde(rename = "TestWorkflowTemplate")]
    Template,
}

impl DefinitionKind {
    /// Lowercase noun for messages and the store's `kind` column ("workflow", "template").
    pub fn noun(self) -> &'static str {
        match self {
            DefinitionKind::Workflow => "workflow",
            DefinitionKind::Template => "template",
        }
    }
}
