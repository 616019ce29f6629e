//! The host runtime: processes on this machine, each in its own process group
//! ([`crate::process`]), confined per execution by the private namespaces of
//! [`crate::sandbox`] when the OS allows them (see [`Isolation`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_spec::plan::{PlanProcess, PlanStep};

use crate::layout::{self, Layout};
use crate::options::Isolation;
use crate::process::{ProcessSpec, Running};
use crate::runtime::{
    BoxFuture, Launch, LaunchKind, Output, Process, ProcessOutcome, Runtime, RuntimeError, Scope,
    Setup, StartError, Stop,
};
use crate::sandbox::{self, Confinement, Sandbox};

/// The address services are reached at on the host.
pub const SERVICE_IP: &str = "127.0.0.1";

/// Runs a plan's processes on this machine (the default runtime of [`crate::RunOptions`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostRuntime;

impl Runtime for HostRuntime {
    fn name(&self) -> &'static str {
        "host"
    }

    fn open<'a>(&'a self, setup: Setup<'a>) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        Box::pin(async move {
            let opts = setup.options;
            let needs = plan_mentions_private_paths(&setup.plan.root);
            let namespace = match opts.isolation {
                Isolation::None if needs => {
                    return Err(private_path_error("isolation is turned off"));
                }
                Isolation::None | Isolation::Pod => false,
                Isolation::Namespace => true,
                Isolation::Auto => match sandbox::support() {
                    sandbox::Support::Unavailable(why) if needs => {
                        return Err(private_path_error(why));
                    }
                    sandbox::Support::Unavailable(_) => false,
                    _ => true,
                },
            };
            let work_dir = &opts.work_dir;
            let confinement = namespace.then(|| Confinement {
                hidden: opts.hidden.clone(),
                work_dir: work_dir.canonicalize().unwrap_or_else(|_| work_dir.clone()),
            });
            let scope = HostScope::start(
                setup.layout.clone(),
                confinement,
                Arc::new(opts.shell.clone()),
                Arc::new(opts.base_env.clone()),
            )
            .await?;
            Ok(Box::new(scope) as Box<dyn Scope>)
        })
    }
}

/// One execution's (or worker's) processes on the host.
struct HostScope {
    layout: Layout,
    confinement: Option<Confinement>,
    /// The namespace holder, until [`Scope::close`].
    sandbox: Mutex<Option<Sandbox>>,
    shell: Arc<Vec<String>>,
    /// The caller's base environment ([`crate::RunOptions::base_env`]).
    base: Arc<BTreeMap<String, String>>,
}

impl HostScope {
    async fn start(
        layout: Layout,
        confinement: Option<Confinement>,
        shell: Arc<Vec<String>>,
        base: Arc<BTreeMap<String, String>>,
    ) -> Result<Self, RuntimeError> {
        let sandbox = match &confinement {
            Some(c) => Some(
                Sandbox::start(&layout.root.join(".root"), &layout.data, &layout.outputs, c)
                    .await
                    .map_err(|e| RuntimeError::Failed(e.to_string()))?,
            ),
            None => None,
        };
        Ok(HostScope {
            layout,
            confinement,
            sandbox: Mutex::new(sandbox),
            shell,
            base,
        })
    }

    /// What to start for a launch, or why it cannot start.
    fn spec(&self, launch: &Launch) -> Result<ProcessSpec, StartError> {
        let env: Vec<(String, String)> = launch
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if launch.kind == LaunchKind::Tool {
            return Ok(ProcessSpec {
                argv: launch.argv(),
                env,
                cwd: Some(self.layout.to_host(&launch.working_dir)),
                inside: None,
                user: None,
                program: None,
            });
        }
        let argv = match &launch.shell {
            Some(script) => {
                let mut argv: Vec<String> = self.shell.as_ref().clone();
                argv.push(script.clone());
                argv
            }
            None => launch.argv(),
        };
        if argv.is_empty() {
            // An image's entrypoint, which this runtime cannot know (the compiler notes it).
            return Err(StartError::Unsupported(
                "the step has no command to run".to_string(),
            ));
        }
        let cwd = &launch.working_dir;
        let host_cwd = self.layout.to_host(cwd);
        if cwd.starts_with(layout::DATA) {
            // Content and working folders under /data may not exist yet.
            let _ = std::fs::create_dir_all(&host_cwd);
            self.layout
                .give_to_steps(&host_cwd)
                .map_err(|e| StartError::Unsupported(e.to_string()))?;
        }
        let user = crate::step_user();
        let sandbox = self.sandbox.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match sandbox.as_ref() {
            // As root: started directly inside by a thread of ours, which becomes the step
            // user first when there is one (no `nsenter`).
            Some(sb) if sb.inside().is_some() => ProcessSpec {
                argv: argv.clone(),
                env,
                cwd: Some(cwd.into()),
                inside: sb.inside(),
                user: user.cloned(),
                program: argv.first().cloned(),
            },
            Some(sb) => ProcessSpec {
                argv: sb.wrap(&argv, cwd),
                env,
                cwd: None,
                inside: None,
                user: None,
                program: argv.first().cloned(),
            },
            None => ProcessSpec {
                argv,
                env,
                cwd: Some(host_cwd),
                inside: None,
                user: user.cloned(),
                program: None,
            },
        })
    }

    /// The environment processes start from: [`crate::starting_env`], a default `PATH`, `CI=1`, and the execution's temporary folder.
    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = crate::env::starting_env(&self.base);
        env.entry("PATH".into())
            .or_insert_with(|| crate::env::DEFAULT_PATH.into());
        env.entry("CI".into()).or_insert_with(|| "1".into());
        // No colour settings of our own: the user's pass through (`TERMINAL_ENV`), or none.
        // The host path works inside the namespace too (the execution's work folder is mounted
        // there at its host path).
        env.insert("TMPDIR".into(), self.layout.tmp.display().to_string());
        if let Some(u) = crate::step_user() {
            env.insert("USER".into(), u.name.clone());
            env.insert("LOGNAME".into(), u.name.clone());
            env.insert("HOME".into(), self.layout.tmp.display().to_string());
        }
        env
    }
}

impl Scope for HostScope {
    fn worker<'a>(
        &'a self,
        layout: &'a Layout,
        _reference: &'a str,
        _index: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        Box::pin(async move {
            let scope = HostScope::start(
                layout.clone(),
                self.confinement.clone(),
                self.shell.clone(),
                self.base.clone(),
            )
            .await?;
            Ok(Box::new(scope) as Box<dyn Scope>)
        })
    }

    fn base_env(&self) -> BTreeMap<String, String> {
        self.environment()
    }

    fn start<'a>(
        &'a self,
        launch: Launch,
        output: Output,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(async move {
            let spec = self.spec(&launch)?;
            let running = crate::process::spawn(&spec, output)
                .map_err(|e| StartError::Failed(e.to_string()))?;
            Ok(Box::new(HostProcess(running)) as Box<dyn Process>)
        })
    }

    fn probe<'a>(&'a self, launch: Launch) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let spec = self.spec(&launch)?;
            let mut cmd = tokio::process::Command::new(&spec.argv[0]);
            cmd.args(&spec.argv[1..])
                .env_clear()
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .current_dir(spec.cwd.clone().unwrap_or_else(|| "/".into()))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            // Born where a step would be (inside the sandbox its `cwd` is a path as seen there),
            // as the step user when there is one, with this runtime's reaper.
            let failed = |e: &dyn std::fmt::Display| RuntimeError::Failed(e.to_string());
            let runtime = tokio::runtime::Handle::current();
            let mut child = sandbox::start_as(
                spec.inside.as_deref(),
                spec.user.as_ref(),
                || Ok::<_, sandbox::EnterError>(()),
                move || {
                    let _runtime = runtime.enter();
                    Ok(cmd.spawn())
                },
            )
            .map_err(|e| failed(&e))?
            .map_err(|e| failed(&e))?;
            let out = child
                .wait()
                .await
                .map_err(|e| RuntimeError::Failed(e.to_string()))?;
            if out.success() {
                Ok(())
            } else {
                Err(RuntimeError::ProbeExited(out.to_string()))
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let sandbox = self
            .sandbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Box::pin(async move {
            if let Some(s) = sandbox {
                s.stop().await;
            }
        })
    }
}

/// A process group on this machine.
struct HostProcess(Running);

impl Process for HostProcess {
    fn address(&self) -> String {
        SERVICE_IP.to_string()
    }

    fn try_exit_code(&mut self) -> Option<i32> {
        self.0.try_exit_code()
    }

    fn ended_by_itself(&mut self) -> BoxFuture<'_, Option<(i32, Duration)>> {
        Box::pin(self.0.ended_by_itself())
    }

    fn wait(self: Box<Self>, stop: Stop) -> BoxFuture<'static, ProcessOutcome> {
        Box::pin(async move { self.0.wait(stop.deadline, &stop.cancel, stop.grace).await })
    }
}

/// The scope of an execution whose runtime could not be opened: it starts nothing (the
/// engine only records the plan's steps as skipped with it).
pub(crate) struct Unopened;

impl Scope for Unopened {
    fn worker<'a>(
        &'a self,
        _layout: &'a Layout,
        _reference: &'a str,
        _index: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Scope>, RuntimeError>> {
        Box::pin(async { Err(RuntimeError::NotOpen) })
    }

    fn base_env(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn start<'a>(
        &'a self,
        _launch: Launch,
        _output: Output,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(async { Err(StartError::Unsupported("the runtime is not open".into())) })
    }

    fn probe<'a>(&'a self, _launch: Launch) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async { Err(RuntimeError::NotOpen) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn private_path_error(why: &str) -> RuntimeError {
    RuntimeError::Unsupported(format!(
        "this workflow uses absolute paths under /data or /testkube, which need a private mount namespace on this machine, but {why}\n\nhint: run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces), or use paths relative to the working directory instead of /data"
    ))
}

/// Whether any process of the plan (steps, services, workers) refers to `/data` or
/// `/testkube`, which only a private mount namespace can provide to a process. `glob()`
/// counts: it gives absolute paths as steps see them (`/data/repo/...`).
fn plan_mentions_private_paths(step: &PlanStep) -> bool {
    // `glob()` and a step's results folder (`step.results`, `step.<id>.results`) are paths
    // under `/data` too.
    let globs = |s: &str| s.contains("glob(") || (s.contains("{{") && s.contains(".results"));
    let process = |p: &PlanProcess| {
        p.command
            .iter()
            .chain(&p.args)
            .chain(&p.shell)
            .chain(p.env.iter().filter_map(|e| e.value.as_ref()))
            .any(|s| layout::mentions_private_paths(s) || globs(s))
    };
    let strategy = |s: &assay_spec::plan::PlanStrategy| {
        s.shards
            .values()
            .chain(s.matrix.values())
            .any(|v| v.as_str().is_some_and(globs))
    };
    step.commands.iter().any(process)
        || step.services.iter().any(|s| {
            strategy(&s.strategy)
                || s.instances.iter().flatten().any(|i| process(&i.process))
                || s.template.iter().any(|t| process(&t.process))
        })
        || step.parallel.as_ref().is_some_and(|p| {
            strategy(&p.strategy)
                || p.workers
                    .iter()
                    .flatten()
                    .any(|w| plan_mentions_private_paths(&w.root))
                || p.worker
                    .iter()
                    .any(|w| plan_mentions_private_paths(&w.root))
        })
        || step.steps.iter().any(plan_mentions_private_paths)
}
