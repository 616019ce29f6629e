//! The container runtime: each process of a plan in its image, through the Docker Engine API.
//!
//! One execution is one network (`assay-<execution>`) and the containers of its steps, services
//! and parallel workers on it. The execution's folders on this machine are bind-mounted where
//! steps expect them (`/data`, `/testkube/outputs`), so `content`, `glob()`, outputs, artifacts,
//! JUnit reports and worker `transfer`/`fetch` work exactly as on the host runtime, and every
//! step of the execution sees the same `/data` (a parallel worker has its own). The engine's own
//! tools (the `git` of `content.git`) run on this machine, on those folders.
//!
//! Everything the runtime creates carries [`LABEL_EXECUTION`] and [`LABEL_OWNER`] (this
//! machine, the owning process's pid and start time). A container is removed when its process
//! has been waited for, the rest when the execution closes; what a killed `assay` left behind
//! is removed by the next run on this machine ([`sweep`]), which finds owners that are gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use assay_engine::HostRuntime;
use assay_engine::runtime::{
    BoxFuture, Launch, LaunchKind, Layout, Output, Process, Runtime, RuntimeError, Scope, Setup,
    StartError,
};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use crate::client::{Engine, EngineError, PullPolicy, describe};
use crate::config::{container_env, parse_cpu, parse_memory, plain, run_as};
use crate::ownership::{owner, sweep};

mod process;
use process::{ContainerProcess, exec_probe, exit_code_of, pump_logs};

/// Label on every container and network: the execution's id.
pub const LABEL_EXECUTION: &str = "io.assay.execution";
/// Label on every container and network: `HOST/PID/START` of the process that owns it.
pub const LABEL_OWNER: &str = "io.assay.owner";
/// The image of a step or service that names none, as in Testkube (its default image).
pub const DEFAULT_IMAGE: &str = "busybox:1.36.1-musl";
/// Where steps see the execution's data folder.
const DATA: &str = "/data";
const OUTPUTS: &str = "/testkube/outputs";

/// Runs a plan's processes in containers (see the module documentation).
pub struct ContainerRuntime {
    endpoint: Option<String>,
    default_image: String,
    progress: Arc<dyn Fn(String) + Send + Sync>,
}

impl std::fmt::Debug for ContainerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerRuntime")
            .field("endpoint", &self.endpoint)
            .field("default_image", &self.default_image)
            .finish_non_exhaustive()
    }
}

impl ContainerRuntime {
    /// A runtime on the engine at `endpoint` (else [`crate::client::default_endpoint`]). Image
    /// pulls report progress to `progress`, one line at a time.
    pub fn new(
        endpoint: Option<String>,
        progress: impl Fn(String) + Send + Sync + 'static,
    ) -> Self {
        ContainerRuntime {
            endpoint,
            default_image: DEFAULT_IMAGE.to_string(),
            progress: Arc::new(progress),
        }
    }

    /// The image for processes that name none (default [`DEFAULT_IMAGE`]).
    pub fn with_default_image(mut self, image: impl Into<String>) -> Self {
        self.default_image = image.into();
        self
    }

    /// The engine this runtime talks to, connected and answering.
    pub async fn connect(&self) -> Result<Engine, EngineError> {
        Engine::connect(self.endpoint.as_deref()).await
    }
}

impl Runtime for ContainerRuntime {
    fn name(&self) -> &'static str {
        "container"
    }

    fn open<'a>(&'a self, setup: Setup<'a>) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        Box::pin(async move {
            let engine = self.connect().await.map_err(RuntimeError::backend)?;
            sweep(&engine).await;
            let execution = setup
                .options
                .context
                .get("execution")
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    setup
                        .layout
                        .root
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| format!("pid{}", std::process::id()))
                });
            let tag = sanitize(&execution);
            let network = format!("assay-{tag}");
            let owner = owner();
            let labels = HashMap::from([
                (LABEL_EXECUTION.to_string(), execution.clone()),
                (LABEL_OWNER.to_string(), owner.clone()),
            ]);
            engine
                .docker()
                .create_network(NetworkCreateRequest {
                    name: network.clone(),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    RuntimeError::backend(EngineError::api(format!("create network {network}"), &e))
                })?;
            let wanted = volumes_of(setup.plan);
            let mut volumes: HashMap<String, String> = HashMap::new();
            for (name, tmpfs) in wanted {
                let volume = format!("assay-{tag}-{}", sanitize(&name));
                let created = engine
                    .docker()
                    .create_volume(VolumeCreateRequest {
                        name: Some(volume.clone()),
                        labels: Some(labels.clone()),
                        driver_opts: tmpfs.then(|| {
                            HashMap::from([
                                ("type".to_string(), "tmpfs".to_string()),
                                ("device".to_string(), "tmpfs".to_string()),
                            ])
                        }),
                        ..Default::default()
                    })
                    .await;
                if let Err(e) = created {
                    let docker = engine.docker();
                    for made in volumes.values() {
                        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                        let _ = docker.remove_volume(made, Some(options)).await;
                    }
                    let _ = docker.remove_network(&network).await;
                    return Err(RuntimeError::backend(EngineError::api(
                        format!("create volume {volume}"),
                        &e,
                    )));
                }
                volumes.insert(name, volume);
            }
            let shared = Arc::new(Shared {
                engine,
                network,
                volumes,
                tag,
                labels,
                default_image: self.default_image.clone(),
                progress: self.progress.clone(),
                images: tokio::sync::Mutex::new(HashSet::new()),
                counter: AtomicU64::new(0),
                base: container_env(&setup.options.base_env),
            });
            // The engine's own tools (git) run on this machine, on the execution's folders.
            let host = HostRuntime.open(setup).await.inspect_err(|_| {
                // Nothing of ours may outlive a failed open.
                let s = shared.clone();
                tokio::spawn(async move { s.remove_network().await });
            })?;
            let scope = ContainerScope::new(shared, setup.layout.clone(), host, true)
                .map_err(|e| RuntimeError::Failed(e.to_string()))?;
            Ok(Box::new(scope) as Box<dyn Scope>)
        })
    }
}

/// What the scopes of one execution share.
struct Shared {
    engine: Engine,
    network: String,
    /// The execution's volumes (its `pvcs` and `pod.volumes` `emptyDir`s) by the name
    /// `volumeMounts` give, to the engine's volume name.
    volumes: HashMap<String, String>,
    /// The execution id as it may appear in container names.
    tag: String,
    labels: HashMap<String, String>,
    default_image: String,
    progress: Arc<dyn Fn(String) + Send + Sync>,
    /// Images already checked (and pulled) for this execution.
    images: tokio::sync::Mutex<HashSet<String>>,
    counter: AtomicU64,
    base: BTreeMap<String, String>,
}

impl Shared {
    async fn remove_network(&self) {
        let _ = self.engine.docker().remove_network(&self.network).await;
    }

    /// Removes the execution's volumes (after its containers).
    async fn remove_volumes(&self) {
        let docker = self.engine.docker();
        for volume in self.volumes.values() {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            let _ = docker.remove_volume(volume, Some(options)).await;
        }
    }

    /// `volumeMounts` as engine binds (`VOLUME:PATH[:ro]`).
    fn binds_of(&self, mounts: &[Value]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for m in mounts {
            let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
            let path = m
                .get("mountPath")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.is_empty() || !path.starts_with('/') {
                return Err(format!(
                    "volumeMounts: each mount needs a `name` and an absolute `mountPath` (got {m})"
                ));
            }
            if m.get("subPath").is_some() || m.get("subPathExpr").is_some() {
                return Err(format!(
                    "volumeMounts `{name}`: subPath is not supported by the container runtime; mount the volume and use the folder"
                ));
            }
            let Some(volume) = self.volumes.get(name) else {
                return Err(format!(
                    "volumeMounts `{name}`: the container runtime mounts the workflow's `pvcs` and `pod.volumes` with `emptyDir` only, and the workflow has no such volume named `{name}`"
                ));
            };
            let ro = m.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
            out.push(format!("{volume}:{path}{}", if ro { ":ro" } else { "" }));
        }
        Ok(out)
    }

    /// Makes sure `image` is here, once per execution.
    async fn ensure_image(&self, image: &str, policy: Option<&str>) -> Result<(), StartError> {
        let mut done = self.images.lock().await;
        if done.contains(image) {
            return Ok(());
        }
        let policy = PullPolicy::for_image(policy, image).map_err(StartError::Unsupported)?;
        let progress = self.progress.clone();
        self.engine
            .ensure_image(image, policy, &mut |line| progress(line))
            .await
            .map_err(|e| StartError::Unsupported(e.to_string()))?;
        done.insert(image.to_string());
        Ok(())
    }
}

/// One execution's (or parallel worker's) containers.
struct ContainerScope {
    shared: Arc<Shared>,
    layout: Layout,
    host: Box<dyn Scope>,
    /// The execution's scope (which owns the network), not a worker's.
    root: bool,
    /// Containers created and not yet removed.
    containers: Arc<Mutex<Vec<String>>>,
    /// Service instances' containers by name and index: where their `exec` probes run.
    services: Mutex<HashMap<(String, u64), String>>,
}

impl ContainerScope {
    fn new(
        shared: Arc<Shared>,
        layout: Layout,
        host: Box<dyn Scope>,
        root: bool,
    ) -> std::io::Result<Self> {
        // Like Kubernetes' emptyDir: any user a step runs as may write there.
        for dir in [&layout.data, &layout.outputs] {
            open_up(dir)?;
        }
        Ok(ContainerScope {
            shared,
            layout,
            host,
            root,
            containers: Arc::new(Mutex::new(Vec::new())),
            services: Mutex::new(HashMap::new()),
        })
    }

    /// The container for a launch.
    async fn create(&self, launch: &Launch, output: &Output) -> Result<String, StartError> {
        let s = &self.shared;
        let image = launch
            .image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| s.default_image.clone());
        s.ensure_image(&image, launch.image_pull_policy.as_deref())
            .await?;
        let (entrypoint, cmd) = match &launch.shell {
            Some(script) => (
                Some(vec!["/bin/sh".into(), "-e".into(), "-c".into()]),
                Some(vec![script.clone()]),
            ),
            None if !launch.command.is_empty() => {
                (Some(launch.command.clone()), Some(launch.args.clone()))
            }
            None if !launch.args.is_empty() => (None, Some(launch.args.clone())),
            // The image's own entrypoint and command.
            None => (None, None),
        };
        let working_dir = (!launch.working_dir.is_empty()).then(|| launch.working_dir.clone());
        if let Some(dir) = &working_dir
            && let Some(host) = self.host_path(dir)
        {
            std::fs::create_dir_all(&host)
                .and_then(|_| open_up(&host))
                .map_err(|e| StartError::Failed(format!("failed to create {dir}: {e}")))?;
        }
        let limits = launch
            .resources
            .as_ref()
            .and_then(|r| r.get("limits"))
            .cloned()
            .unwrap_or(Value::Null);
        let memory = match limits.get("memory") {
            Some(q) => Some(parse_memory(q).ok_or_else(|| {
                StartError::Unsupported(format!(
                    "resources.limits.memory: `{}` is not a quantity (e.g. 64Mi, 1Gi)",
                    plain(q)
                ))
            })?),
            None => None,
        };
        let nano_cpus = match limits.get("cpu") {
            Some(q) => Some(parse_cpu(q).ok_or_else(|| {
                StartError::Unsupported(format!(
                    "resources.limits.cpu: `{}` is not a quantity (e.g. 500m, 2)",
                    plain(q)
                ))
            })?),
            None => None,
        };
        let user = run_as(launch.security_context.as_ref()).map_err(StartError::Unsupported)?;
        let mut binds = vec![
            format!("{}:{DATA}", absolute(&self.layout.data).display()),
            format!("{}:{OUTPUTS}", absolute(&self.layout.outputs).display()),
        ];
        binds.extend(
            s.binds_of(&launch.volume_mounts)
                .map_err(StartError::Unsupported)?,
        );
        let n = s.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("assay-{}-{n}", s.tag);
        let mut labels = s.labels.clone();
        labels.insert("io.assay.log".into(), output.reference().to_string());
        let aliases = match &launch.kind {
            LaunchKind::Service { name, .. } => Some(vec![name.clone()]),
            _ => None,
        };
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            entrypoint,
            cmd,
            env: Some(launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir,
            user,
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some(s.network.clone()),
                memory,
                // No swap beyond the limit: a step over its memory limit is killed (137).
                memory_swap: memory,
                nano_cpus,
                // A small init as PID 1 passes SIGTERM on: a server that ignores it as PID 1
                // (most do) would otherwise hold every stop for the whole grace period.
                init: Some(true),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    s.network.clone(),
                    EndpointSettings {
                        aliases,
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = s
            .engine
            .docker()
            .create_container(Some(options), body)
            .await
            .map_err(|e| {
                StartError::Failed(format!(
                    "failed to create a container of {image}: {}",
                    describe(&e)
                ))
            })?;
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(created.id.clone());
        Ok(created.id)
    }

    /// The host path of a path as steps see it, when it is one of the execution's folders.
    fn host_path(&self, path: &str) -> Option<std::path::PathBuf> {
        let under = |dir: &str| {
            path.strip_prefix(dir)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .is_some()
        };
        (under(DATA) || under(OUTPUTS)).then(|| self.layout.to_host(path))
    }

    async fn start_process(
        &self,
        launch: Launch,
        output: Output,
    ) -> Result<Box<dyn Process>, StartError> {
        let id = self.create(&launch, &output).await?;
        let docker = self.shared.engine.docker().clone();
        let remove = |id: String| {
            let docker = docker.clone();
            async move {
                let _ = docker
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
            }
        };
        // Follow the exit before starting, so no exit is missed.
        let (exit_tx, exit) = watch::channel(None);
        let waiter = {
            let docker = docker.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let options = WaitContainerOptionsBuilder::default()
                    .condition("next-exit")
                    .build();
                let code = match docker.wait_container(&id, Some(options)).next().await {
                    Some(Ok(r)) => r.status_code as i32,
                    Some(Err(bollard::errors::Error::DockerContainerWaitError {
                        code, ..
                    })) => code as i32,
                    _ => exit_code_of(&docker, &id).await.unwrap_or(-1),
                };
                let _ = exit_tx.send(Some((code, Instant::now())));
            })
        };
        if let Err(e) = docker.start_container(&id, None).await {
            waiter.abort();
            remove(id.clone()).await;
            self.forget(&id);
            return Err(StartError::Failed(format!(
                "failed to start the container: {}",
                describe(&e)
            )));
        }
        let started = Instant::now();
        let address = match &launch.kind {
            LaunchKind::Service { name, index } => {
                self.services
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((name.clone(), *index), id.clone());
                self.address_of(&id).await
            }
            _ => String::new(),
        };
        let pump = tokio::spawn(pump_logs(docker.clone(), id.clone(), output));
        Ok(Box::new(ContainerProcess {
            docker,
            id,
            address,
            exit,
            started,
            pump,
            containers: self.containers.clone(),
        }))
    }

    async fn address_of(&self, id: &str) -> String {
        let inspect = self
            .shared
            .engine
            .docker()
            .inspect_container(id, None)
            .await;
        inspect
            .ok()
            .and_then(|c| c.network_settings)
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&self.shared.network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
            .unwrap_or_default()
    }

    fn forget(&self, id: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c != id);
    }
}

impl Scope for ContainerScope {
    fn worker<'a>(
        &'a self,
        layout: &'a Layout,
        reference: &'a str,
        index: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        Box::pin(async move {
            let host = self.host.worker(layout, reference, index).await?;
            let scope = ContainerScope::new(self.shared.clone(), layout.clone(), host, false)
                .map_err(|e| {
                    RuntimeError::Failed(format!(
                        "failed to prepare {}: {e}",
                        layout.data.display()
                    ))
                })?;
            Ok(Box::new(scope) as Box<dyn Scope>)
        })
    }

    fn base_env(&self) -> BTreeMap<String, String> {
        self.shared.base.clone()
    }

    fn start<'a>(
        &'a self,
        launch: Launch,
        output: Output,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(async move {
            if launch.kind == LaunchKind::Tool {
                return self.host.start(launch, output).await;
            }
            self.start_process(launch, output).await
        })
    }

    fn probe<'a>(&'a self, launch: Launch) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let LaunchKind::Probe { service, index } = &launch.kind else {
                return Err(RuntimeError::Unsupported(
                    "only readiness probes run as probes".to_string(),
                ));
            };
            let target = self
                .services
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(service.clone(), *index))
                .cloned()
                .ok_or_else(|| {
                    RuntimeError::Failed(format!("service {service} {index} has no container"))
                })?;
            exec_probe(&self.shared.engine, &target, &launch).await
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let left: Vec<String> =
                std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
            let docker = self.shared.engine.docker();
            for id in left {
                let _ = docker
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
            }
            self.host.close().await;
            if self.root {
                self.shared.remove_network().await;
                self.shared.remove_volumes().await;
            }
        })
    }
}

/// The volumes an execution's containers may mount: each of the plan's `pvcs` (a volume of the
/// execution, as Testkube makes a claim per execution), and each `pod.volumes` entry with
/// `emptyDir` (`medium: Memory`: tmpfs). Name → whether it is tmpfs.
fn volumes_of(plan: &assay_spec::plan::Plan) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let Some(k) = &plan.kubernetes else {
        return out;
    };
    out.extend(k.pvcs.keys().map(|name| (name.clone(), false)));
    let pod_volumes = k
        .pod
        .as_ref()
        .and_then(|p| p.get("volumes"))
        .and_then(Value::as_array);
    for v in pod_volumes.into_iter().flatten() {
        if let (Some(name), Some(dir)) = (v.get("name").and_then(Value::as_str), v.get("emptyDir"))
        {
            let memory = dir.get("medium").and_then(Value::as_str) == Some("Memory");
            out.push((name.to_string(), memory));
        }
    }
    out
}

/// A folder as the engine needs it for a bind mount: absolute (a relative `--data-dir` gives
/// relative folders).
fn absolute(dir: &Path) -> std::path::PathBuf {
    dir.canonicalize()
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// Lets any user write in a folder steps share (a step may run as any `runAsUser`).
fn open_up(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

/// An execution id as a container name part (`[a-zA-Z0-9_.-]`).
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}
