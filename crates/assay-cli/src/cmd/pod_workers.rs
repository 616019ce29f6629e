//! Parallel workers and services in pods of their own, the pod side (see
//! `assay_kube::workers` and `assay_kube::services` for the exchange): the main pod's
//! endpoint ([`Endpoint`]: a small HTTP server on its pod IP, port chosen by the system, a
//! bearer token from its Secret, bounded bodies); what `Scope::remote_worker` runs (asks the
//! agent for a worker's pod and waits for its report) and `Scope::start_remote_service` (asks
//! for a service instance's pod, serves its plan to the agent, waits for its address); and
//! the worker pod's side ([`WorkerClient`]: it fetches its `transfer`red files, posts its
//! protocol lines, its `fetch`ed files and its report).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_engine::runtime::{Process, RemoteService, RemoteWorker, RemoteWorkerEnd, StartError};
use assay_kube::podlog::{self, PodLine};
use assay_kube::services::{ServiceAddress, ServicePod, ServiceRequest};
use assay_kube::workers::{
    BUNDLE_LIMIT, FileBundle, FileEntry, LINES_LIMIT, REPORT_LIMIT, StartBundle, WorkerReport,
    WorkerRequest,
};
use assay_spec::plan::Plan;
use assay_spec::status::ExecutionStatus;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use tokio::sync::oneshot;

use super::pod::Out;

/// One worker the main pod waits for.
struct Slot {
    /// Its events' refs go under this (`<parallel ref>/<index>/`).
    prefix: String,
    start: StartBundle,
    fetched: Vec<FileEntry>,
    report: Option<oneshot::Sender<(WorkerReport, Vec<FileEntry>)>>,
}

/// One service instance the main pod waits for.
struct ServiceSlot {
    pod: ServicePod,
    address: Option<oneshot::Sender<ServiceAddress>>,
}

/// The main pod's endpoint.
pub(crate) struct Endpoint {
    token: String,
    port: u16,
    plan: Plan,
    out: Arc<Mutex<Out>>,
    /// The number of the next worker or service instance (one sequence: Job names differ).
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Slot>>,
    services: Mutex<HashMap<u64, ServiceSlot>>,
}

type Shared = Arc<Endpoint>;

impl Endpoint {
    /// Listens on every address of the pod, on a port the system picks.
    pub(crate) async fn start(
        token: String,
        plan: Plan,
        out: Arc<Mutex<Out>>,
    ) -> anyhow::Result<Shared> {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", 0))
            .await
            .map_err(|e| anyhow::anyhow!("failed to listen for parallel workers: {e}"))?;
        let port = listener.local_addr()?.port();
        let endpoint = Arc::new(Endpoint {
            token,
            port,
            plan,
            out,
            next: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .route("/v1/workers/{key}/start", get(start))
            .route(
                "/v1/workers/{key}/lines",
                post(lines).layer(DefaultBodyLimit::max(LINES_LIMIT)),
            )
            .route(
                "/v1/workers/{key}/fetch",
                post(fetch).layer(DefaultBodyLimit::max(BUNDLE_LIMIT)),
            )
            .route(
                "/v1/workers/{key}/report",
                post(report).layer(DefaultBodyLimit::max(REPORT_LIMIT)),
            )
            .route("/v1/services/{key}/pod", get(service_pod))
            .route(
                "/v1/services/{key}/address",
                post(service_address).layer(DefaultBodyLimit::max(REPORT_LIMIT)),
            )
            .with_state(endpoint.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("warning: the worker endpoint stopped: {e}");
            }
        });
        eprintln!("serving parallel workers and services on port {port}");
        Ok(endpoint)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn services(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ServiceSlot>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts one service instance in a pod of its own: asks the agent for it (with the
    /// instance rendered here: `base` is the environment every process here starts from,
    /// which the service's pod has its own of), waits for its address (or why there is none)
    /// or for the step's end.
    pub(crate) async fn service(
        &self,
        s: RemoteService,
        base: &std::collections::BTreeMap<String, String>,
    ) -> Result<Box<dyn Process>, StartError> {
        let RemoteService {
            launch,
            instance,
            probe_command,
            output,
            deadline,
            cancel,
        } = s;
        let log_ref = output.reference().to_string();
        let (name, index) = match &launch.kind {
            assay_engine::runtime::LaunchKind::Service { name, index } => (name.clone(), *index),
            other => {
                return Err(StartError::Unsupported(format!("not a service: {other:?}")));
            }
        };
        let process = service_process(&launch, &instance.process, base);
        let plan = assay_kube::job::service_plan(
            &self.plan,
            process,
            instance.content.clone(),
            instance.pod.as_ref(),
        );
        let plan = serde_json::to_value(&plan)
            .map_err(|e| StartError::Failed(format!("its plan: {e}")))?;
        let readiness = match (&instance.readiness_probe, probe_command) {
            (Some(p), Some(command)) => Some(assay_spec::plan::Probe {
                exec: Some(command),
                ..p.clone()
            }),
            _ => None,
        };
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.services().insert(
            key,
            ServiceSlot {
                pod: ServicePod {
                    plan,
                    timeout_ms: instance.timeout_ms,
                    readiness,
                },
                address: Some(tx),
            },
        );
        let request = ServiceRequest {
            key,
            log_ref: log_ref.clone(),
            name,
            index,
            port: self.port,
        };
        self.write(|out| out.line(&podlog::encode_service(&request)));
        let deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let address = tokio::select! {
            r = rx => r.map_err(|_| "the agent's answer was lost".to_string()),
            _ = cancel.cancelled() => Err("stopped before its pod ran".to_string()),
            _ = deadline => Err("its step's deadline passed before its pod ran".to_string()),
        };
        self.services().remove(&key);
        let done = |why: String| -> Result<Box<dyn Process>, StartError> {
            // Whatever the agent made for it goes.
            self.write(|out| out.line(&podlog::encode_service_done(&log_ref)));
            Err(StartError::Failed(why))
        };
        match address {
            Ok(ServiceAddress { ip: Some(ip), .. }) => {
                Ok(Box::new(super::pod::RemoteServiceProcess {
                    ip,
                    log_ref: log_ref.clone(),
                    out: self.out.clone(),
                }) as Box<dyn Process>)
            }
            Ok(ServiceAddress { error, .. }) => done(format!(
                "its pod did not start: {}",
                error.unwrap_or_else(|| "the agent gave no address".into())
            )),
            Err(why) => done(why),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Out)) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut out);
        out.flush();
    }

    /// Runs one worker in a pod of its own: asks the agent for it, waits for its report (or
    /// the step's end), and says when it is no longer waited for.
    pub(crate) async fn run(&self, w: RemoteWorker) -> RemoteWorkerEnd {
        let failed = |error: String| RemoteWorkerEnd {
            status: ExecutionStatus::Failed,
            error: Some(error),
            fetched: Vec::new(),
        };
        let mut files = Vec::new();
        for (path, source) in &w.transfer {
            match std::fs::read(source) {
                Ok(bytes) => files.push(FileEntry::new(path, &bytes)),
                Err(e) => return failed(format!("transfer: {}: {e}", source.display())),
            }
        }
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let plan = assay_kube::job::worker_plan(&self.plan, &w.worker);
        let plan = match serde_json::to_value(&plan) {
            Ok(p) => p,
            Err(e) => return failed(format!("the worker's plan: {e}")),
        };
        let (tx, rx) = oneshot::channel();
        self.slots().insert(
            key,
            Slot {
                prefix: format!("{}/{}/", w.reference, w.index),
                start: StartBundle {
                    files,
                    fetch: w.worker.fetch.clone(),
                },
                fetched: Vec::new(),
                report: Some(tx),
            },
        );
        let request = WorkerRequest {
            key,
            reference: w.reference.clone(),
            index: w.index,
            port: self.port,
            plan,
        };
        self.write(|out| out.line(&podlog::encode_worker(&request)));
        let deadline = async {
            match w.deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            r = rx => match r {
                Ok((report, fetched)) => {
                    let mut decoded = Vec::new();
                    let mut error = report.error;
                    for f in fetched {
                        match f.bytes() {
                            Ok(b) => decoded.push((f.path, b)),
                            Err(e) => { error.get_or_insert(format!("fetch: {e}")); }
                        }
                    }
                    RemoteWorkerEnd { status: report.status, error, fetched: decoded }
                }
                Err(_) => failed("the worker's report was lost".into()),
            },
            _ = w.cancel.cancelled() => RemoteWorkerEnd {
                status: ExecutionStatus::Aborted,
                error: None,
                fetched: Vec::new(),
            },
            _ = deadline => RemoteWorkerEnd {
                status: ExecutionStatus::Aborted,
                error: Some("its deadline passed".into()),
                fetched: Vec::new(),
            },
        };
        self.slots().remove(&key);
        self.write(|out| out.line(&podlog::encode_worker_done(key)));
        end
    }

    /// A worker's protocol lines, written on this pod's stdout under the worker's refs.
    fn relay(&self, prefix: &str, body: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        for line in body.lines() {
            match podlog::decode(line) {
                Ok(Some(PodLine::Event(event))) => {
                    if let Some(e) = assay_kube::workers::rereference(event, prefix) {
                        out.event(&e);
                    }
                }
                Ok(Some(PodLine::Chunk(mut chunk))) => {
                    chunk.step = format!("{prefix}{}", chunk.step);
                    out.relayed_chunk(chunk);
                }
                // A worker pod makes no pods: nothing else of the protocol is its to say.
                Ok(_) => {}
                Err(e) => eprintln!("warning: a worker sent a broken line: {e}"),
            }
        }
        out.flush();
    }
}

fn authorized(endpoint: &Endpoint, headers: &HeaderMap) -> Result<(), StatusCode> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if assay_kube::workers::token_matches(&endpoint.token, given) {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

async fn start(
    State(endpoint): State<Shared>,
    UrlPath(key): UrlPath<u64>,
    headers: HeaderMap,
) -> Result<axum::Json<StartBundle>, StatusCode> {
    authorized(&endpoint, &headers)?;
    let slots = endpoint.slots();
    let slot = slots.get(&key).ok_or(StatusCode::NOT_FOUND)?;
    Ok(axum::Json(slot.start.clone()))
}

async fn lines(
    State(endpoint): State<Shared>,
    UrlPath(key): UrlPath<u64>,
    headers: HeaderMap,
    body: String,
) -> Result<StatusCode, StatusCode> {
    authorized(&endpoint, &headers)?;
    let prefix = endpoint
        .slots()
        .get(&key)
        .map(|s| s.prefix.clone())
        .ok_or(StatusCode::NOT_FOUND)?;
    endpoint.relay(&prefix, &body);
    Ok(StatusCode::NO_CONTENT)
}

async fn fetch(
    State(endpoint): State<Shared>,
    UrlPath(key): UrlPath<u64>,
    headers: HeaderMap,
    axum::Json(bundle): axum::Json<FileBundle>,
) -> Result<StatusCode, StatusCode> {
    authorized(&endpoint, &headers)?;
    let mut slots = endpoint.slots();
    let slot = slots.get_mut(&key).ok_or(StatusCode::NOT_FOUND)?;
    // Where each file may go is checked when it is written (only under the fetch targets).
    slot.fetched.extend(bundle.files);
    Ok(StatusCode::NO_CONTENT)
}

async fn report(
    State(endpoint): State<Shared>,
    UrlPath(key): UrlPath<u64>,
    headers: HeaderMap,
    axum::Json(report): axum::Json<WorkerReport>,
) -> Result<StatusCode, StatusCode> {
    authorized(&endpoint, &headers)?;
    // The first report wins (the worker's own, or the agent's when its pod did not start).
    let mut slots = endpoint.slots();
    let slot = slots.get_mut(&key).ok_or(StatusCode::NOT_FOUND)?;
    let tx = slot.report.take().ok_or(StatusCode::CONFLICT)?;
    let fetched = std::mem::take(&mut slot.fetched);
    let _ = tx.send((report, fetched));
    Ok(StatusCode::NO_CONTENT)
}

async fn service_pod(
    State(endpoint): State<Shared>,
    UrlPath(key): UrlPath<u64>,
    headers: HeaderMap,
) -> Result<axum::Json<ServicePod>, StatusCode> {
    authorized(&endpoint, &headers)?;
    let services = endpoint.services();
    let slot = services.get(&key).ok_or(StatusCode::NOT_FOUND)?;
    Ok(axum::Json(slot.pod.clone()))
}

async fn service_address(
    State(endpoint): State<Shared>,
    UrlPath(key): UrlPath<u64>,
    headers: HeaderMap,
    axum::Json(address): axum::Json<ServiceAddress>,
) -> Result<StatusCode, StatusCode> {
    authorized(&endpoint, &headers)?;
    let mut services = endpoint.services();
    let slot = services.get_mut(&key).ok_or(StatusCode::NOT_FOUND)?;
    let tx = slot.address.take().ok_or(StatusCode::CONFLICT)?;
    let _ = tx.send(address);
    Ok(StatusCode::NO_CONTENT)
}

/// A service instance's process as its own pod runs it: rendered here, so its templates are
/// written as literals (its pod's engine renders nothing again); its environment is what the
/// plan gives on top of this pod's own (the service's pod has its own `PATH`, `HOSTNAME`, …).
pub(crate) fn service_process(
    launch: &assay_engine::runtime::Launch,
    planned: &assay_spec::plan::PlanProcess,
    base: &std::collections::BTreeMap<String, String>,
) -> assay_spec::plan::PlanProcess {
    let literal = |text: &str| {
        if text.contains('{') {
            assay_expr::Expr::string(text).to_template_string()
        } else {
            text.to_string()
        }
    };
    let all = |list: &[String]| list.iter().map(|t| literal(t)).collect::<Vec<_>>();
    let env = launch
        .env
        .iter()
        .filter(|(k, v)| base.get(*k) != Some(*v))
        .map(|(k, v)| assay_spec::plan::PlanEnv {
            name: k.clone(),
            value: Some(literal(v)),
            ..Default::default()
        })
        .collect();
    assay_spec::plan::PlanProcess {
        command: all(&launch.command),
        args: all(&launch.args),
        shell: launch.shell.as_deref().map(literal),
        env,
        env_from: planned.env_from.clone(),
        working_dir: Some(literal(&launch.working_dir)),
        image: launch.image.clone(),
        image_pull_policy: launch.image_pull_policy.clone(),
        resources: launch.resources.clone(),
        security_context: launch.security_context.clone(),
        volume_mounts: launch.volume_mounts.clone(),
    }
}

/// A worker pod's side of the exchange.
pub(crate) struct WorkerClient {
    http: reqwest::Client,
    url: String,
    token: String,
    key: u64,
}

impl WorkerClient {
    pub(crate) fn new(url: String, token: String, key: u64) -> Self {
        WorkerClient {
            http: reqwest::Client::new(),
            url,
            token,
            key,
        }
    }

    fn at(&self, what: &str) -> String {
        format!("{}{}", self.url, assay_kube::workers::path(self.key, what))
    }

    /// The start bundle (a few tries: the main pod may be busy).
    pub(crate) async fn start(&self) -> Result<StartBundle, String> {
        let mut last = String::new();
        for _ in 0..5 {
            let sent = self
                .http
                .get(self.at("start"))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    return r.json().await.map_err(|e| e.to_string());
                }
                Ok(r) => return Err(format!("the main pod answered {}", r.status())),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(format!(
            "the main pod cannot be reached at {}: {last}",
            self.url
        ))
    }

    async fn post(&self, what: &str, body: reqwest::Body, json: bool) -> Result<(), String> {
        let mut request = self
            .http
            .post(self.at(what))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(300))
            .body(body);
        if json {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the main pod answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Protocol lines, in batches under the endpoint's limit.
    pub(crate) async fn lines(&self, lines: Vec<String>) {
        let mut batch = String::new();
        for line in lines {
            if !batch.is_empty() && batch.len() + line.len() + 1 > LINES_LIMIT / 2 {
                self.send_lines(std::mem::take(&mut batch)).await;
            }
            batch.push_str(&line);
            batch.push('\n');
        }
        if !batch.is_empty() {
            self.send_lines(batch).await;
        }
    }

    async fn send_lines(&self, batch: String) {
        if let Err(e) = self.post("lines", batch.into(), false).await {
            eprintln!("warning: failed to send events to the main pod: {e}");
        }
    }

    pub(crate) async fn fetch(&self, files: Vec<FileEntry>) -> Result<(), String> {
        let body = serde_json::to_vec(&FileBundle { files }).map_err(|e| e.to_string())?;
        if body.len() > BUNDLE_LIMIT {
            return Err(format!(
                "the fetched files take {} bytes, more than the {} MiB a worker may send back",
                body.len(),
                BUNDLE_LIMIT / (1024 * 1024)
            ));
        }
        self.post("fetch", body.into(), true).await
    }

    pub(crate) async fn report(&self, report: &WorkerReport) -> Result<(), String> {
        let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        self.post("report", body.into(), true).await
    }
}

/// Writes the `transfer`red files into a worker pod's folders; each path must be a clean one
/// under `/data` or `/testkube/outputs`.
pub(crate) fn place_files(files: &[FileEntry], data: &Path, outputs: &Path) -> Result<(), String> {
    for f in files {
        let target = host_path(&f.path, data, outputs)
            .ok_or_else(|| format!("{}: not under /data or /testkube/outputs: refused", f.path))?;
        let bytes = f.bytes().map_err(|e| e.to_string())?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(())
}

/// A path as steps see it, on this machine (`None`: outside the execution's folders, or
/// climbing out with `..`).
pub(crate) fn host_path(path: &str, data: &Path, outputs: &Path) -> Option<PathBuf> {
    let clean = assay_engine::clean_path(path)?;
    for (root, host) in [("/data/", data), ("/testkube/outputs/", outputs)] {
        if let Some(rest) = clean.strip_prefix(root) {
            return Some(host.join(rest));
        }
    }
    None
}

/// The files a worker's `fetch` rules send back, read from its folders.
pub(crate) fn fetched_files(
    fetch: &[assay_spec::plan::PlanTransfer],
    data: &Path,
    outputs: &Path,
) -> Result<Vec<FileEntry>, String> {
    let to_host = |p: &str| host_path(p, data, outputs).unwrap_or_else(|| PathBuf::from(p));
    let mut files = Vec::new();
    for t in fetch {
        for (path, source) in
            assay_engine::transfer_files(t, &to_host).map_err(|e| e.to_string())?
        {
            let bytes = std::fs::read(&source).map_err(|e| format!("{}: {e}", source.display()))?;
            files.push(FileEntry::new(&path, &bytes));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transferred_files_land_only_in_the_execution_folders() {
        let dir = tempfile::TempDir::new().unwrap();
        let (data, outputs) = (dir.path().join("data"), dir.path().join("outputs"));
        let ok = [
            FileEntry::new("/data/a/b.txt", b"b"),
            FileEntry::new("/testkube/outputs/o", b"o"),
        ];
        place_files(&ok, &data, &outputs).unwrap();
        assert_eq!(std::fs::read(data.join("a/b.txt")).unwrap(), b"b");
        assert_eq!(std::fs::read(outputs.join("o")).unwrap(), b"o");
        for bad in [
            "/data/../escape",
            "/etc/passwd",
            "data/rel",
            "/data/a/../../x",
        ] {
            let refused = place_files(&[FileEntry::new(bad, b"x")], &data, &outputs);
            assert!(refused.is_err(), "{bad}");
        }
        assert!(!dir.path().join("escape").exists());
    }
}
