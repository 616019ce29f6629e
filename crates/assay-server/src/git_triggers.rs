//! The git informer: TestTriggers with `resource: content` poll their repository
//! (`contentSelector.git`) and queue runs on `git-push` (a watched branch's head moved, or a
//! new watched branch appeared, and a changed path matches) and `git-tag-push` (a watched tag
//! appeared or moved). Every `assay server` runs it: stored triggers exist without Kubernetes.
//!
//! Each pass (every [`Options::interval`], and when the stored triggers change) lists the
//! remote's refs with `git ls-remote`; a trigger that filters on paths also fetches the moved
//! refs into a bare cache under `<data-dir>/git-triggers/<hash of the URI>` and reads the files
//! the new commits touch (`git log --name-only NEW --not OLD`). The first sight of a trigger (or
//! of a trigger whose URI, event or ref filters changed) records the heads without firing.
//!
//! **Once per push, however many servers.** What a trigger last saw is kept in the store
//! ([`assay_store::Store::git_heads`]); a server that sees a change writes the new heads with a
//! compare-and-swap on their version, and only the server whose write succeeded queues the runs.
//! A server that stops between its write and the queueing loses that push (at most once).
//!
//! **What a trigger author can make the server do.** Run `git ls-remote`/`git fetch` against
//! the URI they wrote: only `https`, `http`, `ssh` and `git` (`file` with
//! [`Options::allow_file`]; `GIT_ALLOW_PROTOCOL`, no transport helpers such as `ext::`), with no
//! system or user git configuration (no credential helpers, no `insteadOf`), no prompts
//! (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode), no redirects followed, each command killed
//! after [`LIST_TIMEOUT`]/[`FETCH_TIMEOUT`] and the cache removed past
//! [`Options::cache_limit`]. The URI and credentials go to git through its environment, never
//! its arguments (which other users of the machine can read); logs show the URI with any
//! user and password replaced by `***`, and git's own words with the credentials cut out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assay_service::definitions::Definitions;
use assay_spec::gitmatch;
use assay_spec::triggers::{GIT_EVENTS, TestTrigger, TestTriggerContentGit};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::AppState;

mod pulls;
pub use pulls::{
    MAX_PAGES, MAX_REPLY, PR_ACTION, PR_AUTHOR, PR_BASE_REF, PR_HEAD_REF, PR_HEAD_SHA, PR_NUMBER,
    PR_TITLE, PR_URL, WATERMARK,
};

/// The commit a git trigger's run is of (Testkube's name: a config value of the run).
pub const GIT_COMMIT: &str = "TESTKUBE_GIT_COMMIT";
/// The full ref that moved (`refs/heads/main`).
pub const GIT_REF: &str = "TESTKUBE_GIT_REF";
/// The branch that moved (`main`), for `git-push`.
pub const GIT_BRANCH: &str = "TESTKUBE_GIT_BRANCH";
/// The tag pushed (`v1.2.0`), for `git-tag-push`.
pub const GIT_TAG: &str = "TESTKUBE_GIT_TAG";

/// How long one request to GitHub's API may take by default.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the repositories are polled by default: Testkube's reconcile interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How long one `git ls-remote` may take.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `git fetch` (or `git log`) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// The default largest size of one repository's cache.
pub const DEFAULT_CACHE_LIMIT: u64 = 1 << 30;
/// At most this much of git's output is read.
const OUTPUT_LIMIT: u64 = 16 << 20;
/// A change is read over at most this many commits.
const MAX_COMMITS: usize = 1000;

/// How the informer polls.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between two polls of every git trigger.
    pub interval: Duration,
    /// Allow `file://` repositories (tests, and repositories on the server's own disk):
    /// refused by default, since a trigger author could read any repository the server can.
    pub allow_file: bool,
    /// The largest size of one repository's cache; a fetch that grows it past is stopped and
    /// the cache removed.
    pub cache_limit: u64,
    /// With `--kubernetes`: where `usernameFrom`/`tokenFrom`/`sshKeyFrom` Secrets are read.
    pub kube: Option<assay_kube::Connection>,
    /// `git-pull-request`: GitHub's API at this base URL instead of the one the trigger's URI
    /// names (`https://api.github.com`, `https://HOST/api/v3` for GitHub Enterprise).
    pub github_api: Option<String>,
    /// How long one request to GitHub's API may take (connect to last byte).
    pub api_timeout: Duration,
    /// The ssh host keys repositories over ssh are checked against (a `known_hosts` file;
    /// an unknown or changed key is refused). `None`: those of the user the server runs as
    /// (ssh reads its home from the password database, not `$HOME`).
    pub known_hosts: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: DEFAULT_INTERVAL,
            allow_file: false,
            cache_limit: DEFAULT_CACHE_LIMIT,
            kube: None,
            github_api: None,
            api_timeout: DEFAULT_API_TIMEOUT,
            known_hosts: None,
        }
    }
}

/// Why one trigger's poll did not complete. Messages read after "failed to poll".
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The trigger asks for something this server does not do.
    #[error("{0}")]
    Refused(String),
    /// `git` failed (its words, credentials cut out).
    #[error("git {action} {uri}: {detail}")]
    Git {
        action: &'static str,
        uri: String,
        detail: String,
    },
    /// GitHub's API failed, refused or limits us (`git-pull-request`).
    #[error("{0}")]
    Forge(String),
    #[error(transparent)]
    Store(#[from] assay_store::StoreError),
}

/// Whether a stored trigger is one the informer polls.
pub fn is_git_trigger(t: &TestTrigger) -> bool {
    !t.spec.disabled
        && t.spec.resource == "content"
        && GIT_EVENTS.contains(&t.spec.event.as_str())
        && t.spec
            .content_selector
            .as_ref()
            .and_then(|c| c.git.as_ref())
            .is_some_and(|g| !g.uri.trim().is_empty())
}

/// Start the informer over the stored triggers; it runs as long as the process.
pub fn spawn(state: AppState, mut triggers: watch::Receiver<Vec<TestTrigger>>, options: Options) {
    let me = format!("{}:{}", assay_store::lease::host_name(), std::process::id());
    let informer = Informer {
        cache_root: state.store.config().data_dir.join("git-triggers"),
        state,
        http: pulls::client(options.api_timeout),
        options,
        me,
        waits: Default::default(),
    };
    tokio::spawn(async move {
        // The last problem of each trigger, logged when it changes.
        let mut problems: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let current: Vec<TestTrigger> = triggers
                .borrow_and_update()
                .iter()
                .filter(|t| is_git_trigger(t))
                .cloned()
                .collect();
            let names: Vec<String> = current.iter().map(|t| t.metadata.name.clone()).collect();
            if let Err(e) = informer.state.store.forget_git_heads_except(&names).await {
                tracing::warn!(error = %e, "forgetting the heads of removed git triggers failed");
            }
            problems.retain(|name, _| names.contains(name));
            // One `ls-remote` per repository and credentials in a round, however many
            // triggers watch it (a push trigger and a tag trigger on one repository, say).
            let mut listings = Listings::default();
            for t in &current {
                let name = &t.metadata.name;
                match informer.poll(t, &mut listings).await {
                    Ok(()) => {
                        if problems.remove(name).is_some() {
                            tracing::info!(trigger = %name, "the git trigger polls again");
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if problems.get(name) != Some(&message) {
                            tracing::warn!(trigger = %name, error = %message,
                                "polling the git trigger's repository failed; trying again at the next poll");
                            problems.insert(name.clone(), message);
                        }
                    }
                }
            }
            tokio::select! {
                changed = triggers.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(informer.options.interval) => {}
            }
        }
    });
}

struct Informer {
    state: AppState,
    options: Options,
    cache_root: PathBuf,
    /// Host and pid, recorded with the heads this server writes.
    me: String,
    /// GitHub's API client (`git-pull-request`).
    http: reqwest::Client,
    /// Rate limits being waited out, by API and token (a digest): until when, and the message.
    waits: std::sync::Mutex<BTreeMap<String, (tokio::time::Instant, String)>>,
}

/// One ref that moved or appeared.
#[derive(Debug, Clone)]
struct Change {
    reference: String,
    old: Option<String>,
    new: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the heads are read for: a trigger whose URI, event or ref filters change starts again.
fn source_of(event: &str, git: &TestTriggerContentGit) -> String {
    let mut key = serde_json::json!([
        git.uri,
        event,
        git.branches,
        git.branches_ignore,
        git.tags,
        git.tags_ignore
    ]);
    if event == "git-pull-request"
        && let Some(list) = key.as_array_mut()
    {
        // Pull requests of other base branches are not recorded: a new list starts again.
        list.push(serde_json::json!(git.pull_request));
    }
    hex(&Sha256::digest(key.to_string().as_bytes()))
}

/// The `ls-remote` listings of one polling round, by repository and credentials (a digest:
/// no credential is kept as a key).
#[derive(Default)]
struct Listings(BTreeMap<String, String>);

impl Listings {
    fn key(uri: &str, creds: &Credentials) -> String {
        let key = serde_json::json!([
            uri,
            creds.username,
            creds.token,
            creds.ssh_key,
            creds.header
        ]);
        hex(&Sha256::digest(key.to_string().as_bytes()))
    }
}

impl Informer {
    async fn poll(&self, t: &TestTrigger, listings: &mut Listings) -> Result<(), PollError> {
        let name = &t.metadata.name;
        let event = t.spec.event.as_str();
        let Some(git) = t
            .spec
            .content_selector
            .as_ref()
            .and_then(|c| c.git.as_ref())
        else {
            return Ok(());
        };
        if let Some((message, hint)) = gitmatch::uri_problem(&git.uri) {
            return Err(PollError::Refused(format!("{message} (hint: {hint})")));
        }
        if gitmatch::protocol(&git.uri) == "file" && !self.options.allow_file {
            return Err(PollError::Refused(format!(
                "`{}` is a file:// repository, which this server does not poll (hint: start it with --git-allow-file to allow repositories on its own disk)",
                git.uri
            )));
        }
        let creds = self.credentials(git).await?;
        if event == "git-pull-request" {
            return self
                .poll_pulls(t, git, &creds, &source_of(event, git))
                .await;
        }
        let key = Listings::key(&git.uri, &creds);
        let remote = Remote::new(git, creds, &self.options, &self.cache_root)?;
        let listing = match listings.0.get(&key) {
            Some(listing) => listing.clone(),
            None => {
                let listing = remote.list(&self.cache_root.join("empty.git")).await?;
                tracing::debug!(uri = %gitmatch::redact(&git.uri), "git repository listed");
                listings.0.insert(key, listing.clone());
                listing
            }
        };
        let now = gitmatch::watched_refs(event, git, &listing);
        tracing::debug!(trigger = %name, heads = ?now, "git trigger polled");
        let source = source_of(event, git);
        let seen = self.state.store.git_heads(name).await?;
        let seen = match seen {
            Some(seen) if seen.source == source => seen,
            other => {
                // First sight: what exists now is the baseline; pushes count from here.
                let wrote = self
                    .state
                    .store
                    .advance_git_heads(name, &source, &now, other.map(|s| s.version), &self.me)
                    .await?;
                if wrote {
                    tracing::info!(trigger = %name, uri = %gitmatch::redact(&git.uri), refs = now.len(),
                        "git trigger: recorded the repository's heads; pushes from now on fire it");
                }
                return Ok(());
            }
        };
        if seen.refs == now {
            return Ok(());
        }
        let changes: Vec<Change> = now
            .iter()
            .filter(|(r, sha)| seen.refs.get(*r) != Some(*sha))
            .map(|(r, sha)| Change {
                reference: r.clone(),
                old: seen.refs.get(r).cloned(),
                new: sha.clone(),
            })
            .collect();
        let mut firing = Vec::new();
        if changes.is_empty() {
            // Only deletions: nothing fires, the heads are recorded.
        } else if gitmatch::filters_paths(git) {
            let cache = self.cache_dir(&git.uri);
            remote.fetch(&cache, event).await?;
            let known: Vec<String> = seen.refs.values().cloned().collect();
            let present = remote.present(&cache, &known).await?;
            for change in changes {
                let not: Vec<String> = match &change.old {
                    Some(old) if present.contains(old) => vec![old.clone()],
                    _ => present.clone(),
                };
                let files = remote.changed_files(&cache, &change.new, &not).await?;
                if gitmatch::paths_match(git, &files) {
                    firing.push(change);
                } else {
                    tracing::info!(trigger = %name, reference = %change.reference, commit = %change.new,
                        files = files.len(), "git trigger: no changed path matches; not firing");
                }
            }
        } else {
            firing = changes;
        }
        let wrote = self
            .state
            .store
            .advance_git_heads(name, &source, &now, Some(seen.version), &self.me)
            .await?;
        if !wrote {
            tracing::info!(trigger = %name, "git trigger: another server recorded this change first; it queues the runs");
            return Ok(());
        }
        for change in firing {
            self.fire(t, &change);
        }
        Ok(())
    }

    /// Queue the trigger's runs for one change (after its `delay`), with the change's values.
    fn fire(&self, t: &TestTrigger, change: &Change) {
        let event = t.spec.event.clone();
        let (short, is_tag) = gitmatch::short_ref(&change.reference);
        let mut config = watcher_values(t);
        config.insert(GIT_COMMIT.to_string(), change.new.clone());
        config.insert(GIT_REF.to_string(), change.reference.clone());
        config.insert(
            if is_tag { GIT_TAG } else { GIT_BRANCH }.to_string(),
            short.to_string(),
        );
        let what = format!("{event} {} {}", change.reference, change.new);
        tracing::info!(trigger = %t.metadata.name, reference = %change.reference,
            commit = %change.new, old = change.old.as_deref().unwrap_or("(new)"), %event,
            "git trigger fired");
        // Testkube's git events carry no object; their metadata is the event's `gitMetadata`.
        let event = serde_json::json!({
            "namespace": t.metadata.namespace.clone().unwrap_or_default(),
            "gitMetadata": {
                "commit": change.new,
                "ref": change.reference,
                "branch": if is_tag { "" } else { short },
                "tag": if is_tag { short } else { "" },
            },
        });
        self.queue(t, what, config, event);
    }

    /// Queue `t`'s runs after its `delay`, with `config` and Testkube's watcher `event`.
    fn queue(
        &self,
        t: &TestTrigger,
        what: String,
        config: BTreeMap<String, String>,
        event: serde_json::Value,
    ) {
        let delay = t
            .spec
            .delay
            .as_deref()
            .and_then(|d| assay_spec::duration::parse_duration(d).ok())
            .unwrap_or_default();
        let data = crate::triggers::EventData {
            object: serde_json::Value::Null,
            event,
        };
        let state = self.state.clone();
        let trigger = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let defs = Definitions::new(state.store.clone());
            crate::triggers::run(&state, &defs, &trigger, &what, &config, &data).await;
        });
    }

    fn cache_dir(&self, uri: &str) -> PathBuf {
        let digest = hex(&Sha256::digest(uri.as_bytes()));
        self.cache_root.join(&digest[..32])
    }

    /// The credentials a trigger names: `username` as written, the `*From` Secrets read through
    /// Kubernetes (refused on a server that does not watch it).
    async fn credentials(&self, git: &TestTriggerContentGit) -> Result<Credentials, PollError> {
        let mut out = Credentials {
            username: (!git.username.is_empty()).then(|| git.username.clone()),
            header: git.auth_type == "header",
            ..Default::default()
        };
        for (field, from, slot) in [
            ("usernameFrom", &git.username_from, 0),
            ("tokenFrom", &git.token_from, 1),
            ("sshKeyFrom", &git.ssh_key_from, 2),
        ] {
            let Some(from) = from else { continue };
            let Some(conn) = &self.options.kube else {
                return Err(PollError::Refused(format!(
                    "`{field}` names a Kubernetes Secret and this server does not watch Kubernetes: not polled (hint: start it with --kubernetes, or leave `{field}` out)"
                )));
            };
            let text = |k: &str| {
                from.pointer(&format!("/secretKeyRef/{k}"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            };
            let (secret, key) = (text("name"), text("key"));
            let optional = from
                .pointer("/secretKeyRef/optional")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let value = assay_kube::secret_value(conn, &conn.namespace, secret, key)
                .await
                .map_err(|e| {
                    PollError::Refused(format!("`{field}`: reading Secret {secret}: {e}"))
                })?;
            let value = match value {
                assay_kube::SecretKey::Value(v) => v,
                _ if optional => continue,
                assay_kube::SecretKey::NoSecret => {
                    return Err(PollError::Refused(format!(
                        "`{field}`: there is no Secret {secret} in namespace {} (hint: create it, or fix `{field}.secretKeyRef.name`)",
                        conn.namespace
                    )));
                }
                assay_kube::SecretKey::NoKey => {
                    return Err(PollError::Refused(format!(
                        "`{field}`: Secret {secret} in namespace {} has no key {key} (hint: add it, or fix `{field}.secretKeyRef.key`)",
                        conn.namespace
                    )));
                }
            };
            match slot {
                0 => out.username = Some(value),
                1 => out.token = Some(value),
                _ => out.ssh_key = Some(value),
            }
        }
        Ok(out)
    }
}

/// Testkube's `WATCHER_EVENT_*` values of a git trigger's event.
fn watcher_values(t: &TestTrigger) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("WATCHER_EVENT_RESOURCE".to_string(), "content".to_string()),
        ("WATCHER_EVENT_NAME".to_string(), t.metadata.name.clone()),
        (
            "WATCHER_EVENT_NAMESPACE".to_string(),
            t.metadata.namespace.clone().unwrap_or_default(),
        ),
        ("WATCHER_EVENT_EVENT_TYPE".to_string(), t.spec.event.clone()),
    ])
}

#[derive(Default)]
struct Credentials {
    username: Option<String>,
    token: Option<String>,
    ssh_key: Option<String>,
    /// `authType: header`: the token as `Authorization: Bearer`.
    header: bool,
}

/// `git` for one trigger's repository, with the informer's environment.
struct Remote {
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
    fn new(
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
    async fn list(&self, empty: &Path) -> Result<String, PollError> {
        self.init_bare(empty).await?;
        self.run(&["ls-remote", "origin"], empty, LIST_TIMEOUT, None)
            .await
    }

    /// Bring the refs `event` watches into the bare cache at `dir` (made on first use).
    async fn fetch(&self, dir: &Path, event: &str) -> Result<(), PollError> {
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
    async fn present(&self, dir: &Path, commits: &[String]) -> Result<Vec<String>, PollError> {
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
    async fn changed_files(
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

    #[test]
    fn the_source_changes_with_what_the_heads_are_read_for() {
        let mut git = TestTriggerContentGit {
            uri: "https://example.com/r.git".into(),
            ..Default::default()
        };
        let a = source_of("git-push", &git);
        git.paths = vec!["src/**".into()];
        assert_eq!(
            a,
            source_of("git-push", &git),
            "paths do not change the heads"
        );
        git.branches = vec!["main".into()];
        assert_ne!(a, source_of("git-push", &git));
        assert_ne!(
            a,
            source_of(
                "git-tag-push",
                &TestTriggerContentGit {
                    uri: "https://example.com/r.git".into(),
                    ..Default::default()
                }
            )
        );
    }
}
