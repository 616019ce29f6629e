//! The history commands as a user runs them: `apply`, `get`, `delete`, `logs`, `artifacts`,
//! `abort`, `prune`, on a fresh data dir (the real binary, SQLite).

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn assay(data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

const WORKFLOWS: &str = "\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: hello
  labels:
    team: qa
spec:
  container:
    workingDir: /data/work
  steps:
  - name: Greet
    shell: |
      echo hello
      echo world
      mkdir -p out && echo report > out/r.txt
    artifacts:
      paths: [\"out/*.txt\"]
---
# the other team's
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: other
  labels:
    team: dev
spec:
  steps:
  - shell: exit 3
";

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

#[test]
fn definitions_apply_get_delete() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("wf.yaml");
    std::fs::write(&file, WORKFLOWS).unwrap();

    assay(&data)
        .args(["apply", "-f"])
        .arg(&file)
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains(
            "workflow hello created (revision 1)\nworkflow other created (revision 1)\n",
        ));
    assay(&data)
        .args(["apply", "-f"])
        .arg(&file)
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("hello unchanged (revision 1)"));
    std::fs::write(&file, WORKFLOWS.replace("echo world", "echo there")).unwrap();
    assay(&data)
        .args(["apply", "-f"])
        .arg(&file)
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("hello updated (revision 2)"));

    let out = assay(&data)
        .args(["get", "workflows", "-l", "team=qa", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list = json(&out.stdout);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["metadata"]["name"], "hello");

    // The stored YAML comes back as written, comments included.
    let out = assay(&data)
        .args(["get", "workflow", "other"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("# the other team's\n"), "{text}");
    let out = assay(&data)
        .args(["get", "workflow", "hello", "--revision", "1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("echo world")
    );

    assay(&data)
        .args(["delete", "workflow", "other"])
        .assert()
        .success();
    assay(&data)
        .args(["get", "workflow", "other"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("workflow `other` not found"));
    assay(&data)
        .args(["delete", "workflow", "other"])
        .assert()
        .code(2);

    // An invalid file stores nothing.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        WORKFLOWS
            .replace("shell: exit 3", "shel: exit 3")
            .replace("name: other", "name: third"),
    )
    .unwrap();
    assay(&data)
        .args(["apply", "-f"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field `shel`"));
    assay(&data)
        .args(["get", "workflow", "third"])
        .assert()
        .code(2);
}

#[test]
fn executions_logs_artifacts_abort_prune() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("wf.yaml");
    std::fs::write(&file, WORKFLOWS).unwrap();
    for _ in 0..2 {
        assay(&data)
            .args(["run", "--tag", "ci=yes", "--name", "hello"])
            .arg(&file)
            .assert()
            .success();
    }
    assay(&data)
        .args(["run", "--name", "other"])
        .arg(&file)
        .assert()
        .code(1);

    let out = assay(&data)
        .args(["get", "executions", "-o", "json"])
        .output()
        .unwrap();
    let list = json(&out.stdout);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other-1", "hello-2", "hello-1"], "newest first");

    let out = assay(&data)
        .args([
            "get",
            "executions",
            "--workflow",
            "hello",
            "--tag",
            "ci=yes",
            "--since",
            "1h",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(json(&out.stdout).as_array().unwrap().len(), 2);
    let out = assay(&data)
        .args(["get", "executions", "--status", "failed", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(json(&out.stdout)[0]["name"], "other-1");
    assay(&data)
        .args(["get", "executions", "--status", "nope"])
        .assert()
        .code(2);
    // The table is plain text with a header.
    assay(&data)
        .args(["get", "executions", "--limit", "1"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("NAME").and(predicate::str::contains("other-1")))
        .stdout(predicate::str::contains("\u{1b}").not());

    let out = assay(&data)
        .args([
            "get",
            "execution",
            "--workflow",
            "hello",
            "--number",
            "2",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let e = json(&out.stdout);
    assert_eq!(e["result"]["status"], "passed");
    assert_eq!(e["tags"]["ci"], "yes");
    let id = e["id"].as_str().unwrap().to_string();
    let out = assay(&data)
        .args(["get", "execution", &id, "-o", "yaml"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("name: hello-2")
    );
    assay(&data)
        .args(["get", "execution", "hello-9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`hello-9` not found"));

    assay(&data)
        .args(["logs", "hello-2", "--step", "Greet"])
        .assert()
        .success()
        .stdout("hello\nworld\n");
    assay(&data)
        .args(["logs", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("[Greet] world"));
    assay(&data)
        .args(["logs", "hello-2", "--follow", "--step", "Greet"])
        .assert()
        .success()
        .stdout("hello\nworld\n");
    assay(&data)
        .args(["logs", "hello-2", "--step", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no step `nope`"));

    assay(&data)
        .args(["artifacts", "hello-2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("r.txt"));
    let dl = dir.path().join("dl");
    assay(&data)
        .args(["artifacts", "hello-2", "--download"])
        .arg(&dl)
        .assert()
        .success();
    let found: Vec<_> = walk(&dl);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(std::fs::read_to_string(&found[0]).unwrap(), "report\n");

    assay(&data)
        .args(["abort", "hello-2"])
        .assert()
        .success()
        .stderr(predicate::str::contains("already ended"));

    assay(&data).arg("prune").assert().code(2);
    // The README's example, as written: nothing is that old or beyond 100.
    assay(&data)
        .args([
            "prune",
            "--keep-days",
            "30",
            "--keep-per-workflow",
            "100",
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("would prune 0 execution(s)\n"));
    assay(&data)
        .args(["prune", "--keep-per-workflow", "1", "--dry-run"])
        .assert()
        .success()
        .stdout("hello-1\n")
        .stderr(predicate::str::contains("would prune 1 execution(s)\n"));
    assay(&data)
        .args(["get", "execution", "hello-1"])
        .assert()
        .success();
    assay(&data)
        .args(["prune", "--keep-per-workflow", "1"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("pruned 1 execution(s)\n"));
    assay(&data)
        .args(["get", "execution", "hello-1"])
        .assert()
        .code(2);
    assay(&data)
        .args(["get", "execution", "hello-2"])
        .assert()
        .success();
}

#[test]
fn a_corrupt_database_is_an_internal_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("assay.db"), vec![0x42u8; 4096]).unwrap();
    assay(&data)
        .args(["get", "executions"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            data.join("assay.db").display().to_string(),
        ))
        .stderr(predicate::str::contains("not a valid SQLite database"));
}

#[test]
fn an_unreachable_postgres_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    assay(&dir.path().join("data"))
        .args([
            "get",
            "executions",
            "--database",
            "postgres://me:hunter2@127.0.0.1:1/db",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "postgres://me:*****@127.0.0.1:1/db",
        ))
        .stderr(predicate::str::contains("hunter2").not());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}
