//! Runs one execution of a workflow on this machine and records it.
//!
//! The one place where the compiler, the engine and the store meet: [`prepare`] compiles the
//! workflow (invalid input leaves no trace in the history), creates the execution with its
//! number and lease, and compiles again with the execution's identity; [`Prepared::run`] runs
//! the plan and persists every event — step results, logs, outputs, artifacts — before handing
//! it to the caller's observer, so what a caller shows is what the history holds. The CLI
//! (`assay run`) and the MCP server use it; a server dispatches to it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assay_api::agents::ExecutionTarget;
use assay_engine::{Event, RunOptions, Runtime};
use assay_spec::model::TestWorkflow;
use assay_spec::plan::Plan;
use assay_spec::resolve::PathError;
use assay_spec::status::ExecutionStatus;
use assay_spec::{CompileRequest, Strictness, TemplateSet};
use assay_store::{
    ConfigValue, Execution, ExecutionRef, ExecutionSummary, Finish, LeaseOwner, NewExecution,
    Quarantine, RunningContext, StepResult, Store, StoreError, Taken,
};
use indexmap::IndexMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod context;
mod junit;
mod launcher;
mod names;
pub mod provenance;
mod recorder;
pub mod remote;
pub mod stored;

pub use context::running_context_from_env;
pub use launcher::{MAX_EXECUTE_DEPTH, does_not_compile};
pub use names::{COMMAND_CHARS, StepNames};
use recorder::Recorder;

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

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Compile, then create the execution. Compile errors are returned before anything is stored.
pub async fn prepare(store: &Store, req: RunRequest) -> Result<Prepared, RunError> {
    let (new, creq_config) = record_for(&req, ExecutionStatus::Running)?;
    let execution = store.create_execution(new).await?;
    prepare_created(store, req, creq_config, execution).await
}

/// Compile to check the request, and give the record of an execution that waits in a queue
/// (`queued`, no owner). The caller stores it with [`Store::create_execution`] and later runs
/// it with [`prepare_queued`].
pub fn queued_execution(req: &RunRequest) -> Result<NewExecution, RunError> {
    let mut new = record_for(req, ExecutionStatus::Queued)?.0;
    if req.held {
        new.owner = Some(LeaseOwner::current());
    }
    Ok(new)
}

/// The config values of `req` that are `sensitive` parameters of its workflow: the values
/// that are never stored, so a queued run must keep them in memory until it starts.
pub fn sensitive_config(req: &RunRequest) -> IndexMap<String, Value> {
    req.config
        .iter()
        .filter(|(k, _)| {
            req.workflow
                .spec
                .config
                .get(k.as_str())
                .is_some_and(|p| p.sensitive)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Take a queued execution (see [`queued_execution`]): claim it for this process and mark it
/// running in one write ([`Store::take_queued`]), then compile it once, with its identity.
/// `req` must be the request it was queued with (its workflow is the execution's definition;
/// it was checked when it was queued, so it is not compiled a second time to check it). `None`
/// when someone else holds it or it has ended (aborted while it waited).
pub async fn prepare_queued(
    store: &Store,
    id: &str,
    req: RunRequest,
) -> Result<Option<Prepared>, RunError> {
    let me = LeaseOwner::current();
    let execution = match store
        .take_queued(id, &me, req.held, ms(SystemTime::now()))
        .await?
    {
        Taken::Started(execution) => *execution,
        Taken::NotAvailable => return Ok(None),
        Taken::AbortRequested(reason) => {
            // Asked to abort by a process that could not take it (it was held here).
            store
                .finish_execution(
                    id,
                    Finish {
                        status: ExecutionStatus::Aborted,
                        error_message: Some(reason),
                        at: ms(SystemTime::now()),
                    },
                )
                .await?;
            return Ok(None);
        }
    };
    // A template that changed since it was queued (an adopted run is rebuilt with the stored
    // templates) fails the compile below, which records the run failed and says why.
    let config = compile_config(&req);
    prepare_created(store, req, config, execution)
        .await
        .map(Some)
}

/// Like [`prepare_queued`], once the caller holds the lease of the queued execution `id`
/// (for an agent, the server claimed it in the agent's name): honour an abort asked meanwhile,
/// mark it running and compile with its identity.
pub async fn prepare_claimed(
    store: &Store,
    id: &str,
    req: RunRequest,
) -> Result<Option<Prepared>, RunError> {
    if let Some(reason) = store.abort_requested(id).await? {
        // Asked to abort by a process that could not take it (it was held here).
        store
            .finish_execution(
                id,
                Finish {
                    status: ExecutionStatus::Aborted,
                    error_message: Some(reason),
                    at: ms(SystemTime::now()),
                },
            )
            .await?;
        return Ok(None);
    }
    store.start_execution(id, ms(SystemTime::now())).await?;
    let config = match record_for(&req, ExecutionStatus::Queued) {
        Ok((_, config)) => config,
        Err(e) => {
            // It compiled when it was queued; a template changed meanwhile. Say so, not hang.
            let message = match &e {
                RunError::Invalid(errors) => format!("the workflow no longer compiles: {errors:?}"),
                other => other.to_string(),
            };
            store
                .finish_execution(
                    id,
                    Finish {
                        status: ExecutionStatus::Failed,
                        error_message: Some(message),
                        at: ms(SystemTime::now()),
                    },
                )
                .await?;
            return Err(e);
        }
    };
    let execution = store
        .find_execution(&ExecutionRef::Id(id.to_string()))
        .await?;
    prepare_created(store, req, config, execution)
        .await
        .map(Some)
}

/// What [`abort`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortOutcome {
    /// It was still queued: recorded `aborted` at once; it never runs.
    Aborted,
    /// It is running: its runner was asked to stop (it polls the request about every second).
    Requested,
    /// It had already ended; nothing changed.
    Finished,
}

/// Abort an execution wherever it is. A queued one is taken (its lease, so no dispatcher starts
/// it) and recorded `aborted` with `reason`; a running one is asked to stop; an ended one is
/// left alone. The API, MCP and the CLI all abort through here.
pub async fn abort(store: &Store, id: &str, reason: &str) -> Result<AbortOutcome, StoreError> {
    let summary = store
        .find_execution(&ExecutionRef::Id(id.to_string()))
        .await?;
    let me = LeaseOwner::current();
    if summary.status == ExecutionStatus::Queued
        && (store.claim_execution(id, &me).await? || store.claim_held_execution(id, &me).await?)
    {
        store
            .finish_execution(
                id,
                Finish {
                    status: ExecutionStatus::Aborted,
                    error_message: Some(reason.to_string()),
                    at: ms(SystemTime::now()),
                },
            )
            .await?;
        return Ok(AbortOutcome::Aborted);
    }
    Ok(if store.request_abort(id, Some(reason)).await? {
        AbortOutcome::Requested
    } else {
        AbortOutcome::Finished
    })
}

/// The config values `req` compiles with: its own, and the secrets that give a sensitive
/// parameter of the same name its value.
fn compile_config(req: &RunRequest) -> IndexMap<String, Value> {
    let mut config = req.config.clone();
    for (k, v) in &req.secrets {
        if req.workflow.spec.config.get(k).is_some_and(|p| p.sensitive) && !config.contains_key(k) {
            config.insert(k.clone(), Value::String(v.clone()));
        }
    }
    config
}

/// The record of a new execution for `req` and the config values to compile with.
fn record_for(
    req: &RunRequest,
    status: ExecutionStatus,
) -> Result<(NewExecution, IndexMap<String, Value>), RunError> {
    let wf = &req.workflow;
    let config = compile_config(req);
    let mut creq = CompileRequest::new(wf, &req.templates);
    creq.config = config.clone();
    creq.strictness = Strictness::Require;
    let first = assay_spec::compile(&creq).map_err(RunError::Invalid)?;

    let definition = definition_yaml(wf)?;
    let mut tags = req.tags.clone();
    for (k, v) in &first.plan.tags {
        if !v.contains("{{") {
            tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    for (k, v) in &req.inferred_tags {
        tags.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let config_record: BTreeMap<String, ConfigValue> = first
        .plan
        .config
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ConfigValue {
                    // Sensitive values have no value in a plan: nothing to leak here.
                    value: v.value.as_ref().map(assay_expr::stringify),
                    sensitive: v.sensitive,
                    ..ConfigValue::default()
                },
            )
        })
        .collect();
    let running = status == ExecutionStatus::Running;
    let target = effective_target(req)?
        .map(|t| serde_json::to_string(&t).map_err(|e| RunError::Internal(e.to_string())))
        .transpose()?;
    Ok((
        NewExecution {
            workflow: wf.metadata.name.clone(),
            definition,
            resolved: None,
            config: config_record,
            tags,
            running_context: req.running_context.clone(),
            status: Some(status),
            owner: running.then(LeaseOwner::current),
            scheduled_at: None,
            parent: req.parent.clone(),
            target,
        },
        config,
    ))
}

/// The target of a run: the request's, else the workflow's `spec.execution.target`; `None`
/// when it asks nothing (any runner).
pub fn effective_target(req: &RunRequest) -> Result<Option<ExecutionTarget>, RunError> {
    // `replicate` keys are label keys: an empty one could never be a label.
    let check_replicate = |t: &ExecutionTarget, path: &str| {
        if t.replicate.iter().all(|k| !k.trim().is_empty()) {
            Ok(())
        } else {
            Err(RunError::Invalid(vec![PathError {
                path: path.into(),
                message: "has an empty label key".into(),
                hint: Some("write `replicate: [LABEL, ...]`, e.g. `replicate: [name]`".into()),
            }]))
        }
    };
    if let Some(t) = &req.target {
        check_replicate(t, "target.replicate")?;
        return Ok((!t.is_empty()).then(|| t.clone()));
    }
    let Some(value) = req
        .workflow
        .spec
        .execution
        .as_ref()
        .and_then(|e| e.target.as_ref())
    else {
        return Ok(None);
    };
    let target: ExecutionTarget = serde_json::from_value(value.clone()).map_err(|e| {
        RunError::Invalid(vec![PathError {
            path: "spec.execution.target".into(),
            message: format!("is not an execution target: {e}"),
            hint: Some(
                "write `target: {match: {LABEL: [VALUE, ...]}, not: {...}, replicate: [LABEL]}`"
                    .into(),
            ),
        }])
    })?;
    check_replicate(&target, "spec.execution.target.replicate")?;
    Ok((!target.is_empty()).then_some(target))
}

/// Compile again with the identity of the created execution and set up the run.
async fn prepare_created(
    store: &Store,
    req: RunRequest,
    config: IndexMap<String, Value>,
    execution: ExecutionSummary,
) -> Result<Prepared, RunError> {
    let wf = &req.workflow;
    let tags = execution.tags.clone();
    let mut creq = CompileRequest::new(wf, &req.templates);
    creq.config = config;
    creq.strictness = Strictness::Require;
    // The real plan knows the execution (`execution.id`, `execution.number`, ...).
    let context = json!({
        "id": execution.id,
        "name": execution.name,
        "number": execution.number,
        "scheduledAt": assay_store::testkube::rfc3339(execution.scheduled_at),
        "tags": tags,
        "selectedTests": req.selected_tests,
    });
    creq.execution = Some(context.clone());
    if wf.balances_durations() {
        // `balance: durations`: shards spread by the durations of this workflow's last runs.
        creq.durations = store.shard_durations(&wf.metadata.name).await?;
    }
    // The execution is recorded already: what fails from here ends it as failed, with why.
    let fail = async |message: String| -> Result<Prepared, RunError> {
        store
            .finish_execution(
                &execution.id,
                Finish {
                    status: ExecutionStatus::Failed,
                    error_message: Some(message.clone()),
                    at: ms(SystemTime::now()),
                },
            )
            .await?;
        Err(RunError::Internal(message))
    };
    let compiled = match assay_spec::compile(&creq) {
        Ok(c) => c,
        Err(e) => {
            return fail(format!(
                "the plan failed to compile with the execution's values: {e:?}"
            ))
            .await;
        }
    };
    let plan_json =
        serde_json::to_string(&compiled.plan).map_err(|e| RunError::Internal(e.to_string()))?;
    store.set_resolved(&execution.id, &plan_json).await?;

    let work_dir: PathBuf = match assay_engine::sandbox::host_work_root() {
        None => store.config().data_dir.join("work"),
        Some(Ok(root)) => root.clone(),
        Some(Err(e)) => return fail(e.to_string()).await,
    }
    .join(&execution.id);
    let mut opts = RunOptions::new(&work_dir);
    opts.secrets = compiled.secrets.into_iter().collect();
    opts.masked = req.secrets.values().cloned().collect();
    // Secrets and ConfigMaps the plan refers to (`valueFrom`, `envFrom`, ...): exactly those
    // are opened, and every value is masked like the others.
    let plan_value =
        serde_json::to_value(&compiled.plan).map_err(|e| RunError::Internal(e.to_string()))?;
    let names = assay_engine::refs::referenced_names(&plan_value);
    if !names.is_empty() {
        opts.named_secrets = store.named_secret_values(&names).await?;
    }
    let mut ctx = serde_json::Map::new();
    ctx.insert("execution".into(), context);
    ctx.insert(
        "workflow".into(),
        json!({"name": wf.metadata.name, "labels": wf.metadata.labels}),
    );
    opts.context = ctx;
    // Steps must not reach the server's secrets: its data folder (tokens, the SQLite file,
    // other executions' folders) is hidden from them, their own work folder excepted.
    opts.hidden = hidden_paths(store.config());
    let mut base_env = assay_engine::starting_env(&req.base_env);
    for (k, v) in &req.secrets {
        base_env.insert(k.clone(), v.clone());
    }
    opts.base_env = base_env;
    if let Some(runtime) = req.runtime.clone().or_else(default_runtime) {
        opts.runtime = runtime;
    }
    let mut chain = req.parents.clone();
    chain.push(wf.metadata.name.clone());
    opts.launcher = Some(Arc::new(launcher::StoreLauncher {
        store: store.clone(),
        parent_id: execution.id.clone(),
        parent_name: execution.name.clone(),
        chain,
        base_env: req.base_env.clone(),
        cancel: opts.cancel.clone(),
        runtime: opts.runtime.clone(),
    }));
    // Quarantined tests still run and report; a step failing only through them passes.
    let quarantines = store.active_quarantines(Some(&wf.metadata.name)).await?;
    opts.quarantined = quarantines.iter().map(|q| q.test.clone()).collect();
    let names = step_names(&compiled.plan);
    Ok(Prepared {
        store: store.clone(),
        execution,
        plan: compiled.plan,
        opts,
        names,
        secret_env: req.secrets.clone(),
        quarantines,
        auto_quarantine: wf
            .metadata
            .labels
            .get(assay_store::AUTO_QUARANTINE_LABEL)
            .is_some_and(|v| v == "true"),
    })
}

impl Prepared {
    pub fn execution(&self) -> &ExecutionSummary {
        &self.execution
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The labels of every step by ref (see [`StepNames`]); a run's observer calls
    /// [`StepNames::learn`] on its events to name workers made at run time.
    pub fn step_names(&self) -> &StepNames {
        &self.names
    }

    /// Cancelling this token aborts the run (Ctrl-C, an API call).
    pub fn cancel_token(&self) -> CancellationToken {
        self.opts.cancel.clone()
    }

    /// Run the plan to its end. Each event is persisted, then passed to `observe`.
    /// `assay abort` from another process (a request recorded in the store) cancels the run.
    pub async fn run(self, observe: impl FnMut(&Event)) -> Result<Finished, RunError> {
        let store = self.store.clone();
        let ended = self.record(observe).await?;
        let execution = store.get_execution(&ExecutionRef::Id(ended.id)).await?;
        Ok(Finished {
            execution,
            record_errors: ended.record_errors,
            auto_quarantined: ended.auto_quarantined,
        })
    }

    /// [`Prepared::run`] for a caller that needs only the final status (the server's queue,
    /// MCP): the execution is not read back from the store at the end, which took seven
    /// queries per execution.
    pub async fn run_to_status(
        self,
        observe: impl FnMut(&Event),
    ) -> Result<ExecutionStatus, RunError> {
        Ok(self.run_to_end(observe).await?.status)
    }

    /// [`Prepared::run_to_status`] with the results of the steps that ended, as recorded (the
    /// server's metrics take them from here instead of reading them back).
    pub async fn run_to_end(self, observe: impl FnMut(&Event)) -> Result<RunEnd, RunError> {
        let ended = self.record(observe).await?;
        Ok(RunEnd {
            status: ended.status,
            steps: ended.steps,
        })
    }

    /// Runs the plan and records every event, then the end of the execution.
    async fn record(self, mut observe: impl FnMut(&Event)) -> Result<Ended, RunError> {
        let Prepared {
            store,
            execution: exec,
            plan,
            opts,
            names,
            secret_env: _,
            quarantines,
            auto_quarantine,
        } = self;
        let cancel = opts.cancel.clone();
        // Removed however the run ends, an error included (a full disk failed the last writes
        // and left the folder, with whatever filled the disk, behind).
        let work_dir = WorkDir::new(opts.work_dir.clone());
        let heartbeat = store.spawn_heartbeat(&exec.id);
        let masker = assay_engine::masker(&plan, &opts);
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let engine = tokio::spawn(assay_engine::run(plan, opts, tx));

        let poll_store = store.clone();
        let poll_id = exec.id.clone();
        let poll_cancel = cancel.clone();
        let abort_poll = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(Some(_)) = poll_store.abort_requested(&poll_id).await {
                    poll_cancel.cancel();
                    return;
                }
            }
        });

        let mut recorder = Recorder {
            store: store.clone(),
            id: exec.id.clone(),
            names,
            writers: HashMap::new(),
            started: HashMap::new(),
            position: 0,
            workflow: exec.workflow.clone(),
            masker,
            quarantines,
            auto_quarantine,
            finished: Vec::new(),
            commit: exec.tags.get("commit").cloned().or_else(|| {
                exec.running_context
                    .ci
                    .as_ref()
                    .and_then(|ci| ci.commit.clone())
            }),
        };
        let mut finished: Option<(ExecutionStatus, Option<String>, SystemTime)> = None;
        // A failure to record one event (an artifact the store refuses, a report that cannot
        // be read) must not discard what the run did: it is listed, and the run goes on.
        let mut record_errors = RecordErrors::default();
        // Log writers batch their writes; a step that goes quiet must not keep its last lines
        // from followers, so pending lines are written out at least this often.
        let mut flush = tokio::time::interval(LOG_FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Step starts and ends that are already waiting when one arrives are recorded with it
        // in one write (a short step's end often is): what each write says is final.
        let mut batch: Vec<Event> = Vec::new();
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = flush.tick() => {
                    if let Err(e) = recorder.flush().await {
                        record_errors.note(format!("failed to write logs: {e}"));
                    }
                    continue;
                }
            };
            batch.push(event);
            while batch.last().is_some_and(is_step_event) {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // Steps' starts and ends, then at most one other event.
            let other = batch.pop_if(|e| !is_step_event(e));
            if !batch.is_empty() {
                for e in recorder.record_steps(&batch).await {
                    record_errors.note(e.to_string());
                }
            }
            if let Some(other) = &other
                && let Err(e) = recorder.record(other).await
            {
                record_errors.note(e.to_string());
            }
            batch.extend(other);
            for event in batch.drain(..) {
                if let Event::ExecutionFinished { status, error, at } = &event {
                    finished = Some((*status, error.clone(), *at));
                }
                observe(&event);
            }
        }
        let outcome = engine
            .await
            .map_err(|e| RunError::Internal(format!("the engine task failed: {e}")))?;
        abort_poll.abort();
        for (reference, w) in recorder.writers.drain() {
            if let Err(e) = w.finish().await {
                record_errors.note(format!(
                    "failed to write the logs of step `{reference}`: {e}"
                ));
            }
        }
        let (status, error, at) =
            finished.unwrap_or((outcome.status, outcome.error.clone(), outcome.finished_at));
        let auto_quarantined = recorder.auto_quarantine(&mut record_errors).await;
        let record_errors = record_errors.into_vec();
        if !record_errors.is_empty() {
            store.set_record_errors(&exec.id, &record_errors).await?;
        }
        store
            .finish_execution(
                &exec.id,
                Finish {
                    status,
                    error_message: error,
                    at: ms(at),
                },
            )
            .await?;
        drop(heartbeat);
        work_dir.remove().await;
        Ok(Ended {
            id: exec.id,
            status,
            record_errors,
            auto_quarantined,
            steps: recorder.finished,
        })
    }
}

/// What [`Prepared::record`] leaves: the execution's final status as recorded.
struct Ended {
    id: String,
    status: ExecutionStatus,
    record_errors: Vec<String>,
    auto_quarantined: Vec<Quarantine>,
    steps: Vec<StepResult>,
}

/// How a run ended ([`Prepared::run_to_end`]).
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// The execution's final status, as recorded.
    pub status: ExecutionStatus,
    /// The results of the steps that ended, in the order they ended, as recorded.
    pub steps: Vec<StepResult>,
}

/// A step's start or end: recorded together with those waiting behind it.
fn is_step_event(event: &Event) -> bool {
    matches!(
        event,
        Event::StepStarted { .. } | Event::StepFinished { .. }
    )
}

/// An execution's work folder: removed by [`WorkDir::remove`], or when dropped on a way out
/// that did not get there.
struct WorkDir(Option<PathBuf>);

impl WorkDir {
    fn new(path: PathBuf) -> Self {
        WorkDir(Some(path))
    }

    /// Removes the folder on the blocking pool and waits for it: unlinking blocks in the
    /// kernel (on a file system mounted with `discard`, each freed block waits for the
    /// device), and on the runtime's own threads it stalled every other execution.
    async fn remove(mut self) {
        if let Some(path) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// How often pending log lines are written out for followers.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

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

/// What steps must not see: the data folder, and a SQLite file or artifact folder kept
/// elsewhere.
fn hidden_paths(config: &assay_store::StoreConfig) -> Vec<PathBuf> {
    let mut paths = vec![config.data_dir.clone()];
    if let Some(db) = &config.database_url
        && let Some(rest) = db.strip_prefix("sqlite:")
    {
        let file = rest.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or(file);
        if !file.is_empty() && !file.starts_with(':') {
            paths.push(PathBuf::from(file));
        }
    }
    if let Some(rest) = config
        .artifacts_url
        .as_deref()
        .and_then(|u| u.strip_prefix("file://"))
    {
        paths.push(PathBuf::from(rest));
    }
    paths
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect()
}
