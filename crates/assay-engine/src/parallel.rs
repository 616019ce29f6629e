//! `parallel` workers and `execute` of other workflows.
//!
//! Each worker is a separate execution in Testkube (its own pod); here it gets its own folder
//! (`<work dir>/workers/<parallel ref>/<index>/`, with its own `/data` and namespace), its own
//! runner, and refs prefixed `<parallel ref>/<index>/` in events. `transfer` copies files from
//! the main `/data` into the worker before it starts, `fetch` copies them back after it ends.
//! `parallelism` bounds the workers running at once (a semaphore); `failFast` aborts the
//! others at the first failure; `paused` starts the first batch together (a barrier).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use assay_spec::plan::{
    PlanExecute, PlanParallel, PlanStrategy, PlanTransfer, PlanWorker, StrategyInstance,
};
use assay_spec::status::{ExecutionStatus, StepStatus};
use globset::{Glob, GlobSetBuilder};
use serde_json::Value;
use tokio::sync::{Barrier, Semaphore};

use crate::event::{Event, StepResult, WorkerState};
use crate::layout::Layout;
use crate::options::LaunchRequest;
use crate::runner::{Attempt, Frame, Interrupt, RenderError, Runner};

/// What a finished worker hands back.
struct WorkerDone {
    status: ExecutionStatus,
    results: indexmap::IndexMap<String, StepResult>,
    error: Option<String>,
}

/// Why a strategy or a parallel step's workers could not be made at run time (the step's
/// message puts `parallel: `, `execute NAME: ` or `service NAME: ` before it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExpandError {
    #[error(transparent)]
    Strategy(#[from] assay_spec::strategy::StrategyError),
    #[error("the strategy depends on values that are unknown at run time")]
    Unknown,
    #[error("parallel has neither workers nor a worker template")]
    NoWorkers,
    #[error(transparent)]
    Worker(#[from] assay_spec::strategy::WorkerError),
}

/// A config value of an `execute`d workflow whose template failed (the step's message puts
/// `execute NAME: ` before it).
#[derive(Debug, thiserror::Error)]
#[error("config.{key}: {source}")]
pub(crate) struct ConfigError {
    key: String,
    /// Boxed: an expression error is large, and this is the rare path.
    source: Box<RenderError>,
}

/// Why files were not copied between an execution and its worker (the worker's error puts
/// `transfer: ` or `fetch: ` before it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A pattern of the rule's `files`, as written.
    #[error("`{pattern}`: {source}")]
    Pattern {
        pattern: String,
        source: globset::Error,
    },
    /// The patterns could not be combined into one matcher.
    #[error("{0}")]
    Matcher(globset::Error),
    /// A folder or file could not be made or copied (the path is this machine's).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A remote worker sent a file outside the targets of its `fetch` rules.
    #[error("the worker sent {0}, which is not under a target of its fetch rules: not written")]
    NotAllowed(String),
}

impl TransferError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
        move |source| TransferError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The execution status for a root step's status and the walk's interrupt.
pub(crate) fn execution_status(root: StepStatus, interrupt: Option<&Interrupt>) -> ExecutionStatus {
    match (interrupt, root) {
        (Some(Interrupt::Abort | Interrupt::Deadline), _) | (_, StepStatus::Aborted) => {
            ExecutionStatus::Aborted
        }
        (_, StepStatus::Passed | StepStatus::Skipped) => ExecutionStatus::Passed,
        _ => ExecutionStatus::Failed,
    }
}

impl Runner {
    /// Concrete copies of a strategy whose values are known now.
    pub(crate) async fn strategy_instances(
        &self,
        strategy: &PlanStrategy,
        full: &str,
        cwd: &str,
    ) -> Result<Vec<StrategyInstance>, ExpandError> {
        Ok(self.strategy_params(strategy, full, cwd).await?.instances())
    }

    /// A strategy evaluated now (shards balanced by durations when it asks for it). Lists
    /// from `glob()` are read where Testkube reads them: this execution's files (after
    /// `content`), relative to the step's working directory `cwd`. A run-time list that comes
    /// out empty is reported as a warning of step `full`.
    async fn strategy_params(
        &self,
        strategy: &PlanStrategy,
        full: &str,
        cwd: &str,
    ) -> Result<assay_spec::strategy::StrategyParams, ExpandError> {
        let env = self.base_env();
        let params = self.with_machine(true, None, &env, Some(cwd), |m| {
            assay_spec::strategy::params(strategy, &[m])
        })?;
        let params = params.ok_or(ExpandError::Unknown)?;
        for key in &params.empty_shards {
            let Some(Value::String(expr)) = strategy.shards.get(key) else {
                continue;
            };
            let message = format!(
                "shards.{key}: `{expr}` gave no items (relative to {cwd}), so every copy gets an empty `shard.{key}`"
            );
            self.emit(Event::Warning {
                reference: full.to_string(),
                message: self.mask(&message),
            })
            .await;
        }
        Ok(params)
    }

    /// The workers of a parallel step: from the plan, or expanded now (see
    /// [`assay_spec::strategy::expand_worker`]).
    async fn workers(
        &self,
        par: &PlanParallel,
        full: &str,
        cwd: &str,
    ) -> Result<Vec<PlanWorker>, ExpandError> {
        if let Some(w) = &par.workers {
            return Ok(w.clone());
        }
        let Some(template) = &par.worker else {
            return Err(ExpandError::NoWorkers);
        };
        let params = self.strategy_params(&par.strategy, full, cwd).await?;
        params
            .instances()
            .into_iter()
            .map(|i| {
                let predicted_ms = params.predicted_ms(i.index);
                let mut w = assay_spec::strategy::expand_worker(template, i)?;
                w.predicted_ms = predicted_ms;
                Ok(w)
            })
            .collect()
    }

    pub(crate) async fn parallel(
        &mut self,
        par: &PlanParallel,
        full: &str,
        frame: &Frame,
        a: &mut Attempt,
    ) {
        let workers = match self.workers(par, full, &frame.cwd).await {
            Ok(w) => w,
            Err(e) => return a.fail(format!("parallel: {e}")),
        };
        let count = workers.len() as u64;
        if count == 0 {
            return;
        }
        let limit = par
            .parallelism
            .map_or(count, |p| u64::from(p.max(1)).min(count));
        let semaphore = Arc::new(Semaphore::new(limit as usize));
        let barrier = Arc::new(Barrier::new(limit as usize));
        let group = self.cancel.child_token();
        let root_dir = self
            .shared
            .opts
            .work_dir
            .join("workers")
            .join(sanitize(full));
        let scope = self.scope.clone();
        let main_data = self.layout.data.clone();
        let main_outputs = self.layout.outputs.clone();
        let deadline = frame.deadline.as_ref().map(|d| d.0);
        for w in &workers {
            self.emit(Event::Worker {
                reference: full.to_string(),
                index: w.instance.index,
                count,
                state: WorkerState::Queued,
            })
            .await;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (position, worker) in workers.into_iter().enumerate() {
            let shared = self.shared.clone();
            let semaphore = semaphore.clone();
            let barrier = barrier.clone();
            let group = group.clone();
            let dir = root_dir.join(worker.instance.index.to_string());
            let full = full.to_string();
            let (main_data, main_outputs) = (main_data.clone(), main_outputs.clone());
            let paused = par.paused && (position as u64) < limit;
            let fail_fast = par.fail_fast;
            let scope = scope.clone();
            tasks.spawn(async move {
                let index = worker.instance.index;
                let announce = |state| {
                    let reference = full.clone();
                    shared.sink.send(Event::Worker {
                        reference,
                        index,
                        count,
                        state,
                    })
                };
                let Ok(_permit) = semaphore.acquire_owned().await else {
                    return (
                        index,
                        WorkerDone {
                            status: ExecutionStatus::Aborted,
                            results: Default::default(),
                            error: None,
                        },
                    );
                };
                // A worker's own deadline or its parent step's, whichever is first.
                let own = worker
                    .deadline_ms
                    .map(|ms| Instant::now() + std::time::Duration::from_millis(ms));
                let deadline = match (own, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let mut files = Vec::new();
                let mut transfer_error = None;
                for t in &worker.transfer {
                    match transfer_files(t, &|p| main_host(&main_data, &main_outputs, p)) {
                        Ok(f) => files.extend(f),
                        Err(e) => {
                            transfer_error.get_or_insert(format!("transfer: {e}"));
                        }
                    }
                }
                let remote = scope.remote_worker(crate::runtime::RemoteWorker {
                    reference: full.clone(),
                    index,
                    count,
                    worker: worker.clone(),
                    transfer: files,
                    deadline,
                    cancel: group.child_token(),
                });
                if let Some(running) = remote {
                    if paused {
                        barrier.wait().await;
                    }
                    announce(WorkerState::Running).await;
                    let end = match transfer_error {
                        Some(error) => crate::runtime::RemoteWorkerEnd {
                            status: ExecutionStatus::Failed,
                            error: Some(error),
                            fetched: Vec::new(),
                        },
                        None => running.await,
                    };
                    let mut error = end.error;
                    for (path, bytes) in &end.fetched {
                        if let Err(e) = write_fetched(&worker.fetch, path, bytes, &|p| {
                            main_host(&main_data, &main_outputs, p)
                        }) {
                            error.get_or_insert(format!("fetch: {e}"));
                        }
                    }
                    let status = match (end.status, &error) {
                        (ExecutionStatus::Passed, Some(_)) => ExecutionStatus::Failed,
                        (s, _) => s,
                    };
                    if fail_fast && status != ExecutionStatus::Passed {
                        group.cancel();
                    }
                    announce(WorkerState::Finished { status }).await;
                    let results = Default::default();
                    return (
                        index,
                        WorkerDone {
                            status,
                            results,
                            error,
                        },
                    );
                }
                let opened = match Layout::create(&dir, crate::step_user()) {
                    Ok(layout) => scope
                        .worker(&layout, &full, index)
                        .await
                        .map(|worker| (layout, Arc::<dyn crate::runtime::Scope>::from(worker)))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let (layout, scope) = match opened {
                    Ok(l) => l,
                    Err(e) => {
                        return (
                            index,
                            WorkerDone {
                                status: ExecutionStatus::Failed,
                                results: Default::default(),
                                error: Some(e),
                            },
                        );
                    }
                };
                let mut error = None;
                for t in &worker.transfer {
                    if let Err(e) =
                        transfer(t, &|p| main_host(&main_data, &main_outputs, p), &|p| {
                            layout.to_host(p)
                        })
                    {
                        error.get_or_insert(format!("transfer: {e}"));
                    }
                }
                if paused {
                    barrier.wait().await;
                }
                announce(WorkerState::Running).await;
                let mut runner = Runner::new(
                    shared.clone(),
                    layout,
                    scope,
                    format!("{full}/{index}/"),
                    group.child_token(),
                );
                let status = if error.is_some() {
                    runner.skip_tree(&worker.root, error.clone()).await;
                    ExecutionStatus::Failed
                } else {
                    let root = runner.run_root(&worker.root, deadline).await;
                    execution_status(root, runner.interrupt.as_ref())
                };
                for t in &worker.fetch {
                    if let Err(e) = transfer(t, &|p| runner.layout.to_host(p), &|p| {
                        main_host(&main_data, &main_outputs, p)
                    }) {
                        error.get_or_insert(format!("fetch: {e}"));
                    }
                }
                runner.scope.close().await;
                if fail_fast && status != ExecutionStatus::Passed {
                    group.cancel();
                }
                announce(WorkerState::Finished { status }).await;
                let error = error.or(runner.fatal.take());
                (
                    index,
                    WorkerDone {
                        status,
                        results: std::mem::take(&mut runner.results),
                        error,
                    },
                )
            });
        }
        let mut done: Vec<(u64, WorkerDone)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(d) => done.push(d),
                Err(e) => a.fail(format!("a worker crashed: {e}")),
            }
        }
        done.sort_by_key(|d| d.0);
        let mut failed = Vec::new();
        for (index, d) in done {
            self.results.extend(d.results);
            if d.status != ExecutionStatus::Passed {
                failed.push(match d.error {
                    Some(e) => format!("#{index} {} ({})", d.status, self.mask(&e)),
                    None => format!("#{index} {}", d.status),
                });
            }
        }
        if self.cancel.is_cancelled() {
            self.interrupt_for(crate::runtime::StopReason::Abort, frame);
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            self.interrupt_for(crate::runtime::StopReason::Timeout, frame);
        }
        if !failed.is_empty() {
            a.fail(format!(
                "{} of {count} workers did not pass: {}",
                failed.len(),
                failed.join(", ")
            ));
        }
    }

    /// `execute`: other workflows, through the caller's [`crate::WorkflowLauncher`].
    pub(crate) async fn execute(
        &mut self,
        execute: &PlanExecute,
        full: &str,
        frame: &Frame,
        a: &mut Attempt,
    ) {
        if !execute.tests.is_empty() {
            return a.fail("execute.tests (Testkube's legacy tests) is not supported: convert them to workflows");
        }
        let Some(launcher) = self.shared.opts.launcher.clone() else {
            return a.fail("execute needs a workflow store to start other workflows, and this run has none (run it through `assay run` with a data dir or a server)");
        };
        let mut requests = Vec::new();
        for w in &execute.workflows {
            let instances = match self.strategy_instances(&w.strategy, full, &frame.cwd).await {
                Ok(i) => i,
                Err(e) => return a.fail(format!("execute {}: {e}", w.name)),
            };
            for i in instances {
                // Config values may use run-time values and the copy's own (`matrix.*`, ...).
                let mut workflow = w.clone();
                let instance = assay_spec::strategy::instance_machine(&i);
                let env = self.base_env();
                let rendered = self.with_machine(frame.passed, None, &env, None, |m| {
                    for (key, value) in workflow.config.iter_mut() {
                        if let serde_json::Value::String(text) = value
                            && text.contains("{{")
                        {
                            let out = assay_expr::render_template(text, &[&instance, m]).map_err(
                                |e| ConfigError {
                                    key: key.clone(),
                                    source: Box::new(RenderError::new(text, e)),
                                },
                            )?;
                            *value = serde_json::Value::String(out);
                        }
                    }
                    Ok::<_, ConfigError>(())
                });
                if let Err(e) = rendered {
                    return a.fail(self.mask(&format!("execute {}: {e}", w.name)));
                }
                requests.push(LaunchRequest {
                    reference: full.to_string(),
                    workflow,
                    index: i.index,
                });
            }
        }
        let limit = execute
            .parallelism
            .map_or(requests.len().max(1), |p| p.max(1) as usize);
        let semaphore = Arc::new(Semaphore::new(limit));
        let copies = requests.len();
        let mut tasks = tokio::task::JoinSet::new();
        for r in requests {
            let launcher = launcher.clone();
            let semaphore = semaphore.clone();
            let cancel = self.cancel.clone();
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let name = r.workflow.name.clone();
                let index = r.index;
                let result = tokio::select! {
                    r = launcher.launch(r) => r,
                    _ = cancel.cancelled() => Err(crate::LaunchError::from(
                        "aborted with this execution".to_string(),
                    )),
                };
                (name, index, result)
            });
        }
        if execute.r#async {
            // Fire and forget: the launched executions are recorded by the caller's store.
            tasks.detach_all();
            return;
        }
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            // Each failure names the execution to look at, or the workflow (and the copy of
            // a matrix) when none could be recorded.
            match joined {
                Ok((_, _, Ok(done))) if done.status == ExecutionStatus::Passed => {}
                Ok((_, _, Ok(done))) => failed.push(format!(
                    "{} {} (`assay get execution {}`)",
                    done.name, done.status, done.name
                )),
                Ok((_, _, Err(e))) if e.execution.is_some() => {
                    let name = e.execution.unwrap_or_default();
                    failed.push(format!(
                        "{name}: {} (`assay get execution {name}`)",
                        e.message
                    ))
                }
                Ok((name, index, Err(e))) if copies > 1 => {
                    failed.push(format!("{name} (copy {}): {}", index + 1, e.message))
                }
                Ok((name, _, Err(e))) => failed.push(format!("{name}: {}", e.message)),
                Err(e) => failed.push(format!("crashed: {e}")),
            }
        }
        if !failed.is_empty() {
            a.fail(self.mask(&format!(
                "executed workflows did not pass: {}",
                failed.join(", ")
            )));
        }
    }
}

fn main_host(data: &Path, outputs: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix(crate::layout::DATA) {
        return data.join(rest.trim_start_matches('/'));
    }
    if let Some(rest) = path.strip_prefix(crate::layout::OUTPUTS) {
        return outputs.join(rest.trim_start_matches('/'));
    }
    PathBuf::from(path)
}

/// A folder name for a ref.
fn sanitize(reference: &str) -> String {
    reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Copies the files of `t.from` matching `t.files` (all when absent) to `t.to` (default: the
/// same path), keeping their relative paths.
fn transfer(
    t: &PlanTransfer,
    from_host: &dyn Fn(&str) -> PathBuf,
    to_host: &dyn Fn(&str) -> PathBuf,
) -> Result<(), TransferError> {
    let mut result = Ok(());
    for (to, from) in transfer_files(t, from_host)? {
        let target = to_host(&to);
        if let Some(parent) = target.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            result = Err(TransferError::io(parent)(e));
            continue;
        }
        if let Err(e) = std::fs::copy(&from, &target) {
            result = Err(TransferError::io(&from)(e));
        }
    }
    result
}

/// The files a `transfer` (or `fetch`) rule copies: each with its destination as steps see
/// it (`t.to`, default `t.from`, joined with its path relative to `t.from`) and the file on
/// this machine (`from_host` maps a path as steps see it).
pub fn transfer_files(
    t: &PlanTransfer,
    from_host: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<(String, PathBuf)>, TransferError> {
    let from = from_host(&t.from);
    let to = if t.to.is_empty() { &t.from } else { &t.to };
    let patterns: Vec<String> = match &t.files {
        None | Some(Value::Null) => vec!["**/*".into()],
        Some(Value::Array(items)) => items.iter().map(assay_expr::stringify).collect(),
        Some(v) => vec![assay_expr::stringify(v)],
    };
    let mut set = GlobSetBuilder::new();
    for p in &patterns {
        let glob =
            Glob::new(p.trim_start_matches("./")).map_err(|source| TransferError::Pattern {
                pattern: p.clone(),
                source,
            })?;
        set.add(glob);
    }
    let set = set.build().map_err(TransferError::Matcher)?;
    if from.is_file() {
        return Ok(vec![(to.clone(), from)]);
    }
    let mut files = Vec::new();
    crate::artifacts::walk(&from, &mut |rel, abs| {
        if set.is_match(rel) {
            files.push((
                format!("{}/{rel}", to.trim_end_matches('/')),
                abs.to_path_buf(),
            ));
        }
    });
    Ok(files)
}

/// `path` (as steps see it) without `.` parts, or `None` when it is relative or climbs out
/// with `..`.
pub fn clean_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether a remote worker may write `path` back: it must lie under a target of the worker's
/// `fetch` rules (`to`, default `from`), below `/data` or `/testkube/outputs`.
pub fn fetch_allowed(fetch: &[PlanTransfer], path: &str) -> bool {
    let Some(path) = clean_path(path) else {
        return false;
    };
    let in_folders = [crate::layout::DATA, crate::layout::OUTPUTS]
        .iter()
        .any(|root| path.starts_with(&format!("{root}/")));
    in_folders
        && fetch.iter().any(|t| {
            let to = if t.to.is_empty() { &t.from } else { &t.to };
            clean_path(to).is_some_and(|to| {
                path == to || path.starts_with(&format!("{}/", to.trim_end_matches('/')))
            })
        })
}

/// Writes a file a remote worker fetched back, if [`fetch_allowed`].
fn write_fetched(
    fetch: &[PlanTransfer],
    path: &str,
    bytes: &[u8],
    to_host: &dyn Fn(&str) -> PathBuf,
) -> Result<(), TransferError> {
    if !fetch_allowed(fetch, path) {
        return Err(TransferError::NotAllowed(path.to_string()));
    }
    let target = to_host(&clean_path(path).unwrap_or_default());
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(TransferError::io(parent))?;
    }
    std::fs::write(&target, bytes).map_err(TransferError::io(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &str, to: &str) -> PlanTransfer {
        PlanTransfer {
            from: from.into(),
            files: None,
            to: to.into(),
        }
    }

    #[test]
    fn a_remote_worker_writes_only_under_its_fetch_targets() {
        let fetch = [rule("/data/out", ""), rule("/data/w", "/data/back")];
        for ok in [
            "/data/out/a.txt",
            "/data/out/x/y",
            "/data/back/f",
            "/data/./out/z",
        ] {
            assert!(fetch_allowed(&fetch, ok), "{ok}");
        }
        for bad in [
            "/data/out/../secret",
            "/data/outside",
            "/data/w/f",
            "data/out/a",
            "/etc/passwd",
            "/data/outx/a",
            "/data/back/../../etc/x",
        ] {
            assert!(!fetch_allowed(&fetch, bad), "{bad}");
        }
        // A target outside the execution's folders gives nothing.
        assert!(!fetch_allowed(&[rule("/", "")], "/etc/passwd"));
    }
}
