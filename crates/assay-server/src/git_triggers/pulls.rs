//! `git-pull-request`: a trigger's GitHub pull requests, polled through GitHub's REST API as
//! Testkube's informer does (`GET /repos/OWNER/REPO/pulls`, most recently updated first), and
//! a run queued when one is opened, pushed to (`synchronize`), closed or reopened.
//!
//! What a trigger saw is kept with the heads of push triggers ([`assay_store::Store::git_heads`],
//! the same compare-and-swap, so one server of many fires): `refs/pull/N/head` →
//! `SHA:STATE` for each pull request it knows, and [`WATERMARK`] → the newest `updated_at`
//! it read. A poll reads the pages whose pull requests were updated since the watermark (at
//! most [`MAX_PAGES`]); the first sight records the open pull requests and the first page of
//! all, firing nothing. A pull request never seen is `opened` when open (Testkube's rule), and
//! recorded without firing when closed (someone commented on an old one; Testkube calls that
//! `opened` too).
//!
//! **A hostile or broken API** (the URI names the host: GitHub Enterprise is `https://HOST/api/v3`)
//! gets [`Options::api_timeout`] per request, no redirects, at most [`MAX_REPLY`] bytes per
//! reply, and its words cut to 200 characters with the token cut out; a rate-limit reply
//! (403 or 429 with `x-ratelimit-remaining: 0` or `Retry-After`) stops the polls of that
//! repository until the time it gives (at most an hour).

use std::collections::BTreeMap;
use std::time::Duration;

use assay_spec::gitmatch::{self, GitHubRepo};
use assay_spec::triggers::{TestTrigger, TestTriggerContentGit};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Credentials, Informer, PollError};

/// The key of the newest `updated_at` a trigger read, beside its pull requests' refs.
pub const WATERMARK: &str = "updated-at";
/// At most this many pages of 100 pull requests are read in one poll.
pub const MAX_PAGES: u32 = 10;
/// At most this many pages of 100 files of one pull request (GitHub lists 3,000 at most).
const MAX_FILE_PAGES: u32 = 30;
/// The largest reply read from the API.
pub const MAX_REPLY: usize = 8 << 20;
/// A rate limit is waited out for at most this long.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Closed pull requests remembered (for `reopened`) beyond the open ones.
const KEEP_CLOSED: usize = 1000;

/// The config values a pull request passes to its runs (`TESTKUBE_GIT_PR_*`, Testkube's
/// names): its number, the action, base and head branch, head commit, page, title, author.
pub const PR_NUMBER: &str = "TESTKUBE_GIT_PR_NUMBER";
pub const PR_ACTION: &str = "TESTKUBE_GIT_PR_ACTION";
pub const PR_BASE_REF: &str = "TESTKUBE_GIT_PR_BASE_REF";
pub const PR_HEAD_REF: &str = "TESTKUBE_GIT_PR_HEAD_REF";
pub const PR_HEAD_SHA: &str = "TESTKUBE_GIT_PR_HEAD_SHA";
pub const PR_URL: &str = "TESTKUBE_GIT_PR_URL";
pub const PR_TITLE: &str = "TESTKUBE_GIT_PR_TITLE";
pub const PR_AUTHOR: &str = "TESTKUBE_GIT_PR_AUTHOR";

/// The part of GitHub's pull request object a trigger reads.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Pull {
    number: u64,
    state: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    html_url: String,
    updated_at: String,
    head: Head,
    base: Base,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    reference: String,
    sha: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Base {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Debug, Clone, Deserialize)]
struct User {
    #[serde(default)]
    login: String,
}

#[derive(Debug, Deserialize)]
struct File {
    filename: String,
}

/// One pull request that fires, with its action.
pub(super) struct Fired {
    pull: Pull,
    action: &'static str,
}

fn time(text: &str, what: &str) -> Result<DateTime<Utc>, PollError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| PollError::Forge(format!("{what}: `{}` is not a time: {e}", cut(text, 40))))
}

/// At most `n` characters of a reply's text, control characters dropped.
fn cut(text: &str, n: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

fn ref_of(number: u64) -> String {
    format!("refs/pull/{number}/head")
}

fn state_of(p: &Pull) -> String {
    format!("{}:{}", p.head.sha, p.state)
}

/// The HTTP client of the informer's API calls: no redirects (the token must not follow one),
/// each request bounded by `timeout`.
pub(super) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("assay/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

impl Informer {
    /// The API base for `repo`: `--github-api-url` when given, else the URI's own.
    fn api_base(&self, repo: &GitHubRepo) -> String {
        self.options
            .github_api
            .clone()
            .unwrap_or_else(|| repo.api_base())
            .trim_end_matches('/')
            .to_string()
    }

    /// One GET of the API: the parsed reply and whether GitHub's `Link` header names a next page.
    async fn api_get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        token: Option<&str>,
        what: &str,
        wait_key: &str,
    ) -> Result<(T, bool), PollError> {
        let mut req = self
            .http
            .get(url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let hide = |text: &str| match token {
            Some(t) if !t.is_empty() => text.replace(t, "***"),
            _ => text.to_string(),
        };
        let mut resp = req.send().await.map_err(|e| {
            let why = if e.is_timeout() {
                format!("no answer within {}s", self.options.api_timeout.as_secs())
            } else {
                // reqwest's words name the URL, never the header.
                e.to_string()
            };
            PollError::Forge(hide(&format!("{what}: {why}")))
        })?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let next = header("link").is_some_and(|l| {
            l.split(',')
                .any(|part| part.split(';').skip(1).any(|p| p.trim() == "rel=\"next\""))
        });
        if status == 403 || status == 429 {
            let retry = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
            let exhausted = header("x-ratelimit-remaining").as_deref() == Some("0");
            let reset = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<i64>().ok());
            if retry.is_some() || exhausted || status == 429 {
                let wait = match (retry, reset) {
                    (Some(s), _) => Duration::from_secs(s),
                    (None, Some(at)) => {
                        Duration::from_secs((at - Utc::now().timestamp()).max(1) as u64)
                    }
                    (None, None) => Duration::from_secs(60),
                }
                .clamp(Duration::from_secs(1), MAX_WAIT);
                let until = Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
                let message = format!(
                    "{what}: GitHub's API rate limit (HTTP {}): not asked again before {} (hint: {})",
                    status.as_u16(),
                    until.format("%H:%M:%S UTC"),
                    if token.is_some() {
                        "the token's hourly allowance is used up; poll less often with --git-poll-interval"
                    } else {
                        "requests without a token get 60 an hour: name one with `tokenFrom`"
                    }
                );
                self.waits.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    wait_key.to_string(),
                    (tokio::time::Instant::now() + wait, message.clone()),
                );
                return Err(PollError::Forge(message));
            }
        }
        // The body, at most MAX_REPLY bytes of it.
        if resp.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
            return Err(PollError::Forge(format!(
                "{what}: a reply of more than {} MiB, not read",
                MAX_REPLY >> 20
            )));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_REPLY {
                        return Err(PollError::Forge(format!(
                            "{what}: a reply of more than {} MiB, not read",
                            MAX_REPLY >> 20
                        )));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let why = if e.is_timeout() {
                        format!(
                            "no full answer within {}s",
                            self.options.api_timeout.as_secs()
                        )
                    } else {
                        e.to_string()
                    };
                    return Err(PollError::Forge(hide(&format!("{what}: {why}"))));
                }
            }
        }
        if !status.is_success() {
            let said = hide(&cut(&String::from_utf8_lossy(&body), 200));
            let hint = match status.as_u16() {
                401 => " (hint: the token was refused: check the Secret `tokenFrom` names)",
                404 => {
                    " (hint: a private repository needs a token with read access: name it with `tokenFrom`)"
                }
                _ => "",
            };
            return Err(PollError::Forge(format!(
                "{what}: HTTP {}: {said}{hint}",
                status.as_u16()
            )));
        }
        let parsed = serde_json::from_slice(&body).map_err(|e| {
            PollError::Forge(format!(
                "{what}: the reply is not what GitHub's API sends: {e}"
            ))
        })?;
        Ok((parsed, next))
    }

    /// Page `page` (of 100) of `GET BASE/repos/OWNER/REPO/PATH?QUERY`: the reply, whether
    /// there is a next page, and what it was (for messages).
    #[allow(clippy::too_many_arguments)]
    async fn repo_page<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        repo: &GitHubRepo,
        token: Option<&str>,
        path: &str,
        query: &str,
        page: u32,
        wait_key: &str,
    ) -> Result<(T, bool, String), PollError> {
        let sep = if query.is_empty() { "" } else { "&" };
        let url = format!(
            "{base}/repos/{}/{}/{path}?{query}{sep}per_page=100&page={page}",
            repo.owner, repo.repo
        );
        let what = format!(
            "GitHub API GET /repos/{}/{}/{path} page {page}",
            repo.owner, repo.repo
        );
        let (reply, next) = self.api_get(&url, token, &what, wait_key).await?;
        Ok((reply, next, what))
    }

    /// Pages of `GET /repos/O/R/pulls?QUERY`, while `more` says the last page read is not
    /// old enough; whether pages were left unread at [`MAX_PAGES`].
    async fn list_pulls(
        &self,
        base: &str,
        repo: &GitHubRepo,
        token: Option<&str>,
        query: &str,
        wait_key: &str,
        more: impl Fn(&[Pull]) -> Result<bool, PollError>,
    ) -> Result<(Vec<Pull>, bool), PollError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let (pulls, next, what): (Vec<Pull>, bool, String) = self
                .repo_page(base, repo, token, "pulls", query, page, wait_key)
                .await?;
            for p in &pulls {
                time(&p.updated_at, &format!("{what}: #{} updated_at", p.number))?;
            }
            let go_on = next && more(&pulls)?;
            all.extend(pulls);
            if !go_on {
                return Ok((all, false));
            }
        }
        Ok((all, true))
    }

    /// The files a pull request changes (GitHub lists at most 3,000).
    async fn pull_files(
        &self,
        base: &str,
        repo: &GitHubRepo,
        token: Option<&str>,
        number: u64,
        wait_key: &str,
    ) -> Result<Vec<String>, PollError> {
        let mut files = Vec::new();
        let path = format!("pulls/{number}/files");
        for page in 1..=MAX_FILE_PAGES {
            let (page_files, next, _): (Vec<File>, bool, String) = self
                .repo_page(base, repo, token, &path, "", page, wait_key)
                .await?;
            files.extend(page_files.into_iter().map(|f| f.filename));
            if !next {
                break;
            }
        }
        Ok(files)
    }

    /// One poll of a `git-pull-request` trigger.
    pub(super) async fn poll_pulls(
        &self,
        t: &TestTrigger,
        git: &TestTriggerContentGit,
        creds: &Credentials,
        source: &str,
    ) -> Result<(), PollError> {
        let name = &t.metadata.name;
        let Some(repo) = gitmatch::github_repo(&git.uri) else {
            return Err(PollError::Refused(format!(
                "`{}` is not a GitHub repository: `git-pull-request` reads GitHub's API (hint: write https://github.com/OWNER/REPO.git)",
                gitmatch::redact(&git.uri)
            )));
        };
        let base = self.api_base(&repo);
        let token = creds.token.as_deref();
        // Rate limits are per token (or per address without one).
        let wait_key = super::hex(&<sha2::Sha256 as sha2::Digest>::digest(
            serde_json::json!([base, token]).to_string().as_bytes(),
        ));
        if let Some((until, message)) = self
            .waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&wait_key)
            .cloned()
            && tokio::time::Instant::now() < until
        {
            return Err(PollError::Forge(message));
        }
        let seen = self.state.store.git_heads(name).await?;
        let pr = git.pull_request.clone().unwrap_or_default();
        let wanted = |p: &Pull| {
            gitmatch::name_selected(&p.base.reference, &pr.branches, &pr.branches_ignore)
        };
        let seen = match seen {
            Some(seen) if seen.source == source => seen,
            other => {
                // First sight: the open pull requests and the newest page of all are the
                // baseline, and the newest update the watermark.
                let (open, _) = self
                    .list_pulls(&base, &repo, token, "state=open", &wait_key, |_| Ok(true))
                    .await?;
                let (newest, _) = self
                    .list_pulls(
                        &base,
                        &repo,
                        token,
                        "state=all&sort=updated&direction=desc",
                        &wait_key,
                        |_| Ok(false),
                    )
                    .await?;
                let mut refs = BTreeMap::new();
                let mut mark = String::new();
                for p in open.iter().chain(&newest) {
                    if time(&p.updated_at, "")? > watermark_time(&mark) {
                        mark = p.updated_at.clone();
                    }
                    if wanted(p) {
                        refs.insert(ref_of(p.number), state_of(p));
                    }
                }
                refs.insert(WATERMARK.to_string(), mark);
                let wrote = self
                    .state
                    .store
                    .advance_git_heads(name, source, &refs, other.map(|s| s.version), &self.me)
                    .await?;
                if wrote {
                    tracing::info!(trigger = %name, repository = %format!("{}/{}", repo.owner, repo.repo),
                        pulls = refs.len() - 1,
                        "git trigger: recorded the repository's pull requests; changes from now on fire it");
                }
                return Ok(());
            }
        };
        let mark_text = seen.refs.get(WATERMARK).cloned().unwrap_or_default();
        let mark = watermark_time(&mark_text);
        let (mut pulls, truncated) = self
            .list_pulls(
                &base,
                &repo,
                token,
                "state=all&sort=updated&direction=desc",
                &wait_key,
                |page| {
                    Ok(match page.last() {
                        Some(p) => time(&p.updated_at, "")? >= mark,
                        None => false,
                    })
                },
            )
            .await?;
        if truncated {
            tracing::warn!(trigger = %name, pages = MAX_PAGES,
                "git trigger: more pull requests changed since the last poll than it reads in one; the oldest of them are not looked at");
        }
        // Each pull request once, its newest sight (a page may shift while it is read); then
        // the oldest change first.
        let updated = |p: &Pull| time(&p.updated_at, "").ok();
        pulls.retain(|p| updated(p).is_some_and(|u| u >= mark));
        pulls.sort_by_key(|p| (p.number, std::cmp::Reverse(updated(p))));
        pulls.dedup_by_key(|p| p.number);
        pulls.sort_by_key(|p| (updated(p), p.number));
        let mut refs = seen.refs.clone();
        let mut newest = mark_text.clone();
        let mut firing = Vec::new();
        for p in pulls {
            if time(&p.updated_at, "")? > watermark_time(&newest) {
                newest = p.updated_at.clone();
            }
            if !wanted(&p) {
                continue;
            }
            let key = ref_of(p.number);
            let now = state_of(&p);
            let action = match seen.refs.get(&key) {
                Some(old) if *old == now => continue,
                Some(old) => gitmatch::pr_action(old, &now),
                None if p.state == "open" => "opened",
                None => {
                    refs.insert(key, now);
                    continue;
                }
            };
            refs.insert(key, now);
            if !gitmatch::pr_type_selected(action, &pr.types) {
                tracing::info!(trigger = %name, number = p.number, %action,
                    "git trigger: the pull request's action is not one of `types`; not firing");
                continue;
            }
            if gitmatch::filters_paths(git) {
                let files = self
                    .pull_files(&base, &repo, token, p.number, &wait_key)
                    .await?;
                if !gitmatch::paths_match(git, &files) {
                    tracing::info!(trigger = %name, number = p.number, files = files.len(),
                        "git trigger: no changed path of the pull request matches; not firing");
                    continue;
                }
            }
            firing.push(Fired { pull: p, action });
        }
        refs.insert(WATERMARK.to_string(), newest);
        forget_old_closed(&mut refs);
        tracing::debug!(trigger = %name, firing = firing.len(), watermark = %refs[WATERMARK],
            "git trigger polled");
        if refs == seen.refs {
            return Ok(());
        }
        let wrote = self
            .state
            .store
            .advance_git_heads(name, source, &refs, Some(seen.version), &self.me)
            .await?;
        if !wrote {
            tracing::info!(trigger = %name, "git trigger: another server recorded this change first; it queues the runs");
            return Ok(());
        }
        for f in firing {
            self.fire_pull(t, &f);
        }
        Ok(())
    }

    /// Queue the trigger's runs for one pull request change, with Testkube's values.
    fn fire_pull(&self, t: &TestTrigger, f: &Fired) {
        let p = &f.pull;
        let author = p.user.as_ref().map(|u| u.login.clone()).unwrap_or_default();
        let values = [
            (super::GIT_COMMIT, p.head.sha.clone()),
            (super::GIT_REF, ref_of(p.number)),
            (super::GIT_BRANCH, p.head.reference.clone()),
            (PR_NUMBER, p.number.to_string()),
            (PR_ACTION, f.action.to_string()),
            (PR_BASE_REF, p.base.reference.clone()),
            (PR_HEAD_REF, p.head.reference.clone()),
            (PR_HEAD_SHA, p.head.sha.clone()),
            (PR_URL, p.html_url.clone()),
            (PR_TITLE, p.title.clone()),
            (PR_AUTHOR, author.clone()),
        ];
        let mut config = super::watcher_values(t);
        for (k, v) in &values {
            // Testkube passes the values that are not empty.
            if !v.is_empty() {
                config.insert(k.to_string(), v.clone());
            }
        }
        let event = serde_json::json!({
            "namespace": t.metadata.namespace.clone().unwrap_or_default(),
            "gitMetadata": {
                "commit": p.head.sha,
                "ref": ref_of(p.number),
                "branch": p.head.reference,
                "prNumber": p.number.to_string(),
                "prAction": f.action,
                "prBaseRef": p.base.reference,
                "prHeadRef": p.head.reference,
                "prHeadSha": p.head.sha,
                "prUrl": p.html_url,
                "prTitle": p.title,
                "prAuthor": author,
            },
        });
        tracing::info!(trigger = %t.metadata.name, number = p.number, action = f.action,
            commit = %p.head.sha, base = %p.base.reference, "git trigger fired");
        let what = format!("git-pull-request #{} {} {}", p.number, f.action, p.head.sha);
        self.queue(t, what, config, event);
    }
}

/// The watermark as a time (the start of time when there is none yet).
fn watermark_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Keep every open pull request and the newest [`KEEP_CLOSED`] closed ones.
fn forget_old_closed(refs: &mut BTreeMap<String, String>) {
    let mut closed: Vec<(u64, String)> = refs
        .iter()
        .filter(|(_, v)| v.ends_with(":closed"))
        .filter_map(|(k, _)| {
            let n = k.strip_prefix("refs/pull/")?.strip_suffix("/head")?;
            Some((n.parse().ok()?, k.clone()))
        })
        .collect();
    if closed.len() <= KEEP_CLOSED {
        return;
    }
    closed.sort();
    for (_, k) in &closed[..closed.len() - KEEP_CLOSED] {
        refs.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_closed_pull_requests_are_forgotten_first() {
        let mut refs = BTreeMap::from([(WATERMARK.to_string(), String::new())]);
        for n in 0..KEEP_CLOSED as u64 + 5 {
            refs.insert(ref_of(n), "a:closed".into());
        }
        refs.insert(ref_of(1), "a:open".into());
        forget_old_closed(&mut refs);
        assert_eq!(refs.len(), KEEP_CLOSED + 2);
        assert!(refs.contains_key(&ref_of(1)), "open ones stay");
        assert!(!refs.contains_key(&ref_of(0)) && refs.contains_key(&ref_of(6)));
    }

    #[test]
    fn replies_are_cut_and_cleaned() {
        assert_eq!(cut("a\nb", 10), "a b");
        assert_eq!(cut(&"x".repeat(300), 200).chars().count(), 201);
    }
}
