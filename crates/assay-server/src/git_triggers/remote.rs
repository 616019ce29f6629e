//! One repository as git sees it: the credentials and environment `git` runs with (nothing in
//! its arguments), each command bounded in time and output, and what it says back redacted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assay_spec::gitmatch;
use assay_spec::triggers::TestTriggerContentGit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{FETCH_TIMEOUT, LIST_TIMEOUT, MAX_COMMITS, OUTPUT_LIMIT, Options, PollError};

/// What `git` authenticates with: a trigger's username, token or SSH key, read from the
/// secrets its `contentSelector.git` names.
#[derive(Default)]
pub(super) struct Credentials {
    pub(super) username: Option<String>,
    pub(super) token: Option<String>,
    pub(super) ssh_key: Option<String>,
    /// `authType: header`: the token as `Authorization: Bearer`.
    pub(super) header: bool,
}

/// `git` for one trigger's repository, with the informer's environment.
pub(super) struct Remote {
    uri: String,
    /// `KEY=VALUE` git configuration given through `GIT_CONFIG_*`.
    config: Vec<(String, String)>,
    allowed: String,
    ssh_command: String,
    /// Values cut out of whatever git says.
    secrets: Vec<String>,
    cache_limit: u64,
    /// The ssh key's file, removed when the poll ends.
    _key: Option<KeyFile>,
}

/// A private key written for ssh (mode 0600), removed on drop.
struct KeyFile(PathBuf);

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `text` quoted for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl Remote {
    /// `key_dir`: where an ssh key is written for the poll (inside the data dir, mode 0700).
    pub(super) fn new(
        git: &TestTriggerContentGit,
        creds: Credentials,
        options: &Options,
        key_dir: &Path,
    ) -> Result<Remote, PollError> {
        use base64::Engine as _;
        let mut config = vec![
            ("remote.origin.url".to_string(), git.uri.clone()),
            ("credential.helper".to_string(), String::new()),
            ("http.followRedirects".to_string(), "false".to_string()),
            ("http.lowSpeedLimit".to_string(), "1000".to_string()),
            ("http.lowSpeedTime".to_string(), "60".to_string()),
            ("core.hooksPath".to_string(), "/dev/null".to_string()),
        ];
        let mut secrets = Vec::new();
        if let Some(token) = &creds.token {
            let header = if creds.header {
                format!("Authorization: Bearer {token}")
            } else {
                let user = creds.username.as_deref().unwrap_or("git");
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
                secrets.push(basic.clone());
                format!("Authorization: Basic {basic}")
            };
            config.push(("http.extraHeader".to_string(), header));
            secrets.push(token.clone());
        }
        let mut ssh_command = "ssh -o BatchMode=yes -o ConnectTimeout=20".to_string();
        if let Some(known) = &options.known_hosts {
            ssh_command.push_str(&format!(
                " -o {} -o StrictHostKeyChecking=yes",
                shell_quote(&format!("UserKnownHostsFile={}", known.display()))
            ));
        }
        let mut key = None;
        if let Some(ssh_key) = &creds.ssh_key {
            let path = key_dir.join(format!("key-{}", uuid::Uuid::now_v7()));
            write_private(&path, ssh_key).map_err(|e| PollError::Git {
                action: "write the ssh key for",
                uri: gitmatch::redact(&git.uri),
                detail: e.to_string(),
            })?;
            ssh_command.push_str(&format!(
                " -i {} -o IdentitiesOnly=yes",
                shell_quote(&path.display().to_string())
            ));
            if let Some(user) = &creds.username {
                ssh_command.push_str(&format!(" -l {}", shell_quote(user)));
            }
            key = Some(KeyFile(path));
        }
        let mut allowed = gitmatch::PROTOCOLS.join(":");
        if options.allow_file {
            allowed.push_str(":file");
        }
        Ok(Remote {
            uri: git.uri.clone(),
            config,
            allowed,
            ssh_command,
            secrets,
            cache_limit: options.cache_limit,
            _key: key,
        })
    }

    /// git with `git_dir` as its repository (`GIT_DIR`): never one git would find from the
    /// server's working directory, whose config and remotes are not the trigger's.
    fn command(&self, args: &[&str], git_dir: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear();
        for var in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ALLOW_PROTOCOL", &self.allowed)
            .env("GIT_SSH_COMMAND", &self.ssh_command)
            .env("GIT_CONFIG_COUNT", self.config.len().to_string());
        for (i, (k, v)) in self.config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        cmd.env("GIT_DIR", git_dir);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// What git said, with the credentials and the URI's user and password cut out.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.uri, &gitmatch::redact(&self.uri));
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        let out: String = out.trim().lines().collect::<Vec<_>>().join("; ");
        match out.char_indices().nth(1000) {
            Some((i, _)) => format!("{}…", &out[..i]),
            None => out,
        }
    }

    /// Run git, with `input` on its stdin; its stdout. Killed after `timeout`, or when
    /// `watch` (a folder) grows past the cache limit.
    async fn run(
        &self,
        args: &[&str],
        git_dir: &Path,
        timeout: Duration,
        input: Option<String>,
    ) -> Result<String, PollError> {
        let action = args.first().copied().unwrap_or("");
        let failed = |detail: String| PollError::Git {
            action: match action {
                "ls-remote" => "ls-remote",
                "fetch" => "fetch",
                "init" => "init",
                "log" => "log",
                _ => "cat-file",
            },
            uri: gitmatch::redact(&self.uri),
            detail,
        };
        let mut child = self.command(args, git_dir).spawn().map_err(|e| {
            failed(format!(
                "cannot start git: {e} (hint: install git on the server)"
            ))
        })?;
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let feed = async move {
            if let (Some(stdin), Some(input)) = (stdin.as_mut(), input) {
                let _ = stdin.write_all(input.as_bytes()).await;
            }
            drop(stdin);
        };
        let work = async {
            let ((), out, err) = tokio::join!(
                feed,
                read_limited(stdout, OUTPUT_LIMIT),
                read_limited(stderr, 65536)
            );
            let status = child.wait().await;
            (out, err, status)
        };
        let grown = async {
            if action != "fetch" {
                return std::future::pending::<u64>().await;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let size = dir_size(git_dir.to_path_buf()).await;
                if size > self.cache_limit {
                    return size;
                }
            }
        };
        let (out, err, status) = tokio::select! {
            done = tokio::time::timeout(timeout, work) => match done {
                Ok(done) => done,
                Err(_) => return Err(failed(format!("no answer within {}s", timeout.as_secs()))),
            },
            size = grown => {
                let _ = tokio::fs::remove_dir_all(git_dir).await;
                return Err(failed(format!(
                    "the repository's cache grew past {} MiB ({} MiB): stopped and removed (hint: path filters need the repository's history; watch a smaller repository or leave `paths` out)",
                    self.cache_limit >> 20,
                    size >> 20
                )));
            }
        };
        let status = status.map_err(|e| failed(e.to_string()))?;
        if !status.success() {
            return Err(failed(self.redact(&String::from_utf8_lossy(&err))));
        }
        if out.len() as u64 > OUTPUT_LIMIT {
            return Err(failed(format!(
                "more than {} MiB of output",
                OUTPUT_LIMIT >> 20
            )));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A bare repository at `dir`, made if it is not there yet.
    async fn init_bare(&self, dir: &Path) -> Result<(), PollError> {
        if dir.join("HEAD").exists() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| PollError::Git {
                action: "init",
                uri: gitmatch::redact(&self.uri),
                detail: format!("{}: {e}", parent.display()),
            })?;
        }
        self.run(&["init", "--quiet", "--bare"], dir, FETCH_TIMEOUT, None)
            .await?;
        Ok(())
    }

    /// The remote's refs (`git ls-remote`), listed from `empty`, an empty bare repository of
    /// the informer's own (made on first use) that holds nothing but gives git a repository:
    /// without one, git looks for one from the server's working directory, and a server started
    /// inside a checkout listed that checkout's own `origin` instead of the trigger's.
    pub(super) async fn list(&self, empty: &Path) -> Result<String, PollError> {
        self.init_bare(empty).await?;
        self.run(&["ls-remote", "origin"], empty, LIST_TIMEOUT, None)
            .await
    }

    /// Bring the refs `event` watches into the bare cache at `dir` (made on first use).
    pub(super) async fn fetch(&self, dir: &Path, event: &str) -> Result<(), PollError> {
        self.init_bare(dir).await?;
        let refspec = if event == "git-tag-push" {
            "+refs/tags/*:refs/tags/*"
        } else {
            "+refs/heads/*:refs/heads/*"
        };
        self.run(
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--prune",
                "--no-write-fetch-head",
                "origin",
                refspec,
            ],
            dir,
            FETCH_TIMEOUT,
            None,
        )
        .await?;
        Ok(())
    }

    /// Those of `commits` the cache holds.
    pub(super) async fn present(
        &self,
        dir: &Path,
        commits: &[String],
    ) -> Result<Vec<String>, PollError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = commits
            .iter()
            .map(|c| format!("{c}^{{commit}}\n"))
            .collect();
        let out = self
            .run(
                &["cat-file", "--batch-check"],
                dir,
                FETCH_TIMEOUT,
                Some(input),
            )
            .await?;
        Ok(commits
            .iter()
            .zip(out.lines())
            .filter(|(_, line)| !line.ends_with(" missing"))
            .map(|(c, _)| c.clone())
            .collect())
    }

    /// The files the commits of `new` that none of `not` has touch (at most [`MAX_COMMITS`]).
    pub(super) async fn changed_files(
        &self,
        dir: &Path,
        new: &str,
        not: &[String],
    ) -> Result<Vec<String>, PollError> {
        let max = format!("--max-count={MAX_COMMITS}");
        let mut args = vec!["log", "--format=", "--name-only", "--no-renames", &max, new];
        if !not.is_empty() {
            args.push("--not");
            args.extend(not.iter().map(String::as_str));
        }
        let out = self.run(&args, dir, FETCH_TIMEOUT, None).await?;
        let mut files: Vec<String> = out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        files.sort();
        files.dedup();
        Ok(files)
    }
}

/// At most `limit + 1` bytes of a pipe (one more than allowed tells that there was more).
async fn read_limited(pipe: Option<impl tokio::io::AsyncRead + Unpin>, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(limit + 1).read_to_end(&mut buf).await;
    }
    buf
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        f.write_all(b"\n")?;
    }
    Ok(())
}

/// The bytes of the files under `dir`.
async fn dir_size(dir: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || {
        let mut total = 0;
        let mut todo = vec![dir];
        while let Some(d) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                match entry.metadata() {
                    Ok(m) if m.is_dir() => todo.push(entry.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        total
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn git_hears_no_credentials_in_its_arguments_and_says_none_back() {
        let git = TestTriggerContentGit {
            uri: "https://example.com/r.git".into(),
            ..Default::default()
        };
        let creds = Credentials {
            username: Some("bot".into()),
            token: Some("hunter2".into()),
            ..Default::default()
        };
        let remote =
            Remote::new(&git, creds, &Options::default(), Path::new("/nonexistent")).unwrap();
        let cmd = remote.command(
            &["ls-remote", "origin"],
            Path::new("/nonexistent/empty.git"),
        );
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["ls-remote", "origin"]);
        let env: BTreeMap<String, String> = cmd
            .as_std()
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert_eq!(env["GIT_ALLOW_PROTOCOL"], "https:http:ssh:git");
        assert_eq!(env["GIT_TERMINAL_PROMPT"], "0");
        assert_eq!(env["GIT_CONFIG_GLOBAL"], "/dev/null");
        assert_eq!(env["GIT_DIR"], "/nonexistent/empty.git");
        assert!(env.values().any(|v| v.starts_with("Authorization: Basic ")));
        // What git says back loses the token and its encoding.
        let said = format!(
            "fatal: https://example.com/r.git said {} and hunter2",
            env.values()
                .find(|v| v.starts_with("Authorization"))
                .unwrap()
        );
        let shown = remote.redact(&said);
        assert!(
            !shown.contains("hunter2") && !shown.contains("Ym90Omh1bnRlcjI="),
            "{shown}"
        );
    }
}
