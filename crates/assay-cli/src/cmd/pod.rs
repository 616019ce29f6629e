//! `assay pod` (hidden): the pod side of the Kubernetes runtime. The init container runs
//! `assay pod install` to copy this (static) binary into the pod's shared volume; the main
//! container, in the plan's image, runs `assay pod run`, which runs the execution with the
//! engine and writes its events to stdout in `assay_kube::podlog`'s line protocol, for the
//! agent that follows the pod's log.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use assay_api::agents::{AgentEvent, AgentWork};
use assay_engine::Event;
use assay_engine::runtime::{
    BoxFuture, Launch, Layout, Output, Process, ProcessOutcome, RemoteService, RemoteWorker,
    RemoteWorkerEnd, Runtime, RuntimeError, Scope, Setup, StartError, Stop,
};
use assay_kube::podlog;
use assay_kube::workers::Channel;

use super::pod_workers;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::UserError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: PodCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PodCommand {
    /// Copy this binary to DEST (the init container of an execution's pod)
    Install {
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
    /// Run an execution handed over in a work file; its events go to stdout, one line each
    Run {
        /// The execution (the agent's AgentWork as JSON)
        #[arg(long, value_name = "FILE")]
        work: PathBuf,
        /// The folder steps see as /data
        #[arg(long, value_name = "DIR", default_value = "/data")]
        data: PathBuf,
        /// The folder steps see as /testkube/outputs
        #[arg(long, value_name = "DIR", default_value = "/testkube/outputs")]
        outputs: PathBuf,
        /// Where the engine keeps its own files (default: a folder in the temporary directory)
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// The channel (JSON, as the agent writes it): the main pod serves the endpoint of its
        /// parallel workers and services in pods of their own, a worker pod talks to its
        /// main pod's
        #[arg(long, value_name = "FILE")]
        channel: Option<PathBuf>,
    },
    /// Print the Job and the Secret an agent would create for a work file, as a JSON `List`
    /// (the Secret holds the work file, sensitive values included)
    Manifests {
        #[arg(long, value_name = "FILE")]
        work: PathBuf,
        #[arg(long, value_name = "NAME")]
        agent: String,
        #[arg(long, value_name = "NAMESPACE", default_value = "default")]
        namespace: String,
        #[arg(long, value_name = "IMAGE", default_value = "assay:latest")]
        image: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        PodCommand::Install { dest } => install(&dest),
        PodCommand::Manifests {
            work,
            agent,
            namespace,
            image,
        } => manifests(&read_work(&work)?, agent, namespace, image),
        PodCommand::Run {
            work,
            data,
            outputs,
            state,
            channel,
        } => {
            // stderr only: stdout is the event stream.
            super::server::init_logging("text");
            let work = read_work(&work)?;
            let state = state.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("assay-pod-{}", safe_name(&work.id)))
            });
            let folders = PodFolders {
                data,
                outputs,
                state,
                channel,
            };
            tokio::runtime::Runtime::new()?.block_on(run_pod(work, folders))
        }
    }
}

fn install(dest: &Path) -> anyhow::Result<u8> {
    let me =
        std::env::current_exe().map_err(|e| anyhow::anyhow!("failed to find this binary: {e}"))?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("failed to create {}: {e}", dir.display()))?;
    }
    std::fs::copy(&me, dest).map_err(|e| {
        anyhow::anyhow!("failed to copy {} to {}: {e}", me.display(), dest.display())
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| anyhow::anyhow!("failed to make {} executable: {e}", dest.display()))?;
    eprintln!("installed {}", dest.display());
    Ok(exit::SUCCESS)
}

fn manifests(
    work: &AgentWork,
    agent: String,
    namespace: String,
    image: String,
) -> anyhow::Result<u8> {
    let settings = assay_kube::job::JobSettings {
        namespace,
        agent,
        image,
        ttl_seconds: 3600,
    };
    let refused = |e: assay_kube::job::JobError| -> anyhow::Error {
        let text = e.to_string();
        match text.split_once("\n\nhint: ") {
            Some((m, h)) => UserError::invalid(m.to_string()).with_hint(h.to_string()),
            None => UserError::invalid(text),
        }
        .into()
    };
    let main = assay_kube::job::execution_objects(work, &settings).map_err(refused)?;
    // The real uids come from the API server when the Jobs are created.
    let uid = "00000000-0000-0000-0000-000000000000";
    // The endpoint's token is the agent's to choose for each execution.
    let main_channel = matches!(
        main.role,
        assay_kube::job::Role::Execution { workers: true, .. }
            | assay_kube::job::Role::Execution { services: true, .. }
    )
    .then(|| Channel::Serve {
        token: "(made by the agent)".into(),
    });
    let mut items = vec![
        serde_json::to_value(&main.job)?,
        serde_json::to_value(
            main.secret(&settings, uid, main_channel.as_ref())
                .map_err(refused)?,
        )?,
    ];
    // Service instances and workers known before the run (a static `count` or matrix): the
    // Job each would get (the agent makes them when the main pod asks, from what the main
    // pod's engine renders then: these show the plan's templates unrendered).
    let mut key = 0u64;
    if let Ok(plan) = serde_json::from_value::<assay_spec::plan::Plan>(work.plan.clone()) {
        let mut services = Vec::new();
        static_services(&plan.root, &mut services);
        for (reference, name, inst) in services {
            let request = assay_kube::services::ServiceRequest {
                key,
                log_ref: format!("{reference}/service/{name}/{}", inst.instance.index),
                name,
                index: inst.instance.index,
                port: 0,
            };
            let pod = assay_kube::services::ServicePod {
                plan: serde_json::to_value(assay_kube::job::service_plan(
                    &plan,
                    inst.process.clone(),
                    inst.content.clone(),
                    inst.pod.as_ref(),
                ))?,
                timeout_ms: inst.timeout_ms,
                readiness: inst.readiness_probe.clone().filter(|p| p.exec.is_some()),
            };
            let objects = assay_kube::job::service_objects(work, &settings, &request, &pod)
                .map_err(refused)?;
            items.push(serde_json::to_value(&objects.job)?);
            items.push(serde_json::to_value(
                objects.secret(&settings, uid, None).map_err(refused)?,
            )?);
            key += 1;
        }
        let mut workers = Vec::new();
        static_workers(&plan.root, &mut workers);
        for (reference, worker) in workers {
            let request = assay_kube::workers::WorkerRequest {
                key,
                reference,
                index: worker.instance.index,
                port: 0,
                plan: serde_json::to_value(assay_kube::job::worker_plan(&plan, &worker))?,
            };
            let objects =
                assay_kube::job::worker_objects(work, &settings, &request).map_err(refused)?;
            let channel = Channel::Worker {
                url: "http://(the main pod's IP and port)".into(),
                token: "(made by the agent)".into(),
                key,
            };
            items.push(serde_json::to_value(&objects.job)?);
            items.push(serde_json::to_value(
                objects
                    .secret(&settings, uid, Some(&channel))
                    .map_err(refused)?,
            )?);
            key += 1;
        }
    }
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
    });
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(exit::SUCCESS)
}

/// The service instances of a plan known before it runs, outside parallel workers (with
/// their step's ref and their service's name).
fn static_services(
    step: &assay_spec::plan::PlanStep,
    out: &mut Vec<(String, String, assay_spec::plan::PlanServiceInstance)>,
) {
    for service in &step.services {
        for inst in service.instances.iter().flatten() {
            out.push((step.reference.clone(), service.name.clone(), inst.clone()));
        }
    }
    for s in &step.steps {
        static_services(s, out);
    }
}

/// The parallel workers of a plan known before it runs (with their parallel step's ref).
fn static_workers(
    step: &assay_spec::plan::PlanStep,
    out: &mut Vec<(String, assay_spec::plan::PlanWorker)>,
) {
    if let Some(p) = &step.parallel {
        for w in p.workers.iter().flatten() {
            out.push((step.reference.clone(), w.clone()));
        }
    }
    for s in &step.steps {
        static_workers(s, out);
    }
}

fn read_work(path: &Path) -> anyhow::Result<AgentWork> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UserError::invalid(format!("failed to read {}: {e}", path.display()))
            .with_hint("the agent mounts the execution's Secret at /.assay/work")
    })?;
    serde_json::from_str(&text).map_err(|e| {
        UserError::invalid(format!("failed to read {}: {e}", path.display()))
            .with_hint("this file is the agent's AgentWork as JSON: are the agent and the image the same version?")
            .into()
    })
}

/// An execution id as a file name (ids are UUIDs; anything else is reduced to be safe).
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// Writes protocol lines to stdout, flushing each batch (or keeps them, in a worker pod,
/// for its main pod); counts the artifact budget.
pub(crate) struct Out {
    stdout: Option<std::io::BufWriter<std::io::Stdout>>,
    kept: Vec<String>,
    artifact_bytes: u64,
}

impl Out {
    fn new(to_stdout: bool) -> Self {
        Out {
            stdout: to_stdout.then(|| std::io::BufWriter::new(std::io::stdout())),
            kept: Vec::new(),
            artifact_bytes: 0,
        }
    }

    pub(crate) fn line(&mut self, line: &str) {
        match &mut self.stdout {
            // A closed stdout (the pod is going away) leaves nothing to tell.
            Some(stdout) => {
                let _ = writeln!(stdout, "{line}");
            }
            None => self.kept.push(line.to_string()),
        }
    }

    pub(crate) fn event(&mut self, event: &AgentEvent) {
        self.line(&podlog::encode_event(event));
    }

    pub(crate) fn flush(&mut self) {
        if let Some(stdout) = &mut self.stdout {
            let _ = stdout.flush();
        }
    }

    /// An engine event on the protocol: an artifact's file as chunks, the rest as its wire
    /// form.
    fn engine_event(&mut self, event: Event) {
        match event {
            Event::Artifact {
                reference,
                path,
                source,
                ..
            } => self.artifact(&reference, &path, &source),
            other => {
                if let Some(wire) = assay_agent::to_wire(&other) {
                    self.event(&wire);
                }
            }
        }
    }

    /// The lines kept for a worker's main pod.
    fn take_kept(&mut self) -> Vec<String> {
        std::mem::take(&mut self.kept)
    }

    /// A worker's artifact chunk, counted in this pod's budget (past it, a file's chunks are
    /// dropped, with a warning at its start).
    pub(crate) fn relayed_chunk(&mut self, chunk: podlog::ArtifactChunk) {
        let size = (chunk.data.len() as u64) * 3 / 4;
        if self.artifact_bytes + size > podlog::ARTIFACT_BUDGET {
            if chunk.offset == 0 {
                self.event(&AgentEvent::Warning {
                    reference: chunk.step.clone(),
                    message: format!(
                        "artifact {} not sent: the pod log carries at most {} MiB of artifacts per execution",
                        chunk.path,
                        podlog::ARTIFACT_BUDGET / (1024 * 1024)
                    ),
                });
            }
            return;
        }
        self.artifact_bytes += size;
        self.line(&podlog::encode_chunk(&chunk));
    }

    /// Sends a file as chunks, or a warning when it would pass the budget or cannot be read.
    fn artifact(&mut self, step: &str, path: &str, source: &Path) {
        let warn = |out: &mut Out, message: String| {
            out.event(&AgentEvent::Warning {
                reference: step.to_string(),
                message,
            })
        };
        let bytes = match std::fs::read(source) {
            Ok(b) => b,
            Err(e) => return warn(self, format!("artifact {path} not sent: {e}")),
        };
        let size = bytes.len() as u64;
        if self.artifact_bytes + size > podlog::ARTIFACT_BUDGET {
            return warn(
                self,
                format!(
                    "artifact {path} ({size} bytes) not sent: the pod log carries at most {} MiB of artifacts per execution",
                    podlog::ARTIFACT_BUDGET / (1024 * 1024)
                ),
            );
        }
        self.artifact_bytes += size;
        let mut chunks = bytes.chunks(podlog::CHUNK_BYTES).peekable();
        if chunks.peek().is_none() {
            self.line(&podlog::encode_chunk(&podlog::ArtifactChunk::new(
                step, path, 0, b"", true,
            )));
        }
        let mut offset = 0u64;
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.line(&podlog::encode_chunk(&podlog::ArtifactChunk::new(
                step, path, offset, chunk, last,
            )));
            offset += chunk.len() as u64;
        }
    }
}

/// The paths `assay pod run` is given.
struct PodFolders {
    data: PathBuf,
    outputs: PathBuf,
    state: PathBuf,
    channel: Option<PathBuf>,
}

async fn run_pod(work: AgentWork, folders: PodFolders) -> anyhow::Result<u8> {
    let PodFolders {
        data,
        outputs,
        state,
        channel,
    } = folders;
    let channel: Option<Channel> = match &channel {
        None => None,
        Some(path) => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(c) => Some(c),
            Err(e) => {
                let mut out = Out::new(true);
                out.event(&AgentEvent::ExecutionFinished {
                    status: assay_spec::status::ExecutionStatus::Failed,
                    error: Some(format!(
                        "the pod cannot read its channel file {}: {e}",
                        path.display()
                    )),
                    at: assay_agent::ms(std::time::SystemTime::now()),
                });
                out.flush();
                return Ok(exit::FAILED);
            }
        },
    };
    let worker = match &channel {
        Some(Channel::Worker { url, token, key }) => Some(pod_workers::WorkerClient::new(
            url.clone(),
            token.clone(),
            *key,
        )),
        _ => None,
    };
    if let Some(client) = &worker {
        return run_worker(work, data, outputs, state, client).await;
    }
    let mut out = Out::new(true);
    let unreadable = |out: &mut Out, error: String| -> anyhow::Result<u8> {
        out.event(&AgentEvent::ExecutionFinished {
            status: assay_spec::status::ExecutionStatus::Failed,
            error: Some(error),
            at: assay_agent::ms(std::time::SystemTime::now()),
        });
        out.flush();
        Ok(exit::FAILED)
    };
    let plan: assay_spec::plan::Plan = match serde_json::from_value(work.plan.clone()) {
        Ok(p) => p,
        Err(e) => {
            return unreadable(
                &mut out,
                format!(
                    "the pod cannot read the plan (is its image's assay older than the agent?): {e}"
                ),
            );
        }
    };
    let mut opts = pod_options(&work, &state, data, outputs, "the execution");
    let out = Arc::new(std::sync::Mutex::new(out));
    let endpoint = match &channel {
        Some(Channel::Serve { token }) => {
            match pod_workers::Endpoint::start(token.clone(), plan.clone(), out.clone()).await {
                Ok(e) => Some(e),
                Err(e) => {
                    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                    return unreadable(&mut out, format!("{e:#}"));
                }
            }
        }
        _ => None,
    };
    if let Some(endpoint) = &endpoint {
        opts.runtime = Arc::new(PodServices {
            inner: opts.runtime.clone(),
            endpoint: endpoint.clone(),
        });
    }
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let engine = tokio::spawn(assay_engine::run(plan, opts, tx));
    while let Some(event) = rx.recv().await {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        out.engine_event(event);
        if rx.is_empty() {
            out.flush();
        }
    }
    out.lock().unwrap_or_else(|p| p.into_inner()).flush();
    let code = match engine.await {
        Ok(o) if o.status == assay_spec::status::ExecutionStatus::Passed => exit::SUCCESS,
        Ok(_) => exit::FAILED,
        Err(e) => {
            eprintln!("error: the engine task failed: {e}");
            exit::INTERNAL
        }
    };
    let _ = std::fs::remove_dir_all(&state);
    Ok(code)
}

/// The engine's options in a pod: no private namespaces (the pod is the boundary), its own
/// `/data` and `/testkube/outputs`, `shell` steps with `/bin/sh` when the image has no bash,
/// and SIGTERM (deleting the Job) aborting `what`, whose end is still reported.
fn pod_options(
    work: &AgentWork,
    state: &Path,
    data: PathBuf,
    outputs: PathBuf,
    what: &'static str,
) -> assay_engine::RunOptions {
    let mut opts = assay_agent::run_options(work, state);
    opts.isolation = assay_engine::Isolation::Pod;
    if !on_path("bash") {
        // Testkube runs `shell` with the image's `/bin/sh`; bash where the image has it (it
        // has the ash extensions real workflows use, as on the host), else `/bin/sh`: images
        // such as busybox and alpine have no bash.
        opts.shell = POD_SHELL.iter().map(|s| s.to_string()).collect();
    }
    opts.data_dir = Some(data);
    opts.outputs_dir = Some(outputs);
    let cancel = CancellationToken::new();
    opts.cancel = cancel.clone();
    tokio::spawn(async move {
        super::server::shutdown_signal().await;
        eprintln!("stopping: aborting {what}");
        cancel.cancel();
    });
    opts
}

/// The shell of `shell` steps in a pod whose image has no bash (busybox, alpine), as the
/// container runtime runs them.
const POD_SHELL: [&str; 3] = ["/bin/sh", "-e", "-c"];

/// Whether `program` is an executable file in a folder of this process's `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The runtime of `assay pod run` in a main pod that serves the endpoint: its service
/// instances and parallel workers run in pods of their own, which the agent makes when asked
/// ([`pod_workers::Endpoint`]); its steps run in this pod, as before.
struct PodServices {
    inner: Arc<dyn Runtime>,
    endpoint: Arc<pod_workers::Endpoint>,
}

impl Runtime for PodServices {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn open<'a>(&'a self, setup: Setup<'a>) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        Box::pin(async move {
            let inner = self.inner.open(setup).await?;
            Ok(Box::new(PodServicesScope {
                inner,
                endpoint: self.endpoint.clone(),
            }) as Box<dyn Scope>)
        })
    }
}

struct PodServicesScope {
    inner: Box<dyn Scope>,
    endpoint: Arc<pod_workers::Endpoint>,
}

impl Scope for PodServicesScope {
    fn worker<'a>(
        &'a self,
        layout: &'a Layout,
        reference: &'a str,
        index: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        self.inner.worker(layout, reference, index)
    }

    fn base_env(&self) -> BTreeMap<String, String> {
        self.inner.base_env()
    }

    fn start<'a>(
        &'a self,
        launch: Launch,
        output: Output,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        self.inner.start(launch, output)
    }

    fn probe<'a>(&'a self, launch: Launch) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.inner.probe(launch)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }

    fn remote_worker(&self, worker: RemoteWorker) -> Option<BoxFuture<'_, RemoteWorkerEnd>> {
        let endpoint = self.endpoint.clone();
        Some(Box::pin(async move { endpoint.run(worker).await }))
    }

    fn services_elsewhere(&self) -> bool {
        true
    }

    fn start_remote_service(
        &self,
        service: RemoteService,
    ) -> BoxFuture<'_, Result<Box<dyn Process>, StartError>> {
        let endpoint = self.endpoint.clone();
        let base = self.inner.base_env();
        Box::pin(async move { endpoint.service(service, &base).await })
    }
}

/// `assay pod run` in a parallel worker's pod: its `transfer`red files from the main pod
/// first, then its plan, its protocol lines to the main pod (which writes them under the
/// worker's refs), then its `fetch`ed files and its report.
async fn run_worker(
    work: AgentWork,
    data: PathBuf,
    outputs: PathBuf,
    state: PathBuf,
    client: &pod_workers::WorkerClient,
) -> anyhow::Result<u8> {
    use assay_kube::workers::WorkerReport;
    use assay_spec::status::ExecutionStatus;
    let fail = |error: String| WorkerReport {
        status: ExecutionStatus::Failed,
        error: Some(error),
    };
    let report = |r: WorkerReport| async move {
        if let Err(e) = client.report(&r).await {
            eprintln!("error: failed to report to the main pod: {e}");
            return Ok(exit::INTERNAL);
        }
        Ok(if r.status == ExecutionStatus::Passed {
            exit::SUCCESS
        } else {
            exit::FAILED
        })
    };
    let start = match client.start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::INTERNAL);
        }
    };
    if let Err(e) = pod_workers::place_files(&start.files, &data, &outputs) {
        return report(fail(format!("transfer: {e}"))).await;
    }
    let plan: assay_spec::plan::Plan = match serde_json::from_value(work.plan.clone()) {
        Ok(p) => p,
        Err(e) => return report(fail(format!("the worker pod cannot read its plan: {e}"))).await,
    };
    let opts = pod_options(&work, &state, data.clone(), outputs.clone(), "the worker");
    let mut out = Out::new(false);
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let engine = tokio::spawn(assay_engine::run(plan, opts, tx));
    while let Some(event) = rx.recv().await {
        out.engine_event(event);
        if rx.is_empty() {
            client.lines(out.take_kept()).await;
        }
    }
    client.lines(out.take_kept()).await;
    let outcome = match engine.await {
        Ok(o) => o,
        Err(e) => return report(fail(format!("the engine task failed: {e}"))).await,
    };
    let mut end = WorkerReport {
        status: outcome.status,
        error: outcome.error,
    };
    match pod_workers::fetched_files(&start.fetch, &data, &outputs) {
        Ok(files) => {
            if let Err(e) = client.fetch(files).await {
                end = fail(format!("fetch: {e}"));
            }
        }
        Err(e) => end = fail(format!("fetch: {e}")),
    }
    let _ = std::fs::remove_dir_all(&state);
    report(end).await
}

/// A service instance running in its own pod: the agent follows its log, and deletes the pod
/// when this pod says the engine stopped it (its `wait`).
pub(crate) struct RemoteServiceProcess {
    pub(crate) ip: String,
    pub(crate) log_ref: String,
    pub(crate) out: Arc<std::sync::Mutex<Out>>,
}

impl Process for RemoteServiceProcess {
    fn address(&self) -> String {
        self.ip.clone()
    }

    fn try_exit_code(&mut self) -> Option<i32> {
        None
    }

    fn ended_by_itself(&mut self) -> BoxFuture<'_, Option<(i32, Duration)>> {
        Box::pin(async { None })
    }

    fn wait(self: Box<Self>, _stop: Stop) -> BoxFuture<'static, ProcessOutcome> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.line(&podlog::encode_service_done(&self.log_ref));
        out.flush();
        Box::pin(async { ProcessOutcome::default() })
    }
}
