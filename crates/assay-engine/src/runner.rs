//! Walking a plan's step tree with Testkube's semantics.
//!
//! How results are computed (Testkube's `testworkflow-init` and its action processor):
//! - A step's `passed` is true when every *required* (non-optional) step that ran before it —
//!   earlier siblings, and the same for every enclosing group — ended `passed` or `skipped`.
//!   `failed` is its negation; `always`/`never` are `true`/`false`.
//! - A step whose condition is false is `skipped`, with everything below it.
//! - Inside a step, its parts run in order: delay, content, services, commands, `execute`,
//!   `parallel`, child steps, then artifacts (whatever happened). A failed part makes the later
//!   parts' `passed` false; child steps evaluate their own conditions.
//! - A step passes when its parts succeeded and every required child passed or was skipped;
//!   `optional` children do not count. `negative` inverts passed/failed (not timeout/aborted).
//! - `retry {count, until}` runs the step again (up to `count` more times) while `until` (default
//!   `passed`, evaluated with the step's own status: `passed`, `self.passed`, `self.status`...)
//!   is false. A timeout of the step itself may be retried; one of an enclosing step may not.
//! - `timeout` covers one attempt: when it passes, the step's processes are stopped, the step
//!   and every started step below it become `timeout`, unstarted ones `skipped`.
//! - Abort (the token) and the execution deadline stop the running processes: running steps
//!   become `aborted`, nothing else starts (`skipped`), and the execution is `aborted`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use assay_expr::Machine;
use assay_spec::plan::{PlanProcess, PlanStep};
use assay_spec::status::StepStatus;
use indexmap::IndexMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::event::{Event, StepResult};
use crate::layout::{self, Layout};
use crate::machine::{RunMachine, StepFacts};
use crate::mask::Masker;
use crate::options::RunOptions;
use crate::runtime::{Launch, LaunchKind, Output, Scope, StartError, Stop, StopReason};
use crate::sink::EventSink;

/// What every runner of one execution (main and workers) shares.
pub(crate) struct Shared {
    pub opts: RunOptions,
    pub masker: Masker,
    pub sink: EventSink,
}

/// An expression of the plan that failed at run time: the text as written and why. Shown as
/// `` `text`: reason `` inside the step's error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{text}`: {source}")]
pub(crate) struct RenderError {
    pub text: String,
    pub source: assay_expr::ExprError,
}

impl RenderError {
    pub(crate) fn new(text: &str, source: assay_expr::ExprError) -> Self {
        RenderError {
            text: text.to_string(),
            source,
        }
    }
}

/// Why a process could not be prepared: one of its templates failed, or a reference to a
/// named secret gave no value. The step fails with this text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Ref(#[from] crate::refs::RefError),
}

/// Why the walk stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The step with this (full) ref ran out of time.
    Timeout(String),
    /// The token was cancelled.
    Abort,
    /// The execution's deadline passed.
    Deadline,
}

/// The owner of the execution-wide deadline in [`Frame::deadline`].
const EXECUTION: &str = "";

/// What a step inherits from where it sits.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub passed: bool,
    /// The nearest deadline and the full ref of the step that set it.
    pub deadline: Option<(Instant, String)>,
    /// Working directory as steps see it.
    pub cwd: String,
}

/// What the parts of one attempt produced.
#[derive(Debug, Default)]
pub(crate) struct Attempt {
    pub ok: bool,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub peak_rss_bytes: Option<u64>,
    pub cpu_time: Option<Duration>,
    /// Files collected as the step's artifacts (host paths): its reports, if any.
    pub collected: Vec<std::path::PathBuf>,
    /// A child step failed (the step's own parts may have passed).
    pub child_failed: bool,
}

impl Attempt {
    pub(crate) fn fail(&mut self, error: impl Into<String>) {
        self.ok = false;
        if self.error.is_none() {
            self.error = Some(error.into());
        }
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs the steps of one execution (or one parallel worker).
pub(crate) struct Runner {
    pub shared: Arc<Shared>,
    pub layout: Layout,
    /// Where this runner's processes run (the runtime's scope of the execution or worker).
    pub scope: Arc<dyn Scope>,
    /// Prefix of every ref this runner reports (`""`, or `<parallel ref>/<index>/`).
    pub prefix: String,
    pub cancel: CancellationToken,
    pub results: IndexMap<String, StepResult>,
    pub facts: IndexMap<String, StepFacts>,
    pub services: IndexMap<String, Vec<String>>,
    pub interrupt: Option<Interrupt>,
    /// An error of the execution itself (a service that never became ready, ...).
    pub fatal: Option<String>,
}

impl Runner {
    pub(crate) fn new(
        shared: Arc<Shared>,
        layout: Layout,
        scope: Arc<dyn Scope>,
        prefix: String,
        cancel: CancellationToken,
    ) -> Self {
        Runner {
            shared,
            layout,
            scope,
            prefix,
            cancel,
            results: IndexMap::new(),
            facts: IndexMap::new(),
            services: IndexMap::new(),
            interrupt: None,
            fatal: None,
        }
    }

    pub(crate) fn full_ref(&self, reference: &str) -> String {
        format!("{}{}", self.prefix, reference)
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        self.shared.masker.mask(text).into_owned()
    }

    pub(crate) async fn emit(&self, event: Event) {
        self.shared.sink.send(event).await;
    }

    /// Runs the root group with an optional execution deadline.
    pub(crate) async fn run_root(
        &mut self,
        root: &PlanStep,
        deadline: Option<Instant>,
    ) -> StepStatus {
        let frame = Frame {
            passed: true,
            deadline: deadline.map(|d| (d, EXECUTION.to_string())),
            cwd: layout::DATA.to_string(),
        };
        self.run_step(root, &frame).await
    }

    /// Records a step (and everything below it) as skipped.
    pub(crate) async fn skip_tree(&mut self, step: &PlanStep, error: Option<String>) {
        let mut stack = vec![step];
        while let Some(s) = stack.pop() {
            let result = StepResult::skipped(error.clone());
            self.finish(s, result).await;
            stack.extend(s.steps.iter().rev());
        }
    }

    async fn finish(&mut self, step: &PlanStep, result: StepResult) {
        if let Some(id) = &step.id {
            self.facts.entry(id.clone()).or_default().status = Some(result.status);
        }
        let reference = self.full_ref(&step.reference);
        self.results.insert(reference.clone(), result.clone());
        self.emit(Event::StepFinished { reference, result }).await;
    }

    /// A machine for expressions evaluated at `frame`'s position.
    pub(crate) fn with_machine<T>(
        &self,
        passed: bool,
        own: Option<(&str, StepStatus)>,
        env: &BTreeMap<String, String>,
        cwd: Option<&str>,
        f: impl FnOnce(&dyn Machine) -> T,
    ) -> T {
        self.machine(passed, own.map(|o| o.1), own.map(|o| o.0), env, cwd, f)
    }

    /// [`Self::with_machine`] for the processes of the step `own_id`: `step.results` is that
    /// step's results folder (Testkube's `/data/.steps/<id>`).
    pub(crate) fn with_step_machine<T>(
        &self,
        passed: bool,
        own_id: Option<&str>,
        env: &BTreeMap<String, String>,
        cwd: Option<&str>,
        f: impl FnOnce(&dyn Machine) -> T,
    ) -> T {
        self.machine(passed, None, own_id, env, cwd, f)
    }

    fn machine<T>(
        &self,
        passed: bool,
        own_status: Option<StepStatus>,
        own_id: Option<&str>,
        env: &BTreeMap<String, String>,
        cwd: Option<&str>,
        f: impl FnOnce(&dyn Machine) -> T,
    ) -> T {
        let m = RunMachine {
            passed,
            own_status,
            own_id,
            env,
            steps: &self.facts,
            services: &self.services,
            secrets: &self.shared.opts.secrets,
            context: &self.shared.opts.context,
            files: cwd.map(|c| (c, &self.layout)),
        };
        f(&m)
    }

    /// Evaluates a bare expression to a boolean.
    pub(crate) fn eval_bool(&self, expr: &str, machine: &dyn Machine) -> Result<bool, RenderError> {
        let value = assay_expr::parse(expr)
            .and_then(|parsed| parsed.evaluate(&[machine]))
            .map_err(|e| RenderError::new(expr, e))?;
        Ok(assay_expr::truthy(&value))
    }

    /// Renders a template string.
    pub(crate) fn render(
        &self,
        template: &str,
        machine: &dyn Machine,
    ) -> Result<String, RenderError> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        assay_expr::render_template(template, &[machine]).map_err(|e| RenderError::new(template, e))
    }

    /// Renders one argument; a pure `{{ list }}` expands into several (as Testkube does).
    fn render_arg(
        &self,
        arg: &str,
        machine: &dyn Machine,
        out: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        let t = arg.trim();
        if t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1 {
            let inner = &t[2..t.len() - 2];
            let value = assay_expr::parse(inner)
                .and_then(|e| e.evaluate(&[machine]))
                .map_err(|e| RenderError::new(arg, e))?;
            match value {
                Value::Array(items) => out.extend(items.iter().map(assay_expr::stringify)),
                v => out.push(assay_expr::stringify(&v)),
            }
            return Ok(());
        }
        out.push(self.render(arg, machine)?);
        Ok(())
    }

    /// The environment processes start from (the runtime's).
    pub(crate) fn base_env(&self) -> BTreeMap<String, String> {
        self.scope.base_env()
    }

    /// Resolves a process's environment: each variable's template sees the ones before it.
    pub(crate) fn resolve_env(
        &self,
        process: &PlanProcess,
        passed: bool,
        own_id: Option<&str>,
    ) -> Result<BTreeMap<String, String>, PrepareError> {
        let mut env = self.base_env();
        let secrets = &self.shared.opts.named_secrets;
        env.extend(crate::refs::env_from(&process.env_from, secrets)?);
        for e in &process.env {
            if let Some(source) = &e.value_from {
                let what = format!("env `{}`", e.name);
                if let Some(value) = crate::refs::source_value(&what, source, secrets)? {
                    env.insert(e.name.clone(), value);
                }
                continue;
            }
            let value = match &e.value {
                Some(v) => {
                    self.with_step_machine(passed, own_id, &env, None, |m| self.render(v, m))?
                }
                None => String::new(),
            };
            env.insert(e.name.clone(), value);
        }
        Ok(env)
    }

    /// Renders what to start for a process (its templates, at this point of the run), or
    /// why it cannot be rendered.
    pub(crate) fn prepare(
        &self,
        kind: LaunchKind,
        process: &PlanProcess,
        passed: bool,
        cwd: &str,
        own_id: Option<&str>,
    ) -> Result<Launch, PrepareError> {
        let env = self.resolve_env(process, passed, own_id)?;
        let cwd = match &process.working_dir {
            Some(w) => layout::join(
                cwd,
                &self.with_step_machine(passed, own_id, &env, None, |m| self.render(w, m))?,
            ),
            None => cwd.to_string(),
        };
        // `glob()` in a command sees the step's own working directory (Testkube resolves it
        // in the step's container).
        let rendered = self.with_step_machine(
            passed,
            own_id,
            &env,
            Some(&cwd),
            |m| -> Result<_, RenderError> {
                let mut command = Vec::new();
                let mut args = Vec::new();
                let mut shell = None;
                if let Some(script) = &process.shell {
                    shell = Some(self.render(script, m)?);
                } else {
                    for a in &process.command {
                        self.render_arg(a, m, &mut command)?;
                    }
                    for a in &process.args {
                        self.render_arg(a, m, &mut args)?;
                    }
                }
                Ok((command, args, shell))
            },
        )?;
        Ok(Launch::of(kind, process, rendered, env, cwd))
    }

    /// The nearest deadline of a frame as an instant.
    fn deadline_of(frame: &Frame) -> Option<Instant> {
        frame.deadline.as_ref().map(|d| d.0)
    }

    /// Turns a stop of a process into the walk's interrupt.
    pub(crate) fn interrupt_for(&mut self, reason: StopReason, frame: &Frame) {
        if self.interrupt.is_some() {
            return;
        }
        self.interrupt = Some(match reason {
            StopReason::Abort => Interrupt::Abort,
            StopReason::Timeout => match &frame.deadline {
                Some((_, owner)) if owner == EXECUTION => Interrupt::Deadline,
                Some((_, owner)) => Interrupt::Timeout(owner.clone()),
                None => Interrupt::Abort,
            },
        });
    }

    /// Sleeps unless the token or the frame's deadline interrupts; false when interrupted.
    pub(crate) async fn sleep(&mut self, duration: Duration, frame: &Frame) -> bool {
        let until = Instant::now() + duration;
        let deadline = Self::deadline_of(frame);
        let wake = deadline.map_or(until, |d| d.min(until));
        tokio::select! {
            _ = self.cancel.cancelled() => {
                self.interrupt_for(StopReason::Abort, frame);
                false
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if deadline.is_some_and(|d| d <= until && Instant::now() >= d) {
                    self.interrupt_for(StopReason::Timeout, frame);
                    false
                } else {
                    true
                }
            }
        }
    }

    /// Runs one process as part of a step, logging to `log_ref`.
    pub(crate) async fn run_launch(
        &mut self,
        launch: Launch,
        log_ref: &str,
        frame: &Frame,
        attempt: &mut Attempt,
    ) {
        let output = Output::new(log_ref, &self.shared.masker, &self.shared.sink);
        let process = match self.scope.start(launch, output).await {
            Ok(p) => p,
            Err(StartError::Unsupported(e)) => return attempt.fail(e),
            Err(StartError::Failed(e)) => {
                attempt.exit_code = Some(127);
                return attempt.fail(e);
            }
        };
        let outcome = process
            .wait(Stop {
                deadline: Self::deadline_of(frame),
                cancel: self.cancel.clone(),
                grace: self.shared.opts.kill_grace,
            })
            .await;
        attempt.exit_code = outcome.exit_code;
        attempt.peak_rss_bytes = max_opt(attempt.peak_rss_bytes, outcome.peak_rss_bytes);
        attempt.cpu_time = match (attempt.cpu_time, outcome.cpu_time) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        if let Some(reason) = outcome.stopped {
            self.interrupt_for(reason, frame);
            attempt.ok = false;
            return;
        }
        if outcome.exit_code != Some(0) {
            attempt.ok = false;
        }
    }

    /// Runs a step and everything below it; returns its final status.
    pub(crate) fn run_step<'a>(
        &'a mut self,
        step: &'a PlanStep,
        frame: &'a Frame,
    ) -> BoxFuture<'a, StepStatus> {
        Box::pin(async move {
            if self.cancel.is_cancelled() && self.interrupt.is_none() {
                self.interrupt = Some(Interrupt::Abort);
            }
            if self.interrupt.is_some() {
                self.skip_tree(step, Some(self.interrupted_message())).await;
                return StepStatus::Skipped;
            }
            let env = self.condition_env(step, frame.passed);
            let condition = if step.condition.trim().is_empty() {
                "passed"
            } else {
                step.condition.as_str()
            };
            let runs = self.with_machine(frame.passed, None, &env, Some(&frame.cwd), |m| {
                self.eval_bool(condition, m)
            });
            match runs {
                Ok(true) => {}
                Ok(false) => {
                    self.skip_tree(step, None).await;
                    return StepStatus::Skipped;
                }
                Err(e) => {
                    let e = self.mask(&format!("failed to evaluate the condition: {e}"));
                    self.record_failed_to_start(step, e).await;
                    return StepStatus::Failed;
                }
            }
            let full = self.full_ref(&step.reference);
            let name = self
                .with_machine(frame.passed, None, &env, None, |m| {
                    self.render(&step.name, m)
                })
                .unwrap_or_else(|_| step.name.clone());
            let started_at = SystemTime::now();
            self.emit(Event::StepStarted {
                reference: full.clone(),
                name: self.mask(&name),
                at: started_at,
            })
            .await;
            if let Some(id) = &step.id {
                let results = format!("{}/.steps/{id}", layout::DATA);
                let _ = std::fs::create_dir_all(self.layout.to_host(&results));
                self.facts.entry(id.clone()).or_default().results = results;
            }

            let mut attempts = 0u32;
            let (status, last) = loop {
                attempts += 1;
                let mut inner = frame.clone();
                inner.cwd = match &step.working_dir {
                    Some(w) => layout::join(
                        &frame.cwd,
                        &self
                            .with_machine(frame.passed, None, &env, None, |m| self.render(w, m))
                            .unwrap_or_else(|_| w.clone()),
                    ),
                    None => frame.cwd.clone(),
                };
                if let Some(ms) = step.timeout_ms {
                    let own = Instant::now() + Duration::from_millis(ms);
                    if inner.deadline.as_ref().is_none_or(|(d, _)| own < *d) {
                        inner.deadline = Some((own, full.clone()));
                    }
                }
                let attempt = self.attempt(step, &inner).await;
                let mut status = if attempt.ok {
                    StepStatus::Passed
                } else {
                    StepStatus::Failed
                };
                if step.negative {
                    status = if attempt.ok {
                        StepStatus::Failed
                    } else {
                        StepStatus::Passed
                    };
                }
                let mut own_timeout = false;
                match &self.interrupt {
                    Some(Interrupt::Timeout(owner)) if *owner == full => {
                        status = StepStatus::Timeout;
                        self.interrupt = None;
                        own_timeout = true;
                    }
                    Some(Interrupt::Timeout(_)) => break (StepStatus::Timeout, attempt),
                    Some(_) => break (StepStatus::Aborted, attempt),
                    None => {}
                }
                let Some(retry) = &step.retry else {
                    break (status, attempt);
                };
                if attempts > retry.count {
                    break (status, attempt);
                }
                let until = if retry.until.trim().is_empty() {
                    "passed"
                } else {
                    retry.until.as_str()
                };
                let id = step.id.as_deref().unwrap_or("");
                let done = self.with_machine(frame.passed, Some((id, status)), &env, None, |m| {
                    self.eval_bool(until, m)
                });
                match done {
                    Ok(false) => {
                        let why = if own_timeout {
                            "Timed out".to_string()
                        } else {
                            format!("Exit code: {}", attempt.exit_code.unwrap_or(0))
                        };
                        let text = format!(
                            "\n{why} • Retrying: attempt #{attempts} (of {}):\n",
                            retry.count
                        );
                        self.emit(Event::Log(crate::event::LogChunk {
                            reference: full.clone(),
                            at: SystemTime::now(),
                            text,
                        }))
                        .await;
                    }
                    Ok(true) => break (status, attempt),
                    Err(e) => {
                        let mut attempt = attempt;
                        attempt.error =
                            Some(self.mask(&format!("failed to evaluate retry.until: {e}")));
                        break (status, attempt);
                    }
                }
            };
            let mut status = status;
            let quarantined_failures = self.review_failure(step, status, &last, &full).await;
            if !quarantined_failures.is_empty() {
                status = StepStatus::Passed;
            }
            let result = StepResult {
                status,
                exit_code: last.exit_code,
                started_at: Some(started_at),
                finished_at: SystemTime::now(),
                error: match (&last.error, status) {
                    (Some(e), _) => Some(self.mask(e)),
                    (None, StepStatus::Aborted) => Some(self.interrupted_message()),
                    (None, StepStatus::Timeout) => Some("timed out".into()),
                    _ => None,
                },
                peak_rss_bytes: last.peak_rss_bytes,
                cpu_time: last.cpu_time,
                attempts,
                quarantined_failures,
            };
            self.finish(step, result).await;
            status
        })
    }

    /// The quarantined failures that let a failed step pass: only a plain failure of the
    /// step's own processes (no error of its own, no failed child, not negative) whose collected
    /// JUnit reports fail through quarantined tests only (see
    /// [`assay_reports::quarantine::review`]). The step's log says what was decided.
    async fn review_failure(
        &self,
        step: &PlanStep,
        status: StepStatus,
        last: &Attempt,
        full: &str,
    ) -> Vec<String> {
        let quarantined = &self.shared.opts.quarantined;
        if status != StepStatus::Failed
            || step.negative
            || last.error.is_some()
            || last.child_failed
            || last.collected.is_empty()
            || quarantined.is_empty()
        {
            return Vec::new();
        }
        let files = last.collected.clone();
        let quarantined = quarantined.clone();
        let review = tokio::task::spawn_blocking(move || {
            let opened = files.iter().filter_map(|f| std::fs::File::open(f).ok());
            assay_reports::quarantine::review(opened, &quarantined)
        })
        .await
        .unwrap_or_default();
        let text = match review.excuse() {
            Some(tests) => format!(
                "\nnote: the step failed only through quarantined tests, so it passes: {}\n",
                tests.join(", ")
            ),
            None if !review.quarantined.is_empty() => format!(
                "\nnote: quarantined tests failed ({}), but so did tests not in quarantine ({}): the step fails\n",
                review.quarantined.join(", "),
                if review.other.is_empty() {
                    "a report could not be read whole".to_string()
                } else {
                    review.other.join(", ")
                }
            ),
            None => return Vec::new(),
        };
        self.emit(Event::Log(crate::event::LogChunk {
            reference: full.to_string(),
            at: SystemTime::now(),
            text: self.mask(&text),
        }))
        .await;
        review.excuse().map(<[String]>::to_vec).unwrap_or_default()
    }

    fn interrupted_message(&self) -> String {
        match &self.interrupt {
            Some(Interrupt::Deadline) => {
                "the execution's deadline (activeDeadlineSeconds) passed".into()
            }
            Some(Interrupt::Timeout(_)) => "a parent step timed out".into(),
            _ => "the execution was aborted".into(),
        }
    }

    async fn record_failed_to_start(&mut self, step: &PlanStep, error: String) {
        let mut result = StepResult::skipped(Some(error));
        result.status = StepStatus::Failed;
        result.started_at = Some(SystemTime::now());
        for child in &step.steps {
            self.skip_tree(child, None).await;
        }
        self.finish(step, result).await;
    }

    /// The environment a step's condition sees: its first process's, else the base.
    fn condition_env(&self, step: &PlanStep, passed: bool) -> BTreeMap<String, String> {
        match step.commands.first() {
            Some(p) => self
                .resolve_env(p, passed, step.id.as_deref())
                .unwrap_or_else(|_| self.base_env()),
            None => self.base_env(),
        }
    }

    /// One attempt of a step's parts, in Testkube's order.
    async fn attempt(&mut self, step: &PlanStep, frame: &Frame) -> Attempt {
        let mut a = Attempt {
            ok: true,
            ..Attempt::default()
        };
        let full = self.full_ref(&step.reference);
        if let Some(id) = &step.id {
            self.clear_outputs(id);
        }
        if let Some(ms) = step.delay_ms
            && !self.sleep(Duration::from_millis(ms), frame).await
        {
            a.ok = false;
        }
        if a.ok
            && self.interrupt.is_none()
            && let Some(content) = &step.content
        {
            self.content(content, &full, frame, &mut a).await;
        }
        let mut services = Vec::new();
        if a.ok && self.interrupt.is_none() && !step.services.is_empty() {
            services = self.start_services(step, frame, &mut a).await;
        }
        if a.ok && self.interrupt.is_none() {
            for process in &step.commands {
                let passed = frame.passed && a.ok;
                match self.prepare(
                    LaunchKind::Step,
                    process,
                    passed,
                    &frame.cwd,
                    step.id.as_deref(),
                ) {
                    Ok(launch) => self.run_launch(launch, &full, frame, &mut a).await,
                    Err(e) => a.fail(e.to_string()),
                }
                if !a.ok || self.interrupt.is_some() {
                    break;
                }
            }
            if !step.commands.is_empty()
                && let Some(id) = &step.id
            {
                self.scan_outputs(id, &full).await;
            }
        }
        if a.ok
            && self.interrupt.is_none()
            && let Some(execute) = &step.execute
        {
            self.execute(execute, &full, frame, &mut a).await;
        }
        if a.ok
            && self.interrupt.is_none()
            && let Some(parallel) = &step.parallel
        {
            self.parallel(parallel, &full, frame, &mut a).await;
        }
        let mut passed = frame.passed && a.ok;
        for child in &step.steps {
            if self.interrupt.is_some() {
                self.skip_tree(child, Some(self.interrupted_message()))
                    .await;
                continue;
            }
            let child_frame = Frame {
                passed,
                ..frame.clone()
            };
            let status = self.run_step(child, &child_frame).await;
            if !child.optional && !matches!(status, StepStatus::Passed | StepStatus::Skipped) {
                passed = false;
                a.ok = false;
                a.child_failed = true;
            }
        }
        if let Some(reason) = self.stop_services(services).await {
            a.fail(reason);
        }
        if let Some(artifacts) = &step.artifacts {
            self.artifacts(artifacts, &full, frame, &mut a).await;
        }
        a
    }
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
