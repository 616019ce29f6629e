//! `assay explain`: the labelled corpus of failures made by real tools (pytest under Assay: an
//! assertion that regressed, a flaky test, a broken test, a new test, a timeout, an allocation
//! over a memory limit, a refused connection), each with the class it must get; the same
//! analysis through a server context, its REST endpoint and the dashboard's execution page.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::run_support::{free_port, http, serve};

fn python() -> Option<String> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("ASSAY_TEST_SKIP_PYTHON").is_some() => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with pytest), or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

fn assay(data: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assay"));
    c.env("ASSAY_DATA_DIR", data)
        .env("ASSAY_CONFIG", config)
        .env("NO_COLOR", "1")
        // Runs inside this repository would all get its commit (the analysis compares commits).
        .env("ASSAY_PROVENANCE", "off")
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    c
}

/// A workflow that runs pytest on `files` (in the corpus folder) with JUnit out; `bug` and
/// `state` reach the tests as environment variables; `prefix` goes before pytest (`ulimit`),
/// `timeout` on the step.
fn workflow(name: &str, prefix: &str, timeout: Option<&str>) -> String {
    let timeout = timeout
        .map(|t| format!("    timeout: {t}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: {name}
spec:
  config:
    python: {{type: string}}
    dir: {{type: string}}
    files: {{type: string}}
    bug: {{type: string, default: "0"}}
  steps:
  - name: pytest
{timeout}    container:
      env:
      - name: BUG
        value: "{{{{ config.bug }}}}"
      - name: STATE
        value: "{{{{ config.dir }}}}/state-{name}"
    shell: |
      mkdir -p reports && out=$PWD/reports
      {prefix}
      cd {{{{ config.dir }}}} && {{{{ config.python }}}} -m pytest -q -p no:cacheprovider --junitxml=$out/junit.xml {{{{ config.files }}}}
    artifacts:
      paths: ["reports/*.xml"]
"#
    )
}

const TESTS: &[(&str, &str)] = &[
    (
        "test_calc.py",
        "import os\n\ndef add(a, b):\n    return a + b + (1 if os.environ.get('BUG') == '1' else 0)\n\n\
         def test_adds():\n    assert add(1, 2) == 3\n\ndef test_zero():\n    assert add(0, 0) == 0 or os.environ.get('BUG') == '1'\n",
    ),
    (
        "test_flaky.py",
        "import os\n\ndef test_sometimes():\n    path = os.environ['STATE']\n    n = int(open(path).read()) if os.path.exists(path) else 0\n    \
         open(path, 'w').write(str(n + 1))\n    assert n % 2 == 0, f'odd run {n}'\n",
    ),
    (
        "test_broken.py",
        "def test_never():\n    assert {'a': 1} == {'a': 2}\n",
    ),
    ("test_old.py", "def test_old():\n    assert True\n"),
    (
        "test_new.py",
        "def test_new_feature():\n    assert 'feature'.upper() == 'Feature'\n",
    ),
    (
        "test_slow.py",
        "import time\n\ndef test_waits():\n    time.sleep(60)\n",
    ),
    (
        "test_memory.py",
        "def test_allocates():\n    block = bytearray(4 * 1024 * 1024 * 1024)\n    assert len(block) > 0\n",
    ),
    (
        "test_service.py",
        "import socket\n\ndef test_talks_to_the_database():\n    socket.create_connection(('127.0.0.1', int(__import__('os').environ.get('PORT', '9'))), timeout=5)\n",
    ),
];

struct Corpus {
    dir: tempfile::TempDir,
    python: String,
}

impl Corpus {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("contexts.yaml")
    }
    fn tests(&self) -> PathBuf {
        self.dir.path().join("tests")
    }

    /// Run workflow `name` on `files` at `commit`; returns the execution name and its status.
    fn run(&self, wf: &str, files: &str, commit: &str, bug: &str) -> (String, String) {
        let file = self.dir.path().join(format!("{wf}-{commit}-{bug}.yaml"));
        let name = wf.split('+').next().unwrap();
        let text = match wf {
            w if w.starts_with("slow") => workflow(name, "", Some("3s")),
            w if w.starts_with("memory") => workflow(name, "ulimit -v 1000000", None),
            _ => workflow(name, "", None),
        };
        std::fs::write(&file, text).unwrap();
        let out = assay(&self.data(), &self.config())
            .arg("run")
            .arg(&file)
            .args(["-q", "-o", "json", "--tag"])
            .arg(format!("commit={commit}"))
            .arg("--config")
            .arg(format!("python={}", self.python))
            .arg("--config")
            .arg(format!("dir={}", self.tests().display()))
            .arg("--config")
            .arg(format!("files={files}"))
            .arg("--config")
            .arg(format!("bug={bug}"))
            .output()
            .unwrap();
        let e: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
        });
        (
            e["name"].as_str().unwrap().to_string(),
            e["result"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    fn explain(&self, name: &str, extra: &[&str]) -> Value {
        let out = assay(&self.data(), &self.config())
            .args(["explain", name, "-o", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn corpus_of_real_failures_gets_the_expected_classes() {
    let Some(python) = python() else {
        return;
    };
    let corpus = Corpus {
        dir: tempfile::tempdir().unwrap(),
        python,
    };
    std::fs::create_dir_all(corpus.tests()).unwrap();
    for (file, text) in TESTS {
        std::fs::write(corpus.tests().join(file), text).unwrap();
    }

    // (execution to explain, expected class, expected rule)
    let mut cases: Vec<(&str, String, &str, &str)> = Vec::new();
    // A regression: passes on commit a, an off-by-one lands in commit b.
    let (pass, status) = corpus.run("calc", "test_calc.py", "a1", "0");
    assert_eq!(status, "passed");
    corpus.run("calc", "test_calc.py", "b2", "1");
    let (regressed, status) = corpus.run("calc", "test_calc.py", "c3", "1");
    assert_eq!(status, "failed");
    cases.push((
        "assertion regression",
        regressed.clone(),
        "regression",
        "passed-before",
    ));
    // Flaky: the same commit passes, then fails.
    assert_eq!(corpus.run("flaky", "test_flaky.py", "f1", "0").1, "passed");
    let (flaky, _) = corpus.run("flaky", "test_flaky.py", "f1", "0");
    cases.push(("flaky test", flaky, "flaky", "passed-on-same-commit"));
    // Broken: fails on every commit.
    corpus.run("broken", "test_broken.py", "a1", "0");
    let (broken, _) = corpus.run("broken", "test_broken.py", "b2", "0");
    cases.push(("broken test", broken, "broken", "never-passed"));
    // A new test, failing on its first run next to an old one that passes.
    corpus.run("feature", "test_old.py", "a1", "0");
    let (new, _) = corpus.run("feature", "test_old.py test_new.py", "b2", "0");
    cases.push(("new test", new, "new-test", "first-run"));
    // Infrastructure: a step timeout, an allocation over `ulimit -v`, a refused connection.
    let (slow, _) = corpus.run("slow", "test_slow.py", "a1", "0");
    cases.push(("timeout", slow, "infrastructure", "timeout"));
    let (memory, _) = corpus.run("memory", "test_memory.py", "a1", "0");
    cases.push(("out of memory", memory, "infrastructure", "oom"));
    let (refused, _) = corpus.run("service", "test_service.py", "a1", "0");
    cases.push(("connection refused", refused, "infrastructure", "network"));

    let mut right = 0;
    for (what, name, class, rule) in &cases {
        let a = corpus.explain(name, &[]);
        let got = (
            a["verdict"]["class"].as_str().unwrap_or("?"),
            a["verdict"]["rule"].as_str().unwrap_or("?"),
        );
        println!(
            "corpus: {what:<22} {name:<12} expected {class}/{rule}, got {}/{}",
            got.0, got.1
        );
        if got == (*class, *rule) {
            right += 1;
        } else {
            eprintln!("{}", serde_json::to_string_pretty(&a).unwrap());
        }
    }
    println!("corpus accuracy: {right}/{}", cases.len());
    assert_eq!(right, cases.len(), "every corpus failure gets its class");

    // The regression's evidence: the failing test, first bad commit, diff against the pass.
    let a = corpus.explain(&regressed, &[]);
    let t = &a["failingTests"][0];
    assert_eq!(t["key"], "test_calc::test_adds", "{a:#}");
    assert_eq!(t["failureAge"], 2, "{a:#}");
    assert_eq!(t["firstBadCommit"], "b2", "{a:#}");
    assert_eq!(t["lastPassExecution"], pass, "{a:#}");
    assert_eq!(
        t["similarCount"], 1,
        "the same assertion failed in b2: {a:#}"
    );
    let d = &a["sinceLastPass"];
    assert_eq!(d["lastPass"]["name"], pass);
    assert_eq!(d["commit"]["before"], "a1");
    assert_eq!(d["commit"]["after"], "c3");
    assert_eq!(d["config"][0]["name"], "bug");
    assert_eq!(d["newlyFailing"][0], "test_calc::test_adds");
    assert_eq!(a["failuresSinceLastPass"], 2);
    let lines = a["failingStep"]["lines"].to_string();
    assert!(lines.contains("assert 4 == 3"), "{lines}");

    // The text form leads with the class and the rule.
    let out = assay(&corpus.data(), &corpus.config())
        .args(["explain", &regressed])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("class: regression (rule passed-before)"),
        "{text}"
    );
    assert!(text.contains("first bad calc-2 (commit b2)"), "{text}");

    // A passing execution has nothing to explain; an unknown one is the user's error.
    let a = corpus.explain(&pass, &[]);
    assert!(a.get("verdict").is_none(), "{a:#}");
    let out = assay(&corpus.data(), &corpus.config())
        .args(["explain", "nope-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    // Through a server context and its REST endpoint: the same analysis.
    let port = free_port();
    let _server = serve(&corpus.data(), port);
    let url = format!("http://127.0.0.1:{port}");
    let out = assay(&corpus.data(), &corpus.config())
        .args(["context", "add", "local", "--server", &url])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote = corpus.explain(&regressed, &["--context", "local"]);
    let local = corpus.explain(&regressed, &["--context", "embedded"]);
    assert_eq!(remote, local);
    assert_eq!(remote["verdict"]["class"], "regression");

    // The dashboard's page of a failed execution says why; a passing one has no such panel.
    let admin = std::fs::read_to_string(corpus.data().join("admin.token")).unwrap();
    let (code, page) = http(
        port,
        "GET",
        &format!("/executions/{regressed}"),
        admin.trim(),
        None,
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(r#"id="h-why">Why it failed"#), "{page}");
    assert!(page.contains(r#"data-class="regression""#), "{page}");
    assert!(page.contains("test_calc::test_adds"), "{page}");
    assert!(
        page.contains("commit a1 -&gt; c3") || page.contains("commit a1 -&#62; c3"),
        "{page}"
    );
    assert!(
        page.contains(&format!(">{pass}</a>")),
        "the last pass is linked: {page}"
    );
    let (code, page) = http(
        port,
        "GET",
        &format!("/executions/{pass}"),
        admin.trim(),
        None,
    );
    assert_eq!(code, 200, "{page}");
    assert!(!page.contains("Why it failed"), "{page}");
}
