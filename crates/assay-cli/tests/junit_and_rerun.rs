//! `assay run --junit FILE` and `assay rerun`, through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `assay` with the data dir given through the environment, as a user may.
fn assay(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assay"));
    c.env("ASSAY_DATA_DIR", data).env("NO_COLOR", "1");
    c
}

fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/workflows")
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn junit_file_holds_the_parsed_test_cases() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("out.xml");
    let out = assay(&dir.path().join("data"))
        .arg("run")
        .arg(workflows().join("junit.yaml"))
        .arg("-q")
        .arg("--junit")
        .arg(&xml)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains(r#"name="test_adds""#), "{text}");
    assert!(text.contains("AssertionError: expected 3, got 4"), "{text}");
    assert!(text.contains(r#"tests="2" failures="1""#), "{text}");
    // Not a case per step: the report's cases replace them.
    assert!(!text.contains("[unit_tests]"), "{text}");
}

#[test]
fn junit_file_has_one_case_per_step_without_reports() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("steps.xml");
    let out = assay(&dir.path().join("data"))
        .arg("run")
        .arg(workflows().join("conditions.yaml"))
        .args(["--name", "conditions", "-q", "--junit"])
        .arg(&xml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains(r#"[bad]" classname="conditions""#), "{text}");
    assert!(
        text.contains(r#"<failure message="failed with exit code 4"/>"#),
        "{text}"
    );
    assert!(text.contains("<skipped/>"), "{text}");
}

#[test]
fn junit_file_in_a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = assay(&dir.path().join("data"))
        .arg("run")
        .arg(workflows().join("steps.yaml"))
        .args(["--all", "-q"])
        .output()
        .unwrap();
    assert!(out.status.code().is_some());
    let out = assay(&dir.path().join("data"))
        .arg("run")
        .arg(workflows().join("junit.yaml"))
        .arg("-q")
        .arg("--junit")
        .arg(dir.path().join("no/such/dir/out.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to write the JUnit report"), "{err}");
}

#[test]
fn rerun_keeps_config_and_tags_and_asks_for_secrets_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: again\nspec:\n  config:\n    who: {type: string, default: nobody}\n    token: {type: string, sensitive: true}\n  steps:\n  - shell: echo hi {{ config.who }} ${#TOKEN}\n    container:\n      env:\n      - name: TOKEN\n        value: '{{ config.token }}'\n",
    )
    .unwrap();
    let first = assay(&data)
        .arg("run")
        .arg(&wf)
        .args([
            "--config",
            "who=ann",
            "--tag",
            "commit=abc",
            "--secret",
            "token=s3cr3t",
            "-q",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Without the secret: refused, with the hint naming it.
    let refused = assay(&data)
        .args(["rerun", "again-1", "-q"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--secret token="));
    let again = assay(&data)
        .args([
            "rerun",
            "again-1",
            "--secret",
            "token=s3cr3t",
            "-q",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let e = json(&again);
    assert_eq!(e["name"], "again-2");
    // The definition recorded with the execution runs again on its own.
    let original = assay(&data)
        .args([
            "rerun",
            "again-1",
            "--original",
            "--secret",
            "token=x",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(
        original.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&original.stderr)
    );
    assert_eq!(e["tags"]["commit"], "abc");
    assert_eq!(e["configParams"]["who"]["value"], "ann");
    let logs = assay(&data).args(["logs", "again-2"]).output().unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("hi ann 6"), "{text}");
}

/// `balance: durations`: after a run recorded how long each file took, `assay plan` spreads
/// the shard list by those durations and shows each worker's predicted load.
#[test]
fn plan_balances_shards_by_the_last_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("wf.yaml");
    let cases: String = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|f| {
            let time = if *f == "a" { "9" } else { "0.1" };
            format!("          <testcase classname=\"t\" name=\"test_{f}\" file=\"{f}.py\" time=\"{time}\"/>\n")
        })
        .collect();
    std::fs::write(
        &wf,
        format!(
            "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: balanced\nspec:\n  steps:\n  - name: report\n    shell: |\n      mkdir -p reports\n      cat > reports/results.xml <<'XML'\n      <testsuites>\n        <testsuite name=\"s\">\n{cases}        </testsuite>\n      </testsuites>\n      XML\n    artifacts:\n      paths: [\"reports/*.xml\"]\n  - parallel:\n      count: 2\n      balance: durations\n      shards:\n        files: [a.py, b.py, c.py, d.py, e.py, f.py]\n      shell: echo {{{{ join(shard.files, \" \") }}}}\n"
        ),
    )
    .unwrap();
    let plan = |data: &Path| {
        let out = assay(data)
            .arg("plan")
            .arg(&wf)
            .args(["-o", "json", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out)["root"]["steps"][1]["parallel"]["workers"].clone()
    };

    // No history yet: Testkube's split, no prediction.
    let workers = plan(&data);
    assert_eq!(
        workers[0]["shard"]["files"],
        serde_json::json!(["a.py", "b.py", "c.py"])
    );
    assert!(workers[0].get("predictedMs").is_none(), "{workers}");

    let out = assay(&data).arg("run").arg(&wf).arg("-q").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let workers = plan(&data);
    assert_eq!(workers[0]["shard"]["files"], serde_json::json!(["a.py"]));
    assert_eq!(workers[0]["predictedMs"], 9000, "{workers}");
    assert_eq!(
        workers[1]["shard"]["files"],
        serde_json::json!(["b.py", "c.py", "d.py", "e.py", "f.py"])
    );
    assert_eq!(workers[1]["predictedMs"], 500, "{workers}");
}

/// `balance: durations` with pytest's default report (xunit2: no `file`, a dotted `classname`):
/// the shard items are file paths, matched through the module path.
#[test]
fn plan_balances_files_by_pytest_classnames() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("wf.yaml");
    let cases: String = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|f| {
            let time = if *f == "a" { "3" } else { "0.5" };
            (0..2).map(move |n| {
                format!("          <testcase classname=\"tests.test_{f}.TestThing\" name=\"test_{n}\" time=\"{time}\"/>\n")
            })
        })
        .collect();
    std::fs::write(
        &wf,
        format!(
            "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: balanced-pytest\nspec:\n  steps:\n  - name: report\n    shell: |\n      mkdir -p reports\n      cat > reports/junit.xml <<'XML'\n      <testsuites name=\"pytest tests\">\n        <testsuite name=\"pytest\">\n{cases}        </testsuite>\n      </testsuites>\n      XML\n    artifacts:\n      paths: [\"reports/*.xml\"]\n  - parallel:\n      count: 2\n      balance: durations\n      shards:\n        files: [tests/test_a.py, tests/test_b.py, tests/test_c.py, tests/test_d.py]\n      shell: echo {{{{ join(shard.files, \" \") }}}}\n"
        ),
    )
    .unwrap();
    let out = assay(&data).arg("run").arg(&wf).arg("-q").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = assay(&data)
        .arg("plan")
        .arg(&wf)
        .args(["-o", "json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let workers = json(&out)["root"]["steps"][1]["parallel"]["workers"].clone();
    // Testkube's even split would be [a, b] (7 s) and [c, d] (2 s).
    assert_eq!(
        workers[0]["shard"]["files"],
        serde_json::json!(["tests/test_a.py"]),
        "{workers}"
    );
    assert_eq!(workers[0]["predictedMs"], 6000, "{workers}");
    assert_eq!(workers[1]["predictedMs"], 3000, "{workers}");
}

/// The Python of the test venv (`scripts/test.sh` makes it, with pytest from PyPI).
fn test_python() -> Option<String> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with pytest), or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

#[test]
fn a_real_pytest_report_becomes_test_cases() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("pytest.yaml");
    std::fs::write(
        &wf,
        r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: pytest-suite
spec:
  config:
    python: {type: string}
  content:
    files:
      - path: /data/suite/test_calc.py
        content: |
          def add(a, b):
              return a + b + (1 if a == 1 and b == 2 else 0)

          def test_adds():
              assert add(2, 2) == 4

          def test_carries():
              assert add(1, 2) == 3, "expected 3, got 4"
  container:
    workingDir: /data/suite
  steps:
    - name: Run pytest
      shell: '"{{ config.python }}" -m pytest -q -p no:cacheprovider --junitxml=reports/junit.xml test_calc.py'
      artifacts:
        paths: ["reports/*.xml"]
"#,
    )
    .unwrap();
    let out = assay(&data)
        .arg("run")
        .arg(&wf)
        .arg("--config")
        .arg(format!("python={python}"))
        .args(["-q", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = json(&out);
    let summary = &e["reports"][0]["data"]["summary"];
    assert_eq!(summary["tests"], 2, "{e:#}");
    assert_eq!(summary["failed"], 1, "{e:#}");

    let tests = assay(&data)
        .args([
            "get",
            "tests",
            "pytest-suite-1",
            "--status",
            "failed",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        tests.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tests.stderr)
    );
    let text = String::from_utf8_lossy(&tests.stdout);
    assert!(text.contains("test_carries"), "{text}");
    assert!(text.contains("expected 3, got 4"), "{text}");
    assert!(
        !text.contains("test_adds"),
        "only failures were asked for: {text}"
    );
}
