//! `assay pod run` (the pod side of the Kubernetes runtime) for real on this machine: a work
//! file as the agent's Secret would hold it, a temporary folder as the pod's `/data`, and the
//! event stream on stdout decoded with `assay_kube::podlog`, checked for the host runtime's
//! semantics (conditions after a failure, retries, the working folder, artifacts with a JUnit
//! report, secrets masked, timeouts, abort on SIGTERM).
//!
//! Nothing is at `/data` on this machine (in a pod, the Job's volume is): the workflows here
//! use paths relative to the working folder, which is `/data`, mapped to the temporary one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use assay_api::agents::AgentEvent;
use assay_kube::podlog::{self, PodLine};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_support::assay;

/// The compiled plan of a workflow (`assay plan -o json`).
fn plan_of(dir: &Path, yaml: &str, secrets: &[(&str, &str)]) -> Value {
    let file = dir.join("wf.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = assay();
    cmd.args(["plan", file.to_str().unwrap(), "-o", "json"]);
    // Sensitive values are given to compile, and left out of the plan (the work file carries
    // them apart, as the server hands them to agents).
    for (k, v) in secrets {
        cmd.args(["--config", &format!("{k}={v}")]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A work file as the agent's Secret holds it (pod_manifests.rs makes its Jobs from it too).
pub(crate) fn write_work(dir: &Path, yaml: &str, secrets: &[(&str, &str)]) -> std::path::PathBuf {
    let plan = plan_of(dir, yaml, secrets);
    assert!(secrets.iter().all(|(_, v)| !plan.to_string().contains(v)));
    let work = json!({
        "id": "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "name": "wf-1",
        "workflow": "wf",
        "number": 1,
        "plan": plan,
        "secrets": secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "env": {"FROM_AGENT": "yes"},
    });
    let path = dir.join("work.json");
    std::fs::write(&path, serde_json::to_vec(&work).unwrap()).unwrap();
    path
}

fn pod_run_cmd(dir: &Path, work: &Path) -> Command {
    let mut cmd = assay();
    cmd.args(["pod", "run", "--work"])
        .arg(work)
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--outputs")
        .arg(dir.join("outputs"))
        .arg("--state")
        .arg(dir.join("state"));
    cmd
}

/// One `assay pod run`: its exit code, its stdout decoded line by line, and the folder that
/// held its work file, `data` and `outputs`.
pub(crate) struct PodRun {
    pub(crate) code: i32,
    pub(crate) lines: Vec<PodLine>,
    pub(crate) dir: TempDir,
}

impl PodRun {
    fn new(yaml: &str, secrets: &[(&str, &str)]) -> PodRun {
        PodRun::with(yaml, secrets, |_, _| {})
    }

    /// Like `new`, with `more` changing the command (given the run's folder) first.
    fn with(
        yaml: &str,
        secrets: &[(&str, &str)],
        more: impl FnOnce(&mut Command, &Path),
    ) -> PodRun {
        let dir = TempDir::new().unwrap();
        let work = write_work(dir.path(), yaml, secrets);
        let mut cmd = pod_run_cmd(dir.path(), &work);
        more(&mut cmd, dir.path());
        let out = cmd.output().unwrap();
        PodRun::from_output(out, dir)
    }

    /// Decodes what a `pod run` printed; every line of its stdout must be the protocol's.
    pub(crate) fn from_output(out: std::process::Output, dir: TempDir) -> PodRun {
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines = stdout
            .lines()
            .map(|l| {
                podlog::decode(l).unwrap().unwrap_or_else(|| {
                    panic!("stdout holds a line that is not the protocol's: {l}")
                })
            })
            .collect();
        PodRun {
            code: out.status.code().unwrap_or(-1),
            lines,
            dir,
        }
    }

    pub(crate) fn events(&self) -> Vec<&AgentEvent> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                PodLine::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Status and attempts of each finished step, by reference (skipped steps never start).
    pub(crate) fn steps(&self) -> BTreeMap<String, (String, u32)> {
        let mut out = BTreeMap::new();
        for e in self.events() {
            if let AgentEvent::StepFinished {
                reference,
                status,
                attempts,
                ..
            } = e
            {
                let status = serde_json::to_value(status).unwrap();
                out.insert(
                    reference.clone(),
                    (status.as_str().unwrap().to_string(), *attempts),
                );
            }
        }
        out
    }

    pub(crate) fn log(&self) -> String {
        self.events()
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Log { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn verdict(&self) -> (String, Option<String>) {
        match self.events().last() {
            Some(AgentEvent::ExecutionFinished { status, error, .. }) => (
                serde_json::to_value(status)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
                error.clone(),
            ),
            other => panic!("the stream does not end with ExecutionFinished: {other:?}"),
        }
    }
}

#[test]
fn pod_run_keeps_conditions_and_retries_and_works_in_the_data_folder() {
    let run = PodRun::new(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  steps:
    - name: Flaky
      retry: {count: 4}
      shell: |
        n=$(cat flaky 2>/dev/null || echo 0); n=$((n+1)); echo $n > flaky
        echo "attempt $n agent=$FROM_AGENT"
        [[ $n -ge 3 ]]
    - name: Breaks
      shell: exit 3
    - name: Skipped after failure
      shell: echo never
    - name: Always
      condition: always
      shell: echo "cleanup in $(pwd)"
"#,
        &[],
    );
    assert_eq!(run.code, 1, "a failed execution exits 1");
    let steps = run.steps();
    assert_eq!(steps["flaky"], ("passed".into(), 3));
    assert_eq!(steps["breaks"].0, "failed");
    assert_eq!(steps["skipped_after_failure"].0, "skipped");
    assert_eq!(steps["always"].0, "passed");
    let log = run.log();
    assert!(log.contains("attempt 3 agent=yes"), "{log}");
    assert!(!log.contains("never"));
    // The working folder is /data, which is the folder given.
    let data = run.dir.path().join("data");
    assert!(
        log.contains(&format!("cleanup in {}", data.display())),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("flaky")).unwrap().trim(),
        "3"
    );
    assert_eq!(run.verdict().0, "failed");
}

#[test]
fn pod_run_sends_artifacts_as_chunks_that_rebuild_the_files() {
    let run = PodRun::new(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  steps:
    - name: Unit tests
      shell: |
        mkdir -p reports
        cat > reports/results.xml <<'XML'
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites><testsuite name="calc" tests="1" failures="0">
        <testcase classname="calc" name="adds" time="0.1"/></testsuite></testsuites>
        XML
        head -c 200000 /dev/urandom > reports/big.bin
        : > reports/empty.txt
      artifacts:
        paths: ["reports/*"]
"#,
        &[],
    );
    assert_eq!(run.code, 0);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut ended = Vec::new();
    for line in &run.lines {
        if let PodLine::Chunk(c) = line {
            let file = files.entry(c.path.clone()).or_default();
            assert_eq!(c.offset, file.len() as u64, "chunks arrive in order");
            file.extend(c.bytes().unwrap());
            if c.last {
                ended.push(c.path.clone());
            }
        }
    }
    ended.sort();
    assert_eq!(
        ended,
        [
            "reports/big.bin",
            "reports/empty.txt",
            "reports/results.xml"
        ]
    );
    let data = run.dir.path().join("data/reports");
    for name in ["big.bin", "empty.txt", "results.xml"] {
        assert_eq!(
            files[&format!("reports/{name}")],
            std::fs::read(data.join(name)).unwrap(),
            "{name}"
        );
    }
    // The big file took several lines, each of bounded length.
    let chunks = run
        .lines
        .iter()
        .filter(|l| matches!(l, PodLine::Chunk(c) if c.path == "reports/big.bin"))
        .count();
    assert!(chunks >= 4, "{chunks}");
    // Every chunk comes before the execution's end.
    assert!(matches!(
        run.lines.last(),
        Some(PodLine::Event(AgentEvent::ExecutionFinished { .. }))
    ));
}

#[test]
fn pod_run_masks_secrets_and_times_steps_out() {
    let run = PodRun::new(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  config:
    token: {type: string, sensitive: true}
  steps:
    - name: Sensitive
      shell: |
        echo "token is {{ config.token }}"
        echo "env has $TOKEN"
      container:
        env:
          - name: TOKEN
            value: "{{ config.token }}"
    - name: Slow
      timeout: 1s
      shell: sleep 60
"#,
        &[("token", "s3cr3t-value-42")],
    );
    let log = run.log();
    assert!(log.contains("token is"), "{log}");
    assert!(!log.contains("s3cr3t-value-42"), "{log}");
    let steps = run.steps();
    assert_eq!(steps["sensitive"].0, "passed");
    assert_eq!(steps["slow"].0, "timeout");
    assert_eq!(run.code, 1);
    // Nothing the stream carries holds the secret (errors, warnings, outputs either).
    for line in &run.lines {
        assert!(!format!("{line:?}").contains("s3cr3t-value-42"));
    }
}

#[test]
fn pod_run_aborts_on_sigterm_and_still_reports_the_end() {
    let dir = TempDir::new().unwrap();
    let work = write_work(
        dir.path(),
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  steps:
    - name: Long
      shell: echo started; sleep 120
"#,
        &[],
    );
    let mut child = pod_run_cmd(dir.path(), &work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the step's first line, then stop the pod as the kubelet would.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.push_str(&String::from_utf8_lossy(&buf[..n]));
                    let _ = tx.send(all.clone());
                }
            }
        }
    });
    let mut seen = String::new();
    while !seen.contains("started") {
        seen = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the step starts");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    while let Ok(more) = rx.recv_timeout(Duration::from_secs(5)) {
        seen = more;
    }
    let last = seen.lines().last().unwrap();
    match podlog::decode(last).unwrap() {
        Some(PodLine::Event(AgentEvent::ExecutionFinished { status, .. })) => {
            assert_eq!(serde_json::to_value(status).unwrap(), "aborted")
        }
        other => panic!("last line: {other:?}"),
    }
    assert_eq!(status.code(), Some(1));
}

/// Services in pods of their own, asked for when their step starts: the main pod (the test
/// plays the agent) asks with one line per instance, serves the instance's plan — rendered in
/// the main pod, a run-time matrix included — to the token only, reaches the address given
/// (and probes it there), never starts the service's command itself, and says when it stopped
/// the service; a service whose pod never ran fails its step with the reason; a skipped step
/// asks for nothing.
#[test]
fn security_pod_run_asks_for_service_pods_when_their_step_starts_and_serves_their_plan_to_the_token()
 {
    // The service "in another pod": a real HTTP server on this machine.
    let site = TempDir::new().unwrap();
    std::fs::write(site.path().join("index.html"), "hello-from-the-other-pod").unwrap();
    let port = crate::run_support::free_port();
    let _server = crate::run_support::Running(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(site.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let yaml = format!(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {{name: wf}}
spec:
  steps:
    - name: Skipped
      condition: never
      services:
        idle:
          shell: sleep 600
      shell: echo skipped-ran
    - name: Fetch
      services:
        web:
          matrix:
            who: 'passed ? ["a", "b"] : []'
          env:
            - name: WHO
              value: 'served-by-{{{{ matrix.who }}}}'
          shell: touch /data/web-ran-in-the-main-pod; echo "{{{{ env.WHO }}}} {{{{ "{{{{" }}}}"
          readinessProbe:
            httpGet: {{path: /, port: {port}}}
            periodSeconds: 1
            failureThreshold: 30
      shell: python3 -c "import urllib.request; print(urllib.request.urlopen('http://{{{{ services.web.1.ip }}}}:{port}/').read().decode())"
    - name: Broken
      services:
        db:
          shell: "true"
      shell: echo never-run
"#
    );
    let dir = TempDir::new().unwrap();
    let work = write_work(dir.path(), &yaml, &[]);
    let token = SERVE_TOKEN;
    let (mut child, rx) = serving(dir.path(), &work);
    let http = crate::run_support::http;
    let mut lines = Vec::new();
    let mut requests = Vec::new();
    // Play the agent: three instances are asked for (web 0 and 1, then db), one at a time.
    while requests.len() < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the main pod asks for service pods: {lines:?}"));
        lines.push(line.clone());
        let Ok(Some(PodLine::Service(request))) = podlog::decode(&line) else {
            continue;
        };
        let at = |what: &str| format!("/v1/services/{}/{what}", request.key);
        // The plan is the token's only.
        assert_eq!(http(request.port, "GET", &at("pod"), "", None).0, 401);
        let almost = "a-token-the-agent-made-012345678";
        assert_eq!(http(request.port, "GET", &at("pod"), almost, None).0, 401);
        let (status, body) = http(request.port, "GET", &at("pod"), token, None);
        assert_eq!(status, 200, "{body}");
        let pod: Value = serde_json::from_str(&body).unwrap();
        let address = if request.name == "web" {
            // Rendered in the main pod (the matrix's value, the env), and written as
            // literals: the service pod's engine renders nothing again.
            let process = &pod["plan"]["root"]["commands"][0];
            let who = ["a", "b"][request.index as usize];
            let env = json!({"name": "WHO", "value": format!("served-by-{who}")});
            assert!(process["env"].as_array().unwrap().contains(&env), "{pod}");
            let shell = process["shell"].as_str().unwrap();
            assert!(shell.contains(&format!("served-by-{who}")), "{shell}");
            assert!(shell.contains(r#"{{"{{"}}"#), "{shell}");
            let log_ref = format!("fetch/service/web/{}", request.index);
            assert_eq!(request.log_ref, log_ref);
            json!({"ip": "127.0.0.1"})
        } else {
            json!({"error": "the pod did not start within 3s: ImagePullBackOff"})
        };
        let body = address.to_string();
        let post = |token: &str| {
            http(
                request.port,
                "POST",
                &at("address"),
                token,
                Some(("application/json", &body)),
            )
        };
        assert_eq!(post("nope").0, 401);
        assert_eq!(post(token).0, 204);
        // The first answer stands. Asked of web's instances only: once db's address is
        // given, the last step fails at once and the pod ends, closing its endpoint under a
        // second request (a connection reset, seen once in a full run).
        if request.name == "web" {
            let again = post(token).0;
            assert!(again == 409 || again == 404, "{again}");
        }
        requests.push(request);
    }
    let status = child.wait().unwrap();
    lines.extend(rx.iter());
    let run = PodRun::from_output(
        std::process::Output {
            status,
            stdout: (lines.join("\n") + "\n").into_bytes(),
            stderr: Vec::new(),
        },
        dir,
    );
    let names: Vec<(&str, u64)> = requests
        .iter()
        .map(|r| (r.name.as_str(), r.index))
        .collect();
    assert_eq!(names, [("web", 0), ("web", 1), ("db", 0)]);
    assert!(
        run.log().contains("hello-from-the-other-pod"),
        "{}",
        run.log()
    );
    assert!(!run.log().contains("never-run"), "{}", run.log());
    assert!(!run.log().contains("skipped-ran"), "{}", run.log());
    let steps = run.steps();
    assert_eq!(steps["fetch"].0, "passed", "{steps:?}");
    assert_eq!(steps["broken"].0, "failed", "{steps:?}");
    let error = run
        .events()
        .into_iter()
        .find_map(|e| match e {
            AgentEvent::StepFinished {
                reference, error, ..
            } if reference == "broken" => error.clone(),
            _ => None,
        })
        .unwrap_or_default();
    assert!(error.contains("service db"), "{error}");
    assert!(error.contains("ImagePullBackOff"), "{error}");
    for log_ref in [
        "fetch/service/web/0",
        "fetch/service/web/1",
        "broken/service/db/0",
    ] {
        assert!(
            run.lines
                .iter()
                .any(|l| *l == PodLine::ServiceDone(log_ref.into())),
            "the agent is told to delete the pod of {log_ref}"
        );
    }
    assert!(!run.dir.path().join("data/web-ran-in-the-main-pod").exists());
}

#[test]
fn pod_run_refuses_a_bad_work_file_with_a_hint() {
    let dir = TempDir::new().unwrap();
    let work = dir.path().join("work.json");
    std::fs::write(&work, "{not json").unwrap();
    let out = pod_run_cmd(dir.path(), &work).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("work.json"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout is the event stream only");
}

/// An image without bash (busybox, alpine): `shell` steps run with `/bin/sh`, as in Testkube.
/// Seen with the static binary in the busybox image: every shell step failed to start `bash`.
#[test]
fn pod_run_without_bash_on_the_path_runs_shell_steps_with_sh() {
    let dir = TempDir::new().unwrap();
    let work = write_work(
        dir.path(),
        r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: wf}
spec:
  steps:
  - name: write
    shell: echo from-sh > out.txt && cat out.txt
"#,
        &[],
    );
    // A PATH like busybox's: a shell and the usual tools, no bash.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["cat", "echo"] {
        let real = ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    let out = pod_run_cmd(dir.path(), &work)
        .env("PATH", &bin)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let text: String = stdout
        .lines()
        .filter_map(|l| match podlog::decode(l).unwrap() {
            Some(PodLine::Event(AgentEvent::Log { text, .. })) => Some(text),
            _ => None,
        })
        .collect();
    assert!(text.contains("from-sh"), "{text}");
}

#[test]
fn pod_install_copies_the_binary() {
    let dir = TempDir::new().unwrap();
    let dest = dir.path().join("bin/assay");
    let out = assay()
        .args(["pod", "install"])
        .arg(&dest)
        .output()
        .unwrap();
    assert!(out.status.success());
    let copied = Command::new(&dest).arg("--version").output().unwrap();
    assert!(copied.status.success());
    assert!(String::from_utf8_lossy(&copied.stdout).starts_with("assay"));
}

/// The main pod's endpoint for parallel workers in pods of their own (`--channel`), attacked
/// as anything in the cluster's network could: no token or a wrong one is 401; with the token,
/// a worker gets its `transfer`red files, its lines are written under its own refs, and of the
/// files it sends back only those under its `fetch` targets are written (`..` and other paths
/// are refused, and the worker fails saying so).
/// The bearer token the tests' main pods serve their endpoint with.
const SERVE_TOKEN: &str = "a-token-the-agent-made-0123456789";

/// `assay pod run` of `work` as a main pod serving its endpoint (channel file with
/// [`SERVE_TOKEN`]), and its stdout's lines as they come.
fn serving(dir: &Path, work: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let channel = dir.join("channel.json");
    std::fs::write(
        &channel,
        json!({"role": "serve", "token": SERVE_TOKEN}).to_string(),
    )
    .unwrap();
    let mut child = pod_run_cmd(dir, work)
        .arg("--channel")
        .arg(&channel)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

#[test]
fn security_the_worker_endpoint_asks_its_token_and_writes_only_under_fetch_targets() {
    use assay_kube::workers::{FileBundle, FileEntry, WorkerReport};
    let dir = TempDir::new().unwrap();
    let work = write_work(
        dir.path(),
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: wf}
spec:
  steps:
    - name: Seed
      shell: mkdir -p input && echo seed > input/s.txt
    - name: Workers
      parallel:
        count: 1
        transfer: [{from: /data/input}]
        fetch: [{from: /data/out}]
        shell: echo runs-in-its-own-pod
"#,
        &[],
    );
    let token = SERVE_TOKEN;
    let (mut child, rx) = serving(dir.path(), &work);
    let mut lines = Vec::new();
    let request = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the main pod asks for the worker's pod");
        if let Ok(Some(PodLine::Worker(r))) = podlog::decode(&line) {
            break r;
        }
        lines.push(line);
    };
    let port = request.port;
    let start = format!("/v1/workers/{}/start", request.key);
    let http = crate::run_support::http;
    assert_eq!(http(port, "GET", &start, "", None).0, 401);
    assert_eq!(
        http(
            port,
            "GET",
            &start,
            "a-token-the-agent-made-012345678",
            None
        )
        .0,
        401
    );
    assert_eq!(
        http(port, "GET", "/v1/workers/99/start", token, None).0,
        404
    );
    let (status, body) = http(port, "GET", &start, token, None);
    assert_eq!(status, 200, "{body}");
    let bundle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["files"][0]["path"], "/data/input/s.txt", "{bundle}");

    let path = |what: &str| format!("/v1/workers/{}/{what}", request.key);
    let log = podlog::encode_event(&AgentEvent::Log {
        reference: "inner".into(),
        at: 1,
        text: "from-the-worker".into(),
    });
    let posted = http(
        port,
        "POST",
        &path("lines"),
        token,
        Some(("text/plain", &log)),
    );
    assert_eq!(posted.0, 204, "{posted:?}");
    let files = FileBundle {
        files: vec![
            FileEntry::new("/data/out/ok.txt", b"ok"),
            FileEntry::new("/data/out/../escape.txt", b"x"),
            FileEntry::new("/data/elsewhere.txt", b"x"),
        ],
    };
    let files = serde_json::to_string(&files).unwrap();
    let posted = http(
        port,
        "POST",
        &path("fetch"),
        token,
        Some(("application/json", &files)),
    );
    assert_eq!(posted.0, 204, "{posted:?}");
    let report = serde_json::to_string(&WorkerReport {
        status: assay_api::status::ExecutionStatus::Passed,
        error: None,
    })
    .unwrap();
    let wrong = http(
        port,
        "POST",
        &path("report"),
        "nope",
        Some(("application/json", &report)),
    );
    assert_eq!(wrong.0, 401);
    let posted = http(
        port,
        "POST",
        &path("report"),
        token,
        Some(("application/json", &report)),
    );
    assert_eq!(posted.0, 204, "{posted:?}");

    let status = child.wait().unwrap();
    lines.extend(rx.iter());
    let all = lines.join("\n");
    assert_eq!(status.code(), Some(1), "{all}");
    let data = dir.path().join("data");
    assert_eq!(std::fs::read(data.join("out/ok.txt")).unwrap(), b"ok");
    assert!(!data.join("escape.txt").exists() && !data.join("elsewhere.txt").exists());
    assert!(
        all.contains("not under a target of its fetch rules"),
        "{all}"
    );
    assert!(
        all.contains(&format!("\"reference\":\"{}/0/inner\"", request.reference)),
        "{all}"
    );
    // The worker's pod is no longer needed: the agent is told.
    assert!(
        all.contains(&podlog::encode_worker_done(request.key)),
        "{all}"
    );
}
