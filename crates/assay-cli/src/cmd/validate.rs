//! `assay validate PATH... [--templates PATH]...`: check every TestWorkflow and
//! TestWorkflowTemplate document in files and folders.
//!
//! Output contract (stdout, one problem per line in file order, then a summary):
//!
//! ```text
//! flows/api.yaml:12:7: unknown field `shel`
//!   hint: did you mean `shell`?
//! 3 documents, 2 valid, 1 invalid
//! ```
//!
//! Exit 0 when every document is valid (warnings allowed), 2 otherwise.

use std::io::{self, Write};
use std::path::PathBuf;

use assay_spec::diagnostic::{self, Diagnostic};
use assay_spec::load::{Kind, LoadedDocument};
use assay_spec::model::Document;
use assay_spec::{CompileRequest, Strictness, TemplateSet};

use crate::exit;
use crate::files::{self, LoadedFile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders to check (a folder means every .yaml/.yml file under it)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// More files or folders to look in for templates named by `use:` and `template:`
    /// (repeatable; their own problems are not reported)
    #[arg(long = "templates", value_name = "PATH")]
    pub templates: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let paths = files::expand(&args.paths)?;
    let template_paths = files::expand(&args.templates)?;
    let mut checked: Vec<LoadedFile> = paths
        .iter()
        .map(|p| files::load_file(p))
        .collect::<Result<_, _>>()?;

    // Templates come from --templates paths and every file given; a file given wins.
    let mut templates = TemplateSet::new();
    for path in &template_paths {
        files::add_templates(&mut templates, &files::load_file(path)?);
    }
    for file in &checked {
        files::add_templates(&mut templates, file);
    }

    let (mut total, mut invalid) = (0usize, 0usize);
    let mut out = io::stdout().lock();
    for file in &mut checked {
        let compile_errors: Vec<Diagnostic> = file
            .loaded
            .documents
            .iter()
            // Repaired ones too (loaded with their bad parts left out): one pass reports the
            // problems of every phase.
            .chain(&file.loaded.repaired)
            .filter(|d| d.kind == Kind::TestWorkflow)
            .flat_map(|d| compile_problems(&file.display, d, &templates))
            .filter(|d| !diagnostic::is_follow_on(&file.loaded.diagnostics, d))
            .collect();
        file.loaded.diagnostics.extend(compile_errors);
        diagnostic::sort(&mut file.loaded.diagnostics);
        total += file.loaded.checked;
        invalid += file.loaded.invalid();
        for d in &file.loaded.diagnostics {
            // A closed pipe (`assay validate . | head`) ends the output quietly.
            if writeln!(out, "{d}").is_err() {
                return Ok(exit::INVALID);
            }
        }
    }
    let valid = total - invalid;
    if writeln!(out, "{total} documents, {valid} valid, {invalid} invalid").is_err() {
        return Ok(exit::INVALID);
    }
    Ok(if invalid == 0 {
        exit::SUCCESS
    } else {
        exit::INVALID
    })
}

/// What the compiler finds in a loaded workflow: missing templates, template config
/// errors, bad expressions in context. Config values are not given, so missing ones are fine.
fn compile_problems(file: &str, doc: &LoadedDocument, templates: &TemplateSet) -> Vec<Diagnostic> {
    let Document::TestWorkflow(workflow) = &doc.document else {
        return Vec::new();
    };
    let mut req = CompileRequest::new(workflow, templates);
    req.strictness = Strictness::Lenient;
    match assay_spec::compile(&req) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| {
                let (line, column) = doc.locations.locate(&e.path).unwrap_or((doc.line, 1));
                Diagnostic::error(file, line, column, e.message)
                    .with_hint_opt(e.hint)
                    .in_document(doc.index)
                    .at_path(e.path)
            })
            .collect(),
    }
}
