//! The runtime seam: every process the engine starts — a step's command, a service, a readiness
//! probe's `exec`, the `git` of `content` — and every parallel worker's environment goes
//! through one [`Runtime`].
//!
//! The engine walks the plan (conditions, retries, timeouts, results, outputs, artifacts) and
//! renders each process's templates; a runtime only starts what it is given. What it is given is
//! the plan's own description of the process — command, arguments or shell script, the resolved
//! environment, the working directory as steps see it, the image, resources and security
//! context — and the execution's folders ([`Layout`]: what steps see as `/data`,
//! `/testkube/outputs`, and a temporary folder). Nothing else: no store, no terminal, no
//! caller's state. The [`HostRuntime`](crate::HostRuntime) runs processes on this machine,
//! in the private namespaces of [`crate::sandbox`]; a container runtime maps the same calls to
//! create/start/logs/wait/kill/remove of containers on a network per execution with the
//! folders as volumes, and a Kubernetes runtime to pods.
//!
//! Lifecycle: [`Runtime::open`] once per execution gives a [`Scope`]; [`Scope::worker`] gives
//! each parallel worker its own scope (its own folders); [`Scope::start`] starts a process and
//! returns a [`Process`] handle that the engine waits for, stops (deadline, abort) or polls
//! (services); [`Scope::close`] ends what the scope holds. A runtime reports output through the
//! [`Output`] it is handed, which masks secrets and bounds lines, so a runtime never sees the
//! event channel.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use assay_spec::plan::{Plan, PlanProcess};
use serde_json::Value;
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

pub use crate::layout::Layout;
use crate::mask::Masker;
use crate::options::RunOptions;
use crate::sink::EventSink;

/// A boxed future, as the runtime traits return them (the traits stay object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the processes of a plan run.
pub trait Runtime: Send + Sync {
    /// A short name for messages (`host`, `container`, ...).
    fn name(&self) -> &'static str;

    /// Sets up one execution before its first step: `layout`'s folders exist already. An
    /// error fails the execution with that message (every step skipped).
    fn open<'a>(&'a self, setup: Setup<'a>) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>>;
}

impl std::fmt::Debug for dyn Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Runtime({})", self.name())
    }
}

/// What [`Runtime::open`] is handed.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The whole plan (a runtime may check it once, e.g. for paths it cannot provide).
    pub plan: &'a Plan,
    /// The execution's folders on this machine.
    pub layout: &'a Layout,
    /// The run's options (isolation, hidden paths, shell, base environment, work folder).
    pub options: &'a RunOptions,
}

/// One execution's (or one parallel worker's) place to run processes.
pub trait Scope: Send + Sync {
    /// A scope for one parallel worker of this execution, with its own folders (created
    /// already). `reference` is the parallel step's ref and `index` the worker's.
    fn worker<'a>(
        &'a self,
        layout: &'a Layout,
        reference: &'a str,
        index: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>>;

    /// The environment every process of this scope starts from (the plan's env goes on top);
    /// expressions see it as `env.*`.
    fn base_env(&self) -> BTreeMap<String, String>;

    /// Starts one process; its output goes to `output`.
    fn start<'a>(
        &'a self,
        launch: Launch,
        output: Output,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>>;

    /// Runs a readiness probe's `exec` command to its end, output discarded: `Ok` when it
    /// exits 0. The engine bounds it with the probe's timeout by dropping the future, which
    /// must then stop the command.
    fn probe<'a>(&'a self, launch: Launch) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Ends everything the scope still holds (called once, after its last process).
    fn close(&self) -> BoxFuture<'_, ()>;

    /// Runs a whole parallel worker elsewhere (a pod of its own), or `None`: the engine runs
    /// it here through [`Scope::worker`]. Nothing may start before the future is first polled
    /// (the engine drops it unpolled when a transfer failed). A runtime that takes it gets the files `transfer`
    /// sends (read them before it returns), runs the worker's plan there, reports the worker's
    /// events under their refs itself, and hands back how it ended with the files `fetch`
    /// brings back, which the engine writes (only under the fetch targets). It must end the
    /// remote worker and return when `worker.cancel` is cancelled or `worker.deadline` passes.
    fn remote_worker(&self, worker: RemoteWorker) -> Option<BoxFuture<'_, RemoteWorkerEnd>> {
        let _ = worker;
        None
    }

    /// Whether this scope runs service instances elsewhere (a pod of its own each): the
    /// engine then materializes no `content` of theirs here and starts them through
    /// [`Scope::start_remote_service`]. The default, and the host and container runtimes,
    /// say no.
    fn services_elsewhere(&self) -> bool {
        false
    }

    /// Starts one service instance elsewhere (see [`Scope::services_elsewhere`]) and returns
    /// once it runs and has an address — or, when its readiness probe is `exec` (which runs
    /// inside the service's own container), once that probe passed: the engine then probes
    /// nothing itself. It must give up when `service.cancel` is cancelled or
    /// `service.deadline` passes; stopping the returned [`Process`] ends the instance.
    fn start_remote_service(
        &self,
        service: RemoteService,
    ) -> BoxFuture<'_, Result<Box<dyn Process>, StartError>> {
        let _ = service;
        Box::pin(async {
            Err(StartError::Unsupported(
                "this runtime runs services here".into(),
            ))
        })
    }
}

/// A service instance handed to [`Scope::start_remote_service`].
#[derive(Debug)]
pub struct RemoteService {
    /// Its process with every template rendered here (its `env` is the whole environment,
    /// [`Scope::base_env`] included).
    pub launch: Launch,
    /// The instance as expanded here (its strategy values, `content` — whose templates are
    /// not rendered —, `pod`, `readinessProbe`, `timeout`).
    pub instance: assay_spec::plan::PlanServiceInstance,
    /// The `exec` readiness probe's command, rendered here.
    pub probe_command: Option<Vec<String>>,
    /// Where its log goes (its reference is the instance's log, `<ref>/service/<name>/<index>`).
    pub output: Output,
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
}

/// A parallel worker handed to [`Scope::remote_worker`].
#[derive(Debug, Clone)]
pub struct RemoteWorker {
    /// The parallel step's ref (the worker's events go under `<reference>/<index>/`).
    pub reference: String,
    pub index: u64,
    pub count: u64,
    /// The worker as planned: its root (refs local to it), `fetch`, deadline and Kubernetes
    /// settings.
    pub worker: assay_spec::plan::PlanWorker,
    /// What `transfer` sends: each file's path as the worker sees it (`/data/...`) and the
    /// file on this machine.
    pub transfer: Vec<(String, std::path::PathBuf)>,
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
}

/// How a remote worker ended.
#[derive(Debug, Clone)]
pub struct RemoteWorkerEnd {
    pub status: assay_spec::status::ExecutionStatus,
    pub error: Option<String>,
    /// The files `fetch` brought back: each with its path as the main execution sees it.
    pub fetched: Vec<(String, Vec<u8>)>,
}

/// A started process.
pub trait Process: Send {
    /// The address other processes reach this one at (a service's `services.NAME.N.ip`, and
    /// where its `tcpSocket`/`httpGet` probes connect when they name no host).
    fn address(&self) -> String;

    /// The exit code if the process has ended, without waiting.
    fn try_exit_code(&mut self) -> Option<i32>;

    /// If the process ended by itself (it is not running now), its exit code and how long
    /// after its start it ended.
    fn ended_by_itself(&mut self) -> BoxFuture<'_, Option<(i32, Duration)>>;

    /// Waits for the process to end, stopping it (gracefully, then by force after
    /// `stop.grace`) when `stop.deadline` passes or `stop.cancel` is cancelled.
    fn wait(self: Box<Self>, stop: Stop) -> BoxFuture<'static, ProcessOutcome>;
}

/// When to stop a process the engine waits for.
#[derive(Debug, Clone)]
pub struct Stop {
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
    /// Time between the polite stop (SIGTERM) and the forced one (SIGKILL).
    pub grace: Duration,
}

/// Why a process was stopped by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Timeout,
    Abort,
}

/// How a process ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessOutcome {
    /// Exit code, or 128 + signal number.
    pub exit_code: Option<i32>,
    pub stopped: Option<StopReason>,
    pub peak_rss_bytes: Option<u64>,
    pub cpu_time: Option<Duration>,
}

/// Why a runtime could not open an execution or give a worker its scope, or why a readiness
/// probe's command did not succeed. The message is what the execution, the worker or the
/// service's readiness fails with; the variant says whose problem it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The plan asks for what this runtime cannot give here (paths under `/data` without a
    /// private mount namespace, a probe of something that is not a service, ...): the plan
    /// or the machine's settings must change.
    #[error("{0}")]
    Unsupported(String),
    /// The runtime failed on this machine (a namespace, a folder or a container that could
    /// not be made or reached).
    #[error("{0}")]
    Failed(String),
    /// What the runtime is built on refused, with its own error kept for callers that know
    /// it (the container runtime's `EngineError`: whether the engine or the input is at fault).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A probe's command could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A probe's command ran and did not exit 0 (how it ended, e.g. `exit status: 1`).
    #[error("exec probe exited with {0}")]
    ProbeExited(String),
    /// The execution's runtime could not be opened, so nothing can start in it.
    #[error("the runtime is not open")]
    NotOpen,
}

impl RuntimeError {
    /// Keeps the error of what the runtime is built on (see [`RuntimeError::Backend`]).
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        RuntimeError::Backend(Box::new(e))
    }
}

/// Why a process was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The runtime cannot run what the plan asks (no command for an image's entrypoint on the
    /// host, ...): the step fails with this message and no exit code.
    #[error("{0}")]
    Unsupported(String),
    /// Starting failed (a missing program, a working directory that does not exist, ...):
    /// the step fails with this message and exit code 127, as a shell would report it.
    #[error("{0}")]
    Failed(String),
}

/// What a process is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchKind {
    /// A command of a step.
    Step,
    /// One instance of a step's service.
    Service { name: String, index: u64 },
    /// A readiness probe's `exec` command for one instance of a service (see
    /// [`Scope::probe`]); a container runtime runs it inside that service's container.
    Probe { service: String, index: u64 },
    /// A tool of the engine itself (the `git` of `content.git`): it runs with the engine's
    /// rights on the execution's folders, and the paths in its command are this machine's
    /// (under [`Layout::data`]), not as steps see them.
    Tool,
}

/// One process to start: the plan's description of it with every template rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub kind: LaunchKind,
    /// The plan's `command` (a pure `{{ list }}` argument expanded into several). Empty with
    /// a `shell` script, and when the plan relies on an image's entrypoint.
    pub command: Vec<String>,
    /// The plan's `args`, rendered the same way.
    pub args: Vec<String>,
    /// A script for the runtime's shell, run with `set -e` semantics as Testkube does.
    pub shell: Option<String>,
    /// The whole environment: [`Scope::base_env`] with the plan's variables applied.
    pub env: BTreeMap<String, String>,
    /// The working directory as steps see it (`/data/...`).
    pub working_dir: String,
    /// The image the plan names (a host runtime records it and runs on this machine).
    pub image: Option<String>,
    /// The plan's `imagePullPolicy` for that image.
    pub image_pull_policy: Option<String>,
    /// Kubernetes `resources` and `securityContext`, verbatim from the plan.
    pub resources: Option<Value>,
    pub security_context: Option<Value>,
    /// The plan's `volumeMounts`, verbatim.
    pub volume_mounts: Vec<Value>,
}

impl Launch {
    /// A launch of `kind` for the plan's `process`, with its rendered parts.
    pub(crate) fn of(
        kind: LaunchKind,
        process: &PlanProcess,
        (command, args, shell): (Vec<String>, Vec<String>, Option<String>),
        env: BTreeMap<String, String>,
        working_dir: String,
    ) -> Self {
        Launch {
            kind,
            command,
            args,
            shell,
            env,
            working_dir,
            image: process.image.clone(),
            image_pull_policy: process.image_pull_policy.clone(),
            resources: process.resources.clone(),
            security_context: process.security_context.clone(),
            volume_mounts: process.volume_mounts.clone(),
        }
    }

    /// `command` then `args`: what a runtime without images runs.
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().chain(&self.args).cloned().collect()
    }
}

/// Where a process's output goes: one log (`reference`), masked and cut into bounded lines.
#[derive(Debug, Clone)]
pub struct Output {
    reference: String,
    masker: Masker,
    sink: EventSink,
}

impl Output {
    pub(crate) fn new(reference: &str, masker: &Masker, sink: &EventSink) -> Self {
        Output {
            reference: reference.to_string(),
            masker: masker.clone(),
            sink: sink.clone(),
        }
    }

    /// The log the output goes to (a step's ref, or `<ref>/service/<name>/<index>`).
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Reads `reader` to its end into the log (stdout and stderr, in the order written).
    pub async fn pump(self, reader: impl AsyncRead + Unpin + Send) {
        crate::logs::pump(reader, self.reference, self.masker, self.sink).await;
    }
}
