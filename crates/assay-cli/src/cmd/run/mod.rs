//! `assay run FILE|NAME`: compile a workflow, run it on this machine, record it, and exit with
//! its verdict (0 passed, 1 failed or aborted, 2 invalid input, 3 internal error).
//!
//! The engine's events are persisted first (step results, logs, outputs, artifacts) and only
//! then shown, so what the terminal shows is what the history holds.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use assay_engine::Event;
use assay_runner::{RunError, RunRequest, StepNames, running_context_from_env};
use assay_spec::TemplateSet;
use assay_spec::load::LoadedDocument;
use assay_spec::model::{Document, TestWorkflow};
use assay_spec::status::{ExecutionStatus, StepStatus};
use assay_store::testkube::TestWorkflowExecution;
use assay_store::{ContextType, DefinitionKind, Store};
use indexmap::IndexMap;
use serde_json::Value;

use crate::cmd::plan::{parse_key_value, pick_workflow, report, template_set};
use crate::error::{Reported, UserError};
use crate::exit;
use crate::files::{self, LoadedFile};
use crate::remote::ConnArgs;

mod ui;

use ui::display_name;
pub(crate) use ui::{FailedStep, Ui, Verdict};

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

    /// Run on agents whose label KEY is one of the VALUEs (`name` is the agent's name;
    /// repeatable, all must hold; through a server context only)
    #[arg(long = "target", value_name = "KEY=VALUE[,VALUE]", value_parser = parse_key_value)]
    pub target_match: Vec<(String, String)>,

    /// Not on agents whose label KEY is one of the VALUEs (repeatable; server context only)
    #[arg(long = "target-not", value_name = "KEY=VALUE[,VALUE]", value_parser = parse_key_value)]
    pub target_not: Vec<(String, String)>,

    /// Run once per distinct value of label KEY among the connected agents the target matches
    /// (`name`: once per agent; repeatable or comma-separated; server context only)
    #[arg(long = "replicate", value_name = "KEY[,KEY]", value_delimiter = ',')]
    pub replicate: Vec<String>,

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

    /// Write one JUnit XML file for the execution, for CI systems that read JUnit: the test
    /// cases of its JUnit reports, or one case per step when it has none
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    pub junit: Option<PathBuf>,

    /// With a context: stream the step changes and log lines as the server runs them (without
    /// it, wait for the verdict and show the summary). A run on this machine always streams
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// Run the tests that are new on this commit N more times after the run, through
    /// `testSelector(TOOL, execution.selectedTests)` in the workflow; a new test that fails in
    /// any run but not in all is reported flaky (exit 1)
    #[arg(long, value_name = "N", conflicts_with_all = ["all", "output"],
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat_new: Option<u32>,

    #[command(flatten)]
    pub runtime: crate::runtime_args::RuntimeArgs,

    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

/// One workflow ready to run: its definition and where it came from (for messages).
pub struct Target {
    pub workflow: TestWorkflow,
    pub display: String,
    pub doc: Option<LoadedDocument>,
}

/// Every template stored with `assay apply`.
pub async fn stored_templates(store: &Store) -> anyhow::Result<TemplateSet> {
    Ok(assay_runner::stored::templates(store).await?)
}

/// The tags the run learns from the git repository it starts in (`assay_runner::provenance`),
/// read once per command; `ai.source` is `tag` when `--tag ai.tool=…` names the tool. A
/// repository that cannot be read is said once on stderr and the run goes on without them.
pub fn provenance_tags(
    explicit: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    use assay_runner::provenance;
    let mut tags = std::collections::BTreeMap::new();
    if provenance::enabled_by_env() {
        let ci = running_context_from_env(ContextType::Cli).ci;
        match std::env::current_dir()
            .map_err(|e| e.to_string())
            .and_then(|dir| provenance::detect(&dir, ci.as_ref()).map_err(|e| e.to_string()))
        {
            Ok(Some(p)) => tags = provenance::tags(&p),
            Ok(None) => {}
            Err(e) => eprintln!("warning: provenance not recorded: failed to {e}"),
        }
    }
    if explicit.iter().any(|(k, _)| k == provenance::TAG_AI_TOOL) {
        tags.insert(provenance::TAG_AI_SOURCE.into(), "tag".into());
    }
    tags
}

async fn run_async(args: Args) -> anyhow::Result<u8> {
    if let Some(remote) = args.conn.remote()? {
        return super::run_remote::run(&args, &remote).await;
    }
    if !args.target_match.is_empty() || !args.target_not.is_empty() || !args.replicate.is_empty() {
        return Err(UserError::invalid(
            "`--target`, `--target-not` and `--replicate` choose agents of a server, and this run is embedded",
        )
        .with_hint("use a server context (`assay context use NAME` or `--context NAME`)")
        .into());
    }
    // No engine: one error (exit 3) before anything is recorded.
    args.runtime.install().await?;
    let store = args.conn.store.open().await?;
    let mut templates = stored_templates(&store).await?;
    let targets = targets(&args, &store, &mut templates).await?;
    let inferred = provenance_tags(&args.tags);
    let mut worst = exit::SUCCESS;
    for target in targets {
        let code = run_one(&args, &store, &templates, target, &inferred).await?;
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

/// What a run takes besides the workflow (from `assay run` flags, or from a recorded execution
/// for `assay rerun`).
pub struct RunInputs {
    pub config: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Tags learnt from the repository (provenance): recorded where nothing else set the key.
    pub inferred: std::collections::BTreeMap<String, String>,
    pub secrets: Vec<(String, String)>,
    pub output: Option<RunFormat>,
    pub quiet: bool,
    pub junit: Option<PathBuf>,
    /// `execution.selectedTests` (see [`assay_runner::RunRequest::selected_tests`]).
    pub selected_tests: Vec<Value>,
}

/// A finished run: its verdict's exit code and the execution it recorded.
pub struct Executed {
    pub code: u8,
    pub id: String,
    pub name: String,
}

async fn run_one(
    args: &Args,
    store: &Store,
    templates: &TemplateSet,
    target: Target,
    inferred: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<u8> {
    let inputs = RunInputs {
        config: args.config.clone(),
        tags: args.tags.clone(),
        inferred: inferred.clone(),
        secrets: args.secrets.clone(),
        output: args.output,
        quiet: args.quiet,
        junit: args.junit.clone(),
        selected_tests: Vec::new(),
    };
    let Some(times) = args.repeat_new else {
        return Ok(execute(&inputs, store, templates, target).await?.code);
    };
    super::repeat_new::run(inputs, store, templates, target, times).await
}

/// Run one workflow with its inputs, draw progress, print the summary (and `-o json`), and
/// return the exit code of the verdict.
pub async fn execute(
    args: &RunInputs,
    store: &Store,
    templates: &TemplateSet,
    target: Target,
) -> anyhow::Result<Executed> {
    let mut req = RunRequest::new(target.workflow.clone(), templates.clone());
    req.selected_tests = args.selected_tests.clone();
    req.config = args
        .config
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<IndexMap<_, _>>();
    req.tags = args.tags.iter().cloned().collect();
    req.inferred_tags = args.inferred.clone();
    req.secrets = args.secrets.iter().cloned().collect();
    req.running_context = running_context_from_env(ContextType::Cli);
    if let Some(w) = assay_engine::sandbox::isolation_warning() {
        eprintln!("warning: {w}");
    }
    // With the container runtime, the images are checked (and pulled) before anything is
    // recorded; a plan that does not compile is reported by `prepare` below.
    let mut creq = assay_spec::CompileRequest::new(&target.workflow, templates);
    creq.config = req.config.clone();
    if let Ok(compiled) = assay_spec::compile(&creq) {
        crate::runtime_args::check_images(&compiled.plan).await?;
    }
    let prepared = match assay_runner::prepare(store, req).await {
        Ok(p) => p,
        Err(RunError::Invalid(errors)) => {
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
        Err(e) => return Err(e.into()),
    };

    let ui = Ui::new(args.quiet || args.output.is_some());
    let exec = prepared.execution().clone();
    let mut shown = prepared.plan().clone();
    crate::runtime_args::describe(crate::runtime_args::active(), &mut shown);
    ui.header(&exec.name, &target.workflow.metadata.name, &shown);
    // Labels as people read them (`tests · worker 2/4`); workers made at run time are named as
    // the engine reports them.
    let mut names = prepared.step_names().clone();

    // Ctrl-C and SIGTERM abort the run: every process group stopped, recorded `aborted`.
    let cancel = prepared.cancel_token();
    let signals = tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        cancel.cancel();
    });

    let mut tails: HashMap<String, Vec<String>> = HashMap::new();
    let finished = prepared
        .run(|event| {
            names.learn(event);
            match event {
                Event::StepStarted {
                    reference, name, ..
                } if reference != "root" && !names.repeats(reference) => {
                    ui.step_started(&display_name(&names, reference, name));
                }
                Event::Log(chunk) => {
                    let tail = tails.entry(chunk.reference.clone()).or_default();
                    tail.extend(chunk.text.lines().map(str::to_string));
                    if tail.len() > 20 {
                        let cut = tail.len() - 20;
                        tail.drain(..cut);
                    }
                    ui.log(&display_name(&names, &chunk.reference, ""), &chunk.text);
                }
                Event::StepFinished { reference, result }
                    if reference != "root" && !names.repeats(reference) =>
                {
                    ui.step_finished(&display_name(&names, reference, ""), result);
                }
                Event::Warning { reference, message } => {
                    ui.warning(&display_name(&names, reference, ""), message);
                }
                Event::Service {
                    name, index, state, ..
                } => ui.service(name, *index, state),
                Event::Worker {
                    reference,
                    count,
                    state,
                    ..
                } => ui.worker(&display_name(&names, reference, ""), *count, state),
                _ => {}
            }
        })
        .await?;
    signals.abort();

    let full = &finished.execution;
    if args.output.is_some() {
        let view = TestWorkflowExecution::from(full);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&view)?);
    }
    if let Some(path) = &args.junit {
        write_junit_file(path, store, full, &names).await?;
    }
    ui.summary(full, &names, &tails, store);
    for q in &finished.auto_quarantined {
        eprintln!(
            "  auto-quarantined: {} until {} ({}) — from the next run on; `assay quarantine list`",
            q.test,
            q.until
                .map(assay_store::testkube::rfc3339)
                .unwrap_or_default(),
            q.rule.as_deref().unwrap_or("flaky")
        );
    }
    // What could not be recorded is said, but the verdict is the run's own.
    for e in &finished.record_errors {
        eprintln!("warning: {e}");
    }
    Ok(Executed {
        code: if full.summary.status == ExecutionStatus::Passed {
            exit::SUCCESS
        } else {
            exit::FAILED
        },
        id: full.summary.id.clone(),
        name: full.summary.name.clone(),
    })
}

/// `--junit FILE`: the execution's parsed test cases, or one case per step. Written to a
/// temporary file and renamed, so a CI system never reads half a report.
async fn write_junit_file(
    path: &std::path::Path,
    store: &Store,
    e: &assay_store::Execution,
    names: &StepNames,
) -> anyhow::Result<()> {
    use assay_reports::{CaseStatus, TestCase};
    let stored = store
        .test_cases(&assay_store::ExecutionRef::Id(e.summary.id.clone()), &[])
        .await?;
    let cases: Vec<TestCase> =
        if stored.is_empty() {
            e.steps
                .iter()
                .filter(|s| s.step_ref != "root" && !s.step_ref.ends_with("/root"))
                .map(|s| {
                    let status = match s.status {
                        StepStatus::Passed => CaseStatus::Passed,
                        StepStatus::Skipped => CaseStatus::Skipped,
                        _ => CaseStatus::Failed,
                    };
                    let message =
                        match status {
                            CaseStatus::Failed => Some(s.error_message.clone().unwrap_or_else(
                                || match s.exit_code {
                                    Some(c) => format!("{} with exit code {c}", s.status),
                                    None => s.status.to_string(),
                                },
                            )),
                            _ => None,
                        };
                    TestCase {
                        suite: e.summary.workflow.clone(),
                        class: Some(e.summary.workflow.clone()),
                        name: format!(
                            "{} [{}]",
                            display_name(names, &s.step_ref, &s.step_ref),
                            s.step_ref
                        ),
                        file: None,
                        status,
                        duration_ms: match (s.started_at, s.finished_at) {
                            (Some(a), Some(b)) => Some((b - a).max(0) as u64),
                            _ => None,
                        },
                        message,
                        output: None,
                        failed_reruns: 0,
                    }
                })
                .collect()
        } else {
            stored.into_iter().map(|c| c.case).collect()
        };
    let tmp = path.with_extension("xml.assay-partial");
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        assay_reports::write_junit(&mut f, &e.summary.name, &cases)?;
        f.flush()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        UserError::invalid(format!(
            "failed to write the JUnit report `{}`: {}",
            path.display(),
            crate::files::io_reason(&err)
        ))
    })?;
    Ok(())
}
