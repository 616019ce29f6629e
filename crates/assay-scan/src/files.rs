//! Scanning files and folders: every regular file under each path (`.git` folders left out),
//! in name order; binary files and files over the size limit are skipped and listed.

use std::path::{Path, PathBuf};

use crate::scan::{Fragment, scan_fragment};
use crate::{Error, Options, Report, Skipped};

pub fn scan_paths(
    rules: &crate::rules::Rules,
    paths: &[PathBuf],
    options: &Options,
) -> Result<Report, Error> {
    let mut report = Report::default();
    for root in paths {
        let mut files = Vec::new();
        collect(root, &mut files)?;
        for file in files {
            let shown = display(&file);
            let meta = std::fs::metadata(&file).map_err(|e| Error::Read {
                path: file.clone(),
                source: e,
            })?;
            if meta.len() > options.max_file_size {
                report.skipped.push(Skipped {
                    file: shown,
                    reason: format!("larger than {} bytes", options.max_file_size),
                });
                continue;
            }
            let bytes = std::fs::read(&file).map_err(|e| Error::Read {
                path: file.clone(),
                source: e,
            })?;
            if bytes[..bytes.len().min(8000)].contains(&0) {
                report.skipped.push(Skipped {
                    file: shown,
                    reason: "binary".into(),
                });
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            report.files += 1;
            report.findings.extend(scan_fragment(
                rules,
                &Fragment {
                    text: &text,
                    path: &shown,
                    commit: None,
                    author: None,
                    date: None,
                    line_numbers: None,
                },
            ));
        }
    }
    Ok(report)
}

/// `./a/b` is shown as `a/b`.
fn display(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !meta.is_dir() {
        // Symbolic links and special files are not followed (a link could leave the tree).
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::Read {
            path: path.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        collect(&entry, out)?;
    }
    Ok(())
}
