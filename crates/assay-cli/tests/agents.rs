//! Runner agents for real (issue 17): `assay server` and three `assay agent` processes on this
//! machine over HTTP on 127.0.0.1. Targets choose the agent by label; an agent killed with
//! SIGKILL mid-run leaves its execution `aborted` (with the reason) once its lease expires, and
//! the execution queued behind it goes to another agent; nothing stays `running`. The README's
//! "Agents" session runs as written (port and folder replaced), and the protocol refuses
//! writes from anyone but the agent session that holds an execution. Quarantines set through a
//! server context hold for runs an agent takes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::run_support::{assay, http, http_with};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped, its stderr collected.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Proc { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` every 100 ms until it gives a value; fails after `limit` (a generous bound
/// against hangs, not a timing assertion).
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Server {
    _proc: Proc,
    port: u16,
    admin: String,
    data: PathBuf,
}

fn start_server(data: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let mut cmd = assay();
    cmd.args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("ASSAY_DATA_DIR", data);
    let proc = Proc::spawn(cmd);
    wait_for("the server", Duration::from_secs(60), || {
        proc.stderr().contains("listening on").then_some(())
    });
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    Server {
        _proc: proc,
        port,
        admin,
        data: data.to_path_buf(),
    }
}

impl Server {
    fn token(&self, name: &str, role: &str) -> String {
        let out = assay()
            .args(["token", "create", "--name", name, "--role", role])
            .env("ASSAY_DATA_DIR", &self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn apply(&self, yaml: &str) {
        let (status, body) = http(
            self.port,
            "POST",
            "/v1/test-workflows",
            &self.admin,
            Some(("application/yaml", yaml)),
        );
        assert!(status == 200 || status == 201, "{status} {body}");
    }

    fn run(&self, workflow: &str, request: Value) -> Value {
        let (status, body) = http(
            self.port,
            "POST",
            &format!("/v1/test-workflows/{workflow}/executions"),
            &self.admin,
            Some(("application/json", &request.to_string())),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn execution(&self, id: &str) -> Value {
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/v1/test-workflow-executions/{id}"),
            &self.admin,
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn status(&self, id: &str) -> String {
        self.execution(id)["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_status(&self, id: &str, wanted: &str) -> Value {
        wait_for(
            &format!("{id} to be {wanted}"),
            Duration::from_secs(120),
            || {
                let e = self.execution(id);
                if e["result"]["status"] == "passed"
                    || e["result"]["status"] == "failed"
                    || e["result"]["status"] == "aborted"
                {
                    assert_eq!(e["result"]["status"], wanted, "{e}");
                }
                (e["result"]["status"] == wanted).then_some(e)
            },
        )
    }

    fn agents(&self) -> Vec<Value> {
        let (status, body) = http(self.port, "GET", "/v1/agents", &self.admin, None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn agent(&self, token_file: &Path, name: &str, labels: &[&str]) -> Proc {
        let mut cmd = assay();
        cmd.args([
            "agent",
            "--server",
            &format!("http://127.0.0.1:{}", self.port),
            "--token-file",
            token_file.to_str().unwrap(),
            "--name",
            name,
        ]);
        for l in labels {
            cmd.args(["--label", l]);
        }
        Proc::spawn(cmd)
    }
}

const HOLD: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: hold
spec:
  config:
    seconds: {type: string, default: "0"}
  execution:
    target:
      match:
        env: [staging]
  steps:
  - name: hold
    shell: echo "holding {{ config.seconds }}s"; sleep {{ config.seconds }}; echo released
"#;

const REPORT: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: report
spec:
  config:
    token: {type: string, sensitive: true}
  steps:
  - name: report
    shell: |
      echo "token is {{ config.token }}"
      mkdir -p /data/out
      printf '<testsuite name="s" tests="2"><testcase classname="c" name="ok"/><testcase classname="c" name="bad"><failure message="boom"/></testcase></testsuite>\n' > /data/out/junit.xml
    artifacts:
      paths: ["/data/out/*"]
"#;

fn claimed_by(agents: &[(&str, &Proc)], execution: &str) -> Option<String> {
    let needle = format!("claimed execution={execution}\n");
    agents
        .iter()
        .find(|(_, p)| p.stderr().contains(&needle))
        .map(|(name, _)| name.to_string())
}

#[test]
fn three_agents_take_targeted_runs_and_a_killed_agent_aborts_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = start_server(&data, &["--lease-timeout", "3s"]);
    let token_file = dir.path().join("runner.token");
    std::fs::write(&token_file, server.token("agents", "runner")).unwrap();
    server.apply(HOLD);
    server.apply(REPORT);

    let a1 = server.agent(&token_file, "a1", &["env=staging"]);
    let a2 = server.agent(&token_file, "a2", &["env=staging"]);
    let a3 = server.agent(&token_file, "a3", &["env=prod", "zone=b"]);
    wait_for("three agents", Duration::from_secs(60), || {
        let agents = server.agents();
        (agents.len() == 3 && agents.iter().all(|a| a["connected"] == true)).then_some(())
    });
    let agents = server.agents();
    assert_eq!(agents[2]["name"], "a3");
    assert_eq!(agents[2]["labels"], json!({"env": "prod", "zone": "b"}));
    assert_eq!(agents[2]["runtime"], "host");
    // The dashboard lists them; a viewer may look.
    let viewer = server.token("watcher", "viewer");
    let (status, page) = http(server.port, "GET", "/agents", &viewer, None);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("3 of 3 connected"), "{page}");
    for name in ["a1", "a2", "a3"] {
        assert!(page.contains(&format!(r#"data-agent="{name}""#)), "{page}");
    }
    assert!(
        page.contains(r#"<span class="label">zone=b</span>"#),
        "{page}"
    );

    // A run request's target: only a3 matches (a label and `not` of a name).
    let report = server.run(
        "report",
        json!({"config": {"token": "s3cr3t-value"}, "target": {"match": {"zone": ["b"]}, "not": {"name": ["a1"]}}}),
    );
    let id = report["id"].as_str().unwrap();
    // A failing test case is a result, not a failed step: the run passes, its report counts it.
    let done = server.wait_status(id, "passed");
    let all = [("a1", &a1), ("a2", &a2), ("a3", &a3)];
    assert_eq!(claimed_by(&all, "report-1").as_deref(), Some("a3"));
    // Logs, the artifact and the JUnit cases came back; the secret did not.
    let (_, logs) = http(
        server.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}/logs"),
        &server.admin,
        None,
    );
    assert!(logs.contains("token is *****"), "{logs}");
    assert!(!logs.contains("s3cr3t-value"), "{logs}");
    let (_, artifacts) = http(
        server.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}/artifacts"),
        &server.admin,
        None,
    );
    assert!(artifacts.contains("out/junit.xml"), "{artifacts}");
    let summary = done["reports"][0]["data"]["summary"].clone();
    assert_eq!(summary["tests"], 2, "{done}");
    assert_eq!(summary["failed"], 1, "{done}");

    // Two long runs for env=staging take a1 and a2; a third waits queued.
    let first = server.run("hold", json!({"config": {"seconds": "600"}}));
    let second = server.run("hold", json!({"config": {"seconds": "600"}}));
    let (first, second) = (
        first["id"].as_str().unwrap().to_string(),
        second["id"].as_str().unwrap().to_string(),
    );
    server.wait_status(&first, "running");
    server.wait_status(&second, "running");
    let third = server.run("hold", json!({"config": {"seconds": "0"}}));
    let third = third["id"].as_str().unwrap().to_string();
    let staging = [("a1", &a1), ("a2", &a2)];
    let holder = wait_for("hold-1's agent", Duration::from_secs(30), || {
        claimed_by(&staging, "hold-1")
    });
    let other = if holder == "a1" { "a2" } else { "a1" };
    let holder = holder.as_str();
    assert_eq!(claimed_by(&staging, "hold-2").as_deref(), Some(other));
    assert_eq!(server.status(&third), "queued");
    assert_eq!(claimed_by(&all, "hold-3"), None);
    assert!(
        server
            .agents()
            .iter()
            .any(|a| a["name"] == holder && a["running"] == 1)
    );

    // SIGKILL the agent running hold-1: once its lease expires, hold-1 ends aborted, saying why.
    let (mut killed, survivor) = if holder == "a1" { (a1, a2) } else { (a2, a1) };
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let aborted = server.wait_status(&first, "aborted");
    let reason = aborted["result"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let reason = if reason.is_empty() {
        aborted.to_string()
    } else {
        reason
    };
    assert!(
        reason.contains(&format!("agent/{holder}")) && reason.contains("no heartbeat"),
        "{reason}"
    );
    assert_eq!(
        server.status(&third),
        "queued",
        "nothing else matches while {other} is busy"
    );
    wait_for(
        "the killed agent to show as gone",
        Duration::from_secs(60),
        || {
            server
                .agents()
                .iter()
                .any(|a| a["name"] == holder && a["connected"] == false && a["running"] == 0)
                .then_some(())
        },
    );
    let (_, page) = http(server.port, "GET", "/agents", &viewer, None);
    assert!(page.contains("2 of 3 connected"), "{page}");
    let row = &page[page.find(&format!(r#"data-agent="{holder}""#)).unwrap()..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains(">gone</span>"),
        "{page}"
    );

    // Abort hold-2 on the survivor: it stops it, and takes the queued hold-3.
    let (status, body) = http(
        server.port,
        "POST",
        &format!("/v1/test-workflow-executions/{second}/abort"),
        &server.admin,
        None,
    );
    assert!(status < 300, "{body}");
    server.wait_status(&second, "aborted");
    server.wait_status(&third, "passed");
    let survivors = [(other, &survivor)];
    assert_eq!(claimed_by(&survivors, "hold-3").as_deref(), Some(other));
    // Nothing stays running.
    let (_, list) = http(
        server.port,
        "GET",
        "/v1/test-workflow-executions?status=running",
        &server.admin,
        None,
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["results"].as_array().map(Vec::len), Some(0), "{list}");
    drop(a3);
}

#[test]
fn security_agents_write_only_the_executions_their_session_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("server"), &[]);
    let runner = server.token("agent", "runner");
    let viewer = server.token("viewer", "viewer");
    server.apply(HOLD);
    let hello = |session: &str| {
        json!({"session": session, "runtime": "host", "host": "h", "waitMs": 0}).to_string()
    };
    // A viewer cannot claim work.
    let (status, _) = http(
        server.port,
        "POST",
        "/v1/agents/x/claim",
        &viewer,
        Some(("application/json", &hello("s1"))),
    );
    assert_eq!(status, 403);
    // The first session holds the name; a second live one is refused.
    let (status, body) = http(
        server.port,
        "POST",
        "/v1/agents/x/claim",
        &runner,
        Some(("application/json", &hello("s1"))),
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = http(
        server.port,
        "POST",
        "/v1/agents/x/claim",
        &runner,
        Some(("application/json", &hello("s2"))),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("own --name"), "{body}");
    // Session s1 claims a targeted run.
    let queued = server.run("hold", json!({"target": {"match": {"name": ["x"]}}}));
    let id = queued["id"].as_str().unwrap();
    let (status, work) = http(
        server.port,
        "POST",
        "/v1/agents/x/claim",
        &runner,
        Some(("application/json", &hello("s1"))),
    );
    assert_eq!(status, 200, "{work}");
    let work: Value = serde_json::from_str(&work).unwrap();
    assert_eq!(work["id"], id);
    // Another agent, or another session under the same name, cannot write to it.
    let finish = json!({"session": "s2", "events": [{"type": "executionFinished", "status": "passed", "at": 0}]});
    for path in [
        format!("/v1/agents/x/executions/{id}/events"),
        format!("/v1/agents/y/executions/{id}/events"),
    ] {
        let (status, body) = http(
            server.port,
            "POST",
            &path,
            &runner,
            Some(("application/json", &finish.to_string())),
        );
        assert_eq!(status, 409, "{body}");
    }
    let (status, _) = http_with(
        server.port,
        "PUT",
        &format!("/v1/agents/y/executions/{id}/artifacts?step=x&path=a.txt"),
        &runner,
        "x-assay-agent-session: s2\r\n",
        Some(("application/octet-stream", "data")),
    );
    assert_eq!(status, 409);
    assert_eq!(server.status(id), "running");
    // Its own session can.
    let finish = json!({"session": "s1", "events": [{"type": "executionFinished", "status": "passed", "at": 0}]});
    let (status, body) = http(
        server.port,
        "POST",
        &format!("/v1/agents/x/executions/{id}/events"),
        &runner,
        Some(("application/json", &finish.to_string())),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.status(id), "passed");
}

/// The commands of README.md's "Agents" session, as written: `127.0.0.1:8088` becomes a free
/// port; they run in a temporary folder (with `examples/` from the repository) under `sh`.
#[test]
fn readme_agents_session_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let block = crate::run_support::readme_block("agents-session");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("examples"), dir.path().join("examples")).unwrap();
    let port = free_port().to_string();
    let config = dir.path().join("contexts.yaml");
    let sh = crate::run_support::readme_sh(dir.path(), &port, &config);
    let mut background = Vec::new();
    let mut outputs = Vec::new();
    for line in &block {
        let command = line.split("  #").next().unwrap().trim();
        if command.starts_with("assay server") || command.starts_with("assay agent") {
            let proc = Proc::spawn(sh(command));
            if command.starts_with("assay server") {
                wait_for("the server", Duration::from_secs(60), || {
                    proc.stderr().contains("listening on").then_some(())
                });
            } else {
                wait_for("the agent", Duration::from_secs(60), || {
                    proc.stderr().contains("connecting to").then_some(())
                });
            }
            background.push(proc);
            continue;
        }
        let out = sh(command).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "`{command}` failed:\n{stdout}{stderr}"
        );
        outputs.push((command.to_string(), stdout, stderr));
    }
    let find = |prefix: &str| {
        outputs
            .iter()
            .find(|(c, _, _)| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("the session runs `{prefix}`"))
    };
    assert!(find("assay run on-staging").2.contains("passed"));
    let replicated = &find("assay run on-staging --target env=staging --replicate name").2;
    assert!(
        replicated.contains("1 execution, one per name") && replicated.contains("passed"),
        "{replicated}"
    );
    let agents = &find("assay get agents").1;
    assert!(
        agents.contains("builder-1")
            && agents.contains("env=staging")
            && agents.contains("connected"),
        "{agents}"
    );
    drop(background);
}

/// A targeted workflow whose step writes a JUnit report with one failing test (`c::bad`).
const QCLOCK: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: qclock
spec:
  execution:
    target:
      match:
        env: [staging]
  steps:
  - name: tests
    shell: |
      mkdir -p reports
      printf '<testsuite name="s" tests="2"><testcase classname="c" name="ok"/><testcase classname="c" name="bad"><failure message="boom"/></testcase></testsuite>\n' > reports/junit.xml
      exit 1
    artifacts:
      paths: ["reports/*.xml"]
"#;

/// Quarantine through a server context from the CLI (admin adds, viewer refused), and a run an
/// agent takes: the agent's engine gets the quarantined tests with its work, so the step passes
/// there and says so; the server records the case as quarantined.
#[test]
fn quarantine_through_a_context_holds_for_runs_an_agent_takes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = start_server(&data, &[]);
    let token_file = dir.path().join("runner.token");
    std::fs::write(&token_file, server.token("agents", "runner")).unwrap();
    let viewer = server.token("looker", "viewer");
    let _agent = server.agent(&token_file, "builder-1", &["env=staging"]);
    server.apply(QCLOCK);
    let config = dir.path().join("contexts.yaml");
    let url = format!("http://127.0.0.1:{}", server.port);
    let cli = |args: &[&str]| {
        let out = assay()
            .args(args)
            .env("ASSAY_CONFIG", &config)
            .env("ASSAY_DATA_DIR", dir.path().join("embedded"))
            .env("NO_COLOR", "1")
            .env_remove("ASSAY_CONTEXT")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = cli(&[
        "context",
        "add",
        "srv",
        "--server",
        &url,
        "--token",
        &server.admin,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli(&[
        "context", "add", "look", "--server", &url, "--token", &viewer,
    ]);
    assert_eq!(code, Some(0), "{err}");

    let first = server.run("qclock", json!({}));
    server.wait_status(first["id"].as_str().unwrap(), "failed");

    // A viewer's context may list but not add: the server's 403, exit 2.
    let (code, _, err) = cli(&[
        "quarantine",
        "add",
        "c::bad",
        "--workflow",
        "qclock",
        "--reason",
        "r",
        "--context",
        "look",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs `admin`"), "{err}");
    let (code, _, err) = cli(&[
        "quarantine",
        "add",
        "c::bad",
        "--workflow",
        "qclock",
        "--reason",
        "JIRA-5",
        "--context",
        "srv",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli(&["quarantine", "list", "-o", "json", "--context", "look"]);
    assert_eq!(code, Some(0), "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["test"], "c::bad");
    assert_eq!(listed[0]["createdBy"], "admin");
    // Nothing went to the embedded store.
    let (_, out, _) = cli(&["quarantine", "list", "-o", "json", "--context", "embedded"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));

    let second = server.run("qclock", json!({}));
    let id = second["id"].as_str().unwrap();
    let done = server.wait_status(id, "passed");
    assert_eq!(done["result"]["quarantinedFailures"], json!(["c::bad"]));
    let agent_err = _agent.stderr();
    assert!(
        agent_err.contains(&format!(
            "claimed execution={}",
            second["name"].as_str().unwrap()
        )),
        "{agent_err}"
    );
    let (status, body) = http(
        server.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}/logs"),
        &server.admin,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("the step failed only through quarantined tests"),
        "{body}"
    );
    let cases = assay()
        .args(["get", "tests", id, "-o", "json"])
        .env("ASSAY_DATA_DIR", &data)
        .env("ASSAY_CONFIG", &config)
        .env_remove("ASSAY_CONTEXT")
        .output()
        .unwrap();
    let cases: Value = serde_json::from_slice(&cases.stdout).unwrap();
    let bad = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "c::bad")
        .unwrap();
    assert_eq!(bad["quarantined"], true);

    let (code, _, err) = cli(&[
        "quarantine",
        "remove",
        "c::bad",
        "--workflow",
        "qclock",
        "--context",
        "srv",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli(&[
        "quarantine",
        "remove",
        "c::bad",
        "--workflow",
        "qclock",
        "--context",
        "srv",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not quarantined"), "{err}");
}

/// The executions tagged with one `replicate-group`, oldest first.
fn replicate_group(server: &Server, group: &str) -> Vec<Value> {
    let (status, body) = http(
        server.port,
        "GET",
        &format!("/v1/test-workflow-executions?tag=replicate-group={group}"),
        &server.admin,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let mut copies = page["results"].as_array().unwrap().clone();
    copies.sort_by_key(|e| e["number"].as_i64());
    copies
}

/// A server in `dir` and a runner token for agents in a file.
fn server_with_runner_token(dir: &Path) -> (Server, PathBuf) {
    let server = start_server(&dir.join("server"), &[]);
    let token_file = dir.join("runner.token");
    std::fs::write(&token_file, server.token("agents", "runner")).unwrap();
    (server, token_file)
}

const FANOUT: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: fanout
spec:
  execution:
    target:
      replicate: [env]
  steps:
  - name: hello
    shell: echo "hello from a replica"
"#;

/// Testkube's `replicate`: agents labelled env=a, a, b and `replicate: [env]` make two
/// executions, one on an env=a agent and one on the env=b agent, tagged as one group; through
/// the CLI `--replicate name` makes one per agent and waits for all; with no matching agent one
/// copy waits queued.
#[test]
fn replicate_runs_once_per_label_value_among_matching_agents() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token_file) = server_with_runner_token(dir.path());
    server.apply(FANOUT);
    let a1 = server.agent(&token_file, "a1", &["env=a"]);
    let a2 = server.agent(&token_file, "a2", &["env=a"]);
    let a3 = server.agent(&token_file, "a3", &["env=b"]);
    wait_for("three agents", Duration::from_secs(60), || {
        let agents = server.agents();
        (agents.len() == 3 && agents.iter().all(|a| a["connected"] == true)).then_some(())
    });
    let all = [("a1", &a1), ("a2", &a2), ("a3", &a3)];

    // The workflow's own target replicates by env.
    let first = server.run("fanout", json!({}));
    let group = first["tags"]["replicate-group"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    let copies = replicate_group(&server, &group);
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(copies[0]["id"], first["id"]);
    for copy in &copies {
        let done = server.wait_status(copy["id"].as_str().unwrap(), "passed");
        let name = done["name"].as_str().unwrap();
        let agent = claimed_by(&all, name).unwrap();
        match done["tags"]["replica"].as_str().unwrap() {
            "env:a" => assert!(agent == "a1" || agent == "a2", "{name} ran on {agent}"),
            "env:b" => assert_eq!(agent, "a3", "{name}"),
            other => panic!("unexpected replica {other}"),
        }
    }

    // `assay run --replicate name` through a context: one per agent, all waited for.
    let config = dir.path().join("contexts.yaml");
    let url = format!("http://127.0.0.1:{}", server.port);
    let cli = |args: &[&str]| {
        let out = assay()
            .args(args)
            .env("ASSAY_CONFIG", &config)
            .env("NO_COLOR", "1")
            .env_remove("ASSAY_CONTEXT")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = cli(&[
        "context",
        "add",
        "srv",
        "--server",
        &url,
        "--token",
        &server.admin,
        "--use",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = cli(&["run", "fanout", "--replicate", "name"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("3 executions, one per name"), "{err}");
    for name in ["fanout-3", "fanout-4", "fanout-5"] {
        assert!(err.contains(name), "{err}");
    }
    let mut ran_on: Vec<String> = ["fanout-3", "fanout-4", "fanout-5"]
        .iter()
        .map(|n| claimed_by(&all, n).unwrap())
        .collect();
    ran_on.sort();
    assert_eq!(ran_on, ["a1", "a2", "a3"]);

    // No connected agent has env=c: one copy, without replicate, waits for one.
    let waiting = server.run(
        "fanout",
        json!({"target": {"match": {"env": ["c"]}, "replicate": ["env"]}}),
    );
    assert!(
        waiting["tags"].get("replicate-group").is_none(),
        "{waiting}"
    );
    let id = waiting["id"].as_str().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(server.status(id), "queued");
    let a4 = server.agent(&token_file, "a4", &["env=c"]);
    server.wait_status(id, "passed");
    assert_eq!(
        claimed_by(&[("a4", &a4)], waiting["name"].as_str().unwrap()).as_deref(),
        Some("a4")
    );
}

const CHILD: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: child
spec:
  config:
    word: {type: string, default: "nothing"}
  steps:
  - name: say
    shell: echo "child says {{ config.word }}"
"#;

const ELSEWHERE: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: elsewhere
spec:
  execution:
    target:
      match:
        env: [a]
  steps:
  - name: say
    shell: echo "elsewhere"
"#;

const PARENT: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: parent
spec:
  execution:
    target:
      match:
        env: [b]
  steps:
  - name: children
    execute:
      workflows:
      - name: child
        config:
          word: hi
      - name: elsewhere
"#;

/// `execute` on an agent: the server queues the children; `child` inherits the parent's target
/// (the one env=b agent, which lends the parent's slot while it waits) and `elsewhere` goes
/// where its own target says; the parent waits for both and passes.
#[test]
fn execute_steps_on_an_agent_queue_children_where_they_belong() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token_file) = server_with_runner_token(dir.path());
    for yaml in [CHILD, ELSEWHERE, PARENT] {
        server.apply(yaml);
    }
    let a1 = server.agent(&token_file, "a1", &["env=a"]);
    let b1 = server.agent(&token_file, "b1", &["env=b"]);
    let parent = server.run("parent", json!({}));
    let done = server.wait_status(parent["id"].as_str().unwrap(), "passed");
    let children = done["children"].as_array().cloned().unwrap_or_default();
    assert_eq!(children.len(), 2, "{done}");
    let both = [("a1", &a1), ("b1", &b1)];
    assert_eq!(claimed_by(&both, "parent-1").as_deref(), Some("b1"));
    assert_eq!(claimed_by(&both, "child-1").as_deref(), Some("b1"));
    assert_eq!(claimed_by(&both, "elsewhere-1").as_deref(), Some("a1"));
    let child = server.execution("child-1");
    assert_eq!(child["result"]["status"], "passed", "{child}");
    let (_, logs) = http(
        server.port,
        "GET",
        "/v1/test-workflow-executions/child-1/logs",
        &server.admin,
        None,
    );
    assert!(logs.contains("child says hi"), "{logs}");
}

/// A runner token holding a run may queue only what that run's `execute` steps name, with the
/// config they give; a retried request queues nothing new; aborting the parent aborts the child.
#[test]
fn security_an_agent_queues_only_the_children_its_run_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("server"), &[]);
    let runner = server.token("agent", "runner");
    for yaml in [CHILD, ELSEWHERE, PARENT, HOLD] {
        server.apply(yaml);
    }
    let hello = json!({"session": "s1", "runtime": "host", "host": "h", "waitMs": 0}).to_string();
    let post = |path: &str, body: &Value| {
        http(
            server.port,
            "POST",
            path,
            &runner,
            Some(("application/json", &body.to_string())),
        )
    };
    let (status, body) = http(
        server.port,
        "POST",
        "/v1/agents/x/claim",
        &runner,
        Some(("application/json", &hello)),
    );
    assert_eq!(status, 204, "{body}");
    let queued = server.run("parent", json!({"target": {"match": {"name": ["x"]}}}));
    let id = queued["id"].as_str().unwrap();
    let (status, work) = http(
        server.port,
        "POST",
        "/v1/agents/x/claim",
        &runner,
        Some(("application/json", &hello)),
    );
    assert_eq!(status, 200, "{work}");
    let path = format!("/v1/agents/x/executions/{id}/execute");
    let ask = |session: &str, workflow: &str, config: Value| json!({"session": session, "step": "rs1", "workflow": workflow, "index": 0, "config": config});
    // A workflow the plan does not execute; a config value other than the one written.
    for body in [
        ask("s1", "hold", json!({})),
        ask("s1", "child", json!({"word": "evil"})),
        ask("s1", "elsewhere", json!({"extra": "x"})),
    ] {
        let (status, detail) = post(&path, &body);
        assert_eq!(status, 403, "{body}: {detail}");
        assert!(detail.contains("no `execute` step"), "{detail}");
    }
    // Another session, or another agent's name.
    let (status, _) = post(&path, &ask("s2", "child", json!({"word": "hi"})));
    assert_eq!(status, 409);
    let (status, _) = post(
        &format!("/v1/agents/y/executions/{id}/execute"),
        &ask("s1", "child", json!({"word": "hi"})),
    );
    assert_eq!(status, 409);
    // What the plan names is queued once, however often it is asked.
    let (status, first) = post(&path, &ask("s1", "child", json!({"word": "hi"})));
    assert_eq!(status, 200, "{first}");
    let (status, again) = post(&path, &ask("s1", "child", json!({"word": "hi"})));
    assert_eq!(status, 200, "{again}");
    let first: Value = serde_json::from_str(&first).unwrap();
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["status"], "queued");
    let child = server.execution(first["id"].as_str().unwrap());
    assert_eq!(child["parent"]["id"], id.to_string(), "{child}");
    // The parent ends aborted: the child it queued is aborted too.
    let finish = json!({"session": "s1", "events": [{"type": "executionFinished", "status": "aborted", "error": "stop", "at": 0}]});
    let (status, body) = post(&format!("/v1/agents/x/executions/{id}/events"), &finish);
    assert_eq!(status, 200, "{body}");
    server.wait_status(first["id"].as_str().unwrap(), "aborted");
}

const NAMED: &str = r#"
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: named
spec:
  steps:
  - name: connect
    container:
      env:
      - name: DB_PASSWORD
        valueFrom:
          secretKeyRef: {name: db, key: password}
    shell: |
      test "$DB_PASSWORD" = "pw-7f3c19ab" && echo "connected as app with $DB_PASSWORD"
"#;

/// A workflow reading a named secret (`assay secret set` where the server runs) runs on an
/// agent as it does on the server: the agent gets the values its run's plan names, with the
/// run (never others), and masks them; they reach neither the stored log nor the API.
#[test]
fn named_secrets_a_plan_reads_reach_the_agent_that_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token_file) = server_with_runner_token(dir.path());
    for (name, kv) in [
        ("db", "password=pw-7f3c19ab"),
        ("other", "key=not-for-this-run"),
    ] {
        let out = assay()
            .args(["secret", "set", name, kv])
            .env("ASSAY_DATA_DIR", &server.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    server.apply(NAMED);
    // What the server hands out: the values this plan names, not the other secret.
    let runner = std::fs::read_to_string(&token_file).unwrap();
    server.run("named", json!({"target": {"match": {"name": ["probe"]}}}));
    let hello = json!({"session": "s1", "runtime": "host", "host": "h", "waitMs": 0}).to_string();
    let (status, work) = http(
        server.port,
        "POST",
        "/v1/agents/probe/claim",
        runner.trim(),
        Some(("application/json", &hello)),
    );
    assert_eq!(status, 200, "{work}");
    let work: Value = serde_json::from_str(&work).unwrap();
    assert_eq!(
        work["namedSecrets"],
        json!({"db": {"password": "pw-7f3c19ab"}}),
        "{work}"
    );
    // A real agent runs it.
    let agent = server.agent(&token_file, "a1", &[]);
    let run = server.run("named", json!({"target": {"match": {"name": ["a1"]}}}));
    let id = run["id"].as_str().unwrap().to_string();
    server.wait_status(&id, "passed");
    let (_, logs) = http(
        server.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}/logs"),
        &server.admin,
        None,
    );
    assert!(logs.contains("connected as app with *****"), "{logs}");
    assert!(!logs.contains("pw-7f3c19ab"), "{logs}");
    let (_, body) = http(
        server.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}"),
        &server.admin,
        None,
    );
    assert!(!body.contains("pw-7f3c19ab"), "{body}");
    assert!(claimed_by(&[("a1", &agent)], run["name"].as_str().unwrap()).is_some());
}

/// An agent's default work folder is a fixed name in the system's temporary directory, which
/// any local user can make first: a link there to a folder they control, a folder of theirs, or
/// one anyone can write in is refused before anything runs in it, with the reason; a folder the
/// agent makes itself is mode 0711 (no one else can list or change it).
#[test]
fn security_an_agent_refuses_a_work_folder_another_user_could_change() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "not-a-token\n").unwrap();
    let planted = dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    let port = free_port(); // nothing listens: the agent only gets as far as its folder
    let agent = |name: &str, work: Option<&Path>| {
        let mut cmd = assay();
        cmd.args([
            "agent",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--token-file",
            token.to_str().unwrap(),
            "--name",
            name,
        ])
        .env("TMPDIR", dir.path())
        .env("NO_COLOR", "1");
        if let Some(work) = work {
            cmd.arg("--work-dir").arg(work);
        }
        cmd
    };
    let refused = |mut cmd: Command, why: &str| {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the agent took a folder it should refuse ({why})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("it is not this user's own ({why})"))
                && stderr.contains("hint: remove it, or pass --work-dir"),
            "{stderr}"
        );
    };
    std::os::unix::fs::symlink(&planted, dir.path().join("assay-agent-linked")).unwrap();
    refused(agent("linked", None), "a symbolic link");
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(agent("open", Some(&planted)), "mode 777");
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        refused(agent("theirs", Some(&planted)), "owned by uid 65534");
    }
    assert!(
        std::fs::read_dir(&planted).unwrap().next().is_none(),
        "the agent wrote in a folder it refused"
    );
    // Its own: made 0711, and the agent goes on (trying to reach the server) until stopped.
    let mut own = agent("fresh", None).stderr(Stdio::null()).spawn().unwrap();
    let made = dir.path().join("assay-agent-fresh");
    let mode = wait_for("the agent's folder", Duration::from_secs(20), || {
        std::fs::symlink_metadata(&made)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    });
    assert!(own.try_wait().unwrap().is_none(), "the agent stopped");
    let _ = own.kill();
    let _ = own.wait();
    assert_eq!(mode, 0o711);
}
