//! What the caller hands the engine besides the plan.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use assay_spec::plan::PlanExecuteWorkflow;
use assay_spec::status::ExecutionStatus;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::runtime::Runtime;

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// The execution's own folder (inside the caller's data dir). The engine creates `data/`
    /// (seen by steps as `/data`), `outputs/` (`/testkube/outputs`) and `tmp/` in it.
    pub work_dir: PathBuf,
    /// Values of `sensitive` config parameters by name: `{{ config.NAME }}` resolves from here
    /// at run time. Every value is masked in logs and error messages.
    pub secrets: BTreeMap<String, String>,
    /// Further values to mask (e.g. `--secret` values), not addressable in expressions.
    pub masked: Vec<String>,
    /// Named secrets the plan refers to (`valueFrom.secretKeyRef`, `envFrom.secretRef`, ...;
    /// see [`crate::refs`]), by name then key. Every value is masked.
    pub named_secrets: crate::refs::NamedSecrets,
    /// Cancelled by the caller to abort the execution (Ctrl-C, `assay abort`).
    pub cancel: CancellationToken,
    /// Top-level expression variables: `execution` (`{id, name, number, ...}`), `workflow`
    /// (`{name, ...}`), `organization`, ... as objects or values.
    pub context: Map<String, Value>,
    /// The environment every process starts from (the plan's env is applied on top). When
    /// empty, the engine uses [`crate::inherited_env`] of its own process.
    pub base_env: BTreeMap<String, String>,
    /// Whether steps get private namespaces: their own `/data`, `/testkube/outputs` and
    /// `/proc`, and the [`hidden`](Self::hidden) paths out of sight.
    pub isolation: Isolation,
    /// Paths steps must not see (the caller's data directory: tokens, database, other
    /// executions' folders); the execution's own `work_dir` stays visible inside them.
    /// Hidden only inside a namespace.
    pub hidden: Vec<PathBuf>,
    /// Shell for `shell` steps; the script is appended as the last argument.
    /// Default: `bash -e -c` (see [`DEFAULT_SHELL`]).
    pub shell: Vec<String>,
    /// Time between SIGTERM and SIGKILL when a step is stopped (timeout, abort).
    pub kill_grace: Duration,
    /// Runs `execute` steps (other workflows); without it such steps fail with a clear error.
    pub launcher: Option<Arc<dyn WorkflowLauncher>>,
    /// Where the plan's processes run: [`HostRuntime`](crate::HostRuntime) by default.
    pub runtime: Arc<dyn Runtime>,
    /// Tests in quarantine for this run (keys or bare names): a step that fails only through
    /// them in the JUnit reports it collected passes, naming them
    /// ([`StepResult::quarantined_failures`](crate::StepResult)).
    pub quarantined: assay_reports::quarantine::QuarantinedTests,
    /// The folder steps see as `/data` when it is not `work_dir/data`: with
    /// [`Isolation::Pod`], the pod's own `/data` volume.
    pub data_dir: Option<PathBuf>,
    /// The folder steps see as `/testkube/outputs` when it is not `work_dir/outputs`.
    pub outputs_dir: Option<PathBuf>,
}

/// Testkube runs shell steps with busybox `sh -c "set -e; ..."`; real workflows rely on ash
/// extensions such as `[[ ]]` and `$RANDOM`, which bash has and dash lacks.
pub const DEFAULT_SHELL: [&str; 3] = ["bash", "-e", "-c"];

impl RunOptions {
    /// Options with defaults for everything but the work directory.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            work_dir: work_dir.into(),
            secrets: BTreeMap::new(),
            masked: Vec::new(),
            named_secrets: BTreeMap::new(),
            cancel: CancellationToken::new(),
            context: Map::new(),
            base_env: BTreeMap::new(),
            isolation: Isolation::Auto,
            hidden: Vec::new(),
            shell: DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            kill_grace: Duration::from_secs(5),
            launcher: None,
            runtime: Arc::new(crate::HostRuntime),
            quarantined: Default::default(),
            data_dir: None,
            outputs_dir: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("work_dir", &self.work_dir)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("masked", &self.masked.len())
            .field(
                "named_secrets",
                &self.named_secrets.keys().collect::<Vec<_>>(),
            )
            .field("isolation", &self.isolation)
            .field("hidden", &self.hidden)
            .field("shell", &self.shell)
            .field("kill_grace", &self.kill_grace)
            .field("launcher", &self.launcher.is_some())
            .field("runtime", &self.runtime.name())
            .field("quarantined", &self.quarantined.len())
            .finish_non_exhaustive()
    }
}

/// Whether steps run in private namespaces (see [`crate::sandbox`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Private namespaces whenever the OS allows them; without them, plans that mention
    /// `/data` or `/testkube` fail with a hint and others run directly on the host (see
    /// [`crate::sandbox::isolation_warning`]).
    Auto,
    /// Always private namespaces; an error when the OS does not allow them.
    Namespace,
    /// Never: plans that mention `/data` or `/testkube` fail with a hint.
    None,
    /// Never, because the process already has a file system of its own where `/data` and
    /// `/testkube/outputs` are the execution's folders (a Kubernetes pod, whose volumes
    /// [`RunOptions::data_dir`] and [`RunOptions::outputs_dir`] name): plans that mention
    /// them run as written.
    Pod,
}

/// Starts other workflows for `execute` steps. The caller implements it over its store.
pub trait WorkflowLauncher: Send + Sync {
    /// Runs one copy of a workflow to its end and returns the execution it recorded. An error
    /// says why no execution could be started (or, with its name, why it could not end).
    fn launch(
        &self,
        request: LaunchRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Launched, LaunchError>> + Send + '_>>;
}

/// An execution an `execute` step started, at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// Its name (`<workflow>-<number>`), which users look it up by.
    pub name: String,
    pub status: ExecutionStatus,
}

/// Why a copy of an `execute` step did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchError {
    /// The execution's name when one was recorded before the failure.
    pub execution: Option<String>,
    pub message: String,
}

impl From<String> for LaunchError {
    fn from(message: String) -> Self {
        LaunchError {
            execution: None,
            message,
        }
    }
}

/// One workflow copy an `execute` step asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    /// Ref of the `execute` step.
    pub reference: String,
    pub workflow: PlanExecuteWorkflow,
    /// Index of this copy within the workflow's strategy.
    pub index: u64,
}
