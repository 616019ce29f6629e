//! What a git `content` TestTrigger watches, as pure functions: which URIs it may name, which
//! refs and paths its globs pick (Testkube's `pkg/git/matchers` rules), and a URI with its
//! credentials hidden. The polling itself (the `git` CLI) is `assay-server`'s.

use std::collections::BTreeMap;

use crate::triggers::TestTriggerContentGit;

/// The transports a trigger's `uri` may use (`file` only where the server allows it).
pub const PROTOCOLS: &[&str] = &["https", "http", "ssh", "git"];

/// What is wrong with a repository URI, if anything, and a hint: Assay hands it to `git`, so
/// only plain `https`, `http`, `ssh`, `git` and `file` URLs and scp-like `user@host:path` pass
/// (no transport helpers such as `ext::`, nothing git could read as an option, no password in
/// the URL: it would be stored and shown in the clear).
pub fn uri_problem(uri: &str) -> Option<(String, String)> {
    let hint = "write `https://host/owner/repo.git`, `ssh://git@host/owner/repo.git` or \
                `git@host:owner/repo.git`"
        .to_string();
    if uri.contains("::") {
        return Some((
            format!(
                "`{}` names a git transport helper, which could run commands on the server",
                redact(uri)
            ),
            hint,
        ));
    }
    if uri.starts_with('-') || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some((format!("`{}` is not a repository URL", redact(uri)), hint));
    }
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            if scheme != "file" && !PROTOCOLS.contains(&scheme) {
                return Some((
                    format!("the `{scheme}` protocol is not allowed for git triggers"),
                    format!("one of: {}", PROTOCOLS.join(", ")),
                ));
            }
            let authority = rest.split('/').next().unwrap_or("");
            if scheme != "file" && authority.is_empty() {
                return Some((format!("`{}` has no host", redact(uri)), hint));
            }
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && userinfo.contains(':')
            {
                return Some((
                    format!(
                        "`{}` holds a password, which would be stored and shown in the clear",
                        redact(uri)
                    ),
                    "put it in a Kubernetes Secret and name it with `tokenFrom: {secretKeyRef: {name: NAME, key: KEY}}`".to_string(),
                ));
            }
            None
        }
        None => {
            // scp-like `[user@]host:path`: a host before the first `:`, with no `/` in it.
            match uri.split_once(':') {
                Some((host, path))
                    if !host.is_empty() && !host.contains('/') && !path.is_empty() =>
                {
                    None
                }
                _ => Some((format!("`{}` is not a repository URL", redact(uri)), hint)),
            }
        }
    }
}

/// The transport of a URI that passed [`uri_problem`]: `https`, `http`, `ssh`, `git` or `file`.
pub fn protocol(uri: &str) -> &str {
    match uri.split_once("://") {
        Some((scheme, _)) => scheme,
        None => "ssh",
    }
}

/// `uri` with the user and password of its authority replaced by `***`, for logs.
pub fn redact(uri: &str) -> String {
    if let Some((scheme, rest)) = uri.split_once("://") {
        let end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    uri.to_string()
}

/// What is wrong with a glob pattern, if anything.
pub fn pattern_problem(pattern: &str) -> Option<String> {
    glob(pattern).err()
}

// The error is the final text of one problem of a trigger (what `pattern_problem` reports).
fn glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

/// Whether a branch or tag name matches one of `patterns` (`*` stays within a `/` part).
pub fn name_matches_any(name: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .any(|p| glob(p).is_ok_and(|g| g.is_match(name)))
}

/// Whether a name passes a list and its ignore list: the ignore list wins; an empty list
/// takes every name.
pub fn name_selected(name: &str, patterns: &[String], ignore: &[String]) -> bool {
    !name_matches_any(name, ignore) && (patterns.is_empty() || name_matches_any(name, patterns))
}

/// Testkube's path normalisation: surrounding spaces and slashes go, empty patterns too.
fn normalize(patterns: &[String]) -> Vec<&str> {
    patterns
        .iter()
        .map(|p| p.trim().trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a changed file matches a path pattern: the glob, or (for a pattern without `**`)
/// the folder it names (`docs` takes `docs/guide.md`), as Testkube matches.
pub fn path_matches(pattern: &str, file: &str) -> bool {
    if glob(pattern).is_ok_and(|g| g.is_match(file)) {
        return true;
    }
    !pattern.contains("**")
        && (file == pattern
            || file
                .strip_prefix(pattern)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// Whether a change of `files` concerns a trigger: one file that no `paths_ignore` pattern
/// matches and that `paths` takes (any file when `paths` is empty).
pub fn paths_match(git: &TestTriggerContentGit, files: &[String]) -> bool {
    let paths = normalize(&git.paths);
    let ignore = normalize(&git.paths_ignore);
    files.iter().any(|f| {
        !ignore.iter().any(|p| path_matches(p, f))
            && (paths.is_empty() || paths.iter().any(|p| path_matches(p, f)))
    })
}

/// Whether a trigger filters on paths at all (then a change needs the commits' files).
pub fn filters_paths(git: &TestTriggerContentGit) -> bool {
    !normalize(&git.paths).is_empty() || !normalize(&git.paths_ignore).is_empty()
}

/// The refs an event watches among `git ls-remote`'s lines (`SHA\tREF`): `git-push` the
/// branches `branches`/`branchesIgnore` select, `git-tag-push` the tags `tags`/`tagsIgnore`
/// select. An annotated tag is taken at its commit (the `^{}` line), not its tag object.
pub fn watched_refs(
    event: &str,
    git: &TestTriggerContentGit,
    ls_remote: &str,
) -> BTreeMap<String, String> {
    let (prefix, patterns, ignore) = if event == "git-tag-push" {
        ("refs/tags/", &git.tags, &git.tags_ignore)
    } else {
        ("refs/heads/", &git.branches, &git.branches_ignore)
    };
    let mut out = BTreeMap::new();
    let mut peeled = BTreeMap::new();
    for line in ls_remote.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        let Some(short) = name.strip_prefix(prefix) else {
            continue;
        };
        if let Some(tag) = short.strip_suffix("^{}") {
            peeled.insert(tag.to_string(), sha.to_string());
            continue;
        }
        if name_selected(short, patterns, ignore) {
            out.insert(name.to_string(), sha.to_string());
        }
    }
    for (name, sha) in out.iter_mut() {
        if let Some(commit) = name.strip_prefix(prefix).and_then(|s| peeled.get(s)) {
            *sha = commit.clone();
        }
    }
    out
}

/// A ref's short name and kind: `("main", false)` for `refs/heads/main`, `("v1", true)` for
/// `refs/tags/v1`.
pub fn short_ref(reference: &str) -> (&str, bool) {
    if let Some(tag) = reference.strip_prefix("refs/tags/") {
        (tag, true)
    } else {
        (
            reference.strip_prefix("refs/heads/").unwrap_or(reference),
            false,
        )
    }
}

/// A GitHub repository a `git-pull-request` trigger names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubRepo {
    /// `github.com`, or a GitHub Enterprise host.
    pub host: String,
    pub owner: String,
    pub repo: String,
}

impl GitHubRepo {
    /// Where its REST API is: `https://api.github.com` for github.com, `https://HOST/api/v3`
    /// for GitHub Enterprise (Testkube's rule).
    pub fn api_base(&self) -> String {
        if self.host == "github.com" || self.host.ends_with(".github.com") {
            "https://api.github.com".to_string()
        } else {
            format!("https://{}/api/v3", self.host)
        }
    }
}

/// The GitHub repository `uri` names (HTTPS, `ssh://` or `git@host:owner/repo`, `.git` or
/// not), as Testkube reads one: the host is `github.com` or has a `github.` label (GitHub
/// Enterprise), the path is `OWNER/REPO`.
pub fn github_repo(uri: &str) -> Option<GitHubRepo> {
    let (authority, path) = match uri.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?,
        None => uri.split_once(':')?,
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?.to_ascii_lowercase();
    // A `github` label before the last: github.com, www.github.com, github.corp.example.
    let labels: Vec<&str> = host.split('.').collect();
    if !labels[..labels.len() - 1].contains(&"github") {
        return None;
    }
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, repo) = path.split_once('/')?;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n != "."
            && n != ".."
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (name_ok(owner) && name_ok(repo)).then(|| GitHubRepo {
        host,
        owner: owner.to_string(),
        repo: repo.to_string(),
    })
}

/// What happened to a pull request between two sights (`OLD`, `NEW`: `SHA:STATE`), as
/// Testkube's `DeterminePRAction` says: `closed`, `reopened`, else `synchronize`.
pub fn pr_action(old: &str, new: &str) -> &'static str {
    let state = |s: &str| {
        s.split_once(':')
            .map(|(_, st)| st.to_string())
            .unwrap_or_default()
    };
    let (was, is) = (state(old), state(new));
    if is == "closed" && was != "closed" {
        "closed"
    } else if is == "open" && was == "closed" {
        "reopened"
    } else {
        "synchronize"
    }
}

/// Whether a pull request action is one of `types` (any when empty; case and spaces aside).
pub fn pr_type_selected(action: &str, types: &[String]) -> bool {
    types.is_empty() || types.iter().any(|t| t.trim().eq_ignore_ascii_case(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(paths: &[&str], ignore: &[&str]) -> TestTriggerContentGit {
        TestTriggerContentGit {
            paths: paths.iter().map(|s| s.to_string()).collect(),
            paths_ignore: ignore.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_as_testkube_matches_them() {
        assert!(path_matches("src/**", "src/a/b.rs"));
        assert!(path_matches("*.md", "README.md"));
        assert!(!path_matches("*.md", "docs/guide.md"));
        assert!(path_matches("docs", "docs/guide.md"));
        assert!(path_matches("docs/*", "docs/guide.md"));
        assert!(!path_matches("docs/*", "docs/a/guide.md"));
        assert!(!path_matches("doc", "docs/guide.md"));
        assert!(path_matches("**/*.rs", "a.rs"));
        // The ignore list wins; an empty list takes any file.
        let g = git(&["src/**"], &["src/**/*.md"]);
        assert!(paths_match(&g, &files(&["src/notes.md", "src/lib.rs"])));
        assert!(!paths_match(&g, &files(&["src/notes.md", "docs/x.rs"])));
        assert!(paths_match(&git(&[], &["docs/**"]), &files(&["x"])));
        assert!(!paths_match(&git(&[], &["docs/**"]), &files(&["docs/x"])));
        assert!(!paths_match(&git(&[], &[]), &[]));
        assert!(paths_match(&git(&["/src/"], &[]), &files(&["src/x"])));
        assert!(filters_paths(&git(&[], &["x"])) && !filters_paths(&git(&[" "], &[])));
    }

    #[test]
    fn refs_by_event_with_ignore_lists_winning() {
        let ls = "a1\tHEAD\nb2\trefs/heads/main\nc3\trefs/heads/release/1\nd4\trefs/heads/release/1/x\n\
                  e5\trefs/tags/v1.0\nf6\trefs/tags/v1.0^{}\n07\trefs/tags/v2.0\n08\trefs/pull/1/head\n";
        let mut g = TestTriggerContentGit {
            branches: vec!["release/*".into(), "main".into()],
            branches_ignore: vec!["main".into()],
            ..Default::default()
        };
        let pushed = watched_refs("git-push", &g, ls);
        assert_eq!(
            pushed.into_iter().collect::<Vec<_>>(),
            [("refs/heads/release/1".to_string(), "c3".to_string())]
        );
        g.branches.clear();
        g.branches_ignore.clear();
        assert_eq!(watched_refs("git-push", &g, ls).len(), 3);
        g.tags_ignore = vec!["v2*".into()];
        let tags = watched_refs("git-tag-push", &g, ls);
        // The annotated tag at its commit.
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            [("refs/tags/v1.0".to_string(), "f6".to_string())]
        );
        assert_eq!(short_ref("refs/tags/v1.0"), ("v1.0", true));
        assert_eq!(short_ref("refs/heads/a/b"), ("a/b", false));
    }

    #[test]
    fn uris_that_git_would_misread_are_refused() {
        for ok in [
            "https://example.com/a/b.git",
            "http://127.0.0.1:8080/repo.git",
            "ssh://git@example.com:22/a/b.git",
            "git://example.com/a",
            "git@example.com:a/b.git",
            "https://user@example.com/a.git",
            "file:///srv/repo.git",
        ] {
            assert_eq!(uri_problem(ok), None, "{ok}");
        }
        for (bad, expected) in [
            ("ext::sh -c touch% /tmp/pwned", "transport helper"),
            ("ext::sh", "transport helper"),
            ("--upload-pack=touch /tmp/x", "is not a repository URL"),
            ("ftp://example.com/a", "`ftp` protocol is not allowed"),
            ("https://me:hunter2@example.com/a", "holds a password"),
            ("https:///a", "has no host"),
            ("/srv/repo.git", "is not a repository URL"),
            ("https://example.com/a\nb", "is not a repository URL"),
        ] {
            let (message, _) = uri_problem(bad).unwrap_or_else(|| panic!("{bad} passes"));
            assert!(message.contains(expected), "{bad}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        assert_eq!(
            redact("https://me:hunter2@example.com/a@b"),
            "https://***@example.com/a@b"
        );
        assert_eq!(protocol("git@example.com:a/b.git"), "ssh");
        assert!(pattern_problem("src/[").is_some());
        assert!(pattern_problem("src/**").is_none());
    }

    #[test]
    fn github_repositories_as_testkube_reads_them() {
        let r = github_repo("https://github.com/acme/app.git").unwrap();
        assert_eq!((r.owner.as_str(), r.repo.as_str()), ("acme", "app"));
        assert_eq!(r.api_base(), "https://api.github.com");
        for uri in [
            "git@github.com:acme/app.git",
            "ssh://git@github.com/acme/app",
            "https://bot@github.com/acme/app/",
        ] {
            assert_eq!(github_repo(uri).as_ref(), Some(&r), "{uri}");
        }
        let ghes = github_repo("https://github.corp.example:8443/acme/app").unwrap();
        assert_eq!(ghes.api_base(), "https://github.corp.example/api/v3");
        for not in [
            "https://gitlab.com/acme/app.git",
            "https://notgithub.com/acme/app",
            "https://github.com/acme",
            "https://github.com/acme/app/tree/main",
            "https://github.com/../app",
        ] {
            assert_eq!(github_repo(not), None, "{not}");
        }
    }

    #[test]
    fn pull_request_actions_as_testkube_names_them() {
        assert_eq!(pr_action("a:open", "a:closed"), "closed");
        assert_eq!(pr_action("a:closed", "b:open"), "reopened");
        assert_eq!(pr_action("a:open", "b:open"), "synchronize");
        assert!(pr_type_selected("opened", &[]));
        assert!(pr_type_selected("opened", &[" Opened ".into()]));
        assert!(!pr_type_selected("closed", &["opened".into()]));
    }
}
