//! Who and what made the change a run tests: read from the git repository the run starts in.
//!
//! The HEAD commit and branch, the AI tool that wrote the change (a trailer of the commit
//! message, the commit's author, or the coding agent's branch prefix) and the team that owns
//! the changed files (`CODEOWNERS`). The result becomes tags of the execution ([`tags`]), so
//! every filter, view and the insights read it like any tag; tags given explicitly (`--tag`, the
//! workflow's `spec.execution.tags`) always win over these.
//!
//! `git` is run as a process (no libgit2): five short read-only commands. Nothing here may fail
//! a run: the caller shows the error once and runs without provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assay_store::CiContext;

/// What the provenance of a run says; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The full SHA of HEAD.
    pub commit: Option<String>,
    /// The branch checked out (else the CI system's, on a detached HEAD).
    pub branch: Option<String>,
    /// The AI assistant that wrote or co-wrote the commit (`claude`, `copilot`, ...).
    pub ai_tool: Option<String>,
    /// How the tool was learnt: `trailer`, `author` or `branch`.
    pub ai_source: Option<&'static str>,
    /// The owner of most changed files in `CODEOWNERS` (`@org/payments` gives `payments`).
    pub team: Option<String>,
}

/// Why provenance could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("run `git`: {0}")]
    Spawn(std::io::Error),
    #[error("`git {command}` failed: {message}")]
    Git { command: String, message: String },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The tag keys provenance writes.
pub const TAG_AI_TOOL: &str = "ai.tool";
pub const TAG_AI_SOURCE: &str = "ai.source";
pub const TAG_TEAM: &str = "team";
pub const TAG_COMMIT: &str = "commit";
pub const TAG_BRANCH: &str = "branch";

/// `ASSAY_PROVENANCE=off` (or `0`, `false`, `no`) turns detection off.
pub fn enabled_by_env() -> bool {
    !matches!(
        std::env::var("ASSAY_PROVENANCE")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str(),
        "off" | "0" | "false" | "no"
    )
}

/// AI assistants known by the name or e-mail address they sign commits with: (tool, the
/// lowercased substrings of `Name <email>` that name it). Human first names (Claude, Devin)
/// alone are not enough: the address or a product word must say it.
const ASSISTANTS: &[(&str, &[&str])] = &[
    (
        "claude",
        &["anthropic.com", "claude code", "claude <", "claude[bot]"],
    ),
    ("copilot", &["copilot"]),
    ("cursor", &["cursoragent", "cursor.com", "cursor agent"]),
    ("codex", &["codex"]),
    (
        "devin",
        &["devin-ai", "devin ai", "cognition.ai", "cognition-labs"],
    ),
    ("aider", &["aider.chat", "aider ("]),
    ("gemini", &["gemini"]),
    ("jules", &["google-labs-jules", "jules[bot]"]),
    ("windsurf", &["windsurf", "codeium"]),
    ("amazon-q", &["amazon q", "amazon-q"]),
    ("openhands", &["openhands", "all-hands.dev"]),
    ("sweep", &["sweep-ai", "sweep.dev"]),
];

/// Branch prefixes coding agents create their branches with.
const BRANCH_PREFIXES: &[(&str, &str)] = &[
    ("claude/", "claude"),
    ("codex/", "codex"),
    ("copilot/", "copilot"),
    ("cursor/", "cursor"),
    ("devin/", "devin"),
    ("aider/", "aider"),
    ("gemini/", "gemini"),
    ("jules/", "jules"),
    ("windsurf/", "windsurf"),
    ("openhands/", "openhands"),
    ("sweep/", "sweep"),
];

/// The assistant that `Name <email>` is, if it is a known one.
pub fn assistant_of(identity: &str) -> Option<&'static str> {
    let id = identity.to_lowercase();
    ASSISTANTS
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| id.contains(n)))
        .map(|(tool, _)| *tool)
}

/// The AI tool a commit message's trailers name: `Co-authored-by:` (or `Co-developed-by:`) of
/// a known assistant, or `Generated-by:`/`Assisted-by:`, whose value names the tool itself
/// (a known one by its name, else its first word, lowercased).
pub fn tool_from_trailers(message: &str) -> Option<String> {
    let mut generated = None;
    let mut coauthor = None;
    for line in message.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "co-authored-by" | "co-developed-by" if coauthor.is_none() => {
                coauthor = assistant_of(value).map(str::to_string);
            }
            "generated-by" | "assisted-by" | "ai-assistant" if generated.is_none() => {
                generated = Some(assistant_of(value).map(str::to_string).unwrap_or_else(|| {
                    value
                        .split(|c: char| c.is_whitespace() || c == '<' || c == '/')
                        .find(|w| !w.is_empty())
                        .unwrap_or(value)
                        .to_lowercase()
                }));
            }
            _ => {}
        }
    }
    generated.or(coauthor)
}

/// The coding agent whose branch naming `branch` follows.
pub fn tool_from_branch(branch: &str) -> Option<&'static str> {
    let b = branch.to_ascii_lowercase();
    BRANCH_PREFIXES
        .iter()
        .find(|(prefix, _)| b.starts_with(prefix))
        .map(|(_, tool)| *tool)
}

/// A `CODEOWNERS` file: GitHub's syntax (gitignore-style patterns, one per line with its
/// owners; the last matching line wins; a line without owners leaves its files unowned).
#[derive(Debug, Clone, Default)]
pub struct Codeowners {
    rules: Vec<(regex::Regex, Vec<String>)>,
}

impl Codeowners {
    /// Lines that cannot be read as a pattern are skipped, as GitHub does.
    pub fn parse(text: &str) -> Codeowners {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(pattern) = words.next() else {
                continue;
            };
            if let Some(re) = pattern_regex(pattern) {
                rules.push((re, words.map(str::to_string).collect()));
            }
        }
        Codeowners { rules }
    }

    /// The owners of `path` (relative to the repository, `/`-separated).
    pub fn owners(&self, path: &str) -> &[String] {
        self.rules
            .iter()
            .rev()
            .find(|(re, _)| re.is_match(path))
            .map(|(_, owners)| owners.as_slice())
            .unwrap_or(&[])
    }

    /// The team of a change: the owner of most of `files` (ties: the first such owner in file
    /// order), as a short name (`@org/payments` → `payments`, `@alice` → `alice`).
    pub fn team_of(&self, files: &[String]) -> Option<String> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for f in files {
            for owner in self.owners(f) {
                match counts.iter_mut().find(|(o, _)| o == owner) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((owner.clone(), 1)),
                }
            }
        }
        let best = counts.iter().map(|(_, n)| *n).max()?;
        let (owner, _) = counts.into_iter().find(|(_, n)| *n == best)?;
        Some(short_owner(&owner))
    }
}

fn short_owner(owner: &str) -> String {
    let o = owner.trim_start_matches('@');
    if o.contains('@') {
        return o.to_string();
    }
    o.rsplit('/').next().unwrap_or(o).to_string()
}

/// A CODEOWNERS pattern as an anchored regex over a repository path.
fn pattern_regex(pattern: &str) -> Option<regex::Regex> {
    let dir_only = pattern.ends_with('/');
    let p = pattern.trim_end_matches('/');
    let anchored = p.starts_with('/') || p.contains('/');
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        // `/` or `*`-like roots: everything.
        return regex::Regex::new("^.*$").ok();
    }
    let mut body = String::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    body.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    body.push_str(".*");
                    i += 2;
                }
            }
            '*' => {
                body.push_str("[^/]*");
                i += 1;
            }
            '?' => {
                body.push_str("[^/]");
                i += 1;
            }
            c => {
                body.push_str(&regex::escape(&c.to_string()));
                i += 1;
            }
        }
    }
    let last = p.rsplit('/').next().unwrap_or(p);
    let prefix = if anchored { "^" } else { "^(?:.*/)?" };
    // A directory owns everything under it; `docs/*` owns the files of `docs` only (GitHub's
    // documented example), so a wildcard in the last part matches that level only.
    let suffix = if dir_only {
        "/.*$"
    } else if last.contains(['*', '?']) && !last.contains("**") {
        "$"
    } else {
        "(?:/.*)?$"
    };
    regex::Regex::new(&format!("{prefix}{body}{suffix}")).ok()
}

/// What one commit says, as read from git.
#[derive(Debug, Clone, Default)]
pub struct CommitFacts {
    pub commit: String,
    /// `Name <email>` of the author.
    pub author: String,
    pub message: String,
    pub branch: Option<String>,
    pub changed_files: Vec<String>,
    pub codeowners: Option<String>,
}

impl CommitFacts {
    /// The provenance these facts give; `ci` fills the branch on a detached HEAD.
    pub fn provenance(&self, ci: Option<&CiContext>) -> Provenance {
        let branch = self
            .branch
            .clone()
            .or_else(|| ci.and_then(|c| c.branch.clone()));
        let (ai_tool, ai_source) = if let Some(t) = tool_from_trailers(&self.message) {
            (Some(t), Some("trailer"))
        } else if let Some(t) = assistant_of(&self.author) {
            (Some(t.to_string()), Some("author"))
        } else if let Some(t) = branch.as_deref().and_then(tool_from_branch) {
            (Some(t.to_string()), Some("branch"))
        } else {
            (None, None)
        };
        let team = self
            .codeowners
            .as_deref()
            .and_then(|c| Codeowners::parse(c).team_of(&self.changed_files));
        Provenance {
            commit: Some(self.commit.clone()),
            branch,
            ai_tool,
            ai_source,
            team,
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Option<String>, ProvenanceError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(ProvenanceError::Spawn)?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if message.contains("not a git repository") {
        return Ok(None);
    }
    Err(ProvenanceError::Git {
        command: args.join(" "),
        message,
    })
}

/// Read the facts of HEAD in the repository holding `dir`; `None` when `dir` is in no git
/// repository or the repository has no commit yet.
pub fn read_commit(dir: &Path) -> Result<Option<CommitFacts>, ProvenanceError> {
    let Some(top) = git(dir, &["rev-parse", "--show-toplevel"])? else {
        return Ok(None);
    };
    let top = PathBuf::from(top.trim());
    if git(&top, &["rev-parse", "-q", "--verify", "HEAD^{commit}"]).is_err() {
        return Ok(None); // no commit yet
    }
    let Some(log) = git(&top, &["log", "-1", "--format=%H%n%an <%ae>%n%B", "HEAD"])? else {
        return Ok(None);
    };
    let mut lines = log.splitn(3, '\n');
    let commit = lines.next().unwrap_or("").trim().to_string();
    let author = lines.next().unwrap_or("").trim().to_string();
    let message = lines.next().unwrap_or("").to_string();
    // A detached HEAD has no symbolic ref: the CI system's branch is used instead.
    let branch = git(&top, &["symbolic-ref", "--short", "-q", "HEAD"])
        .ok()
        .flatten()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty());
    let changed = git(
        &top,
        &[
            "diff-tree",
            "--root",
            "--no-commit-id",
            "--name-only",
            "-r",
            "-z",
            "HEAD",
        ],
    )?
    .unwrap_or_default();
    let changed_files = changed
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    // GitHub's places, first found wins.
    let mut codeowners = None;
    for place in [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"] {
        let path = top.join(place);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                codeowners = Some(text);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ProvenanceError::Read { path, source }),
        }
    }
    Ok(Some(CommitFacts {
        commit,
        author,
        message,
        branch,
        changed_files,
        codeowners,
    }))
}

/// The provenance of a run started in `dir` (`None` outside a git repository).
pub fn detect(dir: &Path, ci: Option<&CiContext>) -> Result<Option<Provenance>, ProvenanceError> {
    Ok(read_commit(dir)?.map(|f| f.provenance(ci)))
}

/// The provenance as tags (`commit`, `branch`, `ai.tool`, `ai.source`, `team`; those known).
pub fn tags(p: &Provenance) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            out.insert(k.to_string(), v.clone());
        }
    };
    put(TAG_COMMIT, &p.commit);
    put(TAG_BRANCH, &p.branch);
    put(TAG_AI_TOOL, &p.ai_tool);
    put(TAG_AI_SOURCE, &p.ai_source.map(str::to_string));
    put(TAG_TEAM, &p.team);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_name_known_assistants_and_generated_by_names_any_tool() {
        let msg = "Fix the parser\n\nCo-authored-by: Claude <noreply@anthropic.com>\n";
        assert_eq!(tool_from_trailers(msg).as_deref(), Some("claude"));
        let msg = "x\n\nCo-authored-by: copilot-swe-agent[bot] <198982749+Copilot@users.noreply.github.com>";
        assert_eq!(tool_from_trailers(msg).as_deref(), Some("copilot"));
        let msg = "x\n\nCo-authored-by: Devin Smith <devin@example.com>";
        assert_eq!(
            tool_from_trailers(msg),
            None,
            "a person named Devin is a person"
        );
        let msg = "x\n\nCo-authored-by: Claude Martin <claude.martin@example.com>";
        assert_eq!(tool_from_trailers(msg), None, "so is one named Claude");
        let msg = "x\n\nGenerated-by: Aider 0.80\nCo-authored-by: Claude <noreply@anthropic.com>";
        assert_eq!(tool_from_trailers(msg).as_deref(), Some("aider"));
        let msg = "x\n\nGenerated-by: house-bot v2";
        assert_eq!(tool_from_trailers(msg).as_deref(), Some("house-bot"));
        let msg = "x\n\nco-authored-by: aider (gpt-4o) <noreply@aider.chat>";
        assert_eq!(tool_from_trailers(msg).as_deref(), Some("aider"));
    }

    #[test]
    fn branch_prefixes_of_coding_agents() {
        assert_eq!(tool_from_branch("claude/fix-login-123"), Some("claude"));
        assert_eq!(tool_from_branch("copilot/fix-42"), Some("copilot"));
        assert_eq!(tool_from_branch("devin/1712345-add-tests"), Some("devin"));
        assert_eq!(tool_from_branch("claudette/feature"), None);
        assert_eq!(tool_from_branch("main"), None);
    }

    #[test]
    fn codeowners_last_match_wins_with_githubs_patterns() {
        let c = Codeowners::parse(
            "# comment\n* @acme/core\n*.js @acme/web\n/docs/ @acme/docs\napps/ @acme/apps\n\
             /build/logs/ @octocat\nsrc/*.rs @acme/rust # trailing comment\n/vendor\n",
        );
        assert_eq!(c.owners("README.md"), ["@acme/core"]);
        assert_eq!(c.owners("web/app.js"), ["@acme/web"]);
        assert_eq!(c.owners("docs/a/b.md"), ["@acme/docs"]);
        assert_eq!(c.owners("x/apps/y.txt"), ["@acme/apps"]);
        assert_eq!(c.owners("build/logs/today.log"), ["@octocat"]);
        assert_eq!(c.owners("src/lib.rs"), ["@acme/rust"]);
        assert_eq!(
            c.owners("src/deep/lib.rs"),
            ["@acme/core"],
            "src/*.rs: one level"
        );
        assert!(
            c.owners("vendor/x.c").is_empty(),
            "a line without owners unowns"
        );
        let files: Vec<String> = ["src/a.rs", "src/b.rs", "README.md"]
            .map(String::from)
            .to_vec();
        assert_eq!(c.team_of(&files).as_deref(), Some("rust"));
        assert_eq!(c.team_of(&["vendor/x".into()]), None);
    }

    #[test]
    fn provenance_prefers_trailers_then_author_then_branch() {
        let mut f = CommitFacts {
            commit: "abc".into(),
            author: "Ann <ann@example.com>".into(),
            message: "change\n".into(),
            branch: Some("codex/task".into()),
            changed_files: vec!["src/a.rs".into()],
            codeowners: Some("src/ @acme/payments\n".into()),
        };
        let p = f.provenance(None);
        assert_eq!(
            (p.ai_tool.as_deref(), p.ai_source, p.team.as_deref()),
            (Some("codex"), Some("branch"), Some("payments"))
        );
        f.author = "Copilot <198982749+Copilot@users.noreply.github.com>".into();
        assert_eq!(f.provenance(None).ai_source, Some("author"));
        f.message = "change\n\nCo-authored-by: Cursor Agent <cursoragent@cursor.com>\n".into();
        let p = f.provenance(None);
        assert_eq!(
            (p.ai_tool.as_deref(), p.ai_source),
            (Some("cursor"), Some("trailer"))
        );
        f.branch = None;
        let ci = CiContext {
            branch: Some("feature/x".into()),
            ..CiContext::default()
        };
        assert_eq!(f.provenance(Some(&ci)).branch.as_deref(), Some("feature/x"));
    }
}
