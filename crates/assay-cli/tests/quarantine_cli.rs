//! Quarantine through the real binary: a pytest workflow whose one failing test fails the run;
//! quarantined, the next run passes and says so (step, execution, summary, test cases); a
//! second, non-quarantined failure still fails it; an expired quarantine no longer applies; a
//! step that fails without a report still fails; bad input exits 2 with a hint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn python() -> Option<String> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("ASSAY_TEST_SKIP_PYTHON").is_some() => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with pytest), or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

pub(crate) fn assay(data: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assay"));
    c.env("ASSAY_DATA_DIR", data)
        .env("ASSAY_CONFIG", config)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    c
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A pytest project: `test_ok` passes, `test_wobbly` fails, `test_other` fails when
/// `OTHER=1`.
pub(crate) fn project(dir: &Path) -> PathBuf {
    let tests = dir.join("project");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        tests.join("test_shop.py"),
        "import os\n\ndef test_ok():\n    assert 1 + 1 == 2\n\n\
         def test_wobbly():\n    assert os.environ.get('FIXED') == '1', 'the clock drifted'\n\n\
         def test_other():\n    assert os.environ.get('OTHER') != '1', 'a real regression'\n",
    )
    .unwrap();
    tests
}

/// The workflow running pytest on the project with JUnit out, `OTHER` from config.
pub(crate) fn workflow(dir: &Path, project: &Path, python: &str) -> PathBuf {
    let wf = dir.join("shop.yaml");
    std::fs::write(
        &wf,
        format!(
            r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: shop
spec:
  config:
    other: {{type: string, default: "0"}}
  steps:
  - name: pytest
    container:
      env:
      - name: OTHER
        value: "{{{{ config.other }}}}"
    shell: |
      mkdir -p reports && out=$PWD/reports
      cd {project} && {python} -m pytest -q -p no:cacheprovider --junitxml=$out/junit.xml .
    artifacts:
      paths: ["reports/*.xml"]
"#,
            project = project.display()
        ),
    )
    .unwrap();
    wf
}

fn run(data: &Path, config: &Path, wf: &Path, extra: &[&str]) -> (Output, Value) {
    let out = assay(data, config)
        .arg("run")
        .arg(wf)
        .args(["-q", "-o", "json"])
        .args(extra)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (out, json)
}

#[test]
fn quarantined_failures_do_not_fail_the_run_and_say_so() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("contexts.yaml");
    let project = project(dir.path());
    let wf = workflow(dir.path(), &project, &python);
    let q = |args: &[&str]| {
        assay(&data, &config)
            .arg("quarantine")
            .args(args)
            .output()
            .unwrap()
    };

    // 1. One failing test fails the run.
    let (out, first) = run(&data, &config, &wf, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(first["result"]["status"], "failed");

    // Bad input: clear errors, exit 2, nothing stored.
    let bad = q(&["add", "test_shop::test_wobbly", "--reason", " "]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--reason is empty"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let bad = q(&[
        "add",
        "test_shop::test_wobbly",
        "--reason",
        "r",
        "--until",
        "next friday",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("`next friday` is not a date"), "{err}");
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let bad = q(&[
        "add",
        "test_shop::test_wobbly",
        "--reason",
        "r",
        "--until",
        "2001-01-01",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("already past"));
    let listed = q(&["list", "--all", "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );

    // 2. Quarantined: the run passes, and every view says why.
    let added = q(&[
        "add",
        "test_shop::test_wobbly",
        "--workflow",
        "shop",
        "--reason",
        "JIRA-7: the clock drifts on shared runners",
    ]);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added));
    let (out, second) = run(&data, &config, &wf, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(second["result"]["status"], "passed");
    assert_eq!(
        second["result"]["quarantinedFailures"],
        serde_json::json!(["test_shop::test_wobbly"])
    );
    let steps = second["result"]["steps"].as_object().unwrap();
    let step = steps
        .values()
        .find(|s| s.get("quarantinedFailures").is_some())
        .unwrap_or_else(|| panic!("no step says so: {second:#}"));
    assert_eq!(step["status"], "passed");
    assert_eq!(step["exitCode"], 1, "pytest's own exit code is kept");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quarantined failures (they did not fail the run): test_shop::test_wobbly"),
        "{err}"
    );
    let name = second["name"].as_str().unwrap();
    let logs = assay(&data, &config).args(["logs", name]).output().unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("note: the step failed only through quarantined tests, so it passes: test_shop::test_wobbly"),
        "{logs}"
    );
    // The case keeps its status and carries the quarantine.
    let cases = assay(&data, &config)
        .args(["get", "tests", name, "-o", "json"])
        .output()
        .unwrap();
    let cases: Value = serde_json::from_slice(&cases.stdout).unwrap();
    let wobbly = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "test_shop::test_wobbly")
        .unwrap();
    assert_eq!(wobbly["status"], "failed");
    assert_eq!(wobbly["quarantined"], true);
    let ok = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "test_shop::test_ok")
        .unwrap();
    assert!(ok.get("quarantined").is_none(), "{ok}");

    // 3. A second failure that is not quarantined fails the run.
    let (out, third) = run(&data, &config, &wf, &["--config", "other=1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(third["result"]["status"], "failed");
    assert!(third["result"].get("quarantinedFailures").is_none());
    let logs = assay(&data, &config)
        .args(["logs", third["name"].as_str().unwrap()])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("but so did tests not in quarantine (test_shop::test_other): the step fails"),
        "{logs}"
    );

    // 4. A step that fails without a report still fails.
    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: shop\nspec:\n  steps:\n  - shell: echo no report; exit 1\n",
    )
    .unwrap();
    let (out, _) = run(&data, &config, &plain, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Listing.
    let listed = q(&["list", "-o", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["test"], "test_shop::test_wobbly");
    assert_eq!(listed[0]["workflow"], "shop");
    assert_eq!(listed[0]["active"], true);
    assert_eq!(
        listed[0]["reason"],
        "JIRA-7: the clock drifts on shared runners"
    );
    let table = q(&["list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("TEST") && table.contains("test_shop::test_wobbly"),
        "{table}"
    );

    // 5. Expiry: replaced by an entry that ends in two seconds; after it, the run fails again.
    let until = chrono::Utc::now() + chrono::Duration::seconds(2);
    let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let added = q(&[
        "add",
        "test_shop::test_wobbly",
        "--workflow",
        "shop",
        "--reason",
        "JIRA-7",
        "--until",
        &until,
    ]);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added));
    std::thread::sleep(std::time::Duration::from_millis(3200));
    let (out, fourth) = run(&data, &config, &wf, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(fourth["result"]["status"], "failed");
    let active = q(&["list", "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&active.stdout).unwrap(),
        serde_json::json!([])
    );
    let all = q(&["list", "--all", "-o", "json"]);
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all[0]["active"], false);

    // 6. Removal; removing again names what is missing.
    let removed = q(&["remove", "test_shop::test_wobbly", "--workflow", "shop"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed));
    let again = q(&["remove", "test_shop::test_wobbly", "--workflow", "shop"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not quarantined for workflow `shop`")
    );
}

/// A workflow labelled `assay.io/auto-quarantine: "true"` whose test fails on odd runs and
/// passes on even ones (a state file counts them).
fn flip_workflow(dir: &Path, python: &str) -> PathBuf {
    let project = dir.join("flip");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("test_flip.py"),
        "import os\n\ndef test_wobbly():\n    path = os.environ['STATE']\n    \
         n = int(open(path).read()) if os.path.exists(path) else 0\n    \
         open(path, 'w').write(str(n + 1))\n    assert n % 2 == 1, f'run {n}'\n",
    )
    .unwrap();
    let wf = dir.join("flip.yaml");
    std::fs::write(
        &wf,
        format!(
            r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: flip
  labels:
    assay.io/auto-quarantine: "true"
spec:
  steps:
  - name: pytest
    container:
      env:
      - name: STATE
        value: {state}
    shell: |
      mkdir -p reports && out=$PWD/reports
      cd {project} && {python} -m pytest -q -p no:cacheprovider --junitxml=$out/junit.xml .
    artifacts:
      paths: ["reports/*.xml"]
"#,
            state = dir.join("flip-state").display(),
            project = project.display()
        ),
    )
    .unwrap();
    wf
}

#[test]
fn auto_quarantine_by_the_flaky_rule_with_the_rule_recorded() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("contexts.yaml");
    let wf = flip_workflow(dir.path(), &python);
    let list = || {
        let out = assay(&data, &config)
            .args(["quarantine", "list", "-o", "json"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let commit = ["--tag", "commit=c1"];

    // Failed once: broken so far, not flaky; nothing is quarantined.
    let (out, _) = run(&data, &config, &wf, &commit);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(list(), serde_json::json!([]));

    // Passed on the same commit: flaky; quarantined from the next run on, with the rule.
    let (out, _) = run(&data, &config, &wf, &commit);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auto-quarantined: test_flip::test_wobbly until"),
        "{err}"
    );
    let entries = list();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries:#}");
    let entry = &entries[0];
    assert_eq!(entry["test"], "test_flip::test_wobbly");
    assert_eq!(entry["workflow"], "flip");
    assert_eq!(entry["createdBy"], "assay auto-quarantine");
    let rule = entry["rule"].as_str().unwrap();
    assert!(
        rule.starts_with(
            "flaky: passed and failed on the same commit c1 (1 failure(s) in 2 run(s)"
        ),
        "{rule}"
    );
    let until = chrono::DateTime::parse_from_rfc3339(entry["until"].as_str().unwrap()).unwrap();
    let days = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((13 * 24..=14 * 24).contains(&days), "{days}h");

    // The next failure is quarantined: the run passes and says so; no second entry is made.
    let (out, json) = run(&data, &config, &wf, &commit);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        json["result"]["quarantinedFailures"],
        serde_json::json!(["test_flip::test_wobbly"])
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("auto-quarantined:"));
    assert_eq!(list().as_array().unwrap().len(), 1);
}

/// The README's worked example, as written: its workflow file and its shell lines, run by bash
/// with `assay` on the PATH and a fresh data dir; each line's exit code and what its comment
/// promises.
#[test]
fn readme_quarantine_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("```yaml\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: clock\n")
        .expect("the README has the quarantine example");
    let body = &readme[start + "```yaml\n".len()..];
    let yaml = &body[..body.find("```").unwrap()];
    let script = &body[body.find("```sh\n").unwrap() + "```sh\n".len()..];
    let script = &script[..script.find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clock.yaml"), yaml).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_assay"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let lines: Vec<&str> = script.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 5, "{script}");
    let mut outs = Vec::new();
    for line in &lines {
        let out = Command::new("bash")
            .args(["-c", line])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("ASSAY_DATA_DIR", dir.path().join("data"))
            .env("ASSAY_CONFIG", dir.path().join("contexts.yaml"))
            .env("NO_COLOR", "1")
            .env_remove("ASSAY_CONTEXT")
            .env_remove("ASSAY_DATABASE")
            .env_remove("ASSAY_ARTIFACTS")
            .output()
            .unwrap();
        outs.push(out);
    }
    let err = |i: usize| String::from_utf8_lossy(&outs[i].stderr).into_owned();
    let out = |i: usize| String::from_utf8_lossy(&outs[i].stdout).into_owned();
    assert_eq!(outs[0].status.code(), Some(1), "{}", text(&outs[0]));
    assert!(err(0).contains("clock-1 failed"), "{}", err(0));
    for (i, o) in outs.iter().enumerate().skip(1) {
        assert_eq!(o.status.code(), Some(0), "{}: {}", lines[i], text(o));
    }
    assert!(err(2).contains("clock-2 passed"), "{}", err(2));
    assert!(
        err(2).contains("quarantined failures (they did not fail the run): clock::drift"),
        "{}",
        err(2)
    );
    let listed = out(3);
    assert!(listed.starts_with("TEST"), "{listed}");
    for column in ["WORKFLOW", "UNTIL", "REASON", "BY"] {
        assert!(listed.lines().next().unwrap().contains(column), "{listed}");
    }
    assert!(
        listed.contains("clock::drift")
            && listed.contains("2099-12-31")
            && listed.contains("JIRA-12"),
        "{listed}"
    );
    let after = assay(&dir.path().join("data"), &dir.path().join("contexts.yaml"))
        .args(["quarantine", "list", "--all", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&after.stdout).unwrap(),
        serde_json::json!([])
    );
}
