//! `--runtime host|container` (`ASSAY_RUNTIME`) of `assay run`, `assay plan` and
//! `assay server`: where a run's steps, services and workers run.

use std::sync::{Arc, OnceLock};

use assay_container::ContainerRuntime;
use assay_container::client::{Engine, EngineError, PullPolicy};
use assay_spec::plan::{Plan, PlanProcess, PlanStep};

use crate::error::UserError;
use crate::exit;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// On this machine, in private namespaces (images are recorded, not run)
    #[default]
    Host,
    /// Each step, service and parallel worker in its image, through the Docker Engine API
    /// (Docker or Podman: DOCKER_HOST, else their default sockets)
    Container,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Where steps run: `host` (this machine) or `container` (each step, service and worker in
    /// its image, through Docker or Podman: DOCKER_HOST, else their default sockets; a process
    /// without an image runs in ASSAY_CONTAINER_IMAGE, default busybox:1.36.1-musl)
    #[arg(long, value_enum, env = "ASSAY_RUNTIME", default_value = "host")]
    pub runtime: RuntimeKind,
}

/// The engine of this process's container runtime, once [`RuntimeArgs::install`] connected.
static ENGINE: OnceLock<Engine> = OnceLock::new();

/// The runtime [`RuntimeArgs::install`] made this process's.
pub fn active() -> RuntimeKind {
    if ENGINE.get().is_some() {
        RuntimeKind::Container
    } else {
        RuntimeKind::Host
    }
}

/// The image of processes that name none.
pub fn default_image() -> String {
    std::env::var("ASSAY_CONTAINER_IMAGE")
        .ok()
        .filter(|i| !i.trim().is_empty())
        .unwrap_or_else(|| assay_container::DEFAULT_IMAGE.to_string())
}

impl RuntimeArgs {
    /// With `container`: connects to the engine (exit 3 with a hint when none answers) and
    /// makes the container runtime the one of every run of this process.
    pub async fn install(&self) -> anyhow::Result<()> {
        if self.runtime == RuntimeKind::Host {
            return Ok(());
        }
        let runtime = ContainerRuntime::new(None, |line| eprintln!("{line}"))
            .with_default_image(default_image());
        let engine = runtime.connect().await.map_err(engine_error)?;
        let _ = ENGINE.set(engine);
        assay_runner::set_default_runtime(Arc::new(runtime));
        Ok(())
    }
}

/// An engine problem as the user's error: exit 2 for an image that is not there, 3 for an
/// engine that does not answer.
pub fn engine_error(e: EngineError) -> anyhow::Error {
    let code = if e.is_input_error() {
        exit::INVALID
    } else {
        exit::INTERNAL
    };
    let text = e.to_string();
    let (message, hint) = match text.split_once("\n\nhint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (text, None),
    };
    UserError {
        code,
        message,
        hint,
    }
    .into()
}

/// With the container runtime: makes sure every image the plan names (as written, not by an
/// expression) is on this machine, pulling as its `imagePullPolicy` says, before anything is
/// recorded, so a missing image is one error (exit 2) rather than a failed execution.
pub async fn check_images(plan: &Plan) -> anyhow::Result<()> {
    let Some(engine) = ENGINE.get() else {
        return Ok(());
    };
    let mut images: Vec<(String, Option<String>)> = Vec::new();
    collect(&plan.root, &mut images);
    let mut seen = std::collections::HashSet::new();
    for (image, policy) in images {
        if image.contains("{{") || !seen.insert(image.clone()) {
            continue;
        }
        let policy = PullPolicy::for_image(policy.as_deref(), &image)
            .map_err(|e| UserError::invalid(format!("image {image}: {e}")))?;
        engine
            .ensure_image(&image, policy, &mut |line| eprintln!("{line}"))
            .await
            .map_err(engine_error)?;
    }
    Ok(())
}

fn collect(step: &PlanStep, out: &mut Vec<(String, Option<String>)>) {
    let mut add = |p: &PlanProcess| {
        let image = p.image.clone().unwrap_or_else(default_image);
        out.push((image, p.image_pull_policy.clone()));
    };
    step.commands.iter().for_each(&mut add);
    for s in &step.services {
        s.instances
            .iter()
            .flatten()
            .map(|i| &i.process)
            .chain(s.template.iter().map(|t| &t.process))
            .for_each(&mut add);
    }
    if let Some(p) = &step.parallel {
        for w in p.workers.iter().flatten() {
            collect(&w.root, out);
        }
        if let Some(w) = &p.worker {
            collect(&w.root, out);
        }
    }
    for s in &step.steps {
        collect(s, out);
    }
}

/// What `assay plan --runtime container` says instead of the host runtime's notes.
pub fn describe(kind: RuntimeKind, plan: &mut Plan) {
    if kind == RuntimeKind::Host {
        return;
    }
    plan.notes
        .retain(|n| !n.contains("the local runtime") && !n.contains("apply on Kubernetes only"));
    plan.notes.insert(
        0,
        format!(
            "runtime: container: every step, service and parallel worker runs in its image through the Docker Engine API (a process without an image in {}); /data and /testkube/outputs are the execution's folders; resources.limits (cpu, memory) and securityContext.runAsUser/runAsGroup apply; services are reached by their address on the execution's network",
            default_image()
        ),
    );
}
