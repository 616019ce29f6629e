//! Reading workflow files and folders given on the command line.

use std::io;
use std::path::{Path, PathBuf};

use assay_spec::load::{Kind, Loaded};
use assay_spec::model::Document;
use assay_spec::{TemplateSet, validate};

use crate::error::UserError;

/// One file read and loaded.
pub struct LoadedFile {
    pub display: String,
    pub loaded: Loaded,
}

/// Read and load one file (every document checked).
pub fn load_file(path: &Path) -> anyhow::Result<LoadedFile> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        UserError::invalid(format!("failed to read `{display}`: {}", io_reason(&e)))
    })?;
    let loaded = validate::check_bytes(&display, &bytes);
    Ok(LoadedFile { display, loaded })
}

/// Files named directly, and every .yaml/.yml file under folders (sorted, recursive).
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
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

/// Add every valid template of `file` to `set`.
pub fn add_templates(set: &mut TemplateSet, file: &LoadedFile) {
    for doc in &file.loaded.documents {
        if doc.kind == Kind::TestWorkflowTemplate
            && file.loaded.is_valid(doc.index)
            && let Document::TestWorkflowTemplate(t) = &doc.document
        {
            set.insert(t.clone());
        }
    }
}

/// `No such file or directory`, without the "(os error 2)" tail.
pub fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}
