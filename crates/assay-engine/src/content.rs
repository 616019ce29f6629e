//! `content`: inline files, git checkouts and tarballs, materialized before a step's other
//! parts.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use assay_spec::plan::{PlanContent, PlanGit, PlanTarball};
use tokio::io::AsyncWriteExt;

use crate::event::{Event, LogChunk};
use crate::layout::{self, LayoutError};
use crate::refs::RefError;
use crate::runner::{Attempt, Frame, RenderError, Runner};
use crate::runtime::{Launch, LaunchKind, StopReason};

impl Runner {
    pub(crate) async fn content(
        &mut self,
        content: &PlanContent,
        full: &str,
        frame: &Frame,
        a: &mut Attempt,
    ) {
        if let Err(e) = self.files(content, frame) {
            return a.fail(e.to_string());
        }
        if let Some(git) = &content.git {
            self.git(git, full, frame, a).await;
            if !a.ok {
                return;
            }
        }
        for (i, tarball) in content.tarball.iter().enumerate() {
            self.tarball(tarball, i, full, frame, a).await;
            if !a.ok {
                return;
            }
        }
    }

    /// Downloads one `content.tarball` (http or https, streamed to a temporary file) and
    /// unpacks it (`.tar`, or gzip-compressed by its magic bytes) into its `path`.
    async fn tarball(
        &mut self,
        tarball: &PlanTarball,
        index: usize,
        full: &str,
        frame: &Frame,
        a: &mut Attempt,
    ) {
        let env = self.base_env();
        let rendered = self.with_machine(frame.passed, None, &env, None, |m| {
            Ok::<_, RenderError>((
                self.render(&tarball.url, m)?,
                self.render(&tarball.path, m)?,
            ))
        });
        let (url, path) = match rendered {
            Ok(v) => v,
            Err(e) => return a.fail(format!("content.tarball: {e}")),
        };
        let shown = self.mask(&url);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return a.fail(format!(
                "content.tarball: {shown} is not an http:// or https:// URL"
            ));
        }
        let target = layout::join(&frame.cwd, &path);
        let dest = self.layout.to_host(&target);
        self.emit(Event::Log(LogChunk {
            reference: full.to_string(),
            at: SystemTime::now(),
            text: format!("Downloading {shown} into {target}\n"),
        }))
        .await;
        let file = self.layout.tmp.join(format!(".tarball-{index}"));
        let deadline = frame.deadline.as_ref().map(|d| d.0);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let cancel = self.cancel.clone();
        let result = tokio::select! {
            r = download(&url, &file) => r,
            _ = cancel.cancelled() => {
                let _ = std::fs::remove_file(&file);
                self.interrupt_for(StopReason::Abort, frame);
                a.ok = false;
                return;
            }
            _ = sleep => {
                let _ = std::fs::remove_file(&file);
                self.interrupt_for(StopReason::Timeout, frame);
                a.ok = false;
                return;
            }
        };
        let unpacked = match result {
            Ok(()) => {
                let (file2, dest2) = (file.clone(), dest.clone());
                tokio::task::spawn_blocking(move || unpack(&file2, &dest2))
                    .await
                    .unwrap_or_else(|e| Err(TarballError::Crashed(e)))
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&file);
        let unpacked = unpacked.and_then(|()| Ok(self.give_to_steps(&dest)?));
        if let Err(e) = unpacked {
            a.fail(self.mask(&format!("content.tarball {shown}: {e}")));
        }
    }

    /// Writes `content.files` (paths relative to the working directory, mode when given).
    fn files(&self, content: &PlanContent, frame: &Frame) -> Result<(), FilesError> {
        let env = self.base_env();
        for f in &content.files {
            let (path, mut text) = self.with_machine(frame.passed, None, &env, None, |m| {
                Ok::<_, RenderError>((self.render(&f.path, m)?, self.render(&f.content, m)?))
            })?;
            if let Some(source) = &f.content_from {
                let what = format!("content.files `{path}` contentFrom");
                text = crate::refs::source_value(&what, source, &self.shared.opts.named_secrets)?
                    .unwrap_or_default();
            }
            let host = self.layout.to_host(&layout::join(&frame.cwd, &path));
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent).map_err(|source| FilesError::Create {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            if let Err(source) = std::fs::write(&host, text) {
                return Err(FilesError::Write { path, source });
            }
            if let Some(mode) = f.mode {
                use std::os::unix::fs::PermissionsExt;
                let set = std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode));
                if let Err(source) = set {
                    return Err(FilesError::Mode { path, source });
                }
            }
            self.give_to_steps(&host)?;
        }
        Ok(())
    }

    /// Hands what the engine wrote under the execution's folders to the step user.
    pub(crate) fn give_to_steps(&self, host: &std::path::Path) -> Result<(), LayoutError> {
        self.layout.give_to_steps(host)
    }

    /// Clones with the `git` command: revision, sparse `paths` (cone or not), a token or an ssh
    /// key ([`SshKey`]).
    async fn git(&mut self, git: &PlanGit, full: &str, frame: &Frame, a: &mut Attempt) {
        let env = self.base_env();
        let rendered = self.with_machine(frame.passed, None, &env, None, |m| {
            Ok::<_, RenderError>((
                self.render(&git.uri, m)?,
                self.render(&git.revision, m)?,
                self.render(&git.username, m)?,
                self.render(&git.token, m)?,
                self.render(&git.ssh_key, m)?,
                self.render(&git.mount_path, m)?,
                git.paths
                    .iter()
                    .map(|p| self.render(p, m))
                    .collect::<Result<Vec<_>, _>>()?,
            ))
        });
        let (uri, revision, mut username, mut token, mut ssh_key, mount, paths) = match rendered {
            Ok(v) => v,
            Err(e) => return a.fail(format!("content.git: {e}")),
        };
        for (field, out) in [
            ("usernameFrom", &mut username),
            ("tokenFrom", &mut token),
            ("sshKeyFrom", &mut ssh_key),
        ] {
            if let Some(source) = git.sources.get(field) {
                let what = format!("content.git {field}");
                match crate::refs::source_value(&what, source, &self.shared.opts.named_secrets) {
                    Ok(v) => *out = v.unwrap_or_default(),
                    Err(e) => return a.fail(e.to_string()),
                }
            }
        }
        let mount = if mount.is_empty() {
            "/data/repo".to_string()
        } else {
            layout::join(&frame.cwd, &mount)
        };
        let dest = self.layout.to_host(&mount);
        let (url, header) = credentials(&uri, &username, &token);
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
        if let Some(header) = header {
            add_git_config(&mut genv, &format!("http.{uri}.extraHeader"), &header);
        }
        // Removed when the clone ends, however it ends (dropped with this function's frame).
        let _key = if ssh_key.trim().is_empty() {
            None
        } else {
            match SshKey::write(&self.layout.root, &ssh_key) {
                Ok(key) => {
                    genv.insert("GIT_SSH_COMMAND".into(), key.ssh_command().to_string());
                    Some(key)
                }
                Err(e) => return a.fail(format!("content.git: failed to write the ssh key: {e}")),
            }
        };
        for command in commands {
            let launch = Launch {
                kind: LaunchKind::Tool,
                command,
                args: Vec::new(),
                shell: None,
                env: genv.clone(),
                working_dir: layout::DATA.to_string(),
                image: None,
                image_pull_policy: None,
                resources: None,
                security_context: None,
                volume_mounts: Vec::new(),
            };
            self.run_launch(launch, full, frame, a).await;
            if !a.ok {
                if a.error.is_none() {
                    a.error = Some(format!("failed to clone {}", self.mask(&uri)));
                }
                return;
            }
        }
        a.exit_code = None;
        if let Err(e) = self.give_to_steps(&dest) {
            a.fail(e.to_string());
        }
    }
}

/// A `content.git` ssh key, in a file of its own for the length of one clone: a folder only
/// the engine's user can enter (0700, under the execution's work folder, so it never lands in
/// `/data` or a clone) holding the key read-only for that user (0400, as ssh requires). The
/// folder and the key go when this is dropped.
#[derive(Debug)]
struct SshKey {
    /// The folder, removed with the key when this is dropped.
    _dir: tempfile::TempDir,
    /// `GIT_SSH_COMMAND` for this key.
    command: String,
}

impl SshKey {
    /// Writes `key` (with the one final newline ssh needs) under `root`.
    fn write(root: &Path, key: &str) -> std::io::Result<SshKey> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(root)?;
        let dir = tempfile::Builder::new()
            .prefix(".git-ssh-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(root)?;
        let path = dir.path().join("key");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)?;
        file.write_all(key.trim_end_matches(['\n', '\r']).as_bytes())?;
        file.write_all(b"\n")?;
        let path = path.display().to_string();
        let quoted = shlex::try_quote(&path).map_err(std::io::Error::other)?;
        // As Testkube's clone: this key only, no prompt, and the host's key taken as it comes
        // (no `known_hosts` is read or written, and ssh does not say so on every clone).
        let command = format!(
            "ssh -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i {quoted}"
        );
        Ok(SshKey { _dir: dir, command })
    }

    fn ssh_command(&self) -> &str {
        &self.command
    }
}

/// The URI git clones and the `Authorization` header it sends (username `oauth2` when only a
/// token is given). Over http(s) the credentials go in the header, which reaches git through
/// its environment: not on its command line (which every process of the machine can read), not
/// in the clone's `.git/config` (which the steps read and may archive). Over ssh only a
/// username means something, and it goes in the URI.
fn credentials(uri: &str, username: &str, token: &str) -> (String, Option<String>) {
    use base64::Engine as _;
    if token.is_empty() && username.is_empty() {
        return (uri.to_string(), None);
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return (uri.to_string(), None);
    };
    let user = if username.is_empty() {
        "oauth2"
    } else {
        username
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return (format!("{scheme}://{user}@{rest}"), None);
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    (
        uri.to_string(),
        Some(format!("Authorization: Basic {basic}")),
    )
}

/// Add `key = value` to the git configuration given through `env` (`GIT_CONFIG_COUNT`,
/// `GIT_CONFIG_KEY_<n>`, `GIT_CONFIG_VALUE_<n>`), after any the step's environment gives.
fn add_git_config(env: &mut BTreeMap<String, String>, key: &str, value: &str) {
    let n: usize = env
        .get("GIT_CONFIG_COUNT")
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    env.insert(format!("GIT_CONFIG_KEY_{n}"), key.to_string());
    env.insert(format!("GIT_CONFIG_VALUE_{n}"), value.to_string());
    env.insert("GIT_CONFIG_COUNT".into(), (n + 1).to_string());
}

/// Why `content.files` were not written (the step fails with this text).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilesError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error("failed to create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `path` as the plan gives it (rendered), not the host's.
    #[error("failed to write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to set the mode of {path}: {source}")]
    Mode {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    HandOver(#[from] LayoutError),
}

/// Why a `content.tarball` was not downloaded or unpacked (the step's message puts
/// `content.tarball URL: ` before it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TarballError {
    #[error("failed to set up an HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("failed to download {url}: {source}")]
    Download { url: String, source: reqwest::Error },
    #[error("failed to download {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("failed to create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to open the download: {0}")]
    Open(std::io::Error),
    #[error("failed to read it: {0}")]
    Read(std::io::Error),
    #[error("not a tar archive: {0}")]
    NotTar(std::io::Error),
    #[error("not a valid tar archive: {0}")]
    BadTar(std::io::Error),
    #[error("an entry has an unreadable name: {0}")]
    EntryName(std::io::Error),
    /// An entry (`..`, an absolute path) that would land outside the target folder.
    #[error("refused the entry `{0}`: it would be written outside the target folder")]
    EntryOutside(String),
    #[error("the link `{link}` has an unreadable target: {source}")]
    LinkTarget {
        link: String,
        source: std::io::Error,
    },
    #[error("the link `{0}` has no target")]
    NoLinkTarget(String),
    /// A link that points outside the target folder.
    #[error("refused the link `{link}` -> `{}`: it points outside the target folder", target.display())]
    LinkOutside { link: String, target: PathBuf },
    #[error("failed to unpack `{entry}` into {}: {source}", dest.display())]
    Unpack {
        entry: String,
        dest: PathBuf,
        source: std::io::Error,
    },
    #[error("unpacking crashed: {0}")]
    Crashed(tokio::task::JoinError),
    /// What was unpacked could not be handed to the step user.
    #[error(transparent)]
    HandOver(#[from] LayoutError),
}

/// Streams the body of `url` into `file`; a non-success status is an error naming it.
async fn download(url: &str, file: &Path) -> Result<(), TarballError> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(TarballError::Client)?;
    let failed = |source| TarballError::Download {
        url: url.to_string(),
        source,
    };
    let mut response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(TarballError::Status {
            url: url.to_string(),
            status,
        });
    }
    if let Some(parent) = file.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|source| TarballError::Create {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    let mut out = tokio::fs::File::create(file)
        .await
        .map_err(|source| TarballError::Create {
            path: file.to_path_buf(),
            source,
        })?;
    let write = |source| TarballError::Write {
        path: file.to_path_buf(),
        source,
    };
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        out.write_all(&chunk).await.map_err(write)?;
    }
    out.flush().await.map_err(write)?;
    Ok(())
}

/// Unpacks a tar archive (gzip-compressed or not) into `dest`, refusing entries that would
/// land outside it: `..`, absolute paths, and links pointing outside.
pub(crate) fn unpack(file: &Path, dest: &Path) -> Result<(), TarballError> {
    let mut f = std::fs::File::open(file).map_err(TarballError::Open)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut f, &mut magic).map_err(TarballError::Read)?;
    f.seek(SeekFrom::Start(0)).map_err(TarballError::Read)?;
    std::fs::create_dir_all(dest).map_err(|source| TarballError::Create {
        path: dest.to_path_buf(),
        source,
    })?;
    if n == 2 && magic == [0x1f, 0x8b] {
        unpack_from(flate2::read::GzDecoder::new(f), dest)
    } else {
        unpack_from(f, dest)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn unpack_from(reader: impl Read, dest: &Path) -> Result<(), TarballError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(TarballError::NotTar)?;
    for entry in entries {
        let mut entry = entry.map_err(TarballError::BadTar)?;
        let path = entry.path().map_err(TarballError::EntryName)?.into_owned();
        let shown = path.display().to_string();
        let Some(inside) = contained(Path::new(""), &path) else {
            return Err(TarballError::EntryOutside(shown));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(|source| TarballError::LinkTarget {
                    link: shown.clone(),
                    source,
                })?
                .ok_or_else(|| TarballError::NoLinkTarget(shown.clone()))?
                .into_owned();
            // A symlink's target is relative to its folder; a hard link's to the archive root.
            let base = if kind.is_symlink() {
                inside.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                PathBuf::new()
            };
            if contained(&base, &link).is_none() {
                return Err(TarballError::LinkOutside {
                    link: shown,
                    target: link,
                });
            }
        }
        let written = entry
            .unpack_in(dest)
            .map_err(|source| TarballError::Unpack {
                entry: shown.clone(),
                dest: dest.to_path_buf(),
                source,
            })?;
        if !written {
            return Err(TarballError::EntryOutside(shown));
        }
    }
    Ok(())
}

/// `path` joined onto `base` (both relative to the target folder) and normalized, when it
/// stays inside the target folder.
fn contained(base: &Path, path: &Path) -> Option<PathBuf> {
    let mut out: Vec<Component> = base.components().collect();
    for c in path.components() {
        match c {
            Component::Normal(_) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::{SshKey, contained};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn an_ssh_key_lives_read_only_in_a_private_folder_for_one_clone() {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work dir");
        let key = SshKey::write(&work, "-----BEGIN KEY-----\nabc\n-----END KEY-----\n\n").unwrap();
        let folders: Vec<_> = std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(folders.len(), 1);
        let folder = &folders[0];
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(folder), 0o700);
        let file = folder.join("key");
        assert_eq!(mode(&file), 0o400);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
        );
        let command = key.ssh_command();
        let quoted = shlex::try_quote(file.to_str().unwrap()).unwrap();
        assert!(command.ends_with(&format!(" -i {quoted}")), "{command}");
        assert!(command.contains("IdentitiesOnly=yes"), "{command}");
        drop(key);
        assert!(!folder.exists());
    }

    #[test]
    fn containment() {
        assert!(contained(Path::new(""), Path::new("a/b")).is_some());
        assert!(contained(Path::new(""), Path::new("./a/../b")).is_some());
        assert!(contained(Path::new(""), Path::new("../x")).is_none());
        assert!(contained(Path::new(""), Path::new("a/../../x")).is_none());
        assert!(contained(Path::new(""), Path::new("/etc/passwd")).is_none());
        assert!(contained(Path::new("a/b"), Path::new("../c")).is_some());
        assert!(contained(Path::new("a"), Path::new("../../c")).is_none());
    }
}
