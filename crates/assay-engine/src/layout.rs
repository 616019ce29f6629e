//! Where one execution's files live, and how paths as steps see them map to the host.

use std::path::{Path, PathBuf};

use crate::sandbox::{Confinement, Sandbox, StepUser};

/// The folders of one execution (the main one or a parallel worker).
#[derive(Debug)]
pub(crate) struct Layout {
    pub data: PathBuf,
    pub outputs: PathBuf,
    pub tmp: PathBuf,
    /// The private mount namespace, when steps run in one.
    pub sandbox: Option<Sandbox>,
}

/// The folder steps see as `/data`.
pub(crate) const DATA: &str = "/data";
/// The folder steps see as `/testkube/outputs`.
pub(crate) const OUTPUTS: &str = "/testkube/outputs";

impl Layout {
    /// Creates `data/`, `outputs/` and `tmp/` under `root` (owned by the step user when there
    /// is one), and a namespace when asked.
    pub(crate) async fn create(
        root: &Path,
        namespace: Option<&Confinement>,
        user: Option<&StepUser>,
    ) -> Result<Layout, String> {
        let data = root.join("data");
        let outputs = root.join("outputs");
        let tmp = root.join("tmp");
        for d in [&data, &outputs, &tmp] {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("failed to create {}: {e}", d.display()))?;
            give(d, user)?;
        }
        let sandbox = match namespace {
            Some(c) => Some(Sandbox::start(&root.join(".root"), &data, &outputs, c).await?),
            None => None,
        };
        Ok(Layout {
            data,
            outputs,
            tmp,
            sandbox,
        })
    }

    /// The host path of a path as steps see it: `/data/...` and `/testkube/outputs/...` are
    /// this execution's folders; other absolute paths are the host's.
    pub(crate) fn to_host(&self, path: &str) -> PathBuf {
        if let Some(rest) = strip_dir(path, DATA) {
            return self.data.join(rest);
        }
        if let Some(rest) = strip_dir(path, OUTPUTS) {
            return self.outputs.join(rest);
        }
        PathBuf::from(path)
    }

    /// Stops the namespace holder.
    pub(crate) async fn close(&mut self) {
        if let Some(s) = self.sandbox.take() {
            s.stop().await;
        }
    }
}

/// Hands a folder the engine made to the step user, so steps can write in it.
pub(crate) fn give(path: &Path, user: Option<&StepUser>) -> Result<(), String> {
    if let Some(u) = user {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|e| format!("failed to hand {} to user {}: {e}", path.display(), u.name))?;
    }
    Ok(())
}

/// [`give`] for a whole tree (what the engine wrote or cloned for steps); links themselves.
pub(crate) fn give_tree(path: &Path, user: Option<&StepUser>) -> Result<(), String> {
    let Some(u) = user else { return Ok(()) };
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(u.uid), Some(u.gid))
            .map_err(|e| format!("failed to hand {} to user {}: {e}", p.display(), u.name))?;
        if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            for entry in
                std::fs::read_dir(&p).map_err(|e| format!("failed to read {}: {e}", p.display()))?
            {
                stack.push(entry.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(())
}

/// `path` below `dir` (`""` for `dir` itself), if it is.
fn strip_dir<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(dir)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

/// Joins a path onto a base the way a shell `cd` would (absolute paths replace the base).
pub(crate) fn join(base: &str, path: &str) -> String {
    if path.is_empty() {
        base.to_string()
    } else if path.starts_with('/') || base.is_empty() {
        path.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path)
    }
}

/// Whether text uses an absolute path under `/data` or `/testkube` (what only a private
/// mount namespace can give a process).
pub(crate) fn mentions_private_paths(text: &str) -> bool {
    ["/data", "/testkube"].iter().any(|dir| {
        text.match_indices(dir).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + dir.len()..].chars().next();
            let starts = before.is_none_or(|c| {
                !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '~' | '$' | '}'))
            });
            let ends = after.is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')));
            starts && ends
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_private_paths() {
        assert!(mentions_private_paths("cd /data/repo"));
        assert!(mentions_private_paths("echo 1 > /testkube/outputs/x"));
        assert!(mentions_private_paths("\"/data\""));
        assert!(!mentions_private_paths("cat ./data/x /var/database"));
        assert!(!mentions_private_paths("$HOME/data"));
    }

    #[test]
    fn joins() {
        assert_eq!(join("/data", "repo"), "/data/repo");
        assert_eq!(join("/data", "/tmp"), "/tmp");
        assert_eq!(join("/data/", ""), "/data/");
    }
}
