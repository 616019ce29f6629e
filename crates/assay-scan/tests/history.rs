//! `--git`: a real repository made here, where a token was committed and removed again. The
//! working tree is clean, its history is not; the finding names the commit that added it, the
//! line it had there, and a commit allowlist keeps it out.

use std::path::Path;
use std::process::Command;

use assay_scan::{Options, Rules, config, scan};

use crate::rules::token;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository whose second commit adds a token on line 3 of config.yaml and whose third
/// removes it; returns (repo, the adding commit).
pub fn repo_with_removed_secret(dir: &Path, secret: &str) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("config.yaml"), "name: app\nport: 8080\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "first"]);
    std::fs::write(
        dir.join("config.yaml"),
        format!("name: app\nport: 8080\ngithub: {secret}\n"),
    )
    .unwrap();
    git(dir, &["commit", "-q", "-am", "wire the GitHub client"]);
    let added = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(
        dir.join("config.yaml"),
        "name: app\nport: 8080\ngithub: ${GITHUB_TOKEN}\n",
    )
    .unwrap();
    git(
        dir,
        &["commit", "-q", "-am", "read the token from the environment"],
    );
    added
}

#[test]
fn history_finds_a_removed_secret_in_the_commit_that_added_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = token("ghp_", 36);
    let added = repo_with_removed_secret(d, &secret);
    let rules = Rules::default_rules();

    let files = scan(&rules, &[d.to_path_buf()], false, &Options::default()).unwrap();
    assert!(files.findings.is_empty(), "{:#?}", files.findings);

    let history = scan(&rules, &[d.to_path_buf()], true, &Options::default()).unwrap();
    assert_eq!(history.commits, 3);
    assert_eq!(history.findings.len(), 1, "{:#?}", history.findings);
    let f = &history.findings[0];
    assert_eq!(f.rule, "github-token");
    assert_eq!(f.file, "config.yaml");
    assert_eq!(f.line, 3);
    assert_eq!(f.commit.as_deref(), Some(added.as_str()));
    assert_eq!(f.author.as_deref(), Some("Dev <dev@example.com>"));
    assert_eq!(f.line_text, "github: *****");
    assert_eq!(f.fingerprint, format!("{added}:config.yaml:github-token:3"));
    let json = serde_json::to_string(&history).unwrap();
    assert!(!json.contains(&secret));
    let cases = assay_scan::test_cases(&history);
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.status == assay_reports::CaseStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].name, format!("config.yaml:3 @{}", &added[..12]));
    assert_eq!(failed[0].class.as_deref(), Some("github-token"));
    assert_eq!(cases.len(), rules.rules.len());

    // A range instead of --all: only the last commit, which adds no secret.
    let last = scan(
        &rules,
        &[d.to_path_buf()],
        true,
        &Options {
            log_opts: vec!["HEAD~1..HEAD".into()],
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(last.commits, 1);
    assert!(last.findings.is_empty());

    // The commit allowlisted (a short id is enough).
    let cfg = d.join("allow.toml");
    std::fs::write(
        &cfg,
        format!(
            "[extend]\nuseDefault = true\n[[allowlists]]\ncommits = [\"{}\"]\n",
            &added[..10]
        ),
    )
    .unwrap();
    let rules = Rules::compile(&config::load(&cfg).unwrap(), &cfg).unwrap();
    let history = scan(&rules, &[d.to_path_buf()], true, &Options::default()).unwrap();
    assert!(history.findings.is_empty(), "{:#?}", history.findings);
}

#[test]
fn a_folder_that_is_not_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = scan(
        &Rules::default_rules(),
        &[dir.path().to_path_buf()],
        true,
        &Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("git history of") && e.contains("not a git repository"),
        "{e}"
    );
}
