//! The optional LLM (`ASSAY_LLM_URL`): `assay explain` adds a narrative, `assay ask` reads
//! a question its grammar does not know, `assay init` drafts a workflow for unknown tools in a
//! generate → validate → fix loop. Against `fake_llm.py`, a FAKE OpenAI-compatible endpoint
//! (no LLM can run here) that logs what Assay sent: the tests check that only facts went out,
//! masked, and that a failing or refusing endpoint leaves every command's own answer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run_support::{Running, assay, free_port};

const KEY: &str = "sk-fake-test-key-0042";
const SECRET: &str = "s3cr3t-t0ken-value";

/// The fake endpoint on a free port; its request log.
struct Fake {
    _process: Running,
    url: String,
    log: PathBuf,
}

impl Fake {
    fn start(dir: &Path) -> Fake {
        let port = free_port();
        let log = dir.join("llm-requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_llm.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&log)
            .arg(KEY)
            .spawn()
            .expect("python3 runs the fake LLM endpoint");
        let process = Running(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the fake LLM did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Fake {
            _process: process,
            url: format!("http://127.0.0.1:{port}/v1"),
            log,
        }
    }

    /// Every request the endpoint got, as JSON.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `assay ARGS --data-dir DATA` (for the commands that have a store) with the LLM configured
/// by `llm` (url, key).
fn with_llm(data: &Path, llm: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut cmd = assay();
    cmd.args(args);
    if !matches!(args[0], "init" | "validate") {
        cmd.arg("--data-dir").arg(data);
    }
    if let Some((url, key)) = llm {
        cmd.env("ASSAY_LLM_URL", url)
            .env("ASSAY_LLM_MODEL", "fake-model")
            .env("ASSAY_LLM_API_KEY", key);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FAILING: &str = r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: calc
spec:
  config:
    token:
      type: string
      sensitive: true
  steps:
  - name: unit tests
    shell: |
      echo "using token {{ config.token }}"
      echo "AssertionError: expected 3, got 4"
      exit 1
"#;

#[test]
fn security_explain_ask_and_init_send_the_llm_only_masked_facts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fake = Fake::start(dir.path());
    let llm = Some((fake.url.as_str(), KEY));
    let wf = dir.path().join("calc.yaml");
    std::fs::write(&wf, FAILING).unwrap();
    let out = with_llm(
        &data,
        None,
        &[
            "run",
            wf.to_str().unwrap(),
            "--config",
            &format!("token={SECRET}"),
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // explain: the deterministic answer, then the narrative built from its class.
    let out = with_llm(&data, llm, &["explain", "calc-1"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("class: new-test"), "{stdout}");
    assert!(
        stdout.contains(
            "narrative (by the LLM, fake-model at 127.0.0.1):\n  The run failed as a new-test"
        ),
        "{stdout}"
    );
    let out = with_llm(&data, llm, &["explain", "calc-1", "-o", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["verdict"]["class"], "new-test");
    assert!(
        doc["narrative"]["text"]
            .as_str()
            .unwrap()
            .starts_with("The run failed as a new-test"),
        "{doc:#}"
    );
    // Without the LLM: the same facts, no narrative.
    let out = with_llm(&data, None, &["explain", "calc-1"]);
    assert!(!text(&out.stdout).contains("narrative"));

    // ask: a question the grammar does not know goes to the LLM; its query is checked and shown.
    let out = with_llm(&data, None, &["ask", "what", "exploded"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = with_llm(&data, llm, &["ask", "what", "exploded"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("query (by the LLM, fake-model at 127.0.0.1): executions · status failed"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("calc-1"),
        "{}",
        text(&out.stdout)
    );
    let out = with_llm(&data, llm, &["ask", "nonsense", "please"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the LLM could not read it either")
            && stderr.contains("no stored workflow `no-such-workflow`"),
        "an unusable query is refused like bad input: {stderr}"
    );

    // init: no known tool, so the LLM drafts; the first draft does not validate, the errors
    // go back, the second does. Only file names are sent, never contents.
    let repo = dir.path().join("odd-repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("check.sh"), "echo CONTENT-MARKER-7731\n").unwrap();
    std::fs::write(repo.join("Makefile"), "test:\n\tsh check.sh\n").unwrap();
    let out = with_llm(&data, None, &["init", repo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = with_llm(&data, llm, &["init", repo.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("drafted by the LLM (fake-model at 127.0.0.1) in 2 tries"),
        "{stderr}"
    );
    let written = repo.join("testworkflows.yaml");
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains("name: odd-repo-tests")
    );
    let out = with_llm(&data, None, &["validate", written.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // What went out: facts only, the secret masked, the key never echoed, no file contents.
    let requests = fake.requests();
    let sent = serde_json::to_string(&requests).unwrap();
    assert!(!sent.contains(SECRET), "a sensitive value reached the LLM");
    assert!(
        !sent.contains("CONTENT-MARKER-7731"),
        "file contents reached the LLM"
    );
    assert!(sent.contains("check.sh") && sent.contains("Makefile"));
    let fix = requests
        .iter()
        .find(|r| r["request"]["messages"].as_array().unwrap().len() == 4)
        .expect("a fix request");
    assert!(
        fix["request"]["messages"][3]["content"]
            .as_str()
            .unwrap()
            .contains("`assay validate` reports:"),
        "{fix:#}"
    );
}

#[test]
fn a_refusing_or_absent_llm_leaves_the_answers_and_hides_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fake = Fake::start(dir.path());
    let wf = dir.path().join("calc.yaml");
    std::fs::write(&wf, FAILING).unwrap();
    let out = with_llm(
        &data,
        None,
        &["run", wf.to_str().unwrap(), "--config", "token=x", "-q"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A wrong key: HTTP 401, said once; the explanation stands and exits 0.
    let wrong = "sk-wrong-key-9917";
    let out = with_llm(&data, Some((&fake.url, wrong)), &["explain", "calc-1"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("class: new-test") && !stdout.contains("narrative"));
    assert!(
        stderr.contains("warning: no narrative") && stderr.contains("HTTP 401"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong) && !stdout.contains(wrong));

    // Nobody listening: the same.
    let closed = format!("http://127.0.0.1:{}/v1", free_port());
    let out = with_llm(&data, Some((&closed, KEY)), &["explain", "calc-1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("did not answer"),
        "{}",
        text(&out.stderr)
    );

    // A bad URL or a missing model: a warning, the LLM off.
    let out = assay()
        .args(["explain", "calc-1", "--data-dir"])
        .arg(&data)
        .env("ASSAY_LLM_URL", "file:///etc/passwd")
        .env("ASSAY_LLM_MODEL", "m")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr)
            .contains("the LLM is off: ASSAY_LLM_URL `file:///etc/passwd` is not an http(s) URL")
    );
    let out = assay()
        .args(["explain", "calc-1", "--data-dir"])
        .arg(&data)
        .env("ASSAY_LLM_URL", &fake.url)
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("ASSAY_LLM_MODEL is not"),
        "{}",
        text(&out.stderr)
    );

    // A model that never produces a valid workflow: init gives up after 3 tries, writes nothing.
    let repo = dir.path().join("never-valid");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("run-checks"), "#!/bin/sh\n").unwrap();
    let out = with_llm(
        &data,
        Some((&fake.url, KEY)),
        &["init", repo.to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not validate after 3 tries"),
        "{stderr}"
    );
    assert!(!repo.join("testworkflows.yaml").exists());
}
