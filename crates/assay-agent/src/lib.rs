//! A runner agent (`assay agent`): connects out to an Assay server, claims the queued
//! executions that target it (a long poll), runs each plan with the engine on its runtime, and
//! sends back what the engine reports — events in order, artifact files before the events
//! after them — for the server to record with the same recorder its own runner uses.
//!
//! Two loops share one set of running executions: the claim loop (a new claim whenever a slot
//! is free; reconnecting with backoff when the server cannot be reached, e.g. while it
//! restarts) and the heartbeat (every [`AgentConfig::heartbeat_every`]: keeps the leases of
//! the running executions fresh, and aborts those the server asks to abort or says are lost).
//! The protocol is in `assay_api::agents`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assay_api::agents::{
    AgentEvent, AgentEvents, AgentExecute, AgentHeartbeat, AgentHello, AgentWork,
};
use assay_client::{Client, ClientError};
use assay_engine::{
    Event, LaunchError, LaunchRequest, Launched, RunOptions, Runtime, WorkerState, WorkflowLauncher,
};
use assay_spec::plan::Plan;
use assay_spec::status::ExecutionStatus;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How an agent runs.
#[derive(Clone)]
pub struct AgentConfig {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `host`, `container` or `kubernetes`: what the agent reports.
    pub runtime_name: String,
    pub runtime: Arc<dyn Runtime>,
    /// Where executions get their folders (one per execution, removed when it ends).
    pub work_dir: PathBuf,
    /// At most this many executions at once.
    pub max_concurrent: usize,
    pub heartbeat_every: Duration,
    /// How long one claim waits on the server for work.
    pub claim_wait: Duration,
    /// Runs each execution somewhere else than in this process (the Kubernetes runtime);
    /// `None`: the engine here, with [`runtime`](Self::runtime).
    pub executor: Option<Arc<dyn Executor>>,
}

/// What an [`Executor`] hands back for the server, in order.
#[derive(Debug)]
pub enum Delivery {
    Events(Vec<AgentEvent>),
    /// An artifact file, uploaded before the events after it; the agent deletes it once
    /// uploaded (the executor keeps it in the execution's folder under the agent's work dir,
    /// which the agent removes when the execution ends).
    Artifact {
        step: String,
        path: String,
        source: PathBuf,
    },
}

/// Runs a handed-out execution outside this process and reports what happens, in order, on
/// `deliveries` (ending with `ExecutionFinished`; the agent adds a failed end when it does
/// not). Cancelling `cancel` aborts the execution (the executor still reports its end).
pub trait Executor: Send + Sync {
    fn execute(
        &self,
        work: AgentWork,
        cancel: CancellationToken,
        deliveries: mpsc::Sender<Delivery>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

impl AgentConfig {
    pub fn new(name: &str, runtime: Arc<dyn Runtime>, runtime_name: &str) -> Self {
        AgentConfig {
            name: name.to_string(),
            labels: BTreeMap::new(),
            runtime_name: runtime_name.to_string(),
            runtime,
            work_dir: std::env::temp_dir().join(format!("assay-agent-{name}")),
            max_concurrent: 1,
            heartbeat_every: Duration::from_secs(2),
            claim_wait: Duration::from_secs(20),
            executor: None,
        }
    }
}

/// Why an agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The server refused the agent for good (a bad name or token, the name taken).
    #[error("register with the server: {0}")]
    Refused(ClientError),
    #[error("prepare the work folder {}: {source}", path.display())]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The work folder exists but another user could change what is in it (it is a link, not
    /// ours, or writable by others): steps would run in files they planted.
    #[error(
        "use the work folder {}: it is not this user's own ({why}), so another user could change the files executions run in",
        path.display()
    )]
    WorkDirNotOwn { path: PathBuf, why: String },
}

/// Makes the agent's work folder, or checks an existing one: a folder of ours (not a link)
/// that no one else can write in. The default is a fixed name in the system's temporary
/// directory, which any local user could have made first. Made mode 0711: a step dropped to
/// another user (as root without namespaces) can reach its own execution's folder by its path,
/// and no one can list the others.
fn own_work_dir(path: &std::path::Path) -> Result<(), AgentError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let failed = |source| AgentError::WorkDir {
        path: path.to_path_buf(),
        source,
    };
    // Made without a window in which others could write in it; then 0711 whatever the umask.
    let make = || {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711)))
    };
    match make() {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Its parents are missing: made as any folder is; the last one as above.
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(failed)?;
            }
            return make().map_err(failed);
        }
        Err(e) => return Err(failed(e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(failed)?;
    let me = nix::unistd::geteuid().as_raw();
    let why = if meta.file_type().is_symlink() {
        Some("a symbolic link".to_string())
    } else if !meta.is_dir() {
        Some("not a folder".to_string())
    } else if meta.uid() != me {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!("mode {:o}", meta.mode() & 0o7777))
    } else {
        None
    };
    match why {
        Some(why) => Err(AgentError::WorkDirNotOwn {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

/// The longest wait between two claims while the server cannot be reached: how long a restarted
/// server can wait for an agent that retried while it was down. One heartbeat interval (2 s):
/// a try costs the server one refused connection, and with 5 s a restart left agents away for
/// up to 5 s after the server was back (`scripts/bench.sh agents` measures it).
const CLAIM_BACKOFF_MAX: Duration = Duration::from_secs(2);

type Running = Arc<Mutex<HashMap<String, CancellationToken>>>;

/// Executions that wait on the children their `execute` steps queued, with how many copies
/// each waits on: they give their slot back meanwhile, so a child that needs this agent (it
/// inherits its parent's target) can run here instead of waiting for a slot its parent holds.
#[derive(Clone, Default)]
struct Waiting {
    by_execution: Arc<Mutex<HashMap<String, usize>>>,
    slot_free: Arc<Notify>,
}

impl Waiting {
    fn count(&self) -> usize {
        self.by_execution.lock().expect("not poisoned").len()
    }

    /// `id` waits on one more child until the guard is dropped.
    fn enter(&self, id: &str) -> WaitGuard {
        *self
            .by_execution
            .lock()
            .expect("not poisoned")
            .entry(id.to_string())
            .or_default() += 1;
        self.slot_free.notify_one();
        WaitGuard {
            waiting: self.clone(),
            id: id.to_string(),
        }
    }
}

struct WaitGuard {
    waiting: Waiting,
    id: String,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let mut map = self.waiting.by_execution.lock().expect("not poisoned");
        if let Some(n) = map.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.id);
            }
        }
    }
}

/// Run the agent until `shutdown` is cancelled; then abort what runs (each run still sends its
/// end) and return.
pub async fn run(
    client: Client,
    config: AgentConfig,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    own_work_dir(&config.work_dir)?;
    let session = uuid::Uuid::new_v4().simple().to_string();
    let running: Running = Arc::default();
    let waiting = Waiting::default();
    let slot_free = waiting.slot_free.clone();
    let heartbeat = tokio::spawn(heartbeats(
        client.clone(),
        config.clone(),
        session.clone(),
        running.clone(),
        shutdown.clone(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    let mut backoff = Duration::from_millis(250);
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        let busy = running
            .lock()
            .expect("not poisoned")
            .len()
            .saturating_sub(waiting.count());
        if busy >= config.max_concurrent.max(1) {
            tokio::select! {
                _ = slot_free.notified() => continue,
                _ = shutdown.cancelled() => break Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        let hello = AgentHello {
            session: session.clone(),
            labels: config.labels.clone(),
            runtime: config.runtime_name.clone(),
            host: host_name(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            wait_ms: Some(config.claim_wait.as_millis() as u64),
        };
        let claimed = tokio::select! {
            c = client.agent_claim(&config.name, &hello) => c,
            _ = shutdown.cancelled() => break Ok(()),
        };
        match claimed {
            Ok(Some(work)) => {
                backoff = Duration::from_millis(250);
                tracing::info!(execution = %work.name, "claimed");
                let cancel = CancellationToken::new();
                running
                    .lock()
                    .expect("not poisoned")
                    .insert(work.id.clone(), cancel.clone());
                let client = client.clone();
                let config = config.clone();
                let session = session.clone();
                let running = running.clone();
                let slot_free = slot_free.clone();
                let waiting = waiting.clone();
                tasks.spawn(async move {
                    let id = work.id.clone();
                    execute(&client, &config, &session, work, cancel, waiting).await;
                    running.lock().expect("not poisoned").remove(&id);
                    slot_free.notify_one();
                });
            }
            Ok(None) => backoff = Duration::from_millis(250),
            Err(ClientError::Api { body }) if matches!(body.status, 400 | 401 | 403 | 409) => {
                break Err(AgentError::Refused(ClientError::Api { body }));
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot claim work");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => break Ok(()),
                }
                backoff = (backoff * 2).min(CLAIM_BACKOFF_MAX);
            }
        }
    };
    // Stopping: abort what runs; each run sends its end.
    for token in running.lock().expect("not poisoned").values() {
        token.cancel();
    }
    while tasks.join_next().await.is_some() {}
    heartbeat.abort();
    result
}

async fn heartbeats(
    client: Client,
    config: AgentConfig,
    session: String,
    running: Running,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.heartbeat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let ids: Vec<String> = running
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        if ids.is_empty() {
            continue;
        }
        let beat = AgentHeartbeat {
            session: session.clone(),
            running: ids,
        };
        match client.agent_heartbeat(&config.name, &beat).await {
            Ok(reply) => {
                let running = running.lock().expect("not poisoned");
                for abort in reply.abort {
                    if let Some(token) = running.get(&abort.id) {
                        tracing::info!(id = %abort.id, reason = %abort.reason, "abort asked");
                        token.cancel();
                    }
                }
                for id in reply.lost {
                    if let Some(token) = running.get(&id) {
                        tracing::warn!(%id, "the server no longer counts this run as ours: stopping it");
                        token.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// This machine's name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Unix milliseconds of `t` (0 before the epoch), as the wire carries times.
pub fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sends a run's events in order, retrying while the server cannot be reached; stops the run
/// when the server says it is not ours any more.
struct Sender<'a> {
    client: &'a Client,
    config: &'a AgentConfig,
    session: &'a str,
    id: &'a str,
    cancel: &'a CancellationToken,
    /// Set once the server refused this run's writes: nothing more is sent.
    lost: bool,
}

/// How long a batch is retried while the server cannot be reached.
const SEND_RETRY_FOR: Duration = Duration::from_secs(300);

impl Sender<'_> {
    async fn retrying<T, F, Fut>(&mut self, what: &str, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        if self.lost {
            return None;
        }
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(200);
        loop {
            match op().await {
                Ok(v) => return Some(v),
                Err(ClientError::Api { body }) if body.status == 409 => {
                    tracing::warn!(id = %self.id, detail = %body.detail, "the server refused this run's {what}: stopping it");
                    self.lost = true;
                    self.cancel.cancel();
                    return None;
                }
                Err(e) if started.elapsed() < SEND_RETRY_FOR => {
                    tracing::warn!(id = %self.id, error = %e, "failed to send {what}; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::warn!(id = %self.id, error = %e, "gave up sending {what}");
                    self.lost = true;
                    self.cancel.cancel();
                    return None;
                }
            }
        }
    }

    async fn events(&mut self, events: Vec<AgentEvent>) {
        if events.is_empty() {
            return;
        }
        let batch = AgentEvents {
            session: self.session.to_string(),
            events,
        };
        let (client, name, id) = (self.client, &self.config.name, self.id);
        let batch = &batch;
        if let Some(ack) = self
            .retrying("events", || client.agent_events(name, id, batch))
            .await
        {
            for p in ack.problems {
                tracing::warn!(%id, problem = %p, "the server could not record everything");
            }
        }
    }

    async fn artifact(&mut self, step: &str, path: &str, source: &std::path::Path) {
        let (client, name, id, session) = (self.client, &self.config.name, self.id, self.session);
        self.retrying("an artifact", || async move {
            let file = tokio::fs::File::open(source)
                .await
                .map_err(|e| ClientError::Protocol {
                    url: source.display().to_string(),
                    reason: e.to_string(),
                })?;
            client
                .agent_artifact(name, id, session, step, path, file)
                .await
        })
        .await;
    }
}

/// Run one handed-out execution and send everything back.
async fn execute(
    client: &Client,
    config: &AgentConfig,
    session: &str,
    work: AgentWork,
    cancel: CancellationToken,
    waiting: Waiting,
) {
    let id = work.id.clone();
    let mut sender = Sender {
        client,
        config,
        session,
        id: &id,
        cancel: &cancel,
        lost: false,
    };
    if let Some(executor) = config.executor.clone() {
        let (tx, mut rx) = mpsc::channel::<Delivery>(64);
        let name = work.name.clone();
        let run = tokio::spawn(executor.execute(work, cancel.clone(), tx));
        let mut finished = false;
        while let Some(delivery) = rx.recv().await {
            match delivery {
                Delivery::Events(events) => {
                    finished |= events
                        .iter()
                        .any(|e| matches!(e, AgentEvent::ExecutionFinished { .. }));
                    sender.events(events).await;
                }
                Delivery::Artifact { step, path, source } => {
                    sender.artifact(&step, &path, &source).await;
                    let _ = tokio::fs::remove_file(&source).await;
                }
            }
        }
        let outcome = run.await;
        if !finished {
            let error = match outcome {
                Ok(()) => format!(
                    "the {} runtime ended without a verdict",
                    config.runtime_name
                ),
                Err(e) => format!("the {} runtime failed: {e}", config.runtime_name),
            };
            sender
                .events(vec![AgentEvent::ExecutionFinished {
                    status: ExecutionStatus::Failed,
                    error: Some(error),
                    at: ms(SystemTime::now()),
                }])
                .await;
        }
        let _ = tokio::fs::remove_dir_all(config.work_dir.join(&id)).await;
        tracing::info!(execution = %name, "done");
        return;
    }
    let plan: Plan = match serde_json::from_value(work.plan.clone()) {
        Ok(p) => p,
        Err(e) => {
            sender
                .events(vec![AgentEvent::ExecutionFinished {
                    status: ExecutionStatus::Failed,
                    error: Some(format!(
                        "agent `{}` cannot read the plan (is it older than the server?): {e}",
                        config.name
                    )),
                    at: ms(SystemTime::now()),
                }])
                .await;
            return;
        }
    };
    let work_dir = config.work_dir.join(&work.id);
    let mut opts = run_options(&work, &work_dir);
    opts.cancel = cancel.clone();
    // Steps must not see other executions' folders.
    opts.hidden = vec![config.work_dir.clone()];
    opts.runtime = config.runtime.clone();
    // `execute` steps: the server queues the children (they run where it sends them).
    opts.launcher = Some(Arc::new(AgentLauncher {
        client: client.clone(),
        agent: config.name.clone(),
        session: session.to_string(),
        parent: work.id.clone(),
        waiting,
    }));
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let engine = tokio::spawn(assay_engine::run(plan, opts, tx));
    let mut pending: Vec<AgentEvent> = Vec::new();
    let mut finished = false;
    while let Some(event) = rx.recv().await {
        let mut next = Some(event);
        // Everything already waiting goes in one batch.
        while let Some(event) = next.take() {
            match event {
                Event::Artifact {
                    reference,
                    path,
                    source,
                    ..
                } => {
                    // The events before it first, then the file.
                    sender.events(std::mem::take(&mut pending)).await;
                    sender.artifact(&reference, &path, &source).await;
                }
                other => {
                    if let Some(wire) = to_wire(&other) {
                        finished |= matches!(wire, AgentEvent::ExecutionFinished { .. });
                        pending.push(wire);
                    }
                }
            }
            if pending.len() >= 500 {
                break;
            }
            next = rx.try_recv().ok();
        }
        sender.events(std::mem::take(&mut pending)).await;
    }
    let outcome = engine.await;
    if !finished {
        // The engine always ends with ExecutionFinished; if its task failed, say so.
        let error = match outcome {
            Ok(o) => o.error,
            Err(e) => Some(format!(
                "the engine task failed on agent `{}`: {e}",
                config.name
            )),
        };
        sender
            .events(vec![AgentEvent::ExecutionFinished {
                status: ExecutionStatus::Failed,
                error,
                at: ms(SystemTime::now()),
            }])
            .await;
    }
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    tracing::info!(execution = %work.name, "done");
}

/// Starts the children of a run's `execute` steps through the server
/// (`…/executions/{id}/execute`): the server queues each copy once, where the parent's target
/// (or the child workflow's own) sends it, and this waits for its end with long polls.
struct AgentLauncher {
    client: Client,
    agent: String,
    session: String,
    parent: String,
    waiting: Waiting,
}

impl WorkflowLauncher for AgentLauncher {
    fn launch(
        &self,
        request: LaunchRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Launched, LaunchError>> + Send + '_>,
    > {
        Box::pin(self.launch_one(request))
    }
}

impl AgentLauncher {
    async fn launch_one(&self, request: LaunchRequest) -> Result<Launched, LaunchError> {
        let name = request.workflow.name.clone();
        if name.is_empty() {
            return Err(
                "execute by label selector is not supported on an agent: name the workflow"
                    .to_string()
                    .into(),
            );
        }
        let _waiting = self.waiting.enter(&self.parent);
        let body = AgentExecute {
            session: self.session.clone(),
            step: request.reference.clone(),
            workflow: name.clone(),
            index: request.index,
            config: request.workflow.config.clone().into_iter().collect(),
            wait_ms: Some(20_000),
        };
        let mut execution: Option<String> = None;
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(200);
        loop {
            match self
                .client
                .agent_execute(&self.agent, &self.parent, &body)
                .await
            {
                Ok(child) => {
                    execution = Some(child.name.clone());
                    backoff = Duration::from_millis(200);
                    if child.status.is_terminal() {
                        return Ok(Launched {
                            name: child.name,
                            status: child.status,
                        });
                    }
                }
                Err(ClientError::Api { body }) if body.status < 500 => {
                    return Err(LaunchError {
                        execution,
                        message: body.detail,
                    });
                }
                Err(e) if started.elapsed() < SEND_RETRY_FOR || execution.is_some() => {
                    // A child once queued is waited for as long as the parent runs (the
                    // server's restart ends the parent anyway).
                    tracing::warn!(parent = %self.parent, workflow = %name, error = %e, "cannot reach the server for a child; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(LaunchError {
                        execution,
                        message: format!("failed to ask the server to start `{name}`: {e}"),
                    });
                }
            }
        }
    }
}

/// The engine's options for a handed-out execution run in `work_dir`: its secrets, masked
/// values, context, environment and quarantined tests (the caller adds the runtime, the
/// cancellation and what to hide).
pub fn run_options(work: &AgentWork, work_dir: &std::path::Path) -> RunOptions {
    let mut opts = RunOptions::new(work_dir);
    opts.secrets = work.secrets.clone();
    opts.masked = work.masked.clone();
    opts.named_secrets = work.named_secrets.clone();
    opts.context = work.context.clone();
    let mut env = assay_engine::starting_env(&BTreeMap::new());
    env.extend(work.env.clone());
    opts.base_env = env;
    opts.quarantined = work.quarantined.iter().cloned().collect();
    opts
}

/// An engine event for the wire (`None`: nothing the server records; artifacts are uploaded).
pub fn to_wire(event: &Event) -> Option<AgentEvent> {
    Some(match event {
        Event::StepStarted {
            reference,
            name,
            at,
        } => AgentEvent::StepStarted {
            reference: reference.clone(),
            name: name.clone(),
            at: ms(*at),
        },
        Event::StepFinished { reference, result } => AgentEvent::StepFinished {
            reference: reference.clone(),
            status: result.status,
            exit_code: result.exit_code,
            started_at: result.started_at.map(ms),
            finished_at: ms(result.finished_at),
            error: result.error.clone(),
            peak_rss_bytes: result.peak_rss_bytes,
            cpu_time_ms: result.cpu_time.map(|d| d.as_millis() as u64),
            attempts: result.attempts,
            quarantined_failures: result.quarantined_failures.clone(),
        },
        Event::Log(chunk) => AgentEvent::Log {
            reference: chunk.reference.clone(),
            at: ms(chunk.at),
            text: chunk.text.clone(),
        },
        Event::Output {
            reference,
            key,
            value,
        } => AgentEvent::Output {
            reference: reference.clone(),
            key: key.clone(),
            value: value.clone(),
        },
        Event::Warning { reference, message } => AgentEvent::Warning {
            reference: reference.clone(),
            message: message.clone(),
        },
        Event::Worker {
            reference,
            index,
            count,
            state: WorkerState::Queued,
        } => AgentEvent::Worker {
            reference: reference.clone(),
            index: *index,
            count: *count,
        },
        Event::ExecutionFinished { status, error, at } => AgentEvent::ExecutionFinished {
            status: *status,
            error: error.clone(),
            at: ms(*at),
        },
        Event::Worker { .. } | Event::Service { .. } | Event::Artifact { .. } => return None,
    })
}
