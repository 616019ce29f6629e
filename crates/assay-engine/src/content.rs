//! `content`: inline files and git checkouts, materialized before a step's other parts.

use std::time::SystemTime;

use assay_spec::plan::{PlanContent, PlanGit};

use crate::event::{Event, LogChunk};
use crate::layout;
use crate::process::ProcessSpec;
use crate::runner::{Attempt, Frame, Runner};

impl Runner {
    pub(crate) async fn content(
        &mut self,
        content: &PlanContent,
        full: &str,
        frame: &Frame,
        a: &mut Attempt,
    ) {
        if let Err(e) = self.files(content, frame) {
            return a.fail(e);
        }
        if let Some(git) = &content.git {
            self.git(git, full, frame, a).await;
            if !a.ok {
                return;
            }
        }
        if !content.tarball.is_empty() {
            a.fail("content.tarball is not supported by the local runtime yet: download the archive in a `shell` step (e.g. with curl and tar)");
        }
    }

    /// Writes `content.files` (paths relative to the working directory, mode when given).
    fn files(&self, content: &PlanContent, frame: &Frame) -> Result<(), String> {
        let env = self.base_env();
        for f in &content.files {
            if f.content_from.is_some() {
                return Err(format!(
                    "content.files `{}` uses contentFrom, which needs Kubernetes; put the content inline",
                    f.path
                ));
            }
            let (path, text) = self.with_machine(frame.passed, None, &env, None, |m| {
                Ok::<_, String>((self.render(&f.path, m)?, self.render(&f.content, m)?))
            })?;
            let host = self.layout.to_host(&layout::join(&frame.cwd, &path));
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
            }
            std::fs::write(&host, text).map_err(|e| format!("failed to write {path}: {e}"))?;
            if let Some(mode) = f.mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("failed to set the mode of {path}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Clones with the `git` command: revision, sparse `paths` (cone or not), token auth.
    async fn git(&mut self, git: &PlanGit, full: &str, frame: &Frame, a: &mut Attempt) {
        let env = self.base_env();
        let rendered = self.with_machine(frame.passed, None, &env, None, |m| {
            Ok::<_, String>((
                self.render(&git.uri, m)?,
                self.render(&git.revision, m)?,
                self.render(&git.username, m)?,
                self.render(&git.token, m)?,
                self.render(&git.mount_path, m)?,
                git.paths
                    .iter()
                    .map(|p| self.render(p, m))
                    .collect::<Result<Vec<_>, _>>()?,
            ))
        });
        let (uri, revision, username, token, mount, paths) = match rendered {
            Ok(v) => v,
            Err(e) => return a.fail(format!("content.git: {e}")),
        };
        if !git.ssh_key.is_empty() || !git.sources.is_empty() {
            return a.fail("content.git with sshKey or *From secrets is not supported by the local runtime: use a token, or clone in a `shell` step");
        }
        let mount = if mount.is_empty() {
            "/data/repo".to_string()
        } else {
            layout::join(&frame.cwd, &mount)
        };
        let dest = self.layout.to_host(&mount);
        let url = with_credentials(&uri, &username, &token);
        let dest_s = dest.display().to_string();
        let mut commands: Vec<Vec<String>> = Vec::new();
        let mut clone = vec!["git".to_string(), "clone".into(), "--no-checkout".into()];
        if !paths.is_empty() {
            clone.push("--filter=blob:none".into());
        }
        if !git.verbosity.is_empty() {
            clone.push("--quiet".into());
        }
        clone.extend([url.clone(), dest_s.clone()]);
        commands.push(clone);
        if !paths.is_empty() {
            let mut sparse = vec![
                "git".to_string(),
                "-C".into(),
                dest_s.clone(),
                "sparse-checkout".into(),
                "set".into(),
            ];
            if !git.cone {
                sparse.push("--no-cone".into());
            }
            sparse.extend(paths);
            commands.push(sparse);
        }
        let rev = if revision.is_empty() {
            "HEAD".to_string()
        } else {
            revision
        };
        commands.push(vec![
            "git".into(),
            "-C".into(),
            dest_s.clone(),
            "checkout".into(),
            "--quiet".into(),
            rev,
        ]);
        if let Some(parent) = dest.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let text = format!("Cloning {} into {mount}\n", self.mask(&uri));
        self.emit(Event::Log(LogChunk {
            reference: full.to_string(),
            at: SystemTime::now(),
            text,
        }))
        .await;
        let mut genv = env.clone();
        genv.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
        for argv in commands {
            let spec = ProcessSpec {
                argv,
                env: genv.clone().into_iter().collect(),
                cwd: Some(self.layout.data.clone()),
            };
            self.run_process(&spec, full, frame, a).await;
            if !a.ok {
                if a.error.is_none() {
                    a.error = Some(format!("failed to clone {}", self.mask(&uri)));
                }
                return;
            }
        }
        a.exit_code = None;
    }
}

/// `https://user:token@host/...` for token auth (username `oauth2` when only a token is given).
fn with_credentials(uri: &str, username: &str, token: &str) -> String {
    if token.is_empty() && username.is_empty() {
        return uri.to_string();
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let user = if username.is_empty() {
        "oauth2"
    } else {
        username
    };
    let cred = if token.is_empty() {
        user.to_string()
    } else {
        format!("{user}:{token}")
    };
    format!("{scheme}://{cred}@{rest}")
}
