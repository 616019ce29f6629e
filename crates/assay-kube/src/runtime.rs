//! The Kubernetes runtime of an agent (`assay agent --runtime kubernetes`): each handed-out
//! execution becomes a Job and its Secret ([`crate::job`]); the agent waits for the Job's pod,
//! follows the main container's log, decodes the line protocol of `assay pod run`
//! ([`crate::podlog`]) and hands events and artifacts to the agent, which sends them to the
//! server as for any agent run. When the main pod asks (a line of that protocol), it makes a
//! service instance's Job ([`crate::services`]: it waits for the pod's IP, or its `Ready`
//! condition with an `exec` probe, POSTs the address or the reason to the main pod's
//! endpoint, follows the pod's log into the instance's log, and deletes the Job when the main
//! pod says the instance stopped) or a parallel worker's ([`crate::workers`]).
//!
//! What can go wrong on the way: a pod stuck `Pending` (image pull errors, unschedulable, a
//! bad container config), or none made for the Job at all, for longer than
//! [`KubeExecutor::pending_limit`] fails the execution
//! with the reason; a pod that fails or is evicted before the execution's end fails it with
//! the reason; an abort (asked by the server, or the agent stopping) deletes the Job (and with
//! it the pod and the Secret) and reports the execution aborted. At start, [`sweep`] deletes
//! what an earlier process of the same agent left.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use assay_agent::{Delivery, Executor};
use assay_api::agents::{AgentEvent, AgentWork};
use assay_spec::status::ExecutionStatus;
use futures::{AsyncBufRead, AsyncBufReadExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Connection;
use crate::job::{self, JobSettings};
use crate::podlog::{self, PodLine};

/// Waiting reasons of a container that mean the pod will not start by itself soon.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];
/// A line of the pod log longer than this is not the protocol's (cut, and skipped).
const MAX_LINE: usize = 1024 * 1024;
/// Lines of the pod log that are not the protocol's, kept for a failure's message.
const KEPT_LINES: usize = 20;

/// Runs executions as Jobs in one namespace.
#[derive(Clone)]
pub struct KubeExecutor {
    pub connection: Connection,
    pub settings: JobSettings,
    /// How long a pod may stay stuck (image pull errors, unschedulable, …) before the
    /// execution fails with the reason.
    pub pending_limit: Duration,
    /// How often the pod's state is read while waiting for it.
    pub poll_every: Duration,
    /// Where artifacts are put together from their chunks (the agent's work dir: one folder
    /// per execution, named by its id, which the agent removes).
    pub work_dir: PathBuf,
}

impl KubeExecutor {
    pub fn new(connection: Connection, agent: &str, image: &str, work_dir: PathBuf) -> Self {
        KubeExecutor {
            settings: JobSettings {
                namespace: connection.namespace.clone(),
                agent: agent.to_string(),
                image: image.to_string(),
                ttl_seconds: 3600,
            },
            connection,
            pending_limit: Duration::from_secs(120),
            poll_every: Duration::from_secs(1),
            work_dir,
        }
    }
}

impl Executor for KubeExecutor {
    fn execute(
        &self,
        work: AgentWork,
        cancel: CancellationToken,
        deliveries: mpsc::Sender<Delivery>,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move {
            // The agent's folder for this execution (it removes it when the execution ends).
            let folder = this.work_dir.join(&work.id);
            let run = Run {
                exec: &this,
                work: &work,
                deliveries: &deliveries,
                folder,
                services: Default::default(),
                token: crate::workers::new_token(),
                main_ip: std::sync::Mutex::new(None),
                followers: tokio::sync::Mutex::new(Vec::new()),
                stop_followers: CancellationToken::new(),
            };
            let end = run.go(&cancel).await;
            // However it ended, no service pod outlives the execution.
            run.end_services().await;
            if let Some((status, error)) = end {
                let _ = deliveries
                    .send(Delivery::Events(vec![AgentEvent::ExecutionFinished {
                        status,
                        error,
                        at: assay_agent::ms(SystemTime::now()),
                    }]))
                    .await;
            }
        })
    }
}

/// One execution on its way through the cluster.
struct Run<'a> {
    exec: &'a KubeExecutor,
    work: &'a AgentWork,
    deliveries: &'a mpsc::Sender<Delivery>,
    folder: PathBuf,
    /// The service instances' and workers' Jobs made so far: (log reference, or `worker:KEY`;
    /// Job name).
    services: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// The bearer token of the main pod's worker endpoint.
    token: String,
    /// The main pod's IP address (where worker pods reach its endpoint).
    main_ip: std::sync::Mutex<Option<String>>,
    /// The tasks following the service pods' logs, and what stops them.
    followers: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stop_followers: CancellationToken,
}

/// How the pod stands.
enum PodState {
    /// No pod yet, or waiting without a problem.
    Waiting,
    /// Stuck for this reason (it may still resolve).
    Stuck(String),
    /// The main container started (or ended): its log can be read.
    Started,
    /// It ended without running the main container.
    Failed(String),
}

/// How waiting for a pod ended, when not with its start.
enum NotStarted {
    Failed(String),
    Cancelled,
}

impl Run<'_> {
    /// Runs the execution; `Some` is the end to report when the pod did not report one.
    async fn go(&self, cancel: &CancellationToken) -> Option<(ExecutionStatus, Option<String>)> {
        let failed = |e: String| Some((ExecutionStatus::Failed, Some(e)));
        let main = match job::execution_objects(self.work, &self.exec.settings) {
            Ok(o) => o,
            Err(e) => return failed(e.to_string()),
        };
        let client = self.exec.connection.client.clone();
        let ns = &self.exec.settings.namespace;
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let name = main.role.object_name(&self.work.id);

        let channel = matches!(
            main.role,
            job::Role::Execution { workers: true, .. }
                | job::Role::Execution { services: true, .. }
        )
        .then(|| crate::workers::Channel::Serve {
            token: self.token.clone(),
        });
        if let Err(e) = self.create(&jobs, &main, channel.as_ref()).await {
            return failed(e);
        }
        tracing::info!(job = %name, namespace = %ns, "created the execution's Job");

        // Wait for the main container to start.
        let selector = self.selector(&main.role);
        let pod_name = match self
            .wait_started(&pods, &selector, &name, false, cancel)
            .await
        {
            Ok(pod) => {
                *self.main_ip.lock().unwrap_or_else(|p| p.into_inner()) =
                    pod.status.as_ref().and_then(|s| s.pod_ip.clone());
                pod.metadata.name.unwrap_or_default()
            }
            Err(NotStarted::Cancelled) => return self.abort(&jobs, &name).await,
            Err(NotStarted::Failed(why)) => {
                self.delete_job(&jobs, &name).await;
                return failed(why);
            }
        };

        // Follow its log. A stream that ends before the execution's end (the connection to
        // the API server broke, or the container ended) is opened again from the start, and
        // the lines already read are skipped by their time; twice nothing new means it ended.
        let params = following_the_main_container();
        let mut read = Reading::default();
        let mut stalls = 0;
        while stalls < 2 {
            let stream = tokio::select! {
                s = pods.log_stream(&pod_name, &params) => s,
                _ = cancel.cancelled() => return self.abort(&jobs, &name).await,
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) if read.position.accepted == 0 => {
                    self.delete_job(&jobs, &name).await;
                    return failed(format!("read the log of pod {pod_name}: {e}"));
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_name, error = %e, "failed to read the pod's log again");
                    stalls += 1;
                    continue;
                }
            };
            let before = read.position.accepted;
            read.position.restart();
            let finished = tokio::select! {
                f = self.follow(stream, &mut read, &jobs) => f,
                _ = cancel.cancelled() => return self.abort(&jobs, &name).await,
            };
            if finished {
                return None;
            }
            stalls = if read.position.accepted > before {
                0
            } else {
                stalls + 1
            };
            tokio::select! {
                _ = tokio::time::sleep(self.exec.poll_every) => {}
                _ = cancel.cancelled() => return self.abort(&jobs, &name).await,
            }
        }
        let kept = read.kept;
        // The log ended without the execution's end: why?
        let why = match pods.get(&pod_name).await {
            Ok(pod) => pod_failure(&pod).unwrap_or_else(|| "its log ended early".to_string()),
            Err(e) => format!("it is gone ({e})"),
        };
        self.delete_job(&jobs, &name).await;
        let tail: Vec<String> = kept.into_iter().collect();
        failed(format!(
            "the pod {pod_name} stopped before the execution ended: {why}{}",
            if tail.is_empty() {
                String::new()
            } else {
                format!("; its last lines: {}", tail.join(" | "))
            }
        ))
    }

    /// Creates a Job and its Secret (owned by the Job); on failure, nothing stays.
    async fn create(
        &self,
        jobs: &Api<Job>,
        objects: &job::PodObjects,
        channel: Option<&crate::workers::Channel>,
    ) -> Result<(), String> {
        let ns = &self.exec.settings.namespace;
        let secrets: Api<Secret> = Api::namespaced(jobs.clone().into_client(), ns);
        let name = objects.role.object_name(&self.work.id);
        let created = jobs
            .create(&PostParams::default(), &objects.job)
            .await
            .map_err(|e| {
                format!(
                    "create the Job {name} in namespace {ns}: {e} (hint: the agent's ServiceAccount needs the Role of deploy/kubernetes-runtime)"
                )
            })?;
        let uid = created.metadata.uid.unwrap_or_default();
        let secret = match objects.secret(&self.exec.settings, &uid, channel) {
            Ok(s) => s,
            Err(e) => {
                self.delete_job(jobs, &name).await;
                return Err(e.to_string());
            }
        };
        if let Err(e) = secrets.create(&PostParams::default(), &secret).await {
            self.delete_job(jobs, &name).await;
            return Err(format!("create the Secret {name} in namespace {ns}: {e}"));
        }
        Ok(())
    }

    /// The selector of the pod of one of the execution's Jobs.
    fn selector(&self, role: &job::Role) -> String {
        role.labels(self.work, &self.exec.settings)
            .into_iter()
            .filter(|(k, _)| k != crate::labels::AGENT && k != crate::labels::MANAGED_BY)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until the pod of Job `name` runs its main container (and has an address when
    /// `need_ip`), or is
    /// stuck longer than the pending limit, or fails.
    async fn wait_started(
        &self,
        pods: &Api<Pod>,
        selector: &str,
        name: &str,
        need_ip: bool,
        cancel: &CancellationToken,
    ) -> Result<Pod, NotStarted> {
        let mut stuck_since: Option<tokio::time::Instant> = None;
        loop {
            let (state, pod) = tokio::select! {
                s = self.pod_state(pods, selector) => s,
                _ = cancel.cancelled() => return Err(NotStarted::Cancelled),
            };
            match (state, pod) {
                (PodState::Started, Some(pod))
                    if !need_ip || pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some()) =>
                {
                    return Ok(pod);
                }
                (PodState::Started, _) | (PodState::Waiting, _) => stuck_since = None,
                (PodState::Failed(why), _) => {
                    return Err(NotStarted::Failed(format!(
                        "the pod of Job {name} failed: {why}"
                    )));
                }
                (PodState::Stuck(why), _) => {
                    let since = *stuck_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.exec.pending_limit {
                        return Err(NotStarted::Failed(format!(
                            "the pod of Job {name} did not start within {}s: {why}",
                            self.exec.pending_limit.as_secs()
                        )));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.exec.poll_every) => {}
                _ = cancel.cancelled() => return Err(NotStarted::Cancelled),
            }
        }
    }

    /// Stops following the service pods' logs (before the execution's end is sent, so that
    /// no service line comes after it).
    async fn stop_following_services(&self) {
        self.stop_followers.cancel();
        for f in self.followers.lock().await.drain(..) {
            let _ = f.await;
        }
    }

    /// Deletes every service instance's Job still there.
    async fn end_services(&self) {
        self.stop_following_services().await;
        let jobs: Api<Job> = Api::namespaced(
            self.exec.connection.client.clone(),
            &self.exec.settings.namespace,
        );
        let names: Vec<String> = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .map(|(_, n)| n)
            .collect();
        for name in names {
            self.delete_job(&jobs, &name).await;
        }
    }

    /// The main pod stopped the service instance `log_ref`: its Job goes.
    async fn service_done(&self, jobs: &Api<Job>, log_ref: &str) {
        let name = {
            let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
            let at = services.iter().position(|(r, _)| r == log_ref);
            at.map(|i| services.remove(i).1)
        };
        if let Some(name) = name {
            self.delete_job(jobs, &name).await;
        }
    }

    /// Deletes the Job (Background propagation: the pod and the Secret go with it) and says
    /// the execution was aborted.
    async fn abort(
        &self,
        jobs: &Api<Job>,
        name: &str,
    ) -> Option<(ExecutionStatus, Option<String>)> {
        self.delete_job(jobs, name).await;
        Some((
            ExecutionStatus::Aborted,
            Some(format!(
                "the execution was aborted; its Job {name} was deleted"
            )),
        ))
    }

    async fn delete_job(&self, jobs: &Api<Job>, name: &str) {
        match jobs.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(job = %name, error = %e, "failed to delete the Job"),
        }
    }

    /// How the pod that `selector` names stands, and the pod.
    async fn pod_state(&self, pods: &Api<Pod>, selector: &str) -> (PodState, Option<Pod>) {
        let list = match pods.list(&ListParams::default().labels(selector)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "failed to list the execution's pods");
                return (PodState::Waiting, None);
            }
        };
        let Some(pod) = list
            .items
            .into_iter()
            .find(|p| has_labels(&p.metadata, selector))
        else {
            // Not made yet, or never: the Job controller records why it could not make one
            // only as an event (a ResourceQuota, a LimitRange, an admission webhook), which
            // this runtime may not read. Counted as stuck, so the wait ends.
            return (
                PodState::Stuck(
                    "no pod was created for it (a ResourceQuota, a LimitRange or an admission \
                     webhook may refuse it: `kubectl describe job` says why)"
                        .into(),
                ),
                None,
            );
        };
        (classify(&pod), Some(pod))
    }

    /// Reads one stream of the log (lines with their times) to its end, skipping the lines an
    /// earlier stream gave; whether the execution's end came.
    async fn follow(
        &self,
        stream: impl AsyncBufRead + Unpin,
        read: &mut Reading,
        jobs: &Api<Job>,
    ) -> bool {
        let mut reader = BoundedLines::new(stream);
        let Reading {
            assembling,
            files,
            kept,
            position,
        } = read;
        let mut pending: Vec<AgentEvent> = Vec::new();
        let mut finished = false;
        while let Some(line) = reader.next_line().await {
            let line = match line {
                Ok(l) => {
                    let (time, text) = l.split_once(' ').unwrap_or(("", l.as_str()));
                    if !position.is_new(time) {
                        continue;
                    }
                    Ok(text.to_string())
                }
                Err(too_long) => Err(too_long),
            };
            let decoded = match line {
                Ok(l) => podlog::decode(&l).map(|d| (d, l)),
                Err(too_long) => Err(podlog::LineError::from(too_long)),
            };
            match decoded {
                Ok((Some(PodLine::Event(e)), _)) => {
                    if matches!(e, AgentEvent::ExecutionFinished { .. }) {
                        // The services' lines and pods end before the execution's end is told.
                        finished = true;
                        self.end_services().await;
                    }
                    pending.push(e);
                    if pending.len() >= 200 || reader.is_idle() {
                        self.send(Delivery::Events(std::mem::take(&mut pending)))
                            .await;
                    }
                }
                Ok((Some(PodLine::Chunk(c)), _)) => {
                    // Events before an artifact go first.
                    if !pending.is_empty() {
                        self.send(Delivery::Events(std::mem::take(&mut pending)))
                            .await;
                    }
                    match self.chunk(assembling, c, files).await {
                        Ok(Some(done)) => self.send(done).await,
                        Ok(None) => {}
                        Err(e) => pending.push(AgentEvent::Warning {
                            reference: String::new(),
                            message: e,
                        }),
                    }
                }
                Ok((Some(PodLine::Service(request)), _)) => self.service(request).await,
                Ok((Some(PodLine::ServiceDone(log_ref)), _)) => {
                    self.service_done(jobs, &log_ref).await;
                }
                Ok((Some(PodLine::Worker(request)), _)) => self.worker(request).await,
                Ok((Some(PodLine::WorkerDone(key)), _)) => {
                    self.service_done(jobs, &worker_ref(key)).await;
                }
                Ok((None, text)) => {
                    tracing::debug!(line = %text, "pod log");
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(text.chars().take(500).collect());
                }
                Err(e) => pending.push(AgentEvent::Warning {
                    reference: String::new(),
                    message: e.to_string(),
                }),
            }
        }
        if !pending.is_empty() {
            self.send(Delivery::Events(pending)).await;
        }
        finished
    }

    /// Adds a chunk to the artifact being put together; the finished file's delivery.
    async fn chunk(
        &self,
        assembling: &mut Option<(podlog::ArtifactChunk, tokio::fs::File, PathBuf)>,
        chunk: podlog::ArtifactChunk,
        files: &mut u64,
    ) -> Result<Option<Delivery>, String> {
        use tokio::io::AsyncWriteExt;
        let bytes = chunk.bytes().map_err(|e| e.to_string())?;
        let same = assembling
            .as_ref()
            .is_some_and(|(first, _, _)| first.step == chunk.step && first.path == chunk.path);
        if !same {
            if chunk.offset != 0 {
                *assembling = None;
                return Err(format!(
                    "artifact {} arrived without its beginning: not recorded",
                    chunk.path
                ));
            }
            tokio::fs::create_dir_all(&self.folder)
                .await
                .map_err(|e| format!("artifact {}: {e}", chunk.path))?;
            *files += 1;
            let file = self.folder.join(format!("artifact-{files}"));
            let handle = tokio::fs::File::create(&file)
                .await
                .map_err(|e| format!("artifact {}: {e}", chunk.path))?;
            *assembling = Some((chunk.clone(), handle, file));
        }
        let Some((first, handle, file)) = assembling.as_mut() else {
            return Ok(None);
        };
        let written = handle
            .metadata()
            .await
            .map(|m| m.len())
            .map_err(|e| e.to_string())?;
        if written != chunk.offset {
            *assembling = None;
            return Err(format!(
                "artifact {} has a gap at byte {written}: not recorded",
                chunk.path
            ));
        }
        handle
            .write_all(&bytes)
            .await
            .map_err(|e| format!("artifact {}: {e}", chunk.path))?;
        if !chunk.last {
            return Ok(None);
        }
        handle.flush().await.map_err(|e| e.to_string())?;
        let delivery = Delivery::Artifact {
            step: first.step.clone(),
            path: first.path.clone(),
            source: file.clone(),
        };
        *assembling = None;
        Ok(Some(delivery))
    }

    /// The main pod asked for a service instance's pod: made (and watched, and its log
    /// followed) in a task of its own, so the main pod's log is read on meanwhile.
    async fn service(&self, request: crate::services::ServiceRequest) {
        let task = self.task();
        let handle = tokio::spawn(task.run_service(request));
        self.followers.lock().await.push(handle);
    }

    /// What a task making a pod for the main pod needs.
    fn task(&self) -> PodTask {
        let ip = self
            .main_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        PodTask {
            exec: self.exec.clone(),
            work: self.work.clone(),
            deliveries: self.deliveries.clone(),
            folder: self.folder.clone(),
            services: self.services.clone(),
            token: self.token.clone(),
            main_ip: ip,
            stop: self.stop_followers.child_token(),
        }
    }

    /// The main pod asked for a worker's pod: made (and watched) in a task of its own, so the
    /// main pod's log is read on meanwhile.
    async fn worker(&self, request: crate::workers::WorkerRequest) {
        let task = self.task();
        let handle = tokio::spawn(task.run(request));
        self.followers.lock().await.push(handle);
    }

    async fn send(&self, delivery: Delivery) {
        // The agent gone: nothing to tell anyone.
        let _ = self.deliveries.send(delivery).await;
    }
}

/// The key of a worker's Job among the execution's service Jobs.
fn worker_ref(key: u64) -> String {
    format!("worker:{key}")
}

/// Making and watching one worker's or service instance's pod (owned: it runs as a task of
/// its own).
struct PodTask {
    exec: KubeExecutor,
    work: AgentWork,
    deliveries: mpsc::Sender<Delivery>,
    folder: PathBuf,
    services: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    token: String,
    main_ip: Option<String>,
    stop: CancellationToken,
}

impl PodTask {
    /// The main pod's endpoint, or `None` when its pod has no IP address.
    fn main_url(&self, port: u16) -> Option<String> {
        let ip = self.main_ip.clone()?;
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        Some(format!("http://{host}:{port}"))
    }

    /// The execution's view for this task's calls (its own followers: none).
    fn run_view(&self) -> Run<'_> {
        Run {
            exec: &self.exec,
            work: &self.work,
            deliveries: &self.deliveries,
            folder: self.folder.clone(),
            services: self.services.clone(),
            token: self.token.clone(),
            main_ip: std::sync::Mutex::new(None),
            followers: tokio::sync::Mutex::new(Vec::new()),
            stop_followers: CancellationToken::new(),
        }
    }

    /// Makes a service instance's Job, waits for its pod to run with an address (and to be
    /// `Ready` with an `exec` probe) within the service's `timeout`, tells the main pod's
    /// endpoint the address or why there is none, then follows the pod's log into the
    /// instance's log until the pod goes or the execution ends.
    async fn run_service(self, request: crate::services::ServiceRequest) {
        let what = format!("service {} ({})", request.name, request.index);
        let Some(url) = self.main_url(request.port) else {
            tracing::warn!("{what}: the main pod has no IP address; it cannot be told");
            return;
        };
        let run = self.run_view();
        let http = reqwest::Client::new();
        let started = if !request.is_consistent() {
            Some(Err(format!(
                "the main pod asked for it with the log reference {:?}, which is not its own",
                request.log_ref
            )))
        } else {
            match self.service_pod(&http, &url, request.key).await {
                Ok(pod) => self.start_service(&run, &request, &pod).await,
                Err(e) => Some(Err(e)),
            }
        };
        let Some(started) = started else { return };
        let address = match &started {
            Ok((ip, _)) => crate::services::ServiceAddress {
                ip: Some(ip.clone()),
                error: None,
            },
            Err(why) => {
                tracing::warn!("{what}: {why}");
                crate::services::ServiceAddress {
                    ip: None,
                    error: Some(why.clone()),
                }
            }
        };
        let sent = http
            .post(format!(
                "{url}{}",
                crate::services::path(request.key, "address")
            ))
            .bearer_auth(&self.token)
            .json(&address)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!("{what}: failed to tell the main pod: {e}");
        }
        if let Ok((_, pod_name)) = started {
            let pods: Api<Pod> = Api::namespaced(
                self.exec.connection.client.clone(),
                &self.exec.settings.namespace,
            );
            follow_service(
                pods,
                pod_name,
                request.log_ref.clone(),
                self.deliveries.clone(),
                self.stop.clone(),
            )
            .await;
        }
    }

    /// What the main pod's endpoint says service instance `key` is (its plan, rendered there:
    /// it may hold sensitive values, so it never crosses the pod log).
    async fn service_pod(
        &self,
        http: &reqwest::Client,
        url: &str,
        key: u64,
    ) -> Result<crate::services::ServicePod, String> {
        let asked = http
            .get(format!("{url}{}", crate::services::path(key, "pod")))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("failed to ask the main pod for its plan: {e}"))?;
        if !asked.status().is_success() {
            return Err(format!(
                "the main pod answered {} when asked for its plan",
                asked.status()
            ));
        }
        let body = asked
            .bytes()
            .await
            .map_err(|e| format!("failed to read its plan from the main pod: {e}"))?;
        if body.len() > crate::services::POD_LIMIT {
            return Err(format!("its plan takes {} bytes: refused", body.len()));
        }
        serde_json::from_slice(&body).map_err(|e| format!("its plan from the main pod: {e}"))
    }

    /// The service pod's IP and name once it runs (and is `Ready`, with an `exec` probe), or
    /// why it does not (its Job deleted then); `None`: the execution is ending.
    async fn start_service(
        &self,
        run: &Run<'_>,
        request: &crate::services::ServiceRequest,
        pod: &crate::services::ServicePod,
    ) -> Option<Result<(String, String), String>> {
        let objects = match job::service_objects(&self.work, &self.exec.settings, request, pod) {
            Ok(o) => o,
            Err(e) => return Some(Err(e.to_string())),
        };
        let name = objects.role.object_name(&self.work.id);
        // Known before it exists, so that the execution's end deletes it whatever happens.
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((request.log_ref.clone(), name.clone()));
        let ns = &self.exec.settings.namespace;
        let jobs: Api<Job> = Api::namespaced(self.exec.connection.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(self.exec.connection.client.clone(), ns);
        if let Err(e) = run.create(&jobs, &objects, None).await {
            return Some(Err(e));
        }
        tracing::info!(job = %name, "created the Job of service {} ({})", request.name, request.index);
        let selector = run.selector(&objects.role);
        let wait_ready = pod.readiness.as_ref().is_some_and(|p| p.exec.is_some());
        let waiting = async {
            let pod = run
                .wait_started(&pods, &selector, &name, true, &self.stop)
                .await?;
            if !wait_ready {
                return Ok(pod);
            }
            // The kubelet runs the `exec` probe in the service's container: its pod's
            // `Ready` condition says when it passed.
            let params = ListParams::default().labels(&selector);
            loop {
                let list = tokio::select! {
                    l = pods.list(&params) => l,
                    _ = self.stop.cancelled() => return Err(NotStarted::Cancelled),
                };
                if let Ok(list) = list {
                    let Some(pod) = list
                        .items
                        .into_iter()
                        .find(|p| has_labels(&p.metadata, &selector))
                    else {
                        return Err(NotStarted::Cancelled);
                    };
                    if is_ready(&pod) {
                        return Ok(pod);
                    }
                    if let Some(why) = pod_failure(&pod) {
                        return Err(NotStarted::Failed(format!(
                            "the pod of Job {name} ended before it was ready: {why}"
                        )));
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.exec.poll_every) => {}
                    _ = self.stop.cancelled() => return Err(NotStarted::Cancelled),
                }
            }
        };
        let started = match pod.timeout_ms.map(Duration::from_millis) {
            Some(limit) => tokio::time::timeout(limit, waiting)
                .await
                .unwrap_or_else(|_| {
                    Err(NotStarted::Failed(format!(
                        "the pod of Job {name} was not {} within the service's timeout ({}s)",
                        if wait_ready { "ready" } else { "running" },
                        limit.as_secs()
                    )))
                }),
            None => waiting.await,
        };
        match started {
            Ok(pod) => {
                let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                match ip {
                    Some(ip) => Some(Ok((ip, pod_name))),
                    None => Some(Err(format!("the pod of Job {name} has no IP address"))),
                }
            }
            Err(NotStarted::Cancelled) => None,
            Err(NotStarted::Failed(why)) => {
                run.delete_job(&jobs, &name).await;
                Some(Err(why))
            }
        }
    }

    /// Makes the worker's Job and waits for its pod to start; when it cannot (or it ends
    /// without a report: killed, evicted), tells the main pod's endpoint why, so the
    /// waiting worker fails with the reason instead of hanging.
    async fn run(self, request: crate::workers::WorkerRequest) {
        let key = request.key;
        let what = format!("worker {} of {}", request.index, request.reference);
        let Some(url) = self.main_url(request.port) else {
            tracing::warn!("{what}: the main pod has no IP address; its worker cannot reach it");
            return;
        };
        let run = self.run_view();
        let failure = self.start(&run, &request, &url).await;
        if let Some(why) = failure {
            tracing::warn!("{what}: {why}");
            let report = crate::workers::WorkerReport {
                status: ExecutionStatus::Failed,
                error: Some(why),
            };
            let sent = reqwest::Client::new()
                .post(format!("{url}{}", crate::workers::path(key, "report")))
                .bearer_auth(&self.token)
                .json(&report)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::warn!("{what}: failed to tell the main pod: {e}");
            }
        }
    }

    /// Why the worker's pod did not start or ended without its report (`None`: it ran, or
    /// the execution is ending).
    async fn start(
        &self,
        run: &Run<'_>,
        request: &crate::workers::WorkerRequest,
        url: &str,
    ) -> Option<String> {
        let objects = match job::worker_objects(&self.work, &self.exec.settings, request) {
            Ok(o) => o,
            Err(e) => return Some(e.to_string()),
        };
        let name = objects.role.object_name(&self.work.id);
        // Known before it exists, so that the execution's end deletes it whatever happens.
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((worker_ref(request.key), name.clone()));
        let ns = &self.exec.settings.namespace;
        let jobs: Api<Job> = Api::namespaced(self.exec.connection.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(self.exec.connection.client.clone(), ns);
        let channel = crate::workers::Channel::Worker {
            url: url.to_string(),
            token: self.token.clone(),
            key: request.key,
        };
        if let Err(e) = run.create(&jobs, &objects, Some(&channel)).await {
            return Some(e);
        }
        tracing::info!(job = %name, "created the Job of a parallel worker");
        let selector = run.selector(&objects.role);
        match run
            .wait_started(&pods, &selector, &name, false, &self.stop)
            .await
        {
            Ok(_) => {}
            Err(NotStarted::Cancelled) => return None,
            Err(NotStarted::Failed(why)) => {
                run.delete_job(&jobs, &name).await;
                return Some(why);
            }
        }
        // Watch it to its end: one that ends without reporting (killed, evicted) is told.
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.exec.poll_every) => {}
                _ = self.stop.cancelled() => return None,
            }
            let list = pods.list(&ListParams::default().labels(&selector)).await;
            let Ok(list) = list else { continue };
            let Some(pod) = list
                .items
                .into_iter()
                .find(|p| has_labels(&p.metadata, &selector))
            else {
                // Deleted: the main pod is done with it.
                return None;
            };
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                let why = pod_failure(&pod).unwrap_or_else(|| "it ended".into());
                return Some(format!(
                    "the pod of Job {name} ended without reporting the worker's end: {why}"
                ));
            }
        }
    }
}

/// Follows a service instance's pod log until it ends or `stop`: its engine's log lines
/// become the instance's log (`log_ref`) in the execution; the rest of what it reports (its
/// one step's start and end) is the service pod's own business.
async fn follow_service(
    pods: Api<Pod>,
    pod_name: String,
    log_ref: String,
    deliveries: mpsc::Sender<Delivery>,
    stop: CancellationToken,
) {
    let params = following_a_service();
    let stream = tokio::select! {
        s = pods.log_stream(&pod_name, &params) => s,
        _ = stop.cancelled() => return,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(pod = %pod_name, error = %e, "failed to read a service pod's log");
            return;
        }
    };
    let mut reader = BoundedLines::new(stream);
    let mut pending = Vec::new();
    loop {
        let line = tokio::select! {
            l = reader.next_line() => l,
            _ = stop.cancelled() => break,
        };
        let Some(line) = line else { break };
        let event = match line.map(|l| podlog::decode(&l)) {
            Ok(Ok(Some(PodLine::Event(AgentEvent::Log { at, text, .. })))) => AgentEvent::Log {
                reference: log_ref.clone(),
                at,
                text,
            },
            Ok(Ok(Some(PodLine::Event(AgentEvent::Warning { message, .. })))) => {
                AgentEvent::Warning {
                    reference: log_ref.clone(),
                    message,
                }
            }
            _ => continue,
        };
        pending.push(event);
        if pending.len() >= 200 || reader.is_idle() {
            let batch = std::mem::take(&mut pending);
            tokio::select! {
                _ = deliveries.send(Delivery::Events(batch)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
    if !pending.is_empty() && !stop.is_cancelled() {
        let _ = deliveries.send(Delivery::Events(pending)).await;
    }
}

/// The log of a pod's main container, followed, each line after its time (to resume).
fn following_the_main_container() -> LogParams {
    LogParams {
        container: Some(job::CONTAINER.to_string()),
        follow: true,
        timestamps: true,
        ..Default::default()
    }
}

/// A service pod's log, followed (not resumed: its lines are only shown).
fn following_a_service() -> LogParams {
    LogParams {
        container: Some(job::CONTAINER.to_string()),
        follow: true,
        ..Default::default()
    }
}

/// What reading the main container's log keeps from one stream to the next.
#[derive(Default)]
struct Reading {
    assembling: Option<(podlog::ArtifactChunk, tokio::fs::File, PathBuf)>,
    files: u64,
    kept: VecDeque<String>,
    position: Position,
}

/// How far the log was read, by the lines' times (`timestamps=true`: RFC3339 with up to nine
/// fraction digits): a new stream starts from the beginning, and its lines up to the last one
/// read are skipped, those of that very time by count.
#[derive(Default, Debug)]
struct Position {
    last: String,
    at_last: usize,
    skip_at_last: usize,
    accepted: u64,
}

impl Position {
    /// A new stream, from the log's start.
    fn restart(&mut self) {
        self.skip_at_last = self.at_last;
    }

    /// Whether a line of this time comes after what was read (and counts it).
    fn is_new(&mut self, time: &str) -> bool {
        let time = comparable_time(time);
        match time.as_str().cmp(self.last.as_str()) {
            std::cmp::Ordering::Less => return false,
            std::cmp::Ordering::Equal if self.skip_at_last > 0 => {
                self.skip_at_last -= 1;
                return false;
            }
            std::cmp::Ordering::Equal => self.at_last += 1,
            std::cmp::Ordering::Greater => {
                self.last = time;
                self.at_last = 1;
                self.skip_at_last = 0;
            }
        }
        self.accepted += 1;
        true
    }
}

/// A log line's time with nine fraction digits, so that times compare as text
/// (`…:03.5Z` → `…:03.500000000Z`); anything else as it is.
fn comparable_time(time: &str) -> String {
    let Some(base) = time.strip_suffix('Z') else {
        return time.to_string();
    };
    let (seconds, fraction) = base.split_once('.').unwrap_or((base, ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return time.to_string();
    }
    format!("{seconds}.{fraction:0<9}Z")
}

/// How a pod stands, from its status.
fn classify(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Waiting;
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let main = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == job::CONTAINER);
    if main
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    {
        return PodState::Started;
    }
    if phase == "Failed" {
        return PodState::Failed(pod_failure(pod).unwrap_or_else(|| "phase Failed".into()));
    }
    if phase == "Succeeded" || phase == "Running" {
        return PodState::Started;
    }
    // Pending: stuck on an image, a config, or scheduling?
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            if STUCK_REASONS.contains(&reason) {
                return PodState::Stuck(format!(
                    "container {}: {reason}{}",
                    c.name,
                    w.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            return PodState::Failed(format!(
                "init container {} exited with {}{}",
                c.name,
                t.exit_code,
                t.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    for cond in status.conditions.iter().flatten() {
        if cond.type_ == "PodScheduled"
            && cond.status == "False"
            && cond.reason.as_deref() == Some("Unschedulable")
        {
            return PodState::Stuck(format!(
                "Unschedulable{}",
                cond.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        }
    }
    PodState::Waiting
}

/// Whether a pod's `Ready` condition is true (its readiness probes passed).
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a pod failed, when it did (evicted, killed, a container's exit).
fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == job::CONTAINER)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let phase = status.phase.as_deref().unwrap_or_default();
    if phase != "Failed" && terminated.is_none() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(r) = &status.reason {
        parts.push(r.clone());
    }
    if let Some(m) = &status.message {
        parts.push(m.clone());
    }
    if let Some(t) = terminated {
        parts.push(format!(
            "container {} exited with {}{}",
            job::CONTAINER,
            t.exit_code,
            t.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    Some(if parts.is_empty() {
        format!("phase {phase}")
    } else {
        parts.join(": ")
    })
}

/// Lines of a stream, each at most [`MAX_LINE`] bytes (a longer one is an error, skipped).
struct BoundedLines<R> {
    inner: R,
    idle: bool,
}

/// A line too long to be the protocol's.
#[derive(Debug)]
struct TooLong(usize);

impl From<TooLong> for podlog::LineError {
    fn from(t: TooLong) -> Self {
        podlog::LineError::too_long(t.0, MAX_LINE)
    }
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    fn new(inner: R) -> Self {
        BoundedLines { inner, idle: true }
    }

    /// Whether nothing more was buffered after the last line (a good time to send a batch).
    fn is_idle(&self) -> bool {
        self.idle
    }

    async fn next_line(&mut self) -> Option<Result<String, TooLong>> {
        let mut line: Vec<u8> = Vec::new();
        let mut dropped = 0usize;
        loop {
            let buf = match self.inner.fill_buf().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "the pod log broke off");
                    return None;
                }
            };
            if buf.is_empty() {
                return if line.is_empty() && dropped == 0 {
                    None
                } else {
                    Some(finish(line, dropped))
                };
            }
            let (take, end) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            let piece = &buf[..take];
            if piece.len() <= room {
                line.extend_from_slice(piece);
            } else {
                line.extend_from_slice(&piece[..room]);
                dropped += piece.len() - room;
            }
            let rest = buf.len() - take;
            self.inner.consume_unpin(take);
            if end {
                self.idle = rest == 0;
                return Some(finish(line, dropped));
            }
        }
    }
}

fn finish(mut line: Vec<u8>, dropped: usize) -> Result<String, TooLong> {
    if dropped > 0 {
        return Err(TooLong(line.len() + dropped));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Whether an object has every `key=value` of an equality selector.
fn has_labels(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    selector: &str,
) -> bool {
    selector.split(',').all(|pair| {
        let Some((k, v)) = pair.split_once('=') else {
            return false;
        };
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|have| have == v)
    })
}

/// Deletes the Jobs labelled with `agent`'s name that an earlier process of the agent left
/// (it runs nothing yet, so none of them is in use), with background propagation: their pods,
/// and their Secrets, which they own, go with them. Secrets are not listed: that permission
/// would let the agent read every Secret of the namespace. How many Jobs.
pub async fn sweep(connection: &Connection, agent: &str) -> Result<usize, kube::Error> {
    let selector = job::agent_selector(agent);
    let params = ListParams::default().labels(&selector);
    let jobs: Api<Job> = Api::namespaced(connection.client.clone(), &connection.namespace);
    let mut count = 0;
    // The selector is checked here too: deleting another agent's Job on the word of an API
    // server that ignored the selector would be worse than listing twice.
    for j in jobs.list(&params).await?.items {
        if !has_labels(&j.metadata, &selector) {
            continue;
        }
        if let Some(name) = j.metadata.name {
            match jobs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => count += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_lines_cut_long_lines_and_keep_the_rest() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("a\n{long}\nb\nlast-without-newline");
        let mut lines = BoundedLines::new(futures::io::Cursor::new(text.into_bytes()));
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "a");
        assert!(lines.next_line().await.unwrap().is_err());
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "b");
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            "last-without-newline"
        );
        assert!(lines.next_line().await.is_none());
    }

    #[test]
    fn a_new_stream_skips_the_lines_read_by_their_time() {
        assert_eq!(
            comparable_time("2026-12-07T01:02:03.5Z"),
            "2026-12-07T01:02:03.500000000Z"
        );
        assert_eq!(
            comparable_time("2026-12-07T01:02:03Z"),
            "2026-12-07T01:02:03.000000000Z"
        );
        let t = |s: &str| format!("2026-12-07T01:02:0{s}Z");
        let mut p = Position::default();
        // First stream: four lines, two of them at the same time; it breaks there.
        for time in ["1.1", "1.2", "1.2"] {
            assert!(p.is_new(&t(time)));
        }
        // Second stream, from the start: the three are skipped (the equal times by count),
        // a third line of the same time and the later ones are new.
        p.restart();
        let seen: Vec<bool> = ["1.1", "1.2", "1.2", "1.2", "1.25", "2"]
            .iter()
            .map(|time| p.is_new(&t(time)))
            .collect();
        assert_eq!(seen, [false, false, false, true, true, true]);
        assert_eq!(p.accepted, 6);
        // Fractions of other lengths compare as times, not as text (`01.1Z` > `01.12Z`).
        let mut p = Position::default();
        assert!(p.is_new(&t("1.12")));
        p.restart();
        assert!(!p.is_new(&t("1.1")), "01.1 came before 01.12");
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn pod_states_from_their_status() {
        let pull = pod(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "run", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"nope:1\""}}}],
        }));
        assert!(
            matches!(classify(&pull), PodState::Stuck(w) if w.contains("ImagePullBackOff") && w.contains("nope:1"))
        );
        let unschedulable = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available"}],
        }));
        assert!(matches!(classify(&unschedulable), PodState::Stuck(w) if w.contains("0/3 nodes")));
        let running = pod(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{"name": "run", "image": "x", "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {}}}],
        }));
        assert!(matches!(classify(&running), PodState::Started));
        let evicted = pod(serde_json::json!({
            "phase": "Failed", "reason": "Evicted", "message": "low on memory",
        }));
        assert!(
            matches!(classify(&evicted), PodState::Failed(w) if w.contains("Evicted") && w.contains("low on memory"))
        );
        assert!(matches!(
            classify(&pod(serde_json::json!({"phase": "Pending"}))),
            PodState::Waiting
        ));
    }
}
