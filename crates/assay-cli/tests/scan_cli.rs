//! `assay scan secrets` (issue 19): the README's example as written, history scans of a real
//! repository made here, JUnit out, configuration errors as usage errors, and the built-in
//! template in a recorded workflow run, where the secret appears in no output and nowhere in
//! the store.

use crate::run_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use run_support::assay;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assay_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = assay()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run assay");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A GitHub-token-shaped string assembled at run time (this file holds none).
fn fake_github_token() -> String {
    let mut s = String::from("ghp_");
    let alphabet = b"Zq8Lm3Xv7Rt2Wk9Pn4Bc6Hj5Gd1Fs0Ya";
    let mut i = 11usize;
    for _ in 0..36 {
        s.push(alphabet[i % alphabet.len()] as char);
        i = (i * 7 + 5) % 101;
    }
    s
}

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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let example = readme
        .split("\n$ assay scan secrets examples/secrets\n")
        .nth(1)
        .expect("the README's example");
    let shown: String = example
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, stdout, stderr) = assay_in(&repo_root(), &["scan", "secrets", "examples/secrets"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stdout, shown);
}

#[test]
fn history_scan_names_the_commit_and_writes_junit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = fake_github_token();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::write(d.join("ci.yaml"), format!("env:\n  GH: {token}\n")).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "ci"]);
    let sha = git(d, &["rev-parse", "HEAD"]);
    std::fs::write(d.join("ci.yaml"), "env:\n  GH: ${{ secrets.GH }}\n").unwrap();
    git(d, &["commit", "-q", "-am", "use a secret"]);

    let (code, stdout, stderr) = assay_in(d, &["scan", "secrets", "."]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("0 secrets found in 1 files (17 rules: default rules)"),
        "{stdout}"
    );

    let junit = d.join("secrets.xml");
    let (code, stdout, stderr) = assay_in(
        d,
        &[
            "scan",
            "secrets",
            ".",
            "--git",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "SECRET github-token ci.yaml:2 @{}: GitHub personal access, OAuth, app or refresh token: GH: *****\n1 secrets found in 2 commits (17 rules: default rules)\n",
            &sha[..12]
        )
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(!xml.contains(&token), "{xml}");
    let (cases, err) = assay_reports::parse_all(
        std::fs::File::open(&junit).unwrap(),
        assay_reports::ParseOptions::default(),
    );
    assert!(err.is_none(), "{err:?}");
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.status == assay_reports::CaseStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].suite, "secret scan");
    assert_eq!(failed[0].class.as_deref(), Some("github-token"));
    assert_eq!(failed[0].name, format!("ci.yaml:2 @{}", &sha[..12]));
    assert_eq!(cases.len(), 17);

    let (code, stdout, _) = assay_in(d, &["scan", "secrets", ".", "--git", "-o", "json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["findings"][0]["commit"], sha.as_str());
    assert_eq!(json["findings"][0]["secret"], "*****");
    assert_eq!(json["commits"], 2);
}

#[test]
fn bad_configuration_and_paths_are_usage_errors_with_hints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("rules.toml"),
        "[[rules]]\nid = \"x\"\nregex = '''([a-z'''\n",
    )
    .unwrap();
    let (code, _, stderr) = assay_in(d, &["scan", "secrets", ".", "--config", "rules.toml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error: failed to load rules: configuration rules.toml: rule `x`: regex:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: rules follow gitleaks' configuration format"),
        "{stderr}"
    );

    let (code, _, stderr) = assay_in(d, &["scan", "secrets", "missing"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("error: failed to scan: read missing:"),
        "{stderr}"
    );

    let (code, _, stderr) = assay_in(d, &["scan", "secrets", ".", "--git"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a git repository"), "{stderr}");
    assert!(
        stderr.contains("hint: --git scans a repository's history"),
        "{stderr}"
    );
}

/// Every file under `dir`, zstd-compressed logs decompressed.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let bytes = if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    zstd::decode_all(&bytes[..]).unwrap()
                } else {
                    bytes
                };
                out.push((path, bytes));
            }
        }
    }
    out
}

#[test]
fn security_a_scanned_secret_appears_in_no_output_and_nowhere_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = fake_github_token();
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("settings.py"),
        format!("import os\nGITHUB = '{token}'\n"),
    )
    .unwrap();
    let wf = d.join("scan.yaml");
    std::fs::write(
        &wf,
        format!(
            "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: scan\nspec:\n  use:\n  - name: assay/scan-secrets/v1\n    config:\n      paths: {}\n",
            src.display()
        ),
    )
    .unwrap();
    let data = d.join("data");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let data_arg = data.display().to_string();
    let run = |args: &[&str]| {
        let out = assay()
            .current_dir(d)
            .env("PATH", &path)
            .args(args)
            .args(["--data-dir", &data_arg])
            .output()
            .expect("run assay");
        (
            out.status.code().expect("exit code"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["run", wf.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let exec: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = exec["id"].as_str().unwrap().to_string();
    let mut outputs = vec![stdout, stderr];

    let (code, tests, stderr) = run(&["get", "tests", &id, "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&tests).unwrap();
    let failed: Vec<&serde_json::Value> =
        cases.iter().filter(|c| c["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{tests}");
    assert_eq!(failed[0]["suite"], "secret scan");
    assert_eq!(failed[0]["class"], "github-token");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("GITHUB = '*****'"),
        "{tests}"
    );
    assert_eq!(cases.len(), 17, "{tests}");
    outputs.push(tests);
    let (_, logs, stderr) = run(&["logs", &id]);
    assert!(logs.contains("SECRET github-token"), "{logs}{stderr}");
    assert!(logs.contains("GITHUB = '*****'"), "{logs}");
    outputs.push(logs);
    outputs.push(stderr);
    let (_, text, stderr) = run(&["get", "execution", &id]);
    outputs.push(text);
    outputs.push(stderr);

    for out in &outputs {
        assert!(!out.contains(&token), "the secret leaked:\n{out}");
    }
    let files = all_bytes(&data);
    assert!(
        files.len() >= 3,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let needle = token.as_bytes();
    for (path, bytes) in &files {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the secret is stored in {}",
            path.display()
        );
    }
}
