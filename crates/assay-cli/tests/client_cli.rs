//! The CLI as a client of `assay server`: the real server binary on 127.0.0.1 with a temp data
//! dir, contexts in a temp `ASSAY_CONFIG`, and every command that works through the API checked
//! against the server's own answers and against the same command in embedded mode on the
//! server's data dir (same tables, same JSON).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::run_support;
use run_support::{free_port, http, serve};

/// `assay` with contexts in `config`; `data` is where embedded mode (and `context add`
/// without a token) looks.
fn assay(config: &Path, data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_CONFIG", config)
        .env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WORKFLOWS: &str = r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: pass
  labels:
    team: qa
spec:
  steps:
  - name: Greet
    shell: |
      echo hello
      echo world
      mkdir -p out/sub && echo report > out/r.txt && echo deep > out/sub/d.txt
    artifacts:
      paths: ["out/**/*.txt"]
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: fail
spec:
  steps:
  - name: first
    shell: echo fine
  - name: group
    steps:
    - name: inner
      shell: echo broken; exit 3
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: gate
spec:
  config:
    gate:
      type: string
  steps:
  - name: wait
    shell: |
      echo before-gate
      # Ends when the test's folder is gone too, so no step outlives the test.
      while [ ! -e '{{ config.gate }}' ]; do [ -d "$(dirname '{{ config.gate }}')" ] || exit 9; sleep 0.1; done
      echo after-gate
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: long
spec:
  steps:
  - name: sleep
    shell: echo sleeping; sleep 600
"#;

/// `\d+[smhd] ago` → `AGO`: the only part of a table that may differ between two reads.
fn without_ages(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_inclusive(' ') {
        let w = word.trim_end();
        let is_age = w.len() > 1
            && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit())
            && w.ends_with(['s', 'm', 'h', 'd']);
        out.push_str(if is_age { "N" } else { word });
    }
    out
}

fn wait_status(config: &Path, data: &Path, name: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out, err) =
            run(assay(config, data).args(["get", "execution", name, "-o", "json"]));
        if code == 0 {
            let v: Value = serde_json::from_str(&out).unwrap();
            if v["result"]["status"] == wanted {
                return;
            }
        } else {
            assert!(err.contains("not found"), "{err}");
        }
        assert!(Instant::now() < deadline, "{name} never became {wanted}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn commands_work_through_the_server_like_in_embedded_mode() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config/contexts.yaml");
    let port = free_port();
    let _server = serve(data.path(), port);
    let url = format!("http://127.0.0.1:{port}");
    let admin = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let files = home.path().join("flows.yaml");
    std::fs::write(&files, WORKFLOWS).unwrap();
    let cli = || assay(&config, data.path());
    let embedded = || {
        let mut c = assay(&config, data.path());
        c.env("ASSAY_CONTEXT", "embedded");
        c
    };

    // `context add` without a token on loopback takes the server's admin token, and says so.
    let (code, _, err) = run(cli().args(["context", "add", "local", "--server", &url]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("admin.token"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (_, list, _) = run(cli().args(["context", "list"]));
    assert!(list.contains("local") && list.contains(&url), "{list}");
    assert!(list.contains("sha256:") && !list.contains(&admin), "{list}");
    // Not in use until `use`: the embedded store is.
    assert!(
        list.lines()
            .any(|l| l.starts_with("embedded") && l.ends_with('*')),
        "{list}"
    );
    let (code, _, err) = run(cli().args(["context", "use", "local"]));
    assert_eq!(code, 0, "{err}");

    // apply: stored on the server (not in this process's embedded store: it is the server's
    // data dir, so the check is through the server's API).
    let (code, out, err) = run(cli().args(["apply", "-f"]).arg(&files));
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("workflow pass created"), "{err}");
    let (status, body) = http(port, "GET", "/v1/test-workflows/gate", &admin, None);
    assert_eq!(status, 200, "{body}");
    let (_, out, err) = run(cli().args(["apply", "-f"]).arg(&files));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("workflow pass unchanged"), "{err}");
    let (code, out, _) = run(cli().args(["get", "workflows", "-l", "team=qa"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("NAME") && out.contains("pass") && !out.contains("gate"),
        "{out}"
    );
    let (_, remote_doc, _) = run(cli().args(["get", "workflow", "fail", "-o", "json"]));
    let (_, local_doc, _) = run(embedded().args(["get", "workflow", "fail", "-o", "json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&remote_doc).unwrap(),
        serde_json::from_str::<Value>(&local_doc).unwrap()
    );

    // run: the verdict is the exit code.
    let (code, _, err) = run(cli().args(["run", "pass", "--tag", "commit=abc"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("pass-1 passed"), "{err}");
    let (code, _, err) = run(cli().args(["run", "fail"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("failed step: inner [inner] failed, exit code 3") && err.contains("broken"),
        "{err}"
    );

    // run --follow: lines arrive while the run goes on (the step waits for a file the test
    // creates only after it saw the first line).
    let gate = home.path().join("gate");
    let mut follow = StdCommand::new(assert_cmd::cargo::cargo_bin("assay"))
        .args(["run", "gate", "--follow", "--config"])
        .arg(format!("gate={}", gate.display()))
        .env("ASSAY_CONFIG", &config)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_CONTEXT")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(follow.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
        if line.contains("before-gate") {
            break;
        }
    }
    assert!(seen.contains("▶ wait"), "{seen}");
    assert!(!seen.contains("after-gate"), "{seen}");
    std::fs::write(&gate, "").unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    assert_eq!(follow.wait().unwrap().code(), Some(0), "{seen}");
    assert!(seen.contains("  wait | after-gate"), "{seen}");
    assert!(seen.contains("✔ wait passed"), "{seen}");

    // get executions: the table of embedded mode, JSON that is the server's.
    let (code, remote_table, err) = run(cli().args(["get", "executions"]));
    assert_eq!(code, 0, "{err}");
    let (_, local_table, _) = run(embedded().args(["get", "executions"]));
    assert!(remote_table.starts_with("NAME"), "{remote_table}");
    assert_eq!(without_ages(&remote_table), without_ages(&local_table));
    let (_, remote_json, _) = run(cli().args(["get", "executions", "-o", "json"]));
    let remote: Value = serde_json::from_str(&remote_json).unwrap();
    let (_, page) = http(port, "GET", "/v1/test-workflow-executions", &admin, None);
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(remote, page["results"]);
    let names: Vec<&str> = remote
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gate-1", "fail-1", "pass-1"]);
    let (_, tagged, _) =
        run(cli().args(["get", "executions", "--tag", "commit=abc", "-o", "json"]));
    let tagged: Value = serde_json::from_str(&tagged).unwrap();
    assert_eq!(tagged.as_array().unwrap().len(), 1, "{tagged}");

    // get execution: the same document and the same table.
    let (_, remote_one, _) = run(cli().args(["get", "execution", "fail-1", "-o", "json"]));
    let (_, local_one, _) = run(embedded().args(["get", "execution", "fail-1", "-o", "json"]));
    let remote_one: Value = serde_json::from_str(&remote_one).unwrap();
    assert_eq!(
        remote_one,
        serde_json::from_str::<Value>(&local_one).unwrap()
    );
    assert_eq!(remote_one["signature"][3]["name"], "inner", "{remote_one}");
    let (_, remote_table, _) = run(cli().args(["get", "execution", "fail-1"]));
    let (_, local_table, _) = run(embedded().args(["get", "execution", "fail-1"]));
    assert!(
        remote_table.contains("STEP   REF    STATUS  EXIT  DURATION"),
        "{remote_table}"
    );
    assert_eq!(without_ages(&remote_table), without_ages(&local_table));

    // logs: the same lines, prefixes and times.
    for extra in [&[][..], &["--timestamps"], &["--step", "inner"]] {
        let (code, remote_logs, err) = run(cli().args(["logs", "fail-1"]).args(extra));
        assert_eq!(code, 0, "{err}");
        let (_, local_logs, _) = run(embedded().args(["logs", "fail-1"]).args(extra));
        assert_eq!(remote_logs, local_logs, "{extra:?}");
    }
    let (_, logs, _) = run(cli().args(["logs", "fail-1"]));
    assert_eq!(logs, "[first] fine\n[inner] broken\n");
    let (code, _, err) = run(cli().args(["logs", "fail-1", "--step", "nope"]));
    assert_eq!(code, 2);
    assert!(err.contains("its steps:"), "{err}");

    // artifacts: the same list; a download through the API has the files.
    let (_, remote_list, _) = run(cli().args(["artifacts", "pass-1", "-o", "json"]));
    let (_, local_list, _) = run(embedded().args(["artifacts", "pass-1", "-o", "json"]));
    assert_eq!(remote_list, local_list);
    let (_, table, _) = run(cli().args(["artifacts", "pass-1"]));
    assert!(
        table.starts_with("PATH") && table.contains("out/sub/d.txt"),
        "{table}"
    );
    let into = home.path().join("downloaded");
    let (code, out, err) = run(cli().args(["artifacts", "pass-1", "--download"]).arg(&into));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("r.txt"), "{out}");
    let artifact_paths: Vec<PathBuf> = serde_json::from_str::<Value>(&remote_list)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| into.join(a["path"].as_str().unwrap()))
        .collect();
    assert_eq!(artifact_paths.len(), 2, "{remote_list}");
    for p in &artifact_paths {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text == "report\n" || text == "deep\n",
            "{}: {text}",
            p.display()
        );
    }

    // abort of a long run: the waiting `assay run` exits 1 with the verdict.
    let mut long = StdCommand::new(assert_cmd::cargo::cargo_bin("assay"))
        .args(["run", "long"])
        .env("ASSAY_CONFIG", &config)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_CONTEXT")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_status(&config, data.path(), "long-1", "running");
    let (code, _, err) = run(cli().args(["abort", "long-1"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("abort requested for long-1"), "{err}");
    let mut long_err = String::new();
    long.stderr
        .take()
        .unwrap()
        .read_to_string(&mut long_err)
        .unwrap();
    assert_eq!(long.wait().unwrap().code(), Some(1), "{long_err}");
    assert!(long_err.contains("long-1 aborted"), "{long_err}");
    let (_, _, err) = run(cli().args(["abort", "long-1"]));
    assert!(err.contains("long-1 has already ended (aborted)"), "{err}");

    // rerun: same tags, a new execution, the verdict as exit code.
    let (code, out, err) = run(cli().args(["rerun", "pass-1", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["name"], "pass-2");
    assert_eq!(again["tags"]["commit"], "abc");
    let (code, _, _) = run(cli().args(["rerun", "fail-1"]));
    assert_eq!(code, 1);

    // A file with a context is refused with a hint, nothing runs.
    let (code, _, err) = run(cli().args(["run"]).arg(&files));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("assay apply -f"), "{err}");
    // Commands that need the embedded store say so.
    let (code, _, err) = run(cli().args(["get", "flaky"]));
    assert_eq!(code, 2);
    assert!(err.contains("--context embedded"), "{err}");

    // delete: gone from the server; a second delete is the user's mistake.
    let (code, out, err) = run(cli().args(["delete", "workflow", "gate"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("workflow gate deleted\n"), "{err}");
    assert_eq!(
        http(port, "GET", "/v1/test-workflows/gate", &admin, None).0,
        404
    );
    let (code, _, err) = run(cli().args(["delete", "workflow", "gate"]));
    assert_eq!(code, 2);
    assert!(err.contains("not found"), "{err}");

    // A viewer token: reads work, running is refused, naming the context and the role.
    let (code, viewer, err) =
        run(cli().args(["token", "create", "--role", "viewer", "--name", "ro"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli().args([
        "context",
        "add",
        "ro",
        "--server",
        &url,
        "--token",
        viewer.trim(),
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli().args(["get", "executions", "--context", "ro"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli().args(["run", "pass"]).env("ASSAY_CONTEXT", "ro"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("context `ro`") && err.contains("needs `runner`"),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("--role runner"),
        "{err}"
    );

    // A revoked or wrong token: 401, said as such.
    let (_, _, _) = run(cli().args(["context", "add", "bad", "--server", &url, "--token", "nope"]));
    let (code, _, err) = run(cli().args(["get", "executions", "--context", "bad"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refused the token"), "{err}");

    // Back to the embedded store, and removal.
    let (code, _, _) = run(cli().args(["context", "use", "embedded"]));
    assert_eq!(code, 0);
    let (code, _, err) = run(cli().args(["context", "remove", "ro"]));
    assert_eq!(code, 0, "{err}");
    let (_, list, _) = run(cli().args(["context", "list"]));
    assert!(!list.contains("ro ") && list.contains("local"), "{list}");
}

#[test]
fn an_unreachable_server_exits_3_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("contexts.yaml");
    let port = free_port(); // nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    let cli = || assay(&config, home.path());
    let (code, _, err) = run(cli().args([
        "context", "add", "gone", "--server", &url, "--token", "t", "--use",
    ]));
    assert_eq!(code, 0, "{err}");
    for args in [
        &["get", "executions"][..],
        &["run", "anything"],
        &["logs", "x-1", "--follow"],
        &["abort", "x-1"],
    ] {
        let (code, _, err) = run(cli().args(args));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.contains(&url) && err.contains("context `gone`") && err.contains("hint:"),
            "{args:?}: {err}"
        );
    }
    // An unknown context is a usage error.
    let (code, _, err) = run(cli().args(["get", "executions", "--context", "nope"]));
    assert_eq!(code, 2);
    assert!(err.contains("no context named `nope`"), "{err}");
    // Without a token and not on loopback, `context add` asks for one.
    let (code, _, err) =
        run(cli().args(["context", "add", "far", "--server", "http://10.1.2.3:8088"]));
    assert_eq!(code, 2);
    assert!(err.contains("--token"), "{err}");
    // A broken contexts file is named.
    std::fs::write(&config, "current: [").unwrap();
    let (code, _, err) = run(cli().args(["get", "executions"]));
    assert_eq!(code, 2);
    assert!(err.contains("contexts.yaml"), "{err}");
}

#[test]
fn following_resumes_after_the_server_restarts() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("contexts.yaml");
    let port = free_port();
    let mut server = serve(data.path(), port);
    let url = format!("http://127.0.0.1:{port}");
    let cli = || assay(&config, data.path());
    let files = home.path().join("flows.yaml");
    std::fs::write(&files, WORKFLOWS).unwrap();
    let (code, _, err) = run(cli().args(["context", "add", "local", "--server", &url, "--use"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli().args(["apply", "-f"]).arg(&files));
    assert_eq!(code, 0, "{err}");

    // `run --follow` and `logs --follow` watch a step that waits for a file.
    let gate = home.path().join("gate");
    let spawn = |args: &[&str]| {
        StdCommand::new(assert_cmd::cargo::cargo_bin("assay"))
            .args(args)
            .env("ASSAY_CONFIG", &config)
            .env("NO_COLOR", "1")
            .env_remove("ASSAY_CONTEXT")
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let gate_arg = format!("gate={}", gate.display());
    let mut runner = spawn(&["run", "gate", "--follow", "--config", &gate_arg]);
    let mut run_err = BufReader::new(runner.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("before-gate") {
        assert!(run_err.read_line(&mut seen).unwrap() > 0, "{seen}");
    }
    let mut follower = spawn(&["logs", "gate-1", "--follow"]);
    let mut logs_out = BufReader::new(follower.stdout.take().unwrap());
    let mut printed = String::new();
    assert!(logs_out.read_line(&mut printed).unwrap() > 0);
    assert_eq!(printed, "[wait] before-gate\n");

    // The server dies with the step running and comes back on the same port: the new one
    // finds the execution abandoned and ends it. Both followers reconnect with Last-Event-ID
    // and see the end, without the lines they had again.
    let _ = server.0.kill();
    let _ = server.0.wait();
    server = serve(data.path(), port);
    let mut rest = String::new();
    logs_out.read_to_string(&mut rest).unwrap();
    assert_eq!(follower.wait().unwrap().code(), Some(0));
    assert!(!rest.contains("before-gate"), "{rest}");
    run_err.read_to_string(&mut seen).unwrap();
    let code = runner.wait().unwrap().code();
    assert_eq!(seen.matches("wait | before-gate").count(), 1, "{seen}");
    assert!(seen.contains("gate-1 aborted"), "{seen}");
    assert_eq!(code, Some(1), "{seen}");
    // The step the killed server left behind ends too (and would when the folder goes).
    std::fs::write(&gate, "").unwrap();
    drop(server);
}
