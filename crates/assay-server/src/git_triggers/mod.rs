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
use std::path::PathBuf;
use std::time::Duration;

use assay_service::definitions::Definitions;
use assay_spec::gitmatch;
use assay_spec::triggers::{GIT_EVENTS, TestTrigger, TestTriggerContentGit};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::AppState;

mod pulls;
mod remote;

pub use pulls::{
    MAX_PAGES, MAX_REPLY, PR_ACTION, PR_AUTHOR, PR_BASE_REF, PR_HEAD_REF, PR_HEAD_SHA, PR_NUMBER,
    PR_TITLE, PR_URL, WATERMARK,
};
use remote::{Credentials, Remote};

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

#[cfg(test)]
mod tests {
    use super::*;

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
