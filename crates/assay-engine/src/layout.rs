//! Where one execution's files live, and how paths as steps see them map to the host.

use std::path::{Path, PathBuf};

use crate::sandbox::StepUser;

/// The folders of one execution (the main one or a parallel worker) on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The folder that holds the others (the execution's, or the worker's, work folder).
    pub root: PathBuf,
    /// What steps see as `/data`.
    pub data: PathBuf,
    /// What steps see as `/testkube/outputs`.
    pub outputs: PathBuf,
    /// A temporary folder (`TMPDIR` of steps on the host).
    pub tmp: PathBuf,
}

/// Why the execution's folders could not be made or handed to the step user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    #[error("failed to create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `chown` to the step user refused.
    #[error("failed to hand {} to user {user}: {source}", path.display())]
    HandOver {
        path: PathBuf,
        user: String,
        source: std::io::Error,
    },
    #[error("failed to read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An entry of a folder being handed over could not be read.
    #[error("{0}")]
    Entry(std::io::Error),
}

/// The folder steps see as `/data`.
pub(crate) const DATA: &str = "/data";
/// The folder steps see as `/testkube/outputs`.
pub(crate) const OUTPUTS: &str = "/testkube/outputs";

impl Layout {
    /// The folders under `root`, without creating them.
    pub(crate) fn under(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
            data: root.join("data"),
            outputs: root.join("outputs"),
            tmp: root.join("tmp"),
        }
    }

    /// [`Layout::under`] `root`, with the `data` and `outputs` folders given instead when
    /// there are (a pod's own `/data`, see [`crate::RunOptions::data_dir`]).
    pub(crate) fn with(root: &Path, data: Option<&Path>, outputs: Option<&Path>) -> Layout {
        let mut layout = Layout::under(root);
        if let Some(d) = data {
            layout.data = d.to_path_buf();
        }
        if let Some(o) = outputs {
            layout.outputs = o.to_path_buf();
        }
        layout
    }

    /// Creates `data/`, `outputs/` and `tmp/` under `root` (owned by the step user when there
    /// is one).
    pub(crate) fn create(root: &Path, user: Option<&StepUser>) -> Result<Layout, LayoutError> {
        Layout::create_in(Layout::under(root), user)
    }

    /// Creates the folders of `layout` (owned by the step user when there is one).
    pub(crate) fn create_in(
        layout: Layout,
        user: Option<&StepUser>,
    ) -> Result<Layout, LayoutError> {
        for d in [&layout.data, &layout.outputs, &layout.tmp] {
            std::fs::create_dir_all(d).map_err(|source| LayoutError::Create {
                path: d.clone(),
                source,
            })?;
            give(d, user)?;
        }
        Ok(layout)
    }

    /// The host path of a path as steps see it: `/data/...` and `/testkube/outputs/...` are
    /// this execution's folders; other absolute paths are the host's.
    pub fn to_host(&self, path: &str) -> PathBuf {
        if let Some(rest) = strip_dir(path, DATA) {
            return self.data.join(rest);
        }
        if let Some(rest) = strip_dir(path, OUTPUTS) {
            return self.outputs.join(rest);
        }
        PathBuf::from(path)
    }

    /// Hands what the engine wrote under these folders to the step user (when steps run as
    /// one), with the folders it created on the way; host paths elsewhere stay as they are.
    pub(crate) fn give_to_steps(&self, host: &Path) -> Result<(), LayoutError> {
        let Some(user) = crate::step_user() else {
            return Ok(());
        };
        let Some(base) = [&self.data, &self.outputs, &self.tmp]
            .into_iter()
            .find(|b| host.starts_with(b))
        else {
            return Ok(());
        };
        give_tree(host, Some(user))?;
        let mut up = host.parent();
        while let Some(p) = up.filter(|p| p.starts_with(base) && *p != base.as_path()) {
            give(p, Some(user))?;
            up = p.parent();
        }
        Ok(())
    }
}

/// Hands a folder the engine made to the step user, so steps can write in it.
pub(crate) fn give(path: &Path, user: Option<&StepUser>) -> Result<(), LayoutError> {
    if let Some(u) = user {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|source| hand_over(path, u, source))?;
    }
    Ok(())
}

/// [`give`] for a whole tree (what the engine wrote or cloned for steps); links themselves.
pub(crate) fn give_tree(path: &Path, user: Option<&StepUser>) -> Result<(), LayoutError> {
    let Some(u) = user else { return Ok(()) };
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(u.uid), Some(u.gid))
            .map_err(|source| hand_over(&p, u, source))?;
        if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            let entries = std::fs::read_dir(&p).map_err(|source| LayoutError::Read {
                path: p.clone(),
                source,
            })?;
            for entry in entries {
                stack.push(entry.map_err(LayoutError::Entry)?.path());
            }
        }
    }
    Ok(())
}

fn hand_over(path: &Path, user: &StepUser, source: std::io::Error) -> LayoutError {
    LayoutError::HandOver {
        path: path.to_path_buf(),
        user: user.name.clone(),
        source,
    }
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
