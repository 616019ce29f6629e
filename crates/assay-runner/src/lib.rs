//! Runs one execution of a workflow on this machine and records it.
//!
//! The one place where the compiler, the engine and the store meet: [`prepare`] compiles the
//! workflow (invalid input leaves no trace in the history), creates the execution with its
//! number and lease, and compiles again with the execution's identity; [`Prepared::run`] runs
//! the plan and persists every event — step results, logs, outputs, artifacts — before handing
//! it to the caller's observer, so what a caller shows is what the history holds. The CLI
//! (`assay run`) and the MCP server use it; a server dispatches to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use assay_api::agents::ExecutionTarget;
use assay_engine::{RunOptions, Runtime};
use assay_spec::TemplateSet;
use assay_spec::model::TestWorkflow;
use assay_spec::plan::Plan;
use assay_spec::resolve::PathError;
use assay_spec::status::ExecutionStatus;
use assay_store::{
    Execution, ExecutionSummary, Finish, Quarantine, RunningContext, Store, StoreError,
};
use indexmap::IndexMap;
use serde_json::Value;

mod abort;
mod context;
mod junit;
mod launcher;
mod names;
mod prepare;
pub mod provenance;
mod recorder;
pub mod remote;
mod run;
pub mod stored;

pub use abort::{AbortOutcome, abort};

pub use context::running_context_from_env;
pub use launcher::{MAX_EXECUTE_DEPTH, does_not_compile};
pub use names::{COMMAND_CHARS, StepNames};
pub use prepare::{
    effective_target, prepare, prepare_claimed, prepare_queued, queued_execution, sensitive_config,
};
pub use run::RunEnd;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub workflow: TestWorkflow,
    pub templates: TemplateSet,
    /// Config values (`--config k=v` as strings, or JSON values).
    pub config: IndexMap<String, Value>,
    pub tags: BTreeMap<String, String>,
    /// Tags learnt rather than given (the run's [`provenance`]): recorded only where neither
    /// `tags` nor the workflow's `spec.execution.tags` set the key.
    pub inferred_tags: BTreeMap<String, String>,
    /// Secret values: given to every step as environment variables, used as the value of a
    /// sensitive config parameter of the same name, and masked everywhere.
    pub secrets: BTreeMap<String, String>,
    pub running_context: RunningContext,
    /// The environment processes start from; empty means a few variables of this process
    /// ([`assay_engine::starting_env`]: `PATH`, `HOME`, ... and the user's terminal settings).
    pub base_env: BTreeMap<String, String>,
    /// Names of the workflows whose `execute` steps started this run, outermost first (empty
    /// for a run started by a person, a server or an agent). `execute` nests at most
    /// [`MAX_EXECUTE_DEPTH`] levels, so a workflow that executes itself ends with an error.
    pub parents: Vec<String>,
    /// The execution and step whose `execute` started this run (recorded with it, so the
    /// parent's views list it).
    pub parent: Option<assay_store::ParentExecution>,
    /// This process holds the request's sensitive config values in memory for a queued run:
    /// [`queued_execution`] records the execution leased to this process (so no other process
    /// takes it without the values, and readers see when this process is gone) and
    /// [`prepare_queued`] takes it with [`Store::claim_held_execution`].
    pub held: bool,
    /// Where the plan's processes run; `None`: this process's default ([`set_default_runtime`],
    /// else the host runtime). `execute` children run on the same runtime.
    pub runtime: Option<Arc<dyn Runtime>>,
    /// Testkube's execution target given with the run (it overrides the workflow's
    /// `spec.execution.target`): the execution waits for a matching agent.
    pub target: Option<ExecutionTarget>,
    /// The tests this run is asked to run (`execution.selectedTests`, an input of
    /// `testSelector`): the failed tests of an earlier execution for `assay rerun --failed`, the
    /// new tests of a `--repeat-new` repetition; empty on a normal run. Each is an object with
    /// `name` and, where the report gave them, `class`, `suite` and `file`.
    pub selected_tests: Vec<Value>,
}

static DEFAULT_RUNTIME: std::sync::OnceLock<Arc<dyn Runtime>> = std::sync::OnceLock::new();

/// Sets the runtime of every run of this process that names none (`assay run --runtime`,
/// `assay server --runtime`): set once, at start-up; later calls are ignored.
pub fn set_default_runtime(runtime: Arc<dyn Runtime>) {
    let _ = DEFAULT_RUNTIME.set(runtime);
}

/// The runtime of runs that name none.
pub fn default_runtime() -> Option<Arc<dyn Runtime>> {
    DEFAULT_RUNTIME.get().cloned()
}

impl RunRequest {
    pub fn new(workflow: TestWorkflow, templates: TemplateSet) -> Self {
        Self {
            workflow,
            templates,
            config: IndexMap::new(),
            tags: BTreeMap::new(),
            inferred_tags: BTreeMap::new(),
            secrets: BTreeMap::new(),
            running_context: RunningContext::default(),
            base_env: BTreeMap::new(),
            parents: Vec::new(),
            parent: None,
            held: false,
            runtime: None,
            target: None,
            selected_tests: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The workflow does not compile; nothing was recorded. Each error has a JSON path.
    #[error("the workflow is not valid")]
    Invalid(Vec<PathError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// An execution created in the store and ready to run.
pub struct Prepared {
    store: Store,
    execution: ExecutionSummary,
    plan: Plan,
    opts: RunOptions,
    names: StepNames,
    /// `RunRequest::secrets`, given to steps as environment variables (an agent needs them
    /// apart from this process's own environment).
    secret_env: BTreeMap<String, String>,
    /// The quarantines in force for the workflow when the run was prepared.
    quarantines: Vec<Quarantine>,
    /// The workflow's label asks for automatic quarantine.
    auto_quarantine: bool,
}

/// The end of a run.
#[derive(Debug)]
pub struct Finished {
    /// The execution as the store holds it now.
    pub execution: Execution,
    /// Problems met while recording (an artifact that could not be stored, a report that could
    /// not be read, ...), also kept with the execution. The run went on: its status is its own
    /// verdict, and everything that could be stored was.
    pub record_errors: Vec<String>,
    /// Tests quarantined at the end of the run because the flaky rule marked them (the
    /// workflow's `assay.io/auto-quarantine: "true"` label); they apply from the next run.
    pub auto_quarantined: Vec<Quarantine>,
}

/// At most this many recording problems are kept per execution; later ones are counted.
const MAX_RECORD_ERRORS: usize = 20;

/// The recording problems of one run, without repeats.
#[derive(Default)]
pub(crate) struct RecordErrors {
    list: Vec<String>,
    more: usize,
}

impl RecordErrors {
    pub(crate) fn note(&mut self, error: String) {
        if self.list.contains(&error) {
            return;
        }
        if self.list.len() < MAX_RECORD_ERRORS {
            self.list.push(error);
        } else {
            self.more += 1;
        }
    }

    pub(crate) fn into_vec(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list
                .push(format!("… and {} more recording problem(s)", self.more));
        }
        self.list
    }
}

/// Records now that execution `id` ended with `status`, and why (an abort asked before it ran, a
/// compile that failed once it was recorded).
async fn end_now(
    store: &Store,
    id: &str,
    status: ExecutionStatus,
    why: String,
) -> Result<(), StoreError> {
    let finish = Finish {
        status,
        error_message: Some(why),
        at: ms(SystemTime::now()),
    };
    store.finish_execution(id, finish).await
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The labels of every step of a plan by ref (see [`StepNames`]).
pub fn step_names(plan: &Plan) -> StepNames {
    StepNames::new(plan)
}

/// The workflow as a complete YAML document (`apiVersion` and `kind` included), so that the
/// definition recorded with an execution loads again (`assay rerun --original`).
pub fn definition_yaml(wf: &TestWorkflow) -> Result<String, RunError> {
    let body = serde_json::to_value(wf).map_err(|e| RunError::Internal(e.to_string()))?;
    let mut doc = serde_json::Map::new();
    let api = match body.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "testworkflows.testkube.io/v1".to_string(),
    };
    doc.insert("apiVersion".into(), Value::String(api));
    doc.insert("kind".into(), Value::String("TestWorkflow".into()));
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            if k != "apiVersion" {
                doc.insert(k, v);
            }
        }
    }
    serde_saphyr::to_string(&Value::Object(doc)).map_err(|e| RunError::Internal(e.to_string()))
}
