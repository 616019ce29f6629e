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
    /// Testkube's: the name of the execution whose `execute` step started this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_workflow_execution_name: Option<String>,
    /// Assay's: the execution and step that started this one (`execute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentExecution>,
    /// Assay's: the executions this one's `execute` steps started, oldest first. Absent from
    /// list summaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildExecution>,
}

/// The execution whose `execute` step started another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentExecution {
    pub id: String,
    /// `<workflow>-<number>`.
    pub name: String,
    /// Ref of the `execute` step.
    #[serde(rename = "ref")]
    pub step_ref: String,
}

/// An execution started by an `execute` step of another one, as its parent lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildExecution {
    pub id: String,
    /// `<workflow>-<number>`: `assay get execution NAME` shows it.
    pub name: String,
    pub workflow: String,
    pub number: i64,
    pub status: ExecutionStatus,
    /// Ref of the parent's `execute` step that started it.
    #[serde(rename = "ref")]
    pub step_ref: String,
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
    /// Testkube's: the status the execution is heading for (its status once ended; while it
    /// runs, `failed` once a step failed it, else `passed`).
    #[serde(default = "passed")]
    pub predicted_status: ExecutionStatus,
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
    /// Testkube's: time spent paused. Assay does not pause executions: always 0.
    #[serde(default)]
    pub paused_ms: i64,
    pub total_duration_ms: i64,
    /// Carries the execution-level error (e.g. why it was aborted), as Testkube does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<TestWorkflowStepResult>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, TestWorkflowStepResult>,
    /// Assay's: failed tests that did not fail the execution because they are quarantined
    /// (every step's `quarantinedFailures`, in step order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined_failures: Vec<String>,
}

fn passed() -> ExecutionStatus {
    ExecutionStatus::Passed
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
    /// Assay's: the step failed only through these quarantined tests (keys), so it passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined_failures: Vec<String>,
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

/// The running context of an execution: who or what started it.
///
/// On the wire it has Testkube's shape (`TestWorkflowRunningContext`: `interface` and `actor`
/// objects) plus Assay's `type` and `ci`; older records (`actor` as a string, no `interface`)
/// read back the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningContext {
    pub kind: ContextType,
    /// User, token name, schedule or trigger name; for an execution started by another's
    /// `execute` step, that execution's name.
    pub actor: Option<String>,
    pub ci: Option<CiContext>,
    /// The id of the execution whose `execute` step started this one.
    pub execution_id: Option<String>,
}

impl RunningContext {
    /// Testkube's interface type: `cli`, `api`, `ci/cd` or `internal` (schedules, triggers and
    /// `execute`).
    pub fn interface_type(&self) -> &'static str {
        if self.execution_id.is_some() {
            return "internal";
        }
        match self.kind {
            ContextType::Cli => "cli",
            ContextType::Api => "api",
            ContextType::Schedule | ContextType::Trigger => "internal",
            ContextType::Ci => "ci/cd",
        }
    }

    /// Testkube's actor type: `user`, `cron`, `testtrigger`, `program` (a CI pipeline) or
    /// `testworkflowexecution` (another execution's `execute` step).
    pub fn actor_type(&self) -> &'static str {
        if self.execution_id.is_some() {
            return "testworkflowexecution";
        }
        match self.kind {
            ContextType::Cli | ContextType::Api => "user",
            ContextType::Schedule => "cron",
            ContextType::Trigger => "testtrigger",
            ContextType::Ci => "program",
        }
    }
}

/// `TestWorkflowRunningContextInterface`, as read.
#[derive(Deserialize, Default)]
struct WireInterface {
    #[serde(rename = "type", default)]
    kind: String,
}

/// `TestWorkflowRunningContextActor`, as read.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireActor {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    execution_id: Option<String>,
    #[serde(rename = "type", default)]
    kind: String,
}

/// An actor as written now (an object) or by older versions (a string).
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyActor {
    Name(String),
    Actor(WireActor),
}

/// [`WireInterface`] as written, borrowed (lists write one per execution).
#[derive(Serialize)]
struct InterfaceOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// [`WireActor`] as written, borrowed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActorOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct WireOut<'a> {
    interface: InterfaceOut<'a>,
    actor: ActorOut<'a>,
    #[serde(rename = "type")]
    kind: ContextType,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci: Option<&'a CiContext>,
}

#[derive(Deserialize)]
struct WireIn {
    #[serde(rename = "type", default)]
    kind: Option<ContextType>,
    #[serde(default)]
    interface: Option<WireInterface>,
    #[serde(default)]
    actor: Option<AnyActor>,
    #[serde(default)]
    ci: Option<CiContext>,
}

impl Serialize for RunningContext {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            interface: InterfaceOut {
                name: self.ci.as_ref().and_then(|c| c.provider.as_deref()),
                kind: self.interface_type(),
            },
            actor: ActorOut {
                name: self.actor.as_deref(),
                execution_id: self.execution_id.as_deref(),
                kind: self.actor_type(),
            },
            kind: self.kind,
            ci: self.ci.as_ref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RunningContext {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        let (actor, execution_id, actor_type) = match wire.actor {
            None => (None, None, String::new()),
            Some(AnyActor::Name(name)) => (Some(name), None, String::new()),
            Some(AnyActor::Actor(a)) => (a.name, a.execution_id, a.kind),
        };
        // A context from Testkube (no Assay `type`): from its actor and interface.
        let kind = wire.kind.unwrap_or_else(|| {
            match (
                actor_type.as_str(),
                wire.interface.as_ref().map(|i| i.kind.as_str()),
            ) {
                ("cron", _) => ContextType::Schedule,
                ("testtrigger", _) => ContextType::Trigger,
                (_, Some("cli")) => ContextType::Cli,
                (_, Some("ci/cd")) | ("program", _) => ContextType::Ci,
                _ => ContextType::Api,
            }
        });
        Ok(RunningContext {
            kind,
            actor,
            ci: wire.ci,
            execution_id,
        })
    }
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
