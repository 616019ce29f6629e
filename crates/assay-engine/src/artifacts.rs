//! Finding a step's artifacts by glob (`**` included).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSetBuilder};

/// One file to report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    /// Relative to the artifacts' working directory when inside it, else to the pattern's
    /// literal base folder; `/`-separated.
    pub path: String,
    pub size: u64,
    pub source: PathBuf,
}

/// Why a step's artifact patterns could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArtifactError {
    #[error("invalid artifact pattern `{pattern}`: {source}")]
    Pattern {
        pattern: String,
        source: globset::Error,
    },
    /// The patterns could not be combined into one matcher.
    #[error("{0}")]
    Matcher(globset::Error),
}

/// Calls `f(relative path, absolute path)` for every regular file under `base`, following no
/// symbolic links to folders.
pub(crate) fn walk(base: &Path, f: &mut dyn FnMut(&str, &Path)) {
    let mut stack = vec![(base.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push((path, rel));
            } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                f(&rel, &path);
            }
        }
    }
}

/// Splits an absolute or relative pattern into a literal base folder and the glob below it.
pub(crate) fn split_pattern(pattern: &str) -> (String, String) {
    let mut base = Vec::new();
    let mut parts = pattern.split('/').peekable();
    while let Some(p) = parts.peek() {
        if p.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(*p);
        parts.next();
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        // A plain path: a file, or a folder meaning everything in it.
        return (base.join("/"), String::new());
    }
    (base.join("/"), rest.join("/"))
}

/// The name an artifact is stored under: relative to the working directory when inside it,
/// else to the pattern's base folder; a pattern naming one file outside the working directory
/// gives that file's name (never an empty path).
fn relative_name(abs: &Path, work_dir: &Path, base: &Path) -> String {
    let rel = if abs.starts_with(work_dir) && abs != work_dir {
        abs.strip_prefix(work_dir).ok()
    } else if abs.starts_with(base) && abs != base {
        abs.strip_prefix(base).ok()
    } else {
        None
    };
    match rel {
        Some(rel) => rel.to_string_lossy().into_owned(),
        None => abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| abs.to_string_lossy().into_owned()),
    }
}

/// The files matching `patterns`. `to_host` maps a path as steps see it to the host;
/// `work_dir` is the artifacts' working directory (host path).
pub(crate) fn collect(
    patterns: &[String],
    work_dir: &Path,
    to_host: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<Found>, ArtifactError> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for pattern in patterns {
        let (base, glob) = split_pattern(pattern);
        let base_host = if base.starts_with('/') {
            to_host(&base)
        } else if base.is_empty() {
            work_dir.to_path_buf()
        } else {
            work_dir.join(&base)
        };
        let matcher = if glob.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            set.add(Glob::new(&glob).map_err(|source| ArtifactError::Pattern {
                pattern: pattern.clone(),
                source,
            })?);
            Some(set.build().map_err(ArtifactError::Matcher)?)
        };
        let mut push = |abs: &Path| {
            if !seen.insert(abs.to_path_buf()) {
                return;
            }
            let Ok(meta) = std::fs::metadata(abs) else {
                return;
            };
            let path = relative_name(abs, work_dir, &base_host);
            found.push(Found {
                path,
                size: meta.len(),
                source: abs.to_path_buf(),
            });
        };
        match &matcher {
            None if base_host.is_file() => push(&base_host),
            None => walk(&base_host, &mut |_, abs| push(abs)),
            Some(m) => walk(&base_host, &mut |rel, abs| {
                if m.is_match(rel) {
                    push(abs)
                }
            }),
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_patterns() {
        assert_eq!(
            split_pattern("/data/out/**/*.xml"),
            ("/data/out".into(), "**/*.xml".into())
        );
        assert_eq!(
            split_pattern("report.txt"),
            ("report.txt".into(), String::new())
        );
        assert_eq!(split_pattern("**/*"), (String::new(), "**/*".into()));
    }

    #[test]
    fn a_single_file_is_named_after_itself() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("data/repo");
        let out = dir.path().join("data/out");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("junit.xml"), "<testsuites/>").unwrap();
        std::fs::write(work.join("inside.txt"), "x").unwrap();
        let to_host = |p: &str| dir.path().join(p.trim_start_matches('/'));
        let found = collect(
            &["/data/out/junit.xml".into(), "inside.txt".into()],
            &work,
            &to_host,
        )
        .unwrap();
        let names: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["inside.txt", "junit.xml"]);
    }
}
