//! Input documents: multi-document YAML or JSON (Kubernetes manifests, Kustomize output,
//! Terraform plan JSON, anything), with `kind: List` unwrapped.

use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::Error;

/// One document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub source: PathBuf,
    /// 1-based position of the document in its file.
    pub index: usize,
    pub value: Value,
}

/// Parses text that holds one JSON value or one or more YAML documents.
pub fn parse(text: &str, source: &Path) -> Result<Vec<Document>, Error> {
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => vec![v],
            Err(_) => yaml_docs(text, source)?,
        }
    } else {
        yaml_docs(text, source)?
    };
    let mut out = Vec::new();
    for v in values {
        if v.is_null() {
            continue;
        }
        if v.get("kind").and_then(Value::as_str) == Some("List")
            && let Some(items) = v.get("items").and_then(Value::as_array)
        {
            for item in items {
                out.push(Document {
                    source: source.to_path_buf(),
                    index: out.len() + 1,
                    value: item.clone(),
                });
            }
            continue;
        }
        out.push(Document {
            source: source.to_path_buf(),
            index: out.len() + 1,
            value: v,
        });
    }
    Ok(out)
}

fn yaml_docs(text: &str, source: &Path) -> Result<Vec<Value>, Error> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| Error::Parse {
        path: source.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a file, or every `.yaml`/`.yml`/`.json` file under a folder (sorted, recursively).
pub fn read_path(path: &Path) -> Result<Vec<Document>, Error> {
    let mut out = Vec::new();
    for file in files_under(path)? {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Read {
            path: file.clone(),
            source: e,
        })?;
        out.extend(parse(&text, &file)?);
    }
    Ok(out)
}

pub fn files_under(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::Read {
            path: dir.clone(),
            source: e,
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::Read {
                path: dir.clone(),
                source: e,
            })?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| Error::Read {
                path: p.clone(),
                source: e,
            })?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}
