//! `assay run FILE|NAME`: compile a workflow, run it on this machine, record it, and exit with
//! its verdict (0 passed, 1 failed or aborted, 2 invalid input, 3 internal error).
//!
//! The engine's events are persisted first (step results, logs, outputs, artifacts) and only
//! then shown, so what the terminal shows is what the history holds.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assay_engine::{Event, RunOptions};
use assay_spec::load::LoadedDocument;
use assay_spec::model::{Document, TestWorkflow};
use assay_spec::plan::{Plan, PlanStep};
use assay_spec::status::{ExecutionStatus, StepStatus};
use assay_spec::{CompileRequest, Strictness, TemplateSet};
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{
    ConfigValue, ContextType, DefinitionKind, ExecutionRef, Finish, LeaseOwner, LogWriter,
    NewExecution, Output, RunningContext, StepResult, Store,
};
use indexmap::IndexMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cmd::plan::{parse_key_value, pick_workflow, report, template_set};
use crate::error::{Reported, UserError};
use crate::exit;
use crate::files::{self, LoadedFile};
use crate::store_args::StoreArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A workflow file, or the name of a stored workflow (`assay apply`)
    #[arg(value_name = "FILE|NAME")]
    pub target: String,

    /// Which workflow of the file (when it holds several)
    #[arg(long, conflicts_with = "all")]
    pub name: Option<String>,

    /// Run every workflow of the file, one after another
    #[arg(long)]
    pub all: bool,

    /// A config value, `key=value` (repeatable)
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,

    /// A tag recorded with the execution, `key=value` (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub tags: Vec<(String, String)>,

    /// A secret, `KEY=VALUE` (repeatable): given to every step as the environment variable KEY
    /// (and as `config.KEY` when KEY is a sensitive parameter), masked in everything stored and
    /// printed
    #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub secrets: Vec<(String, String)>,

    /// Files or folders to find templates in (repeatable); stored templates are used too
    #[arg(long = "templates", value_name = "PATH")]
    pub templates: Vec<PathBuf>,

    /// Print the finished execution as JSON (Testkube's shape) on stdout
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<RunFormat>,

    /// Do not stream step output; show only the summary
    #[arg(long, short = 'q')]
    pub quiet: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

/// One workflow ready to run: its definition and where it came from (for messages).
struct Target {
    workflow: TestWorkflow,
    display: String,
    doc: Option<LoadedDocument>,
}

async fn run_async(args: Args) -> anyhow::Result<u8> {
    let store = args.store.open().await?;
    let mut templates = TemplateSet::new();
    for def in store
        .list_definitions(
            DefinitionKind::Template,
            &assay_store::LabelSelector::default(),
        )
        .await?
    {
        let loaded = assay_spec::load::load(&format!("stored template {}", def.name), &def.yaml);
        for d in loaded.documents {
            if let Document::TestWorkflowTemplate(t) = d.document {
                templates.insert(t);
            }
        }
    }
    let targets = targets(&args, &store, &mut templates).await?;
    let mut worst = exit::SUCCESS;
    for target in targets {
        let code = run_one(&args, &store, &templates, target).await?;
        worst = worst.max(code);
    }
    store.close().await;
    Ok(worst)
}

async fn targets(
    args: &Args,
    store: &Store,
    templates: &mut TemplateSet,
) -> anyhow::Result<Vec<Target>> {
    let path = PathBuf::from(&args.target);
    if path.exists() {
        let file = files::load_file(&path)?;
        let file_templates = template_set(&file, &args.templates)?;
        for name in file_templates.names().collect::<Vec<_>>() {
            if let Some(t) = file_templates.get(&name) {
                templates.insert(t.clone());
            }
        }
        if args.all {
            return all_workflows(&file);
        }
        let (workflow, doc) = pick_workflow(&file, args.name.as_deref())?;
        return Ok(vec![Target {
            workflow,
            display: file.display.clone(),
            doc: Some(doc.clone()),
        }]);
    }
    if args.target.ends_with(".yaml") || args.target.ends_with(".yml") || args.target.contains('/')
    {
        return Err(
            UserError::invalid(format!("failed to read `{}`: no such file", args.target)).into(),
        );
    }
    for path in files::expand(&args.templates)? {
        files::add_templates(templates, &files::load_file(&path)?);
    }
    let def = match store
        .get_definition(DefinitionKind::Workflow, &args.target, None)
        .await
    {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            return Err(UserError::invalid(format!(
                "no file and no stored workflow named `{}`",
                args.target
            ))
            .with_hint("store it with `assay apply -f FILE`, or give the path of a workflow file")
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let display = format!("stored workflow {}", def.name);
    let file = LoadedFile {
        display: display.clone(),
        loaded: assay_spec::validate::check_bytes(&display, def.yaml.as_bytes()),
    };
    let (workflow, doc) = pick_workflow(&file, None)?;
    Ok(vec![Target {
        workflow,
        display,
        doc: Some(doc.clone()),
    }])
}

fn all_workflows(file: &LoadedFile) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for d in &file.loaded.documents {
        if let Document::TestWorkflow(w) = &d.document {
            out.push(Target {
                workflow: w.clone(),
                display: file.display.clone(),
                doc: Some(d.clone()),
            });
        }
    }
    if out.is_empty() {
        return Err(UserError::invalid(format!("`{}` holds no TestWorkflow", file.display)).into());
    }
    Ok(out)
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn run_one(
    args: &Args,
    store: &Store,
    templates: &TemplateSet,
    target: Target,
) -> anyhow::Result<u8> {
    let wf = &target.workflow;
    let secrets: BTreeMap<String, String> = args.secrets.iter().cloned().collect();
    // Config: --config values, plus --secret values for sensitive parameters.
    let mut config: IndexMap<String, Value> = IndexMap::new();
    for (k, v) in &args.config {
        config.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in &secrets {
        if wf.spec.config.get(k).is_some_and(|p| p.sensitive) && !config.contains_key(k) {
            config.insert(k.clone(), Value::String(v.clone()));
        }
    }
    // Compile once before anything is recorded: invalid input leaves no trace.
    let mut req = CompileRequest::new(wf, templates);
    req.config = config.clone();
    req.strictness = Strictness::Require;
    if let Err(errors) = assay_spec::compile(&req) {
        match &target.doc {
            Some(doc) => report(&target.display, doc, &errors),
            None => {
                for e in &errors {
                    eprintln!("{}: {}: {}", target.display, e.path, e.message);
                }
            }
        }
        return Err(Reported(exit::INVALID).into());
    }

    let definition = serde_saphyr::to_string(wf)?;
    let mut tags: BTreeMap<String, String> = args.tags.iter().cloned().collect();
    let compiled_probe =
        assay_spec::compile(&req).map_err(|_| anyhow::anyhow!("internal error: compile"))?;
    let sensitive: Vec<&str> = wf
        .spec
        .config
        .iter()
        .filter(|(_, p)| p.sensitive)
        .map(|(k, _)| k.as_str())
        .collect();
    let config_record: BTreeMap<String, ConfigValue> = compiled_probe
        .plan
        .config
        .iter()
        .map(|(k, v)| {
            let value = if sensitive.contains(&k.as_str()) {
                None
            } else {
                v.value.as_ref().map(assay_expr::stringify)
            };
            (
                k.clone(),
                ConfigValue {
                    value,
                    sensitive: v.sensitive,
                    ..ConfigValue::default()
                },
            )
        })
        .collect();
    for (k, v) in &compiled_probe.plan.tags {
        if !v.contains("{{") {
            tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let exec = store
        .create_execution(NewExecution {
            workflow: wf.metadata.name.clone(),
            definition,
            resolved: None,
            config: config_record,
            tags: tags.clone(),
            running_context: running_context(),
            status: Some(ExecutionStatus::Running),
            owner: Some(LeaseOwner::current()),
            scheduled_at: None,
        })
        .await?;

    // The real plan knows the execution.
    let context = json!({
        "id": exec.id,
        "name": exec.name,
        "number": exec.number,
        "scheduledAt": assay_store::testkube::rfc3339(exec.scheduled_at),
        "tags": tags,
    });
    req.execution = Some(context.clone());
    let compiled = assay_spec::compile(&req).map_err(|e| {
        anyhow::anyhow!("internal error: the plan changed between compilations: {e:?}")
    })?;
    store
        .set_resolved(&exec.id, &serde_json::to_string(&compiled.plan)?)
        .await?;
    let plan = compiled.plan;
    let names = step_names(&plan);

    let ui = Ui::new(args.quiet || args.output.is_some());
    ui.header(&exec.name, &wf.metadata.name, &plan);

    let work_dir = args.store.config()?.data_dir.join("work").join(&exec.id);
    let mut opts = RunOptions::new(&work_dir);
    opts.secrets = compiled.secrets.into_iter().collect();
    opts.masked = secrets.values().cloned().collect();
    let mut ctx = serde_json::Map::new();
    ctx.insert("execution".into(), context);
    ctx.insert(
        "workflow".into(),
        json!({"name": wf.metadata.name, "labels": wf.metadata.labels}),
    );
    opts.context = ctx;
    let mut base_env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "PATH" | "HOME" | "USER" | "LANG" | "TERM" | "TZ" | "TMPDIR"
            )
        })
        .collect();
    for (k, v) in &secrets {
        base_env.insert(k.clone(), v.clone());
    }
    opts.base_env = base_env;
    let cancel = opts.cancel.clone();

    let heartbeat = store.spawn_heartbeat(&exec.id);
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let engine = tokio::spawn(assay_engine::run(plan.clone(), opts, tx));

    // Ctrl-C / SIGTERM and `assay abort` from another process all cancel the run.
    let signal_cancel = cancel.clone();
    let signals = tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        signal_cancel.cancel();
    });
    let poll_store = store.clone();
    let poll_id = exec.id.clone();
    let poll_cancel = cancel.clone();
    let abort_poll = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok(Some(_)) = poll_store.abort_requested(&poll_id).await {
                poll_cancel.cancel();
                return;
            }
        }
    });

    let mut writers: HashMap<String, LogWriter> = HashMap::new();
    let mut tails: HashMap<String, Vec<String>> = HashMap::new();
    let mut position = 0i64;
    let mut started: HashMap<String, i64> = HashMap::new();
    let mut finished: Option<(ExecutionStatus, Option<String>, SystemTime)> = None;
    let mut failed_steps: Vec<(String, StepResult)> = Vec::new();
    let mut record_error: Option<anyhow::Error> = None;
    while let Some(event) = rx.recv().await {
        let result: anyhow::Result<()> = async {
            match event {
                Event::StepStarted {
                    reference,
                    name,
                    at,
                } => {
                    // Recorded as running at once, so that readers see the step and a run that
                    // dies now leaves it to be marked aborted.
                    position += 1;
                    started.insert(reference.clone(), position);
                    let record = StepResult {
                        step_ref: reference.clone(),
                        name: names.get(&reference).cloned(),
                        position,
                        status: StepStatus::Running,
                        exit_code: None,
                        started_at: Some(ms(at)),
                        finished_at: None,
                        error_message: None,
                        peak_memory_bytes: None,
                        cpu_time_ms: None,
                    };
                    store.record_step(&exec.id, &record).await?;
                    if reference != "root" {
                        ui.step_started(&display_name(&names, &reference, &name));
                    }
                }
                Event::Log(chunk) => {
                    let w = match writers.get_mut(&chunk.reference) {
                        Some(w) => w,
                        None => {
                            let w = store.log_writer(&exec.id, &chunk.reference).await?;
                            writers.entry(chunk.reference.clone()).or_insert(w)
                        }
                    };
                    let at = ms(chunk.at);
                    for line in chunk.text.split_inclusive('\n') {
                        w.append(at, line).await?;
                    }
                    let tail = tails.entry(chunk.reference.clone()).or_default();
                    for line in chunk.text.lines() {
                        tail.push(line.to_string());
                    }
                    if tail.len() > 20 {
                        let cut = tail.len() - 20;
                        tail.drain(..cut);
                    }
                    ui.log(&display_name(&names, &chunk.reference, ""), &chunk.text);
                }
                Event::StepFinished { reference, result } => {
                    if let Some(w) = writers.remove(&reference) {
                        w.finish().await?;
                    }
                    let position = started.get(&reference).copied().unwrap_or_else(|| {
                        position += 1;
                        position
                    });
                    let record = StepResult {
                        step_ref: reference.clone(),
                        name: names.get(&reference).cloned(),
                        position,
                        status: result.status,
                        exit_code: result.exit_code.map(i64::from),
                        started_at: result.started_at.map(ms),
                        finished_at: Some(ms(result.finished_at)),
                        error_message: result.error.clone(),
                        peak_memory_bytes: result.peak_rss_bytes.map(|b| b as i64),
                        cpu_time_ms: result.cpu_time.map(|d| d.as_millis() as i64),
                    };
                    store.record_step(&exec.id, &record).await?;
                    if reference != "root" {
                        ui.step_finished(&display_name(&names, &reference, ""), &record);
                    }
                    if matches!(
                        result.status,
                        StepStatus::Failed | StepStatus::Timeout | StepStatus::Aborted
                    ) {
                        failed_steps.push((reference, record));
                    }
                }
                Event::Output {
                    reference,
                    key,
                    value,
                } => {
                    store
                        .add_output(
                            &exec.id,
                            &Output {
                                step_ref: Some(reference),
                                name: key,
                                value: Value::String(value),
                            },
                        )
                        .await?;
                }
                Event::Artifact {
                    reference,
                    path,
                    size: _,
                    source,
                } => {
                    store
                        .put_artifact_file(&exec.id, Some(&reference), &path, None, &source)
                        .await?;
                }
                Event::Service {
                    name, index, state, ..
                } => ui.service(&name, index, &state),
                Event::Worker { .. } => {}
                Event::ExecutionFinished { status, error, at } => {
                    finished = Some((status, error, at));
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // The history cannot keep up (disk full, database gone): stop the run rather than
            // run on without a record.
            if record_error.is_none() {
                record_error = Some(e);
                cancel.cancel();
            }
        }
    }
    let outcome = engine.await?;
    signals.abort();
    abort_poll.abort();
    for (_, w) in writers.drain() {
        let _ = w.finish().await;
    }
    let (status, error, at) =
        finished.unwrap_or((outcome.status, outcome.error.clone(), outcome.finished_at));
    let (status, error) = match &record_error {
        Some(e) => (
            ExecutionStatus::Aborted,
            Some(format!("failed to record the execution: {e:#}")),
        ),
        None => (status, error),
    };
    store
        .finish_execution(
            &exec.id,
            Finish {
                status,
                error_message: error.clone(),
                at: ms(at),
            },
        )
        .await?;
    drop(heartbeat);
    let _ = std::fs::remove_dir_all(&work_dir);

    let full = store
        .get_execution(&ExecutionRef::Id(exec.id.clone()))
        .await?;
    if args.output.is_some() {
        let view = TestWorkflowExecution::from(&full);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&view)?);
    }
    ui.summary(
        &full,
        &names,
        &failed_steps,
        &tails,
        error.as_deref(),
        store,
    );
    if let Some(e) = record_error {
        return Err(e);
    }
    Ok(if status == ExecutionStatus::Passed {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

/// Who started the execution: the CLI, inside a CI system when one is detected.
fn running_context() -> RunningContext {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let ci = if env("GITHUB_ACTIONS").is_some() {
        Some((
            "github",
            env("GITHUB_SHA"),
            env("GITHUB_REF_NAME"),
            env("GITHUB_ACTOR"),
        ))
    } else if env("GITLAB_CI").is_some() {
        Some((
            "gitlab",
            env("CI_COMMIT_SHA"),
            env("CI_COMMIT_REF_NAME"),
            env("GITLAB_USER_LOGIN"),
        ))
    } else if env("BUILDKITE").is_some() {
        Some((
            "buildkite",
            env("BUILDKITE_COMMIT"),
            env("BUILDKITE_BRANCH"),
            env("BUILDKITE_BUILD_CREATOR"),
        ))
    } else if env("CIRCLECI").is_some() {
        Some((
            "circleci",
            env("CIRCLE_SHA1"),
            env("CIRCLE_BRANCH"),
            env("CIRCLE_USERNAME"),
        ))
    } else if env("JENKINS_URL").is_some() {
        Some(("jenkins", env("GIT_COMMIT"), env("GIT_BRANCH"), None))
    } else {
        None
    };
    match ci {
        Some((provider, commit, branch, actor)) => RunningContext {
            kind: ContextType::Ci,
            actor,
            ci: Some(assay_store::CiContext {
                provider: Some(provider.into()),
                commit,
                branch,
                ..Default::default()
            }),
        },
        None => RunningContext {
            kind: ContextType::Cli,
            actor: env("USER"),
            ci: None,
        },
    }
}

/// Display names of every step of the plan by ref (workers' steps under `<ref>/<index>/`).
fn step_names(plan: &Plan) -> HashMap<String, String> {
    fn walk(step: &PlanStep, prefix: &str, out: &mut HashMap<String, String>) {
        let name = if step.name.is_empty() {
            step.commands
                .first()
                .and_then(|c| {
                    c.shell
                        .as_deref()
                        .map(|s| s.lines().next().unwrap_or("").to_string())
                })
                .or_else(|| {
                    step.commands.first().map(|c| {
                        c.command
                            .iter()
                            .chain(&c.args)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                })
                .unwrap_or_else(|| step.reference.clone())
        } else {
            step.name.clone()
        };
        out.insert(format!("{prefix}{}", step.reference), name);
        for child in &step.steps {
            walk(child, prefix, out);
        }
        if let Some(p) = &step.parallel
            && let Some(workers) = &p.workers
        {
            for w in workers {
                let pre = format!("{prefix}{}/{}/", step.reference, w.instance.index);
                walk(&w.root, &pre, out);
                let label = if w.description.is_empty() {
                    format!("worker {}/{}", w.instance.index + 1, w.instance.count)
                } else {
                    format!(
                        "worker {}/{}: {}",
                        w.instance.index + 1,
                        w.instance.count,
                        w.description
                    )
                };
                out.insert(format!("{pre}root"), label);
            }
        }
    }
    let mut out = HashMap::new();
    walk(&plan.root, "", &mut out);
    out
}

fn display_name(names: &HashMap<String, String>, reference: &str, fallback: &str) -> String {
    names.get(reference).cloned().unwrap_or_else(|| {
        if fallback.is_empty() {
            reference.to_string()
        } else {
            fallback.to_string()
        }
    })
}

/// Terminal output for people, on stderr: colour only on a terminal without `NO_COLOR`.
struct Ui {
    quiet: bool,
    color: bool,
}

impl Ui {
    fn new(quiet: bool) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { quiet, color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn header(&self, exec: &str, workflow: &str, plan: &Plan) {
        eprintln!("{} {exec} ({workflow})", self.paint("1", "running"));
        for note in &plan.notes {
            eprintln!("{}: {note}", self.paint("2", "note"));
        }
    }

    fn step_started(&self, name: &str) {
        if !self.quiet {
            eprintln!("{} {name}", self.paint("36", "▶"));
        }
    }

    fn log(&self, name: &str, text: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        for line in text.lines() {
            let _ = writeln!(err, "  {} {line}", self.paint("2", &format!("{name} |")));
        }
    }

    fn step_finished(&self, name: &str, r: &StepResult) {
        if self.quiet {
            return;
        }
        let secs = match (r.started_at, r.finished_at) {
            (Some(a), Some(b)) => format!(" {:.2}s", (b - a).max(0) as f64 / 1000.0),
            _ => String::new(),
        };
        let (symbol, code) = status_symbol(r.status);
        let detail = match (r.status, r.exit_code) {
            (StepStatus::Passed | StepStatus::Skipped, _) => String::new(),
            (_, Some(c)) => format!(" (exit code {c})"),
            _ => String::new(),
        };
        eprintln!(
            "{} {name} {}{secs}{detail}",
            self.paint(code, symbol),
            r.status
        );
    }

    fn service(&self, name: &str, index: u64, state: &assay_engine::ServiceState) {
        if !self.quiet {
            eprintln!(
                "  {} service {name}/{index}: {state:?}",
                self.paint("35", "◆")
            );
        }
    }

    fn summary(
        &self,
        e: &assay_store::Execution,
        names: &HashMap<String, String>,
        failed: &[(String, StepResult)],
        tails: &HashMap<String, Vec<String>>,
        error: Option<&str>,
        store: &Store,
    ) {
        let s = &e.summary;
        let duration = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => format!(" in {:.2}s", (b - a).max(0) as f64 / 1000.0),
            _ => String::new(),
        };
        let (_, code) = match s.status {
            ExecutionStatus::Passed => ("", "32"),
            _ => ("", "31"),
        };
        eprintln!();
        eprintln!(
            "{} {}{duration}",
            s.name,
            self.paint(&format!("1;{code}"), s.status.as_str())
        );
        if let Some(err) = error {
            eprintln!("  reason: {err}");
        }
        // The innermost failing step says most; its parents fail because of it.
        if let Some((reference, r)) = failed.first() {
            let name = display_name(names, reference, "");
            let code = r
                .exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default();
            eprintln!("  failed step: {name} [{reference}] {}{code}", r.status);
            if let Some(msg) = &r.error_message {
                eprintln!("  {msg}");
            }
            if let Some(lines) = tails.get(reference) {
                let start = lines.len().saturating_sub(10);
                for l in &lines[start..] {
                    eprintln!("    {l}");
                }
            }
        }
        if !e.artifacts.is_empty() {
            eprintln!(
                "  artifacts: {} file(s) in {} — `assay artifacts {}`",
                e.artifacts.len(),
                store.files_location(),
                s.name
            );
        }
        eprintln!("  logs: `assay logs {}`", s.name);
    }
}

fn status_symbol(s: StepStatus) -> (&'static str, &'static str) {
    match s {
        StepStatus::Passed => ("✔", "32"),
        StepStatus::Skipped => ("○", "2"),
        StepStatus::Timeout => ("⏱", "31"),
        StepStatus::Aborted | StepStatus::Canceled => ("■", "33"),
        _ => ("✘", "31"),
    }
}
