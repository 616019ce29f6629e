//! The compiled plan: the contract between the front half (load, compile) and the back half
//! (engine, runtimes) of Assay.
//!
//! A `Plan` is complete: a runtime needs nothing else to run the workflow. Templates are applied,
//! config values are checked and substituted, and every expression whose inputs are known before
//! the run is resolved. What remains are *runtime expressions*: strings in template form
//! (`"echo {{ env.HOME }}"`) and bare expressions (`condition`, `retry.until`, `logs`) that refer
//! to `passed`, `failed`, `always`, `never`, `self.*`, `env.*`, `step.<id>.*`, `services.*`,
//! `config.<sensitive>` or a run-time function such as `date()` or `glob()`.
//!
//! Sensitive config values are never part of a plan: references to them stay as
//! `{{ config.NAME }}` and the runtime supplies the value, so a plan can be printed and stored.
//!
//! Field kinds, used when a runtime finishes resolving a plan ([`crate::resolve`]):
//! `condition`, `until` and `logs` hold bare expressions; `count`/`maxCount` of a strategy hold
//! JSON values or bare expressions; every other string is a template.

use assay_shard::Durations;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ConcurrencyPolicy, Opaque};

/// Version of the plan format; bumped on incompatible changes.
pub const PLAN_VERSION: u32 = 1;

fn is_false(b: &bool) -> bool {
    !*b
}

/// One workflow, compiled for one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub version: u32,
    pub workflow: PlanWorkflow,
    /// Config values of this execution (sensitive ones without their value).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, ConfigValue>,
    /// `execution.tags`, resolved as far as possible (templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tags: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub silent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyPolicy>,
    /// Schedules (`events[].cronjob`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<PlanSchedule>,
    /// `job.activeDeadlineSeconds`: the deadline of the whole execution, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_webhooks: bool,
    /// Fields only a Kubernetes runtime interprets (`pod`, `job`, `pvcs`), kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesExtras>,
    /// Informational notes for the user (e.g. images are not pulled on the host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The root group: workflow content, services and container defaults, then
    /// `setup`, `steps` and `after` as its children.
    pub root: PlanStep,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanWorkflow {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
}

/// A config value of the execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValue {
    /// The value; absent for sensitive parameters (the runtime is handed those separately).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sensitive: bool,
    /// Whether the value came from the workflow's default rather than the caller.
    #[serde(default, skip_serializing_if = "is_false")]
    pub defaulted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSchedule {
    pub cron: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesExtras {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Opaque>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub pvcs: IndexMap<String, Opaque>,
}

/// What a step does, in Testkube's order: delay, content, services start, (setup children),
/// commands, execute, parallel, children, services stop, artifacts (artifacts are collected
/// whatever the result, as Testkube does).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// Stable reference of the step within its plan (unique; `root` for the root group).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The id usable in expressions as `step.<id>` (explicit, or derived from the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name (a template; may still hold runtime parts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Bare expression deciding whether the step runs; `passed` unless the workflow says else.
    pub condition: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negative: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<PlanRetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Working directory inherited by everything in this step (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Content to materialize before anything else in the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<PlanContent>,
    /// Services started before the step's work and stopped after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<PlanService>,
    /// Processes to run, in order (`run`, then `shell`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<PlanProcess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute: Option<PlanExecute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<Box<PlanParallel>>,
    /// Child steps (`setup` first, then `steps`; on the root also `after`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<PlanStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<PlanArtifacts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRetry {
    pub count: u32,
    /// Bare expression; `passed` by default (`self.passed` and friends are available).
    pub until: String,
}

/// A process to start: either an argv (`run`) or a shell script (`shell`, or `run.shell`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanProcess {
    /// Program (templates). Empty when `shell` is set, or when `run` only gives `args` and
    /// relies on an image's entrypoint (which a host runtime cannot know: it reports that).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments after `command` (templates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// A script for the runtime's shell, run with `set -e` semantics as Testkube does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// The effective environment: container defaults, then the step's own, later wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<PlanEnv>,
    /// `envFrom` sources, kept for runtimes that can read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// The image the step names; recorded, run on the host by the local runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `imagePullPolicy` (`Always`, `IfNotPresent`, `Never`) for runtimes that pull images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Container resources and security context, kept for Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Opaque>,
    /// `volumeMounts` (`name`, `mountPath`, `readOnly`), verbatim: the container runtime mounts
    /// the workflow's `pvcs` and `pod.volumes` `emptyDir`s by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<Opaque>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanEnv {
    pub name: String,
    /// Template value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A Kubernetes `valueFrom` source, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Opaque>,
    /// `global: true`: also reaches services and parallel workers started below this point.
    #[serde(default, skip_serializing_if = "is_false")]
    pub global: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<PlanGit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PlanFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tarball: Vec<PlanTarball>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanGit {
    pub uri: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ssh_key: String,
    /// `*From` sources (Kubernetes secrets), kept verbatim.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub sources: IndexMap<String, Opaque>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_type: String,
    /// Where to clone; `/data/repo` when the workflow does not say.
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cone: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verbosity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanFile {
    pub path: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_from: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanTarball {
    pub url: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanArtifacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Glob patterns (`**` included), relative to `working_dir`.
    pub paths: Vec<String>,
    /// Name of an archive to pack the artifacts into (`compress.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<String>,
}

/// `execute`: run other stored workflows (or Testkube tests, which Assay reports as unsupported).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanExecute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub r#async: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<PlanExecuteWorkflow>,
    /// Legacy Testkube `tests`, kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<Opaque>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanExecuteWorkflow {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Opaque>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub execution_name: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: IndexMap<String, Value>,
    /// Copies to start (the strategy expanded like parallel workers).
    pub strategy: PlanStrategy,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub tarball: IndexMap<String, Opaque>,
}

/// `count`/`maxCount`/`matrix`/`shards`, as given (values or expressions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStrategy {
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub matrix: IndexMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<Value>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub shards: IndexMap<String, Value>,
    /// Assay extension (`balance: durations`): spread the first shard list's items by their
    /// durations instead of Testkube's contiguous split.
    #[serde(default, skip_serializing_if = "is_false")]
    pub balance: bool,
    /// Known durations (ms) of shard items, so a runtime can balance lists it only learns at
    /// run time (e.g. `glob()`).
    #[serde(default, skip_serializing_if = "Durations::is_empty")]
    pub durations: Durations,
}

/// The values one copy of a strategy sees: `index`, `count`, `matrix.*`, `shard.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyInstance {
    pub index: u64,
    pub count: u64,
    #[serde(default)]
    pub matrix_index: u64,
    #[serde(default)]
    pub matrix_count: u64,
    #[serde(default)]
    pub shard_index: u64,
    #[serde(default)]
    pub shard_count: u64,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub matrix: IndexMap<String, Value>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub shard: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanTransfer {
    pub from: String,
    /// Glob patterns, or an expression giving a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
}

/// `parallel`: workers, each running its own sub-plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanParallel {
    /// Maximum workers at once (`None`: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub fail_fast: bool,
    /// Start all workers together (Testkube's `paused` on parallel).
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Bare expression: when to keep worker logs (`always`, `failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    pub strategy: PlanStrategy,
    /// The concrete workers, when the strategy is known before the run. `None` when it depends
    /// on run-time values (e.g. `shards: {files: 'glob(...)'}`): the runtime then evaluates
    /// `strategy` and expands `worker` with [`crate::strategy::expand_worker`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<PlanWorker>>,
    /// The worker before strategy variables are substituted (only when `workers` is None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Box<PlanWorker>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanWorker {
    #[serde(flatten)]
    pub instance: StrategyInstance,
    /// The parallel step's `description` for this worker (template).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Files copied from the main execution's `/data` into the worker before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer: Vec<PlanTransfer>,
    /// Files copied back from the worker into the main execution when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetch: Vec<PlanTransfer>,
    /// `job.activeDeadlineSeconds` of the worker, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The predicted load (ms) of this worker's shard, when shards are balanced by durations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ms: Option<u64>,
    /// The worker's own `pod`, `job` and `pvcs` (a Kubernetes runtime runs each worker in a
    /// pod of its own with them; the workflow's do not reach it, as in Testkube).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesExtras>,
    /// The worker's own root group; refs inside are local to the worker.
    pub root: PlanStep,
}

/// A service (long-running process next to the steps of its group).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanService {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub strategy: PlanStrategy,
    /// Concrete instances when the strategy is known before the run (else see `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<PlanServiceInstance>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Box<PlanServiceInstance>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanServiceInstance {
    #[serde(flatten)]
    pub instance: StrategyInstance,
    pub process: PlanProcess,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<PlanContent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer: Vec<PlanTransfer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// How long the service may take to become ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Bare expression: when to keep the service's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restart_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Opaque>,
}

/// A readiness probe (Kubernetes' `Probe`, the parts a host runtime can perform).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<ProbeTcp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<ProbeHttp>,
    #[serde(default)]
    pub initial_delay_seconds: u32,
    /// Default 10 as in Kubernetes.
    pub period_seconds: u32,
    /// Default 1 as in Kubernetes.
    pub timeout_seconds: u32,
    /// Default 3 as in Kubernetes.
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTcp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeHttp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub path: String,
    pub port: Value,
    /// `HTTP` or `HTTPS`.
    #[serde(default)]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<Opaque>,
}
