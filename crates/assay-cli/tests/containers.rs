//! `assay run --runtime container` on a real engine (Podman's Docker Engine API, started by
//! scripts/test.sh and named by ASSAY_TEST_DOCKER_HOST) with images built without a registry
//! (scripts/container-images.sh). Without an engine these tests fail, unless
//! ASSAY_TEST_SKIP_CONTAINERS=1 says to skip them (which they then say loudly).

use crate::run_support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use run_support::*;
use serde_json::Value;

/// The engine's endpoint, or `None` when container tests are to be skipped.
fn engine() -> Option<String> {
    if let Ok(host) = std::env::var("ASSAY_TEST_DOCKER_HOST")
        && !host.is_empty()
    {
        return Some(host);
    }
    if std::env::var("ASSAY_TEST_SKIP_CONTAINERS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: no container engine (ASSAY_TEST_SKIP_CONTAINERS=1)");
        return None;
    }
    panic!(
        "container tests need a Docker Engine API: run scripts/test.sh (it starts Podman and sets ASSAY_TEST_DOCKER_HOST), or set ASSAY_TEST_SKIP_CONTAINERS=1 to skip them"
    );
}

/// `assay run tests/workflows/containers.yaml --name NAME --runtime container -q -o json`.
fn run(host: &str, name: &str) -> Run {
    Run::with_env(
        "containers.yaml",
        name,
        &["--runtime", "container"],
        &["-q", "-o", "json"],
        &[("DOCKER_HOST", host)],
    )
}

/// A GET on the engine's API (HTTP/1.0 over its unix socket): the JSON answer.
fn engine_get(host: &str, path: &str) -> Value {
    let socket = host.strip_prefix("unix://").expect("a unix:// engine");
    let mut s = UnixStream::connect(socket).expect("connect to the engine");
    write!(s, "GET {path} HTTP/1.0\r\nHost: engine\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Containers (all, running or not) and networks labelled with this execution id.
fn leftovers(host: &str, execution: &str) -> (Vec<Value>, Vec<Value>) {
    let filter = format!(r#"{{"label":["io.assay.execution={execution}"]}}"#);
    let filter: String = percent_encode(&filter);
    let containers = engine_get(host, &format!("/containers/json?all=true&filters={filter}"));
    let networks = engine_get(host, &format!("/networks?filters={filter}"));
    (
        containers.as_array().cloned().unwrap_or_default(),
        networks.as_array().cloned().unwrap_or_default(),
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_service_started_by_its_images_entrypoint_answers_at_its_address() {
    let Some(host) = engine() else { return };
    let run = run(&host, "entrypoint-service");
    run.expect(PASSED, &[("root", "passed"), ("call", "passed")]);
    assert!(run.log("call").contains("hello from assay-web"), "{run}");
    let (containers, networks) = leftovers(&host, run.id());
    assert!(
        containers.is_empty() && networks.is_empty(),
        "{containers:?} {networks:?}"
    );
}

#[test]
fn an_exec_readiness_probe_runs_in_the_services_container() {
    let Some(host) = engine() else { return };
    let run = run(&host, "exec-probe");
    run.expect(PASSED, &[("root", "passed"), ("after_ready", "passed")]);
}

#[test]
fn a_step_over_its_memory_limit_is_killed_with_137() {
    let Some(host) = engine() else { return };
    let run = run(&host, "memory-limit");
    assert_eq!(run.code, FAILED, "{run}");
    assert_eq!(run.step("too_big"), "failed", "{run}");
    assert_eq!(run.exit_code("too_big"), Some(137), "{run}");
    // The same limit with a small allocation (and a CPU limit) passes.
    assert_eq!(run.step("fits"), "passed", "{run}");
}

#[test]
fn run_as_user_and_group_apply_and_data_is_shared_between_steps() {
    let Some(host) = engine() else { return };
    let run = run(&host, "run-as-user");
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("as_1000", "passed"),
            ("as_root", "passed"),
        ],
    );
}

#[test]
fn pvcs_and_empty_dirs_are_volumes_of_the_execution() {
    let Some(host) = engine() else { return };
    let run = run(&host, "volumes");
    run.expect(
        FAILED,
        &[
            ("root", "failed"),
            ("write", "passed"),
            ("read", "passed"),
            ("read_only", "passed"),
            ("unknown", "failed"),
        ],
    );
    assert!(
        run.step_error("unknown")
            .contains("no such volume named `nope`"),
        "{run}"
    );
    // Removed with the execution.
    let filter = percent_encode(&format!(
        r#"{{"label":["io.assay.execution={}"]}}"#,
        run.id()
    ));
    let volumes = engine_get(&host, &format!("/volumes?filters={filter}"));
    assert_eq!(
        volumes["Volumes"].as_array().map_or(0, Vec::len),
        0,
        "{volumes}"
    );
}

#[test]
fn parallel_workers_run_as_containers_with_their_own_data() {
    let Some(host) = engine() else { return };
    let run = run(&host, "workers");
    assert_eq!(run.code, PASSED, "{run}");
    assert_eq!(run.step("gathered"), "passed", "{run}");
    let (containers, networks) = leftovers(&host, run.id());
    assert!(
        containers.is_empty() && networks.is_empty(),
        "{containers:?} {networks:?}"
    );
}

#[test]
fn a_step_without_an_image_runs_in_testkubes_default_busybox() {
    let Some(host) = engine() else { return };
    let run = run(&host, "default-image");
    run.expect(PASSED, &[("root", "passed"), ("no_image", "passed")]);
    assert!(run.log("no_image").contains("in busybox"), "{run}");
}

#[test]
fn no_engine_is_one_error_with_a_hint_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}/docker.sock", dir.path().display());
    let run = Run::with_env(
        "containers.yaml",
        "default-image",
        &["--runtime", "container"],
        &["-q", "-o", "json"],
        &[("DOCKER_HOST", &endpoint)],
    );
    assert_eq!(run.code, 3, "{run}");
    assert!(
        run.stderr
            .contains(&format!("no container engine answers at {endpoint}")),
        "{run}"
    );
    assert!(run.stderr.contains("hint: start Docker or Podman"), "{run}");
    // Nothing was recorded.
    assert!(
        !run.data.path().join("assay.db").exists() || run.stdout.is_empty(),
        "{run}"
    );
}

#[test]
fn an_image_that_is_not_here_with_pull_policy_never_is_exit_2() {
    let Some(host) = engine() else { return };
    let run = run(&host, "never-pulled");
    assert_eq!(run.code, INVALID, "{run}");
    assert!(
        run.stderr
            .contains("image localhost/assay-no-such-image:1 is not on this machine"),
        "{run}"
    );
    assert!(run.stderr.contains("hint:"), "{run}");
}

/// Starts `assay run … long-step` and waits until its step's container runs; returns the
/// child and the execution id.
// The caller waits for the child it is handed.
#[allow(clippy::zombie_processes)]
fn start_long_step(host: &str, data: &std::path::Path) -> (std::process::Child, String) {
    let mut child = assay()
        .arg("run")
        .arg(workflows_dir().join("containers.yaml"))
        .args([
            "--name",
            "long-step",
            "--runtime",
            "container",
            "--data-dir",
        ])
        .arg(data)
        .env("DOCKER_HOST", host)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start assay");
    let started = Instant::now();
    loop {
        let filter = percent_encode(r#"{"label":["io.assay.log=sleeps"]}"#);
        let running = engine_get(host, &format!("/containers/json?filters={filter}"));
        let ours = running.as_array().into_iter().flatten().find(|c| {
            c["Labels"]["io.assay.owner"]
                .as_str()
                .is_some_and(|o| o.split('/').nth(1) == Some(&child.id().to_string()))
        });
        if let Some(c) = ours {
            let id = c["Labels"]["io.assay.execution"]
                .as_str()
                .unwrap()
                .to_string();
            return (child, id);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the step never started");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn abort_mid_step_leaves_no_container_or_network() {
    let Some(host) = engine() else { return };
    let data = tempfile::tempdir().unwrap();
    let (mut child, execution) = start_long_step(&host, data.path());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(FAILED));
    let (containers, networks) = leftovers(&host, &execution);
    assert!(containers.is_empty(), "{containers:?}");
    assert!(networks.is_empty(), "{networks:?}");
}

#[test]
fn what_a_killed_run_left_is_removed_by_the_next_run() {
    let Some(host) = engine() else { return };
    let data = tempfile::tempdir().unwrap();
    let (mut child, execution) = start_long_step(&host, data.path());
    child.kill().unwrap(); // SIGKILL: nothing of assay's cleanup runs
    child.wait().unwrap();
    // Its container is left running (no assert: another container test's run may already
    // have swept it, which is the point).
    // Any next run on this machine sweeps what dead owners left.
    let next = run(&host, "default-image");
    assert_eq!(next.code, PASSED, "{next}");
    let (containers, networks) = leftovers(&host, &execution);
    assert!(containers.is_empty(), "{containers:?}");
    assert!(networks.is_empty(), "{networks:?}");
}

#[test]
fn plan_says_the_container_runtime_runs_it() {
    let out = assay()
        .arg("plan")
        .arg(workflows_dir().join("containers.yaml"))
        .args([
            "--name",
            "entrypoint-service",
            "--runtime",
            "container",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes: Vec<&str> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes[0].starts_with("runtime: container: every step"),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|n| n.contains("local runtime")),
        "{notes:?}"
    );
    // On the host runtime the plan keeps saying what the host cannot do.
    let out = assay()
        .arg("plan")
        .arg(workflows_dir().join("containers.yaml"))
        .args(["--name", "entrypoint-service", "-o", "json"])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan["notes"]
            .to_string()
            .contains("local runtime cannot start"),
        "{plan}"
    );
}

/// Testkube's own workflows from the shared corpus that need only a POSIX shell in the images
/// they name (`alpine:…`, or none: Testkube's busybox), which scripts/container-images.sh
/// tags from the tiny image: they pass under `--runtime container` as they do in Testkube.
#[test]
fn conformance_workflows_pass_in_containers() {
    let Some(host) = engine() else { return };
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/testkube/test");
    let cases = [
        (
            "env/dev/dev-postgres/workflows/dev-e2e-heartbeat-webhook.yaml",
            "dev-e2e-heartbeat-webhook",
        ),
        (
            "env/prod/workflows/prod-e2e-heartbeat-webhook.yaml",
            "prod-e2e-heartbeat-webhook",
        ),
        (
            "testkube/runner-targets/dev-runner-targets.yaml",
            "special-cases-runner-target--dev-runner-2-ind",
        ),
        (
            "env/dev/dev-postgres/workflows/git-triggers.yaml",
            "git-triggered-workflow-push-main-branch",
        ),
        (
            "env/dev/dev-postgres/workflows/git-triggers.yaml",
            "git-triggered-workflow-pr-content-trigger",
        ),
    ];
    for (file, name) in cases {
        let data = tempfile::tempdir().unwrap();
        let out = assay()
            .arg("run")
            .arg(corpus.join(file))
            .args([
                "--name",
                name,
                "--runtime",
                "container",
                "-q",
                "-o",
                "json",
                "--data-dir",
            ])
            .arg(data.path())
            .env("DOCKER_HOST", &host)
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(
            (out.status.code(), json["result"]["status"].as_str()),
            (Some(PASSED), Some("passed")),
            "{file} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The README's worked example (`### Running steps in containers`), as written.
#[test]
fn readme_example_runs_as_written() {
    let Some(host) = engine() else { return };
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let start = readme
        .find("```yaml\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: api-in-containers\n")
        .expect("the README has the container example");
    let body = &readme[start + "```yaml\n".len()..];
    let yaml = &body[..body.find("```").unwrap()];
    let commands = &body[body.find("```sh\n").unwrap() + "```sh\n".len()..];
    let commands = &commands[..commands.find("```").unwrap()];
    let run_line = commands
        .lines()
        .find(|l| l.starts_with("assay run "))
        .expect("the example runs assay");
    assert_eq!(
        run_line,
        "assay run api-in-containers.yaml --runtime container"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-in-containers.yaml"), yaml).unwrap();
    let out = assay()
        .current_dir(dir.path())
        .args(run_line.split_whitespace().skip(1))
        .args(["--data-dir", "data"])
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(PASSED), "{stderr}");
    assert!(stderr.contains("<h1>ok</h1>"), "{stderr}");
}

/// `assay server --runtime container`: the server's runs execute in containers.
#[test]
fn a_server_with_the_container_runtime_runs_its_executions_in_images() {
    let Some(host) = engine() else { return };
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = assay()
        .args(["server", "--no-auth", "--runtime", "container", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("ASSAY_DATA_DIR", data.path())
        .env("DOCKER_HOST", &host)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // /www/index.html exists in the test image only, not on this machine.
    let yaml = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: in-image\nspec:\n  steps:\n  - name: look\n    shell: test -f /www/index.html\n    container:\n      image: localhost/assay-tiny:1\n";
    let id = store_and_run(port, "", "in-image", yaml);
    let status = loop {
        let (_, body) = http(
            port,
            "GET",
            &format!("/v1/test-workflow-executions/{id}"),
            "",
            None,
        );
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let s = v["result"]["status"].as_str().unwrap_or("").to_string();
        if matches!(s.as_str(), "passed" | "failed" | "aborted")
            || started.elapsed() > Duration::from_secs(120)
        {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, "passed");
}

/// `valueFrom`, `envFrom` and `contentFrom` read named secrets in containers as on the host.
#[test]
fn named_secrets_reach_containers_masked() {
    let Some(host) = engine() else { return };
    let data = tempfile::tempdir().unwrap();
    let set = assay()
        .args([
            "secret",
            "set",
            "db",
            "user=app-user-7",
            "--from-stdin",
            "password",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"hunter2-VALUE-q9")?;
            c.wait()
        })
        .unwrap();
    assert!(set.success());
    let path = workflows_dir().join("named-secrets.yaml");
    let args: Vec<String> = [
        "run",
        &path.display().to_string(),
        "--name",
        "named-secrets",
        "--runtime",
        "container",
        "-q",
        "-o",
        "json",
        "--data-dir",
        &data.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = assay()
        .args(&args)
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        data,
        args,
    };
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("value_from", "passed"),
            ("env_from", "passed"),
            ("content_from", "passed"),
        ],
    );
    assert_eq!(run.log("value_from"), "password is *****\n");
    run.assert_never_stored("hunter2-VALUE-q9");
}

#[test]
fn execute_children_run_in_their_images_and_leave_nothing() {
    let Some(host) = engine() else { return };
    let run = Run::stored(
        "containers-execute.yaml",
        "container-parent",
        &["--runtime", "container"],
        &[("DOCKER_HOST", host.as_str())],
    );
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("children", "passed"),
            ("after", "passed"),
        ],
    );
    let children = run.executions_of("container-child");
    assert_eq!(children.len(), 2, "one execution per matrix copy\n{run}");
    let mut logs = Vec::new();
    for child in &children {
        assert_eq!(child["result"]["status"], "passed", "{child:#}");
        let id = child["id"].as_str().unwrap();
        let out = assay()
            .args(["logs", id, "--data-dir"])
            .arg(run.data.path())
            .output()
            .unwrap();
        logs.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let (containers, networks) = leftovers(&host, id);
        assert!(
            containers.is_empty() && networks.is_empty(),
            "{containers:?} {networks:?}"
        );
    }
    logs.sort();
    assert_eq!(
        logs,
        [
            "[in the image] child a in the image",
            "[in the image] child b in the image"
        ],
        "{run}"
    );
}
