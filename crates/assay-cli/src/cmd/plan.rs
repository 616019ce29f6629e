//! `assay plan FILE [--name NAME] [--config k=v]... [--templates PATH]... [-o yaml|json]`:
//! print the compiled plan of one workflow — the contract between the compiler and the engine.
//! The store (`--data-dir`, ...) is opened only for `balance: durations`, to read history.

use std::io::Write;
use std::path::PathBuf;

use assay_spec::load::{Kind, LoadedDocument};
use assay_spec::model::{Document, TestWorkflow};
use assay_spec::resolve::PathError;
use assay_spec::{CompileRequest, Strictness, TemplateSet};
use indexmap::IndexMap;
use serde_json::Value;

use crate::error::{Reported, UserError};
use crate::exit;
use crate::files::{self, LoadedFile};
use crate::store_args::StoreArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file holding the workflow
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Which workflow of the file (when it holds several)
    #[arg(long)]
    pub name: Option<String>,

    /// A config value, `key=value` (repeatable)
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,

    /// Files or folders to find templates in (repeatable)
    #[arg(long = "templates", value_name = "PATH")]
    pub templates: Vec<PathBuf>,

    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: PlanFormat,

    #[command(flatten)]
    pub runtime: crate::runtime_args::RuntimeArgs,

    /// Where history lives: read only when a `parallel` has `balance: durations`
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `key=value` → (key, value); the value may contain `=`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected `key=value`, got `{s}`")),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let file = files::load_file(&args.file)?;
    let (workflow, doc) = pick_workflow(&file, args.name.as_deref())?;
    let templates = template_set(&file, &args.templates)?;
    let mut req = CompileRequest::new(&workflow, &templates);
    req.config = args
        .config
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<IndexMap<_, _>>();
    req.strictness = Strictness::Require;
    if workflow.balances_durations() {
        // Shards spread by the durations of the workflow's last runs; each worker shows its
        // predicted load (`predictedMs`).
        req.durations = tokio::runtime::Runtime::new()?.block_on(async {
            let store = args.store.open().await?;
            let durations = store.shard_durations(&workflow.metadata.name).await;
            store.close().await;
            anyhow::Ok(durations?)
        })?;
    }
    let mut compiled = match assay_spec::compile(&req) {
        Ok(c) => c,
        Err(errors) => {
            report(&file.display, doc, &errors);
            return Err(Reported(exit::INVALID).into());
        }
    };
    crate::runtime_args::describe(args.runtime.runtime, &mut compiled.plan);
    let text = match args.output {
        PlanFormat::Json => serde_json::to_string_pretty(&compiled.plan)? + "\n",
        PlanFormat::Yaml => serde_saphyr::to_string(&compiled.plan)?,
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`assay plan x | head`) is not an error.
    let _ = out.write_all(text.as_bytes());
    Ok(exit::SUCCESS)
}

/// The workflow to compile: the one named, or the file's only workflow.
pub fn pick_workflow<'f>(
    file: &'f LoadedFile,
    name: Option<&str>,
) -> anyhow::Result<(TestWorkflow, &'f LoadedDocument)> {
    if file.loaded.has_errors() {
        for d in &file.loaded.diagnostics {
            eprintln!("{d}");
        }
        return Err(Reported(exit::INVALID).into());
    }
    let workflows: Vec<&LoadedDocument> = file
        .loaded
        .documents
        .iter()
        .filter(|d| d.kind == Kind::TestWorkflow)
        .collect();
    let names: Vec<&str> = workflows.iter().map(|d| d.name.as_str()).collect();
    let chosen = match name {
        Some(n) => workflows
            .iter()
            .find(|d| d.name == n)
            .copied()
            .ok_or_else(|| {
                let e =
                    UserError::invalid(format!("`{}` holds no workflow named `{n}`", file.display));
                if names.is_empty() {
                    e
                } else {
                    e.with_hint(format!("it holds: {}", names.join(", ")))
                }
            })?,
        None => match workflows.as_slice() {
            [one] => *one,
            [] => {
                return Err(UserError::invalid(format!(
                    "`{}` holds no TestWorkflow",
                    file.display
                ))
                .into());
            }
            _ => {
                return Err(UserError::invalid(format!(
                    "`{}` holds {} workflows; pick one with --name",
                    file.display,
                    workflows.len()
                ))
                .with_hint(format!("it holds: {}", names.join(", ")))
                .into());
            }
        },
    };
    match &chosen.document {
        Document::TestWorkflow(w) => Ok((w.clone(), chosen)),
        Document::TestWorkflowTemplate(_) => unreachable_kind(),
    }
}

fn unreachable_kind() -> anyhow::Result<(TestWorkflow, &'static LoadedDocument)> {
    Err(anyhow::anyhow!(
        "internal error: a TestWorkflow document did not hold a workflow"
    ))
}

/// Templates from the workflow's own file and from `--templates` paths.
pub fn template_set(file: &LoadedFile, extra: &[PathBuf]) -> anyhow::Result<TemplateSet> {
    let mut set = TemplateSet::new();
    for path in files::expand(extra)? {
        let f = files::load_file(&path)?;
        files::add_templates(&mut set, &f);
    }
    // The workflow's own file wins over --templates.
    files::add_templates(&mut set, file);
    Ok(set)
}

/// Print compile errors as `file:line:col: message` with hints, on stderr.
pub fn report(display: &str, doc: &LoadedDocument, errors: &[PathError]) {
    for e in errors {
        let (line, col) = doc.locations.locate(&e.path).unwrap_or((doc.line, 1));
        eprintln!("{display}:{line}:{col}: {}", e.message);
        if let Some(h) = &e.hint {
            eprintln!("  hint: {h}");
        }
    }
}
