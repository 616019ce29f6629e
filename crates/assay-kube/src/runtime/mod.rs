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

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use assay_agent::{Delivery, Executor};
use assay_api::agents::{AgentEvent, AgentWork};
use assay_spec::status::ExecutionStatus;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Connection;
use crate::job::{self, JobSettings};

mod logs;
mod pods;
mod state;

use logs::{Reading, following_the_main_container};
pub use state::sweep;
use state::{classify, has_labels, pod_failure};

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
                Err(e) if read.accepted() == 0 => {
                    self.delete_job(&jobs, &name).await;
                    return failed(format!("read the log of pod {pod_name}: {e}"));
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_name, error = %e, "failed to read the pod's log again");
                    stalls += 1;
                    continue;
                }
            };
            let before = read.accepted();
            read.restart();
            let finished = tokio::select! {
                f = self.follow(stream, &mut read, &jobs) => f,
                _ = cancel.cancelled() => return self.abort(&jobs, &name).await,
            };
            if finished {
                return None;
            }
            stalls = if read.accepted() > before {
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

    async fn send(&self, delivery: Delivery) {
        // The agent gone: nothing to tell anyone.
        let _ = self.deliveries.send(delivery).await;
    }
}

/// The key of a worker's Job among the execution's service Jobs.
fn worker_ref(key: u64) -> String {
    format!("worker:{key}")
}
