//! `assay server` and `assay token` as a user runs them: the real binary on 127.0.0.1, the first
//! admin token, token commands, and a restart of the server (killed with SIGKILL) with one
//! execution running and one queued.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::run_support::{self, http};

fn assay(data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `assay server` and wait until /health answers; returns it and what it printed on
/// stderr up to "listening".
fn serve(data: &Path, port: u16) -> (Running, String) {
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("assay"))
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-concurrent",
            "1",
        ])
        .env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited: {printed}"
        );
        printed.push_str(&line);
        if line.contains("listening on") {
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(port, "GET", "/health", "", None).0, 200);
    (Running { child }, printed)
}

fn status(port: u16, token: &str, id: &str) -> String {
    let (code, body) = http(
        port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}"),
        token,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["result"]["status"].as_str().unwrap().to_string()
}

fn wait_for(port: u16, token: &str, id: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(port, token, id);
        if s == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "{id} is {s}, expected {wanted}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SLOW: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: slow\nspec:\n  steps:\n  - shell: echo started; sleep 2; echo done\n";

#[test]
fn no_auth_is_refused_off_loopback() {
    let data = tempfile::tempdir().unwrap();
    let out = assay(data.path())
        .args(["server", "--listen", "0.0.0.0:0", "--no-auth"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn tokens_and_restart_with_running_and_queued_executions() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, printed) = serve(data.path(), port);

    // The first start made an admin token, printed once and saved (0600) for the local CLI.
    let saved = data.path().join("admin.token");
    let admin = std::fs::read_to_string(&saved).unwrap().trim().to_string();
    assert!(printed.contains(&admin), "{printed}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Token commands against the same data dir.
    let out = assay(data.path())
        .args(["token", "create", "--role", "viewer", "--name", "ci"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let viewer = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let list = assay(data.path()).args(["token", "list"]).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("admin\tadmin") && list.contains("ci\tviewer"),
        "{list}"
    );
    assert!(!list.contains(&viewer));
    assert_eq!(
        http(port, "GET", "/v1/test-workflows", &viewer, None).0,
        200
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/v1/test-workflows",
            &viewer,
            Some(("text/yaml", SLOW))
        )
        .0,
        403
    );
    assert!(
        assay(data.path())
            .args(["token", "revoke", "ci"])
            .output()
            .unwrap()
            .status
            .success()
    );
    // Revoked by another process: the server trusts what it looked up for at most
    // TOKEN_CACHE_TTL (README, Security).
    std::thread::sleep(assay_store::TOKEN_CACHE_TTL + std::time::Duration::from_millis(50));
    assert_eq!(
        http(port, "GET", "/v1/test-workflows", &viewer, None).0,
        401
    );
    assert_eq!(
        assay(data.path())
            .args(["token", "revoke", "ci"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );

    // One running, one queued behind it (one slot); then the server dies.
    assert_eq!(
        http(
            port,
            "POST",
            "/v1/test-workflows",
            &admin,
            Some(("text/yaml", SLOW))
        )
        .0,
        201
    );
    let run = |port| {
        let (code, body) = http(
            port,
            "POST",
            "/v1/test-workflows/slow/executions",
            &admin,
            Some(("application/json", "{}")),
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = run(port);
    let second = run(port);
    wait_for(port, &admin, &first, "running");
    assert_eq!(status(port, &admin, &second), "queued");
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    // Restart: the running one gets a truthful end, the queued one runs.
    let port = free_port();
    let (_server, printed) = serve(data.path(), port);
    assert!(
        !printed.contains("created the first admin token"),
        "{printed}"
    );
    let (_, body) = http(
        port,
        "GET",
        &format!("/v1/test-workflow-executions/{first}"),
        &admin,
        None,
    );
    let first_view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(first_view["result"]["status"], "aborted", "{first_view}");
    let why = first_view["result"]["initialization"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(why.starts_with("aborted"), "{first_view}");
    wait_for(port, &admin, &second, "passed");
    let (_, logs) = http(
        port,
        "GET",
        &format!("/v1/test-workflow-executions/{second}/logs"),
        &admin,
        None,
    );
    assert!(logs.contains("started") && logs.contains("done"), "{logs}");
}

#[test]
fn sigterm_aborts_running_executions_and_keeps_queued_ones() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _) = serve(data.path(), port);
    let admin = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let long = SLOW.replace("slow", "long").replace("sleep 2", "sleep 60");
    assert_eq!(
        http(
            port,
            "POST",
            "/v1/test-workflows",
            &admin,
            Some(("text/yaml", &long))
        )
        .0,
        201
    );
    let run = || {
        let (code, body) = http(
            port,
            "POST",
            "/v1/test-workflows/long/executions",
            &admin,
            Some(("application/json", "{}")),
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let running = run();
    let queued = run();
    wait_for(port, &admin, &running, "running");

    let started = Instant::now();
    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(server);

    let port = free_port();
    let (_server, _) = serve(data.path(), port);
    // Aborted by the stopping server itself, not found dead by the next one.
    let (_, body) = http(
        port,
        "GET",
        &format!("/v1/test-workflow-executions/{running}"),
        &admin,
        None,
    );
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["result"]["status"], "aborted", "{view}");
    assert!(!body.contains("ended without finishing it"), "{view}");
    // The queued one was kept, and now runs.
    wait_for(port, &admin, &queued, "running");
    http(
        port,
        "POST",
        &format!("/v1/test-workflow-executions/{queued}/abort"),
        &admin,
        None,
    );
    wait_for(port, &admin, &queued, "aborted");
}

/// Issue 14 #16: the README promises a server log line for each execution it finds abandoned
/// (its server killed while it ran); the CLI used to recover them silently before the server
/// could log them.
#[test]
fn security_server_logs_each_recovered_abandoned_execution() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, _) = serve(data.path(), port);
    let admin = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let id = run_support::store_and_run(port, &admin, "slow", SLOW);
    wait_for(port, &admin, &id, "running");
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let port = free_port();
    let (_server, printed) = serve(data.path(), port);
    let line = printed
        .lines()
        .find(|l| l.contains("recovered an abandoned execution"))
        .unwrap_or_else(|| panic!("no recovery line in: {printed}"));
    assert!(line.contains("slow-1"), "{line}");
    assert_eq!(status(port, &admin, &id), "aborted");
}

/// Sensitive config values of a queued run live only in the memory of the server that queued
/// it: when that server stops before the run starts, the next one ends the run `failed` and
/// says why, and the value is in no file.
#[test]
fn a_queued_run_whose_sensitive_values_were_lost_in_a_restart_fails_with_the_reason() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    const SECRET: &str = "s3cr3t-LOST-51aa";
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _) = serve(data.path(), port);
    let admin = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let long = SLOW.replace("slow", "long").replace("sleep 2", "sleep 60");
    let secret = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: secret\nspec:\n  config:\n    token: {type: string, sensitive: true}\n  steps:\n  - shell: echo {{ config.token }}\n";
    for yaml in [long.as_str(), secret] {
        let (code, body) = http(
            port,
            "POST",
            "/v1/test-workflows",
            &admin,
            Some(("text/yaml", yaml)),
        );
        assert_eq!(code, 201, "{body}");
    }
    let run = |name: &str, body: &str| {
        let (code, body) = http(
            port,
            "POST",
            &format!("/v1/test-workflows/{name}/executions"),
            &admin,
            Some(("application/json", body)),
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let running = run("long", "{}");
    wait_for(port, &admin, &running, "running");
    // One slot, taken: this one waits with its value in the server's memory.
    let queued = run(
        "secret",
        &format!(r#"{{"config": {{"token": "{SECRET}"}}}}"#),
    );
    assert_eq!(status(port, &admin, &queued), "queued");

    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(server.child.wait().unwrap().success());
    drop(server);

    let port = free_port();
    let (_server, _) = serve(data.path(), port);
    let (_, body) = http(
        port,
        "GET",
        &format!("/v1/test-workflow-executions/{queued}"),
        &admin,
        None,
    );
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["result"]["status"], "failed", "{view}");
    let reason = view["result"]["initialization"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("held in memory only") && reason.contains("give them again"),
        "{view}"
    );
    let mut todo = vec![data.path().to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap();
            if path.extension().is_some_and(|e| e == "zst") {
                bytes = zstd::decode_all(&bytes[..]).unwrap();
            }
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "the value is stored in {}",
                path.display()
            );
        }
    }
}
