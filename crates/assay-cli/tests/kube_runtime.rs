//! The Kubernetes runtime of agents end to end, against a FAKE Kubernetes API server with a
//! FAKE kubelet (`crates/assay-kube/tests/fake_kubelet.py` over `fake_api.py`; no cluster can
//! be had here): a real `assay server`, a real `assay agent --runtime kubernetes --kubeconfig
//! <the fake's>`, and the fake kubelet running each Job's containers as processes on this
//! machine (the init container's `assay pod install`, then `assay pod run` with the Secret's
//! work file and a temporary `/data`), serving their output as the pod log.
//!
//! Checked: a run's logs, JUnit results and artifacts reach the server through the pod log;
//! an abort deletes the Job (and with it the pod, the Secret and the process); the start-up
//! sweep deletes what an earlier process of the same agent left, and nothing of another
//! agent's; an image the fake cannot pull fails the execution with the reason; a workflow
//! whose steps name several images is refused with the hint. Services run in pods of their own
//! (their own image and labels), the steps reach them at their pod's IP after the readiness
//! probe, their log comes back, their objects go when their step ends, a service whose pod
//! never starts fails its step, and an abort deletes every object of the execution. Parallel
//! workers run in pods of their own (their own image, `transfer` in and `fetch` back through
//! the main pod's endpoint, their logs and artifacts recorded under their refs), one failing
//! fails the parallel step, one whose image cannot be pulled fails with the reason, and an
//! abort deletes their objects too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_support::{assay, free_port, http, serve_with, store_and_run};

fn python() -> String {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!("ASSAY_TEST_PYTHON is not set: run scripts/test.sh (its venv has kmock)"),
    }
}

/// A child stopped (and reaped) when dropped: SIGTERM first, so that the fake kubelet stops
/// the pods' processes it started, then SIGKILL after three seconds.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The FAKE API server with its FAKE kubelet: its URL and the process.
fn start_fake(dir: &Path) -> (String, PathBuf, Killed) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assay-kube/tests/fake_kubelet.py");
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(python())
        .arg(script)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--namespace",
            "tests",
            "--assay-bin",
            env!("CARGO_BIN_EXE_assay"),
        ])
        // The pods' folders (each with a copy of the binary) go with the test's folder: the
        // fake is killed with SIGKILL and cannot remove its own.
        .arg("--root")
        .arg(dir.join("kubelet"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("FAKE_KUBE_API ")
        .unwrap_or_else(|| panic!("the fake API server did not start: {line}"))
        .to_string();
    (url, kubeconfig, Killed(child))
}

/// A request to the fake's control channel or API (`path` from the root).
fn fake(url: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let text = body.map(|b| b.to_string());
    let (status, body) = http(
        port,
        method,
        path,
        "",
        text.as_deref().map(|t| ("application/json", t)),
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Every object of `kind` the fake holds.
fn objects(url: &str, kind: &str) -> Vec<Value> {
    let (_, all) = fake(url, "GET", "/fake/objects", None);
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == kind)
        .cloned()
        .collect()
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    // A generous bound against hangs, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Server {
    port: u16,
    admin: String,
    _proc: crate::run_support::Running,
}

impl Server {
    fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path, &self.admin, None)
    }

    fn execution(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/test-workflow-executions/{id}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Aborts execution `id`, sees it end `aborted` and every Job, Pod and Secret of it leave
    /// the fake (`url`).
    fn abort_and_see_everything_go(&self, url: &str, id: &str) {
        let (status, body) = http(
            self.port,
            "POST",
            &format!("/v1/test-workflow-executions/{id}/abort"),
            &self.admin,
            Some(("application/json", "{}")),
        );
        assert!(status < 300, "{status} {body}");
        let aborted = self.wait_end(id);
        assert_eq!(aborted["result"]["status"], "aborted", "{aborted}");
        wait_for("every Job, Pod and Secret of the execution to go", || {
            let of_run = |kind: &str| {
                objects(url, kind)
                    .iter()
                    .any(|o| o["metadata"]["labels"]["assay.io/execution"] == id)
            };
            (!of_run("Job") && !of_run("Pod") && !of_run("Secret")).then_some(())
        });
    }

    /// The execution's logs as the server gives them (text).
    fn logs(&self, id: &str) -> String {
        self.get(&format!("/v1/test-workflow-executions/{id}/logs"))
            .1
    }

    /// Stores `spec` as workflow `name`, runs it and waits for its end: its id and the
    /// execution.
    fn run_to_end(&self, name: &str, spec: &str) -> (String, Value) {
        let id = store_and_run(self.port, &self.admin, name, &workflow(name, spec));
        let end = self.wait_end(&id);
        (id, end)
    }

    /// Asserts that execution `id` recorded the artifacts `names`.
    fn has_artifacts(&self, id: &str, names: &[&str]) {
        let (_, listed) = self.get(&format!("/v1/test-workflow-executions/{id}/artifacts"));
        for name in names {
            assert!(listed.contains(name), "{listed}");
        }
    }

    fn wait_end(&self, id: &str) -> Value {
        wait_for(&format!("{id} to end"), || {
            let e = self.execution(id);
            let s = e["result"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            matches!(s.as_str(), "passed" | "failed" | "aborted").then_some(e)
        })
    }
}

fn workflow(name: &str, spec: &str) -> String {
    format!(
        "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// A Job and its Secret as an earlier agent process would have left them (on the fake).
fn leave(url: &str, name: &str, agent: &str) {
    let labels = json!({
        "app.kubernetes.io/managed-by": "assay",
        "assay.io/agent": agent,
        "assay.io/execution": name,
    });
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "tests", "labels": labels},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "run", "image": "leftover/pull-error:1"}]}}}});
    let (status, body) = fake(url, "POST", "/fake/apply", Some(&job));
    assert_eq!(status, 200, "{body}");
    let uid = body["items"][0]["metadata"]["uid"].clone();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "tests", "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}]},
        "data": {"work.json": "e30="}});
    let (status, body) = fake(url, "POST", "/fake/apply", Some(&secret));
    assert_eq!(status, 200, "{body}");
}

/// A real server (agents only) and a real agent `k1` on the Kubernetes runtime of the fake
/// (pods stuck for 3 s fail); the agent's stderr goes to the returned file.
fn server_and_agent(dir: &Path, kubeconfig: &Path) -> (Server, Killed, PathBuf) {
    let data = dir.join("server");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let proc = serve_with(&data, port, &["--agents-only"]);
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let server = Server {
        port,
        admin,
        _proc: proc,
    };
    let out = assay()
        .args(["token", "create", "--name", "k1", "--role", "runner"])
        .env("ASSAY_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token_file = dir.join("runner.token");
    std::fs::write(&token_file, &out.stdout).unwrap();
    let agent_log = dir.join("agent.log");
    let agent = Killed(
        assay()
            .args(["agent", "--server", &format!("http://127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(&token_file)
            .args(["--name", "k1", "--runtime", "kubernetes", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--pod-start-timeout", "3", "--work-dir"])
            .arg(dir.join("agent-work"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .unwrap(),
    );
    (server, agent, agent_log)
}

/// Waits until no Job, Pod or Secret of execution `id` with role `role` is left on the fake.
fn objects_go(url: &str, id: &str, role: &str) {
    wait_for(&format!("the {role} objects of {id} to go"), || {
        ["Job", "Pod", "Secret"]
            .iter()
            .all(|kind| of_execution(url, kind, id, role).is_empty())
            .then_some(())
    });
}

/// The objects of `kind` of execution `id` with role `role` (`execution`, `service`).
fn of_execution(url: &str, kind: &str, id: &str, role: &str) -> Vec<Value> {
    objects(url, kind)
        .into_iter()
        .filter(|o| {
            let l = &o["metadata"]["labels"];
            l["assay.io/execution"] == id && l["assay.io/role"] == role
        })
        .collect()
}

#[test]
fn services_run_in_pods_of_their_own_with_their_own_image_on_a_fake_cluster() {
    let dir = TempDir::new().unwrap();
    let (url, kubeconfig, _fake) = start_fake(dir.path());
    let (server, _agent, agent_log) = server_and_agent(dir.path(), &kubeconfig);
    let agent_says = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    let go = dir.path().join("go");
    // Every pod of the fake is this machine (127.0.0.1): the service gets a free port.
    let web = free_port();
    let spec = format!(
        r#"  container:
    image: steps.example/tools:1
  services:
    web:
      image: python.example/python:3.12
      shell: mkdir -p site && echo hello-from-web > site/index.html && cd site && exec python3 -m http.server {web} --bind 127.0.0.1
      readinessProbe:
        httpGet: {{path: /, port: {web}}}
        periodSeconds: 1
  steps:
    - name: Fetch
      shell: |
        python3 -c "import urllib.request; print('got', urllib.request.urlopen('http://{{{{ services.web.0.ip }}}}:{web}/').read().decode())"
        until [ -e {go} ]; do sleep 0.1; done
    - name: Workers
      parallel:
        count: 2
        shell: mkdir -p out && echo "from worker {{{{ index }}}}" > out/w{{{{ index }}}}.txt
        artifacts:
          paths: ["out/*.txt"]
"#,
        go = go.display()
    );
    let id = store_and_run(
        server.port,
        &server.admin,
        "with-web",
        &workflow("with-web", &spec),
    );
    // While the step runs: the service is a Job of its own, with its own image and labels.
    let service = wait_for("the service's Job", || {
        of_execution(&url, "Job", &id, "service").into_iter().next()
    });
    let labels = &service["metadata"]["labels"];
    assert_eq!(labels["assay.io/service"], "web", "{service}");
    assert_eq!(labels["assay.io/index"], "0", "{service}");
    assert_eq!(labels["assay.io/agent"], "k1", "{service}");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "assay", "{service}");
    let container = &service["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "python.example/python:3.12");
    assert_eq!(of_execution(&url, "Secret", &id, "service").len(), 1);
    let main = wait_for("the execution's Job", || {
        of_execution(&url, "Job", &id, "execution")
            .into_iter()
            .next()
    });
    let main = &main["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(main["image"], "steps.example/tools:1");
    assert!(
        main["command"]
            .as_array()
            .unwrap()
            .contains(&json!("/.assay/work/channel.json")),
        "{main}"
    );
    std::fs::write(&go, "").unwrap();
    let done = server.wait_end(&id);
    assert_eq!(
        done["result"]["status"],
        "passed",
        "{done}\n{}",
        agent_says()
    );
    let logs = server.logs(&id);
    assert!(logs.contains("got hello-from-web"), "{logs}");
    // The service's own log (http.server's access lines) came from its pod.
    assert!(logs.contains("\"GET / HTTP"), "{logs}");
    // Parallel workers run in pods of their own: their artifacts come back through the main
    // pod's log.
    server.has_artifacts(&id, &["w0.txt", "w1.txt"]);
    objects_go(&url, &id, "service");

    // A service whose pod never starts fails its step with the reason.
    let (id, failed) = server.run_to_end(
        "with-broken",
        "  services:\n    db:\n      image: registry.example/pull-error:1\n      shell: never\n  steps:\n    - shell: echo never-run\n",
    );
    assert_eq!(failed["result"]["status"], "failed", "{failed}");
    let text = failed.to_string();
    assert!(text.contains("service db"), "{failed}");
    assert!(text.contains("ImagePullBackOff"), "{failed}");
    let logs = server.logs(&id);
    assert!(!logs.contains("never-run"), "{logs}");

    // An abort while a service runs deletes everything of the execution.
    let id = store_and_run(
        server.port,
        &server.admin,
        "with-long",
        &workflow(
            "with-long",
            &format!(
                "  services:\n    web:\n      shell: exec python3 -m http.server {web} --bind 127.0.0.1\n  steps:\n    - shell: echo started; sleep 600\n"
            ),
        ),
    );
    wait_for("the long step to start", || {
        let logs = server.logs(&id);
        logs.contains("started").then_some(())
    });
    assert_eq!(of_execution(&url, "Pod", &id, "service").len(), 1);
    server.abort_and_see_everything_go(&url, &id);
}

/// Services are made when their step starts, through the main pod: a matrix known only at run
/// time gives two pods, each ready when its `exec` probe (run by the FAKE kubelet as the
/// container's `readinessProbe`) passes; the step reads both; a skipped step's service gets no
/// pod at all.
#[test]
fn services_start_with_their_step_through_the_main_pod_on_a_fake_cluster() {
    let dir = TempDir::new().unwrap();
    let (url, kubeconfig, _fake) = start_fake(dir.path());
    let (server, _agent, agent_log) = server_and_agent(dir.path(), &kubeconfig);
    let agent_says = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    let (p1, p2) = (free_port(), free_port());
    let spec = format!(
        r#"  container:
    image: steps.example/tools:1
  steps:
    - name: Skipped
      condition: never
      services:
        idle:
          image: python.example/python:3.12
          shell: exec sleep 600
      shell: echo skipped-ran
    - name: Read
      services:
        web:
          image: python.example/python:3.12
          matrix:
            port: 'passed ? [{p1}, {p2}] : []'
          shell: mkdir -p site && echo "hello-from-{{{{ matrix.port }}}}" > site/index.html && cd site && exec python3 -m http.server {{{{ matrix.port }}}} --bind 127.0.0.1
          readinessProbe:
            exec:
              command: [python3, -c, "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{{{ matrix.port }}}}/')"]
            periodSeconds: 1
          timeout: 60s
      shell: |
        python3 -c "import urllib.request; print('got', urllib.request.urlopen('http://{{{{ services.web.0.ip }}}}:{p1}/').read().decode())"
        python3 -c "import urllib.request; print('got', urllib.request.urlopen('http://{{{{ services.web.1.ip }}}}:{p2}/').read().decode())"
"#
    );
    let (id, done) = server.run_to_end("matrix-web", &spec);
    assert_eq!(
        done["result"]["status"],
        "passed",
        "{done}\n{}",
        agent_says()
    );
    let logs = server.logs(&id);
    assert!(logs.contains(&format!("got hello-from-{p1}")), "{logs}");
    assert!(logs.contains(&format!("got hello-from-{p2}")), "{logs}");
    assert!(!logs.contains("skipped-ran"), "{logs}");
    // Two service pods were made, both with the exec probe as their readinessProbe; none for
    // the skipped step's service.
    let (_, created) = fake(&url, "GET", "/fake/created-jobs", None);
    let services: Vec<&Value> = created["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            let l = &j["metadata"]["labels"];
            l["assay.io/execution"] == id.as_str() && l["assay.io/role"] == "service"
        })
        .collect();
    let names: Vec<&Value> = services
        .iter()
        .map(|j| &j["metadata"]["labels"]["assay.io/service"])
        .collect();
    assert_eq!(names, [&json!("web"), &json!("web")], "{created}");
    for job in &services {
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "python.example/python:3.12");
        assert_eq!(
            container["readinessProbe"]["exec"]["command"][0], "python3",
            "{container}"
        );
    }
    objects_go(&url, &id, "service");
}

#[test]
fn an_agent_runs_executions_as_jobs_on_a_fake_cluster() {
    let dir = TempDir::new().unwrap();
    let (url, kubeconfig, _fake) = start_fake(dir.path());

    // What an earlier process of agent k1 left, and what agent k2 has.
    leave(&url, "assay-exec-left1", "k1");
    leave(&url, "assay-exec-other", "k2");

    let (server, _agent, agent_log) = server_and_agent(dir.path(), &kubeconfig);
    let port = server.port;
    // The sweep: k1's leftovers go (the Secret with its Job), k2's stay.
    wait_for("the sweep", || {
        let gone = |kind: &str| {
            !objects(&url, kind)
                .iter()
                .any(|o| o["metadata"]["name"] == "assay-exec-left1")
        };
        (gone("Job") && gone("Secret")).then_some(())
    });
    let secrets = objects(&url, "Secret");
    assert!(
        objects(&url, "Job")
            .iter()
            .any(|j| j["metadata"]["name"] == "assay-exec-other")
    );
    assert!(
        secrets
            .iter()
            .any(|s| s["metadata"]["name"] == "assay-exec-other")
    );

    // A run: logs, JUnit results and artifacts come back through the pod log.
    let id = store_and_run(
        port,
        &server.admin,
        "pod-report",
        &workflow(
            "pod-report",
            r#"  config:
    token: {type: string, sensitive: true, default: s3cr3t-value}
  steps:
    - name: Tests
      shell: |
        echo "hello from the pod, token is {{ config.token }}"
        mkdir -p out
        cat > out/junit.xml <<'XML'
        <testsuites><testsuite name="s" tests="2" failures="1">
        <testcase classname="s" name="ok"/>
        <testcase classname="s" name="bad"><failure message="no">no</failure></testcase>
        </testsuite></testsuites>
        XML
      artifacts:
        paths: ["out/junit.xml"]
"#,
        ),
    );
    let done = server.wait_end(&id);
    let agent_says = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert_eq!(
        done["result"]["status"],
        "passed",
        "{done}\n{}",
        agent_says()
    );
    let logs = server.logs(&id);
    assert!(logs.contains("hello from the pod"), "{logs}");
    assert!(!logs.contains("s3cr3t-value"), "{logs}");
    let (_, artifact) = server.get(&format!(
        "/v1/test-workflow-executions/{id}/artifacts/out/junit.xml"
    ));
    assert!(
        artifact.contains("<testcase classname=\"s\" name=\"bad\">"),
        "{artifact}"
    );
    let summary = &done["reports"][0]["data"]["summary"];
    assert_eq!(summary["tests"], 2, "{done}");
    assert_eq!(summary["failed"], 1, "{done}");
    // The Job had the execution's labels; its Secret was owned by it.
    let job = objects(&url, "Job")
        .into_iter()
        .find(|j| j["metadata"]["labels"]["assay.io/execution"] == id.as_str())
        .expect("the execution's Job is kept until its time to live");
    assert_eq!(job["metadata"]["labels"]["assay.io/agent"], "k1");

    // An abort deletes the Job; the pod, the Secret and the process go with it.
    let id = store_and_run(
        port,
        &server.admin,
        "pod-long",
        &workflow(
            "pod-long",
            "  steps:\n    - name: Long\n      shell: echo started; sleep 600\n",
        ),
    );
    wait_for("the long step to start", || {
        let logs = server.logs(&id);
        logs.contains("started").then_some(())
    });
    let job_name = objects(&url, "Job")
        .into_iter()
        .find(|j| j["metadata"]["labels"]["assay.io/execution"] == id.as_str())
        .expect("the execution's Job")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!crate::run_support::with_marker(&job_name).is_empty());
    server.abort_and_see_everything_go(&url, &id);
    wait_for("the pod's process to end", || {
        crate::run_support::with_marker(&job_name)
            .is_empty()
            .then_some(())
    });

    // A pod that does not start fails the execution with the reason, as the execution's
    // error (Testkube's `initialization.errorMessage`): an image that cannot be pulled, and a
    // Job whose pod is never made (refused by a quota) instead of waiting for ever.
    for (name, image, reason) in [
        ("pod-pull", "pull-error", "ImagePullBackOff"),
        ("pod-quota", "quota-refused", "no pod was created for it"),
    ] {
        let id = store_and_run(
            port,
            &server.admin,
            name,
            &workflow(
                name,
                &format!(
                    "  container:\n    image: registry.example/{image}:1\n  steps:\n    - shell: echo never\n"
                ),
            ),
        );
        let failed = server.wait_end(&id);
        assert_eq!(failed["result"]["status"], "failed", "{failed}");
        let error = failed["result"]["initialization"]["errorMessage"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains(reason), "{failed}");
        assert!(error.contains("did not start within 3s"), "{failed}");
    }

    // The log stream breaks after 3 lines (the fake's annotation): the agent opens it again
    // and skips what it read, so the run passes with every line once.
    let id = store_and_run(
        port,
        &server.admin,
        "pod-cut",
        &workflow(
            "pod-cut",
            "  pod:\n    annotations: {fake.assay.io/cut-log-after: \"3\"}\n  steps:\n    - shell: for i in 1 2 3 4 5 6; do echo line-$i; done; sleep 1; echo line-7\n    - shell: echo after-the-cut\n",
        ),
    );
    let resumed = server.wait_end(&id);
    assert_eq!(resumed["result"]["status"], "passed", "{resumed}");
    let logs = server.logs(&id);
    for i in 1..=7 {
        assert_eq!(
            logs.matches(&format!("line-{i}\n")).count(),
            1,
            "line-{i}: {logs}"
        );
    }
    assert_eq!(logs.matches("after-the-cut").count(), 1, "{logs}");

    // Several images: refused before anything is created.
    let jobs_before = objects(&url, "Job").len();
    let id = store_and_run(
        port,
        &server.admin,
        "pod-images",
        &workflow(
            "pod-images",
            "  steps:\n    - container: {image: golang:1.23}\n      shell: go version\n    - container: {image: node:22}\n      shell: node -v\n",
        ),
    );
    let refused = server.wait_end(&id);
    assert_eq!(refused["result"]["status"], "failed", "{refused}");
    assert!(
        refused["result"]["initialization"]["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("several images (golang:1.23, node:22)"),
        "{refused}"
    );
    assert_eq!(objects(&url, "Job").len(), jobs_before);

    // The agent said what it swept.
    assert!(agent_says().contains("swept 1 Job(s)"), "{}", agent_says());
}

/// README.md's "Kubernetes runtime" session as written (`127.0.0.1:8088` becomes a free port),
/// in a temporary folder whose `./kubeconfig` is the FAKE API server's, under `sh`.
#[test]
fn readme_kubernetes_runtime_session_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let block = crate::run_support::readme_block("kube-agent-session");
    let dir = TempDir::new().unwrap();
    let (url, _kubeconfig, _fake) = start_fake(dir.path());
    std::os::unix::fs::symlink(root.join("examples"), dir.path().join("examples")).unwrap();
    let port = free_port().to_string();
    let config = dir.path().join("contexts.yaml");
    let sh = crate::run_support::readme_sh(dir.path(), &port, &config);
    let mut background = Vec::new();
    let mut ran = Vec::new();
    for command in &block {
        let command = command.as_str();
        if command.starts_with("assay server") || command.starts_with("assay agent") {
            let log = dir.path().join(format!("{}.log", background.len()));
            let child = sh(command)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let wanted = if command.starts_with("assay server") {
                "listening on"
            } else {
                "connecting to"
            };
            wait_for(wanted, || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains(wanted)
                    .then_some(())
            });
            background.push(Killed(child));
            continue;
        }
        let out = sh(command).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "`{command}` failed:\n{stdout}{stderr}"
        );
        ran.push((command.to_string(), stdout, stderr));
    }
    let (_, out, err) = ran
        .iter()
        .find(|(c, _, _)| c.starts_with("assay run in-a-pod"))
        .expect("the session runs the workflow");
    assert!(format!("{out}{err}").contains("passed"), "{out}{err}");
    // (`passed` says the `test` step read the files the workers sent back: `cat` of a missing
    // one fails it.)
    // It ran as a Job of the FAKE cluster, with the workflow's pod labels; its service's Job
    // went when the execution ended (the `health` step passing is the service answering).
    // Its workers' Jobs went when they ended.
    let jobs = objects(&url, "Job");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job["metadata"]["labels"]["assay.io/agent"], "cluster-1");
    assert_eq!(job["metadata"]["labels"]["assay.io/role"], "execution");
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["team"], "qa");
    drop(background);
}

#[test]
fn parallel_workers_run_in_pods_of_their_own_on_a_fake_cluster() {
    let dir = TempDir::new().unwrap();
    let (url, kubeconfig, _fake) = start_fake(dir.path());
    let (server, _agent, agent_log) = server_and_agent(dir.path(), &kubeconfig);
    let agent_says = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    let go = dir.path().join("go");
    // Two workers in another image than the main pod's: each gets the main pod's seed file
    // (`transfer`), writes a file that `fetch` brings back for the `Read` step, and an
    // artifact. They wait for `go` (a file of this machine: the FAKE kubelet runs every pod
    // here), so their Jobs can be looked at while they run.
    let spec = format!(
        r#"  container:
    image: steps.example/tools:1
  steps:
    - name: Prepare
      shell: mkdir -p input && echo from-main > input/seed.txt
    - name: Workers
      parallel:
        count: 2
        container:
          image: workers.example/tools:2
        transfer:
          - from: /data/input
        fetch:
          - from: /data/out
        shell: |
          until [ -e {go} ]; do sleep 0.1; done
          mkdir -p out
          echo "worker {{{{ index }}}} saw $(cat input/seed.txt)" | tee out/w{{{{ index }}}}.txt
        artifacts:
          paths: ["out/*.txt"]
    - name: Read
      shell: cat out/w0.txt out/w1.txt
"#,
        go = go.display()
    );
    let id = store_and_run(
        server.port,
        &server.admin,
        "with-workers",
        &workflow("with-workers", &spec),
    );
    let workers = wait_for("the workers' Jobs", || {
        let jobs = of_execution(&url, "Job", &id, "worker");
        (jobs.len() == 2).then_some(jobs)
    });
    let mut indexes = Vec::new();
    for job in &workers {
        let labels = &job["metadata"]["labels"];
        assert_eq!(labels["assay.io/agent"], "k1", "{job}");
        assert!(labels["assay.io/worker"].is_string(), "{job}");
        indexes.push(labels["assay.io/index"].as_str().unwrap().to_string());
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "workers.example/tools:2", "{job}");
        let command = container["command"].as_array().unwrap();
        assert!(
            command.contains(&json!("/.assay/work/channel.json")),
            "{job}"
        );
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1"]);
    assert_eq!(of_execution(&url, "Secret", &id, "worker").len(), 2);
    let main = of_execution(&url, "Job", &id, "execution");
    let main = &main[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(main["image"], "steps.example/tools:1", "{main}");
    std::fs::write(&go, "").unwrap();
    let done = server.wait_end(&id);
    assert_eq!(
        done["result"]["status"],
        "passed",
        "{done}\n{}",
        agent_says()
    );
    let logs = server.logs(&id);
    for index in [0, 1] {
        // Once from the worker (its own log), once from the main pod's `Read` step.
        let line = format!("worker {index} saw from-main");
        assert_eq!(logs.matches(&line).count(), 2, "{logs}");
    }
    server.has_artifacts(&id, &["w0.txt", "w1.txt"]);
    objects_go(&url, &id, "worker");

    // One worker failing fails the parallel step (and the execution).
    let (id, failed) = server.run_to_end(
        "one-fails",
        "  steps:\n    - name: Workers\n      parallel:\n        count: 2\n        shell: echo worker-{{ index }}; exit {{ index }}\n    - shell: echo after-workers\n",
    );
    assert_eq!(failed["result"]["status"], "failed", "{failed}");
    assert!(
        failed.to_string().contains("1 of 2 workers did not pass"),
        "{failed}"
    );
    let logs = server.logs(&id);
    assert!(
        logs.contains("worker-0") && logs.contains("worker-1"),
        "{logs}"
    );
    assert!(!logs.contains("after-workers"), "{logs}");

    // A worker whose image cannot be pulled fails with the reason, instead of hanging.
    let (id, failed) = server.run_to_end(
        "worker-pull",
        "  steps:\n    - parallel:\n        count: 1\n        container:\n          image: registry.example/pull-error:1\n        shell: echo never-run\n",
    );
    assert_eq!(failed["result"]["status"], "failed", "{failed}");
    assert!(failed.to_string().contains("ImagePullBackOff"), "{failed}");
    assert!(!server.logs(&id).contains("never-run"));

    // An abort while workers run deletes every object of the execution, workers' included.
    let id = store_and_run(
        server.port,
        &server.admin,
        "long-workers",
        &workflow(
            "long-workers",
            "  steps:\n    - parallel:\n        count: 2\n        shell: echo started-{{ index }}; sleep 600\n",
        ),
    );
    wait_for("the workers to start", || {
        let logs = server.logs(&id);
        (logs.contains("started-0") && logs.contains("started-1")).then_some(())
    });
    assert_eq!(of_execution(&url, "Pod", &id, "worker").len(), 2);
    server.abort_and_see_everything_go(&url, &id);
}

/// `parallelism` and `failFast` for workers in pods of their own: with `parallelism: 1` no two
/// worker Jobs of the step exist at once (the FAKE API server's record of every creation and
/// deletion, in order), and with `failFast` the first failing worker ends the others (their
/// Jobs deleted) instead of the step waiting for their `sleep 600`.
#[test]
fn parallel_workers_in_pods_keep_parallelism_and_fail_fast_on_a_fake_cluster() {
    let dir = TempDir::new().unwrap();
    let (url, kubeconfig, _fake) = start_fake(dir.path());
    let (server, _agent, agent_log) = server_and_agent(dir.path(), &kubeconfig);
    let agent_says = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    let spec = r#"  steps:
    - name: Bounded
      parallel:
        count: 3
        parallelism: 1
        shell: echo "bounded worker {{ index }}"
    - name: Fail fast
      parallel:
        count: 3
        failFast: true
        shell: |
          if [ "{{ index }}" = 0 ]; then echo "first fails"; exit 1; fi
          echo "worker {{ index }} waits"; sleep 600
"#;
    let (id, done) = server.run_to_end("bounded-and-fast", spec);
    assert_eq!(
        done["result"]["status"],
        "failed",
        "{done}\n{}",
        agent_says()
    );
    let logs = server.logs(&id);
    for i in 0..3 {
        assert!(logs.contains(&format!("bounded worker {i}")), "{logs}");
    }
    assert!(logs.contains("first fails"), "{logs}");
    objects_go(&url, &id, "worker");

    // The worker Jobs' creations and deletions, in order, by parallel step (the first step's
    // workers all come before the second's).
    let (_, events) = fake(&url, "GET", "/fake/job-events", None);
    let mut steps: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for e in events["items"].as_array().unwrap() {
        let l = &e["labels"];
        if l["assay.io/execution"] != id.as_str() || l["assay.io/role"] != "worker" {
            continue;
        }
        let step = l["assay.io/worker"].as_str().unwrap().to_string();
        let event = (
            e["type"].as_str().unwrap().to_string(),
            e["name"].as_str().unwrap().to_string(),
        );
        match steps.iter_mut().find(|(s, _)| *s == step) {
            Some((_, list)) => list.push(event),
            None => steps.push((step, vec![event])),
        }
    }
    assert_eq!(steps.len(), 2, "{events}");
    let most_at_once = |list: &[(String, String)]| {
        let (mut now, mut most) = (0i32, 0i32);
        for (kind, _) in list {
            now += if kind == "ADDED" { 1 } else { -1 };
            most = most.max(now);
        }
        most
    };
    let bounded = &steps[0].1;
    let made = bounded.iter().filter(|(k, _)| k == "ADDED").count();
    assert_eq!(made, 3, "{bounded:?}");
    assert_eq!(most_at_once(bounded), 1, "{bounded:?}");
    // Fail fast: the run ended at all, within `wait_end`'s two minutes, while two workers
    // sleep for ten: the first failure ended them. That is what shows failFast; the Jobs'
    // deletions below would also happen at the execution's end (as `objects_go` checks above),
    // so they only show that all three worker Jobs were made and none is left.
    let fast = &steps[1].1;
    let made: Vec<&String> = fast
        .iter()
        .filter(|(k, _)| k == "ADDED")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(made.len(), 3, "{fast:?}");
    for name in made {
        assert!(
            fast.iter().any(|(k, n)| k == "DELETED" && n == name),
            "{fast:?}"
        );
    }
}
