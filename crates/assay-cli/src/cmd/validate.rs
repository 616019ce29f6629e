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
use std::path::{Path, PathBuf};

use assay_spec::diagnostic::{self, Diagnostic};
use assay_spec::load::{Kind, Loaded};
use assay_spec::validate::{self, TemplateIndex};

use crate::error::UserError;
use crate::exit;

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

/// One file read and checked.
struct Checked {
    display: String,
    loaded: Loaded,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let files = expand(&args.paths)?;
    let template_files = expand(&args.templates)?;

    let checked: Vec<Checked> = files
        .iter()
        .map(|path| check_file(path))
        .collect::<Result<_, _>>()?;

    // Templates come from the same file, every other file given, and --templates paths.
    let mut index = TemplateIndex::new();
    for c in &checked {
        index.add_file(&c.display, &c.loaded);
    }
    for path in &template_files {
        let c = check_file(path)?;
        index.add_file(&c.display, &c.loaded);
    }

    let (mut total, mut invalid) = (0usize, 0usize);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for mut c in checked {
        let missing: Vec<Diagnostic> = c
            .loaded
            .documents
            .iter()
            .filter(|d| d.kind == Kind::TestWorkflow)
            .flat_map(|d| index.missing_templates(&c.display, d))
            .collect();
        c.loaded.diagnostics.extend(missing);
        diagnostic::sort(&mut c.loaded.diagnostics);
        total += c.loaded.checked;
        invalid += c.loaded.invalid();
        for d in &c.loaded.diagnostics {
            if write_line(&mut out, &d.to_string()).is_err() {
                return Ok(exit::INVALID);
            }
        }
    }
    let summary = format!(
        "{total} documents, {} valid, {invalid} invalid",
        total - invalid
    );
    if write_line(&mut out, &summary).is_err() {
        return Ok(exit::INVALID);
    }
    Ok(if invalid == 0 {
        exit::SUCCESS
    } else {
        exit::INVALID
    })
}

/// A closed pipe (`assay validate . | head`) ends the output quietly.
fn write_line(out: &mut impl Write, line: &str) -> io::Result<()> {
    writeln!(out, "{line}")
}

fn check_file(path: &Path) -> anyhow::Result<Checked> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        UserError::invalid(format!("failed to read `{display}`: {}", io_reason(&e)))
    })?;
    let loaded = validate::check_bytes(&display, &bytes);
    Ok(Checked { display, loaded })
}

/// Files named directly, and every .yaml/.yml file under folders (sorted, recursive).
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| {
            UserError::invalid(format!(
                "failed to read `{}`: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        UserError::invalid(format!(
            "failed to read folder `{}`: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// `No such file or directory`, without the "(os error 2)" tail.
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}
