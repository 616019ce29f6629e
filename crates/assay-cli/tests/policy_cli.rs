//! `assay policy test` (issue 19): Kyverno CLI test suites run offline, the README's example
//! as written, failures with exit 1, JUnit out, and unreadable suites as usage errors.

use crate::run_support;

use std::path::{Path, PathBuf};

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

#[test]
fn readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let example = readme
        .split("\n$ assay policy test examples/policies\n")
        .nth(1)
        .expect("the README's example");
    let shown: String = example
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, stdout, stderr) = assay_in(&repo_root(), &["policy", "test", "examples/policies"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, shown);
}

const POLICY: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: no-host-network
spec:
  rules:
    - name: host-network
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: hostNetwork is not allowed
        pattern:
          spec:
            =(hostNetwork): false
"#;

const RESOURCES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  containers: [{name: a, image: a:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  hostNetwork: true
  containers: [{name: a, image: a:1}]
"#;

fn suite(dir: &Path, expect_bad: &str) {
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    std::fs::write(dir.join("resources.yaml"), RESOURCES).unwrap();
    std::fs::write(
        dir.join("kyverno-test.yaml"),
        format!(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {{name: hostnet}}\npolicies: [policy.yaml]\nresources: [resources.yaml]\nresults:\n- {{policy: no-host-network, rule: host-network, kind: Pod, resources: [good], result: pass}}\n- {{policy: no-host-network, rule: host-network, kind: Pod, resources: [bad], result: {expect_bad}}}\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_wrong_expectation_fails_with_exit_1_and_lands_in_junit() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path(), "pass");
    let junit = dir.path().join("policy.xml");
    let (code, stdout, stderr) = assay_in(
        dir.path(),
        &["policy", "test", ".", "--junit", junit.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("FAIL no-host-network host-network Pod/bad: expected pass, got fail (validation error: hostNetwork is not allowed. rule host-network failed at path /spec/hostNetwork/)"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");
    let (cases, err) = assay_reports::parse_all(
        std::fs::File::open(&junit).unwrap(),
        assay_reports::ParseOptions::default(),
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(cases.len(), 2);
    let bad = cases
        .iter()
        .find(|c| c.name == "host-network Pod/bad")
        .expect("bad case");
    assert_eq!(bad.status, assay_reports::CaseStatus::Failed);
    assert_eq!(bad.class.as_deref(), Some("no-host-network"));
    assert_eq!(bad.suite, "policy hostnet");
    let good = cases
        .iter()
        .find(|c| c.name == "host-network Pod/good")
        .expect("good case");
    assert_eq!(good.status, assay_reports::CaseStatus::Passed);

    suite(dir.path(), "fail");
    let (code, stdout, _) = assay_in(
        dir.path(),
        &["policy", "test", "kyverno-test.yaml", "-o", "json"],
    );
    assert_eq!(code, 0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json[0]["checks"][1]["actual"], "fail");
}

#[test]
fn unreadable_suites_are_usage_errors_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = assay_in(dir.path(), &["policy", "test", "."]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no kyverno-test.yaml at or under ."),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");

    std::fs::write(
        dir.path().join("kyverno-test.yaml"),
        "policies: [missing.yaml]\nresults: [",
    )
    .unwrap();
    let (code, _, stderr) = assay_in(dir.path(), &["policy", "test", "."]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("kyverno-test.yaml"), "{stderr}");

    std::fs::write(
        dir.path().join("kyverno-test.yaml"),
        "kind: Test\npolicies: [missing.yaml]\n",
    )
    .unwrap();
    let (code, _, stderr) = assay_in(dir.path(), &["policy", "test", "."]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}

#[test]
fn readme_check_example_runs_as_written_and_fails_with_exit_1() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let cmd = "assay policy check --policy examples/policies/kyverno/require-pinned-images.yaml --policy examples/policies/rego examples/policies/inputs";
    let example = readme
        .split(&format!("\n$ {cmd}\n"))
        .nth(1)
        .expect("the README's example");
    let shown: String = example
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    let args: Vec<&str> = cmd.split(' ').skip(1).collect();
    let (code, stdout, stderr) = assay_in(&repo_root(), &args);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stdout, shown);
}

#[test]
fn check_reads_stdin_writes_junit_and_refuses_bad_rego_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.rego"),
        "package main\nimport rego.v1\ndeny contains msg if { input.kind == \"Pod\"; input.spec.hostNetwork; msg := \"no hostNetwork\" }\n",
    )
    .unwrap();
    let junit = dir.path().join("out.xml");
    let mut child = assay()
        .current_dir(dir.path())
        .args([
            "policy",
            "check",
            "-p",
            "p.rego",
            "-",
            "--junit",
            junit.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), RESOURCES.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS  main deny Pod/good\n"), "{stdout}");
    assert!(
        stdout.contains("FAIL  main deny Pod/bad: no hostNetwork\n"),
        "{stdout}"
    );
    let (cases, err) = assay_reports::parse_all(
        std::fs::File::open(&junit).unwrap(),
        assay_reports::ParseOptions::default(),
    );
    assert!(err.is_none());
    assert_eq!(cases.len(), 2);
    assert!(cases.iter().any(|c| c.name == "deny Pod/bad"
        && c.status == assay_reports::CaseStatus::Failed
        && c.message.as_deref() == Some("no hostNetwork")));

    std::fs::write(
        dir.path().join("bad.rego"),
        "package main\ndeny contains msg if {\n",
    )
    .unwrap();
    let (code, _, stderr) = assay_in(dir.path(), &["policy", "check", "-p", "bad.rego", "p.rego"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.rego"), "{stderr}");
    let (code, _, stderr) = assay_in(
        dir.path(),
        &["policy", "check", "-p", "p.rego", "missing.yaml"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}
