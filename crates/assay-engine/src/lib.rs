//! Runs a compiled [`Plan`] through a [`Runtime`] (on this machine by default: [`HostRuntime`]).
//!
//! The engine walks the plan's step tree with Testkube's semantics (conditions, optional,
//! negative, retry, timeout, services, parallel workers, outputs, artifacts; see
//! [`runner`](crate::runner) for how results are computed), runs every process in its own
//! process group, masks secrets in everything it reports and tells its caller what happens
//! through one closed [`Event`] enum on a bounded channel. It knows nothing of SQL or
//! terminals, and of HTTP only as a client downloading `content.tarball`: persisting and
//! showing events is the caller's job.
//!
//! ```no_run
//! # async fn demo(plan: assay_spec::plan::Plan) {
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
//! let opts = assay_engine::RunOptions::new("/var/lib/assay/executions/01J0");
//! let run = tokio::spawn(assay_engine::run(plan, opts, tx));
//! while let Some(event) = rx.recv().await {
//!     println!("{event:?}");
//! }
//! let outcome = run.await.unwrap();
//! println!("{}", outcome.status);
//! # }
//! ```

mod artifacts;
mod content;
mod env;
mod event;
mod host;
mod layout;
mod logs;
mod machine;
mod mask;
mod options;
mod outputs;
mod parallel;
mod process;
pub mod refs;
mod runner;
pub mod runtime;
pub mod sandbox;
mod services;
mod sink;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use assay_spec::plan::{Plan, PlanStep};
use assay_spec::status::{ExecutionStatus, StepStatus};
use tokio::sync::mpsc;

pub use env::{DEFAULT_PATH, INHERITED_ENV, TERMINAL_ENV, inherited_env, starting_env};
pub use event::{Event, ExecutionOutcome, LogChunk, ServiceState, StepResult, WorkerState};
pub use host::{HostRuntime, SERVICE_IP};
pub use logs::MAX_LINE;
pub use mask::{MASK, Masker};
pub use options::{
    DEFAULT_SHELL, Isolation, LaunchError, LaunchRequest, Launched, RunOptions, WorkflowLauncher,
};
pub use parallel::{TransferError, clean_path, fetch_allowed, transfer_files};
pub use runtime::{Runtime, RuntimeError};

use crate::layout::Layout;
use crate::runner::{Runner, Shared};
use crate::sink::EventSink;

/// Runs `plan` to its end and returns the outcome; every event also goes to `events` (the last
/// one is [`Event::ExecutionFinished`]). Never panics on bad input: problems become a failed
/// execution with a reason.
pub async fn run(plan: Plan, opts: RunOptions, events: mpsc::Sender<Event>) -> ExecutionOutcome {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let masker = masker(&plan, &opts);
    let sink = EventSink::new(events);
    let shared = Arc::new(Shared { opts, masker, sink });

    let outcome = match prepare(&plan, &shared).await {
        Ok((layout, scope)) => {
            let mut runner = Runner::new(
                shared.clone(),
                layout,
                scope,
                String::new(),
                shared.opts.cancel.clone(),
            );
            let deadline = plan.deadline_ms.map(|ms| start + Duration::from_millis(ms));
            let root = runner.run_root(&plan.root, deadline).await;
            runner.scope.close().await;
            let status = parallel::execution_status(root, runner.interrupt.as_ref());
            let error = match (&runner.interrupt, status) {
                (Some(runner::Interrupt::Deadline), _) => Some(format!(
                    "the execution's deadline (activeDeadlineSeconds: {}s) passed",
                    plan.deadline_ms.unwrap_or(0) / 1000
                )),
                (Some(runner::Interrupt::Abort), _) => Some("the execution was aborted".into()),
                _ => runner.fatal.clone(),
            };
            let outputs = runner
                .facts
                .iter()
                .filter(|(_, f)| !f.outputs.is_empty())
                .map(|(id, f)| (id.clone(), f.outputs.clone()))
                .collect();
            ExecutionOutcome {
                status,
                error,
                steps: std::mem::take(&mut runner.results),
                outputs,
                started_at,
                finished_at: SystemTime::now(),
            }
        }
        Err(e) => {
            let e = shared.masker.mask(&e.to_string()).into_owned();
            let mut runner = Runner::new(
                shared.clone(),
                Layout::with(
                    &shared.opts.work_dir,
                    shared.opts.data_dir.as_deref(),
                    shared.opts.outputs_dir.as_deref(),
                ),
                Arc::new(host::Unopened),
                String::new(),
                shared.opts.cancel.clone(),
            );
            runner.skip_tree(&plan.root, Some(e.clone())).await;
            ExecutionOutcome {
                status: ExecutionStatus::Failed,
                error: Some(e),
                steps: std::mem::take(&mut runner.results),
                outputs: Default::default(),
                started_at,
                finished_at: SystemTime::now(),
            }
        }
    };
    shared
        .sink
        .send(Event::ExecutionFinished {
            status: outcome.status,
            error: outcome.error.clone(),
            at: outcome.finished_at,
        })
        .await;
    outcome
}

/// Why an execution could not start (its text is `ExecutionOutcome::error`).
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    StepUser(#[from] sandbox::StepUserError),
    #[error("failed to create {}: {source}", path.display())]
    WorkDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Creates the execution's folders and opens the runtime on them.
async fn prepare(
    plan: &Plan,
    shared: &Shared,
) -> Result<(Layout, Arc<dyn runtime::Scope>), OpenError> {
    if let Err(e) = sandbox::step_user() {
        return Err(e.clone().into());
    }
    let work_dir = &shared.opts.work_dir;
    std::fs::create_dir_all(work_dir).map_err(|source| OpenError::WorkDir {
        path: work_dir.clone(),
        source,
    })?;
    let layout = Layout::create_in(
        Layout::with(
            work_dir,
            shared.opts.data_dir.as_deref(),
            shared.opts.outputs_dir.as_deref(),
        ),
        step_user(),
    )?;
    let setup = runtime::Setup {
        plan,
        layout: &layout,
        options: &shared.opts,
    };
    let scope = shared.opts.runtime.open(setup).await?;
    Ok((layout, Arc::from(scope)))
}

/// Closes what the process that started this one left open beyond stdin, stdout and stderr (a
/// shell's or a CI runner's descriptors): every step would inherit those not marked
/// close-on-exec. Called first thing by a program that runs steps, before it opens anything of
/// its own.
pub fn close_inherited_descriptors() {
    let inherited: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        Err(_) => return,
    };
    // The listing's own descriptor is closed already (EBADF, ignored).
    for fd in inherited {
        let _ = nix::unistd::close(fd);
    }
}

/// The account steps run as (see [`sandbox::step_user`]).
pub(crate) fn step_user() -> Option<&'static sandbox::StepUser> {
    sandbox::step_user().as_ref().ok().and_then(Option::as_ref)
}

/// Literal git tokens and ssh keys in the plan are secrets too.
/// The masker [`run`] masks this plan's events with: sensitive config values, the values in
/// `opts.masked`, git tokens and ssh keys. The caller masks what it derives from the run's files (JUnit
/// reports) with the same one.
pub fn masker(plan: &Plan, opts: &RunOptions) -> Masker {
    let mut secrets: Vec<String> = opts.secrets.values().cloned().collect();
    secrets.extend(opts.masked.iter().cloned());
    secrets.extend(
        opts.named_secrets
            .values()
            .flat_map(|s| s.values().cloned()),
    );
    collect_git_tokens(&plan.root, &mut secrets);
    Masker::new(secrets.iter().map(String::as_str))
}

fn collect_git_tokens(step: &PlanStep, out: &mut Vec<String>) {
    if let Some(git) = step.content.as_ref().and_then(|c| c.git.as_ref()) {
        for literal in [&git.token, &git.ssh_key] {
            if !literal.is_empty() && !literal.contains("{{") {
                out.push(literal.clone());
            }
        }
    }
    for s in &step.steps {
        collect_git_tokens(s, out);
    }
    if let Some(p) = &step.parallel {
        for w in p.workers.iter().flatten() {
            collect_git_tokens(&w.root, out);
        }
    }
}

/// Whether a step status counts as success for the steps after it.
pub fn succeeded(status: StepStatus) -> bool {
    matches!(status, StepStatus::Passed | StepStatus::Skipped)
}
