//! The CLI's output is a contract (design.md §7, uv's habit): help, the `get` tables, the
//! `get execution` description and errors with their hints are insta snapshots, so a change of
//! output shows up in review as a `.snap` diff. What changes from run to run (the temp dir, ids,
//! times, durations) is replaced by a placeholder, and runs of spaces are collapsed so a
//! duration one character longer does not move a column.

use std::path::Path;

use assert_cmd::Command;

const WORKFLOWS: &str = "\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: hello
  labels:
    team: qa
spec:
  steps:
  - name: Greet
    shell: echo hello
  - name: Check
    shell: exit 3
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflowTemplate
metadata:
  name: tools
spec:
  steps:
  - shell: echo tools
";

fn assay(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_DATA_DIR", home.join("data"))
        .env("ASSAY_CONFIG", home.join("contexts.yaml"))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        // The tests run inside this repository: its commit would be recorded as tags.
        .env("ASSAY_PROVENANCE", "off")
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

/// A duration (`850ms`, `12.3s`, `4m05s`) or a UUID-like id: run-dependent.
fn placeholder(token: &str) -> Option<&'static str> {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    let is_duration = ["ms", "s"]
        .iter()
        .any(|u| token.strip_suffix(u).is_some_and(digits))
        || token
            .split_once('m')
            .is_some_and(|(m, s)| digits(m) && s.strip_suffix('s').is_some_and(digits));
    if is_duration {
        return Some("[DURATION]");
    }
    let hexish = token.len() == 36 && token.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    hexish.then_some("[ID]")
}

fn normalize(text: &str, home: &Path) -> String {
    let text = text.replace(home.to_str().unwrap(), "[HOME]");
    let mut out = String::new();
    for line in text.lines() {
        let mut words: Vec<String> = Vec::new();
        for word in line.split_whitespace() {
            if word.ends_with('Z') && word.len() == 24 && word.as_bytes()[10] == b'T' {
                words.push("[TIME]".into());
            } else if let Some(p) = placeholder(word.trim_start_matches('(')) {
                let open = if word.starts_with('(') { "(" } else { "" };
                words.push(format!("{open}{p}"));
            } else {
                words.push(word.into());
            }
        }
        out.push_str(words.join(" ").as_str());
        out.push('\n');
    }
    out.replace("[DURATION] ago", "[AGO]")
}

fn output(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = assay(home).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        normalize(&String::from_utf8_lossy(&out.stdout), home),
        normalize(&String::from_utf8_lossy(&out.stderr), home),
    )
}

/// Help has nothing run-dependent once no `ASSAY_*` variable is set (clap shows their values):
/// kept as printed, layout included.
fn help(args: &[&str]) -> String {
    let out = Command::cargo_bin("assay")
        .unwrap()
        .env_clear()
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_is_reviewed() {
    insta::assert_snapshot!("help", help(&["--help"]));
    insta::assert_snapshot!("run_help", help(&["run", "--help"]));
    insta::assert_snapshot!("get_help", help(&["get", "--help"]));
}

#[test]
fn get_tables_and_description_are_reviewed() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let file = home.join("wf.yaml");
    std::fs::write(&file, WORKFLOWS).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(output(home, &["apply", "-f", file]).0, 0);
    assert_eq!(output(home, &["run", "--name", "hello", "-q", file]).0, 1);

    let (code, workflows, _) = output(home, &["get", "workflows"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("get_workflows", workflows);
    let (code, templates, _) = output(home, &["get", "templates"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("get_templates", templates);
    let (code, executions, _) = output(home, &["get", "executions"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("get_executions", executions);
    let (code, described, _) = output(home, &["get", "execution", "hello-1"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("get_execution", described);
}

#[test]
fn errors_with_hints_are_reviewed() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let (code, out, err) = output(home, &["get", "execution", "nope-1"]);
    assert_eq!((code, out.as_str()), (2, ""));
    insta::assert_snapshot!("error_unknown_execution", err);
    let (code, out, err) = output(home, &["delete", "workflow", "nope"]);
    assert_eq!((code, out.as_str()), (2, ""));
    insta::assert_snapshot!("error_unknown_workflow", err);
    let (code, out, err) = output(home, &["prune"]);
    assert_eq!((code, out.as_str()), (2, ""));
    insta::assert_snapshot!("error_prune_without_rule", err);
    let (code, out, err) = output(home, &["get", "workflows", "--context", "nowhere"]);
    assert_eq!((code, out.as_str()), (2, ""));
    insta::assert_snapshot!("error_unknown_context", err);
}
