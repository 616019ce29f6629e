//! The pods of parallel workers and service instances: each made, watched and followed by a
//! task of its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use assay_agent::Delivery;
use assay_api::agents::AgentWork;
use assay_spec::status::ExecutionStatus;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::job;

use super::logs::follow_service;
use super::state::{has_labels, is_ready, pod_failure};
use super::{KubeExecutor, NotStarted, Run, worker_ref};

impl Run<'_> {
    /// The main pod asked for a service instance's pod: made (and watched, and its log
    /// followed) in a task of its own, so the main pod's log is read on meanwhile.
    pub(super) async fn service(&self, request: crate::services::ServiceRequest) {
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
    pub(super) async fn worker(&self, request: crate::workers::WorkerRequest) {
        let task = self.task();
        let handle = tokio::spawn(task.run(request));
        self.followers.lock().await.push(handle);
    }
}

/// Making and watching one worker's or service instance's pod (owned: it runs as a task of
/// its own).
pub(super) struct PodTask {
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
    pub(super) async fn run_service(self, request: crate::services::ServiceRequest) {
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
    pub(super) async fn run(self, request: crate::workers::WorkerRequest) {
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
