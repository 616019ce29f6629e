//! `assay gate` (issue 19, quality gates) over real executions recorded in a real SQLite file:
//! the README's example as written (tests, a policy check and a secret scan in one workflow,
//! then the gate of the commit; the execution's dashboard page shows the three kinds of
//! result), a failing gate with its evidence (the README's second example), a test that became
//! flaky on a commit, bad input (a bad gate file, an unknown commit) as usage errors, and the
//! server: `POST /v1/gates/evaluate` for viewers (4xx on bad rules), `assay gate` through a
//! context, and the badge of a gate saved with `--gate NAME=FILE`.

use crate::run_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use run_support::{assay, free_port, http, serve, serve_with};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `PATH` with the `assay` under test first (workflow steps call it).
/// `PATH` with this build's `assay` first, then the Python that has pytest (the test venv's,
/// named by ASSAY_TEST_PYTHON): the machine the README's example assumes.
fn path_with_assay() -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
    let python = std::env::var("ASSAY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with pytest)")
    });
    let venv_bin = Path::new(&python).parent().unwrap();
    format!(
        "{}:{}:{}",
        bin_dir.display(),
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Run `assay ARGS` in `dir` on the store in `data`: exit code, stdout, stderr.
fn assay_in(dir: &Path, data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = assay()
        .current_dir(dir)
        .env("PATH", path_with_assay())
        .env("ASSAY_DATA_DIR", data)
        .args(args)
        .output()
        .expect("run assay");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of the README's code block that starts right after `opening` (its first line).
fn readme_block(opening: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let rest = readme
        .split(opening)
        .nth(1)
        .unwrap_or_else(|| panic!("the README has no block starting {opening:?}"));
    rest.lines()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A GitHub-token-shaped string assembled at run time (this file holds none).
fn fake_github_token() -> String {
    let mut s = String::from("ghp_");
    let alphabet = b"Zq8Lm3Xv7Rt2Wk9Pn4Bc6Hj5Gd1Fs0Ya";
    let mut i = 17usize;
    for _ in 0..36 {
        s.push(alphabet[i % alphabet.len()] as char);
        i = (i * 7 + 5) % 101;
    }
    s
}

#[test]
fn readme_example_runs_as_written_and_its_execution_page_shows_tests_policies_and_scan() {
    let data = tempfile::tempdir().unwrap();
    let commands = readme_block("```sh\nassay run examples/gates/workflow.yaml");
    let commands = format!("assay run examples/gates/workflow.yaml{commands}");
    let lines: Vec<&str> = commands.lines().collect();
    assert_eq!(lines.len(), 2, "{commands}");
    let mut outputs = Vec::new();
    for line in &lines {
        let mut cmd = Command::new("sh");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ASSAY_") && key != "ASSAY_STEP_USER" {
                cmd.env_remove(&key);
            }
        }
        let out = cmd
            .args(["-c", line])
            .current_dir(repo_root())
            .env("PATH", path_with_assay())
            .env("ASSAY_DATA_DIR", data.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        outputs.push((
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let (code, stdout, stderr) = &outputs[0];
    assert_eq!(*code, 0, "the example's run: {stdout}{stderr}");
    let (code, stdout, stderr) = &outputs[1];
    assert_eq!(*code, 0, "the gate: {stdout}{stderr}");
    let shown = readme_block(
        "```console\n$ assay gate --commit 4f2a9c1 --rules examples/gates/gate.yaml\n",
    );
    assert_eq!(stdout, &shown, "{stderr}");
    // The example leaves its project as it was (no bytecode, no pytest cache).
    let project = repo_root().join("examples/gates/project");
    for dir in ["src/__pycache__", "tests/__pycache__", ".pytest_cache"] {
        assert!(!project.join(dir).exists(), "{dir} was left behind");
    }

    // The README's gate format block is a gate file: every rule on, and api and e2e never ran.
    let opening = "```yaml\nkind: QualityGate             # optional: tells a gate file from a workflow (assay validate skips it)\n";
    let format = readme_block(opening);
    let file = data.path().join("format.yaml");
    std::fs::write(&file, format!("kind: QualityGate\n{format}")).unwrap();
    let (code, out, err) = assay_in(
        &repo_root(),
        data.path(),
        &[
            "gate",
            "--commit",
            "4f2a9c1",
            "--rules",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.matches("PASS  ").count(), 5, "{out}");
    assert!(out.contains("FAIL  requiredWorkflows: 2 of 2 did not pass\n        api: not run for commit 4f2a9c1\n"), "{out}");

    // -o json: the same verdict, structured.
    let (code, json, stderr) = assay_in(
        &repo_root(),
        data.path(),
        &[
            "gate",
            "--commit",
            "4f2a9c1",
            "--rules",
            "examples/gates/gate.yaml",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["gate"], "release");
    assert_eq!(v["executions"][0]["name"], "gate-example-1");
    assert_eq!(v["rules"].as_array().unwrap().len(), 6);
    let id = v["executions"][0]["id"].as_str().unwrap().to_string();

    // The execution's dashboard page shows the tests, the policy results and the scan's.
    let port = free_port();
    let _server = serve(data.path(), port);
    let admin = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    let (status, page) = http(
        port,
        "GET",
        &format!("/executions/{id}"),
        admin.trim(),
        None,
    );
    assert_eq!(status, 200, "{page}");
    for shown in [
        "tests.test_calc::test_add",
        "tests.test_calc::test_divide_by_zero",
        "pinned-images::autogen-pinned-tag Deployment/web",
        "resource-limits::autogen-memory-limit Deployment/web",
        "[low] validation error: containers need a memory limit",
        "github-token::no findings",
        "title=\"secret scan\"",
        "title=\"policy check\"",
    ] {
        assert!(page.contains(shown), "the page lacks {shown:?}");
    }
}

/// A project with a failing test and a committed token, run as workflow `shop` on `commit`.
fn shop_run(dir: &Path, data: &Path, commit: &str) -> (i32, String, String) {
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("config")).unwrap();
    std::fs::write(
        project.join("config/ci.env"),
        format!("# CI settings\nGH_TOKEN={}\n", fake_github_token()),
    )
    .unwrap();
    let junit = r#"<testsuite name="pytest" tests="3"><testcase classname="tests.test_cart" name="test_add"/><testcase classname="tests.test_cart" name="test_total"><failure message="assert 41 == 42">assert 41 == 42</failure></testcase><testcase classname="tests.test_cart" name="test_empty"/></testsuite>"#;
    let wf = dir.join("shop.yaml");
    std::fs::write(
        &wf,
        format!(
            r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: shop
spec:
  container:
    workingDir: {}
  steps:
  - name: Scan
    use:
    - name: assay/scan-secrets/v1
      config:
        paths: config
  - name: Tests
    condition: always
    shell: |
      mkdir -p /data/reports
      echo '{junit}' > /data/reports/junit.xml
      exit 1
    artifacts:
      workingDir: /data/reports
      paths: [junit.xml]
"#,
            project.display()
        ),
    )
    .unwrap();
    assay_in(
        dir,
        data,
        &[
            "run",
            wf.to_str().unwrap(),
            "--tag",
            &format!("commit={commit}"),
        ],
    )
}

#[test]
fn a_failing_gate_names_its_evidence_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let (code, out, err) = shop_run(d, &data, "c0ffee1");
    assert_eq!(code, 1, "{out}{err}");
    std::fs::write(
        d.join("gate.yaml"),
        "rules:\n  noFailingTests: true\n  noSecrets: true\n",
    )
    .unwrap();

    let (code, stdout, stderr) = assay_in(d, &data, &["gate", "shop-1", "--rules", "gate.yaml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    // The README's second example is this verdict.
    let shown = readme_block("```console\n$ assay gate shop-1 --rules gate.yaml\n");
    assert_eq!(stdout, shown, "{stderr}");
    assert!(!stdout.contains(&fake_github_token()), "the secret leaked");

    // By commit, as JSON: the same evidence, structured.
    let (code, json, stderr) = assay_in(
        d,
        &data,
        &[
            "gate",
            "--commit",
            "c0ffee1",
            "--rules",
            "gate.yaml",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(!json.contains(&fake_github_token()), "the secret leaked");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["target"], "commit c0ffee1");
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(rules[0]["rule"], "noFailingTests");
    assert_eq!(
        rules[0]["evidence"][0]["item"],
        "tests.test_cart::test_total"
    );
    assert_eq!(rules[0]["evidence"][0]["execution"], "shop-1");
    assert_eq!(rules[1]["rule"], "noSecrets");
    assert_eq!(
        rules[1]["evidence"][0]["item"],
        "github-token config/ci.env:2"
    );

    // Quarantined afterwards, the failing test no longer fails the gate; the notes say so.
    let (code, out, err) = assay_in(
        d,
        &data,
        &[
            "quarantine",
            "add",
            "tests.test_cart::test_total",
            "--workflow",
            "shop",
            "--reason",
            "flaky on CI, #12",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, stdout, stderr) = assay_in(d, &data, &["gate", "shop-1", "--rules", "gate.yaml"]);
    assert_eq!(code, 1, "the secret still fails it: {stdout}{stderr}");
    assert!(
        stdout.contains(
            "PASS  noFailingTests: 3 tests ran, none failing (1 quarantined failure not counted)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "note: quarantined, not counted: tests.test_cart::test_total (shop-1): flaky on CI, #12"
        ),
        "{stdout}"
    );

    // A gate that asks only for what passed passes on the same execution.
    std::fs::write(d.join("lenient.yaml"), "rules:\n  minPassRate: 60\n").unwrap();
    let (code, stdout, stderr) = assay_in(d, &data, &["gate", "shop-1", "--rules", "lenient.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("PASS  minPassRate (60%): 66.6% passed (2 of 3"),
        "{stdout}"
    );
}

#[test]
fn a_test_that_failed_and_passed_on_one_commit_is_new_flaky_and_the_rerun_supersedes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    // The fixture the server's gate tests share.
    let wf =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/workflows/flip.yaml");
    let run = |commit: &str, fail: bool| {
        let (code, out, err) = assay_in(
            d,
            &data,
            &[
                "run",
                wf.to_str().unwrap(),
                "--tag",
                &format!("commit={commit}"),
                "--config",
                &format!("fail={fail}"),
            ],
        );
        assert_eq!(code, i32::from(fail), "{out}{err}");
    };
    // A stable history first, then a failure and a pass on commit b2.
    run("a1", false);
    run("b2", true);
    run("b2", false);
    std::fs::write(
        d.join("gate.yaml"),
        "rules:\n  noFailingTests: true\n  noNewFlakyTests: true\n  requiredWorkflows: [flip]\n",
    )
    .unwrap();
    let (code, json, stderr) = assay_in(
        d,
        &data,
        &[
            "gate",
            "--commit",
            "b2",
            "--rules",
            "gate.yaml",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 1, "{json}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rules = v["rules"].as_array().unwrap();
    // flip-3 passed and supersedes flip-2 for results.
    assert_eq!(rules[0]["passed"], true, "{json}");
    assert_eq!(rules[2]["passed"], true, "{json}");
    assert_eq!(rules[1]["rule"], "noNewFlakyTests");
    assert_eq!(rules[1]["passed"], false, "{json}");
    assert_eq!(rules[1]["evidence"][0]["item"], "tests.test_io::test_read");
    assert_eq!(
        rules[1]["evidence"][0]["detail"],
        "passed and failed on commit b2"
    );
    assert_eq!(v["executions"][0]["name"], "flip-3", "{json}");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "flip-2 superseded by flip-3 (the latest of flip)"),
        "{json}"
    );
    // Commit a1 alone had nothing flaky.
    let (code, out, err) = assay_in(
        d,
        &data,
        &["gate", "--commit", "a1", "--rules", "gate.yaml"],
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn bad_gate_files_and_unknown_targets_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    std::fs::write(
        d.join("gate.yaml"),
        "rules:\n  noFailingTests: true\n  noFlakes: true\n",
    )
    .unwrap();
    let (code, stdout, stderr) = assay_in(
        d,
        &data,
        &["gate", "--commit", "abc", "--rules", "gate.yaml"],
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("gate.yaml:3:3: unknown field `noFlakes`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("noNewFlakyTests"),
        "{stderr}"
    );

    std::fs::write(d.join("gate.yaml"), "rules:\n  minPassRate: 150\n").unwrap();
    let (code, _, stderr) = assay_in(
        d,
        &data,
        &["gate", "--commit", "abc", "--rules", "gate.yaml"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("gate.yaml:2:"), "{stderr}");
    assert!(stderr.contains("from 0 to 100"), "{stderr}");

    std::fs::write(d.join("gate.yaml"), "rules: {noSecrets: true}\n").unwrap();
    let (code, _, stderr) = assay_in(
        d,
        &data,
        &["gate", "--commit", "abc", "--rules", "gate.yaml"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no execution is tagged commit=abc"),
        "{stderr}"
    );
    assert!(stderr.contains("--tag commit="), "{stderr}");

    let (code, _, stderr) = assay_in(d, &data, &["gate", "nope-9", "--rules", "gate.yaml"]);
    assert_eq!(code, 2, "{stderr}");

    let (code, _, stderr) = assay_in(
        d,
        &data,
        &["gate", "--commit", "abc", "--rules", "missing.yaml"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");

    let (code, _, stderr) = assay_in(d, &data, &["gate", "--rules", "gate.yaml"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn security_gates_are_judged_for_viewers_and_badges_name_saved_gates_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let (code, out, err) = shop_run(d, &data, "c0ffee1");
    assert_eq!(code, 1, "{out}{err}");
    std::fs::write(
        d.join("tests.yaml"),
        "name: tests\nrules: {noFailingTests: true}\n",
    )
    .unwrap();
    std::fs::write(d.join("lenient.yaml"), "rules: {minPassRate: 60}\n").unwrap();
    let token = |role: &str| {
        let (code, out, err) = assay_in(
            d,
            &data,
            &["token", "create", "--role", role, "--name", "ci"],
        );
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let viewer = token("viewer");
    // A bad saved gate stops the server from starting, with the file's place.
    std::fs::write(d.join("bad.yaml"), "rules:\n  noFlakes: true\n").unwrap();
    let (code, _, err) = assay_in(d, &data, &["server", "--gate", "bad=bad.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.yaml:2:3: unknown field `noFlakes`"),
        "{err}"
    );

    let port = free_port();
    let tests_gate = d.join("tests.yaml");
    let lenient_gate = d.join("lenient.yaml");
    let _server = serve_with(
        &data,
        port,
        &[
            "--gate",
            &format!("tests={}", tests_gate.display()),
            "--gate",
            &format!("lenient={}", lenient_gate.display()),
        ],
    );
    let post = |token: &str, body: &str| {
        http(
            port,
            "POST",
            "/v1/gates/evaluate",
            token,
            Some(("application/json", body)),
        )
    };

    // A viewer may judge (it only reads): the verdict, 200 even when the gate fails.
    let (status, body) = post(
        &viewer,
        r#"{"rules": "rules: {noFailingTests: true}", "execution": "shop-1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(
        v["rules"][0]["evidence"][0]["item"],
        "tests.test_cart::test_total"
    );
    // Rules as a JSON object, by commit.
    let (status, body) = post(
        &viewer,
        r#"{"rules": {"rules": {"minPassRate": 60}}, "commit": "c0ffee1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""passed":true"#), "{body}");
    assert!(!body.contains(&fake_github_token()), "the secret leaked");

    // Bad rules: 400 with the problem's place; bad targets: 400 and 404; no token: 401.
    let (status, body) = post(
        &viewer,
        r#"{"rules": "rules:\n  noFlakes: true\n", "commit": "c0ffee1"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["problems"][0]["line"], 2, "{body}");
    assert_eq!(e["problems"][0]["column"], 3, "{body}");
    assert!(
        e["problems"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("noNewFlakyTests"),
        "{body}"
    );
    let (status, body) = post(
        &viewer,
        r#"{"rules": "rules: {noSecrets: true}", "commit": "c0ffee1", "execution": "shop-1"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&viewer, r#"{"rules": "rules: {noSecrets: true}"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&viewer, r#"{"rules": 7, "commit": "c0ffee1"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &viewer,
        r#"{"rules": "rules: {noSecrets: true}", "commit": "nope"}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("no execution is tagged commit=nope"),
        "{body}"
    );
    let (status, _) = post(
        "",
        r#"{"rules": "rules: {noSecrets: true}", "commit": "c0ffee1"}"#,
    );
    assert_eq!(status, 401);

    // `assay gate` through a context: the same verdict and exit code.
    let config = d.join("contexts.yaml");
    let ctx = |args: &[&str]| {
        assay()
            .current_dir(d)
            .env("ASSAY_CONFIG", &config)
            .args(args)
            .output()
            .unwrap()
    };
    let url = format!("http://127.0.0.1:{port}");
    let token_file = d.join("viewer.token");
    std::fs::write(&token_file, &viewer).unwrap();
    let out = ctx(&[
        "context",
        "add",
        "ci",
        "--server",
        &url,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctx(&["gate", "shop-1", "--rules", "tests.yaml", "--context", "ci"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("gate tests on execution shop-1: shop-1 failed\nFAIL  noFailingTests"),
        "{stdout}"
    );

    // The badge of a saved gate, named by name only: a file path is not a gate.
    let (status, svg) = http(
        port,
        "GET",
        "/badges/gate.svg?gate=tests&commit=c0ffee1",
        &viewer,
        None,
    );
    assert_eq!(status, 200, "{svg}");
    assert!(
        svg.starts_with("<svg") && svg.contains("gate tests: failed"),
        "{svg}"
    );
    let (status, svg) = http(
        port,
        "GET",
        "/badges/gate.svg?gate=lenient&commit=c0ffee1",
        &viewer,
        None,
    );
    assert_eq!(status, 200, "{svg}");
    assert!(svg.contains("gate lenient: passed"), "{svg}");
    let (status, svg) = http(
        port,
        "GET",
        "/badges/gate.svg?gate=lenient&commit=nothing-here",
        &viewer,
        None,
    );
    assert_eq!(status, 200, "{svg}");
    assert!(svg.contains("gate lenient: no runs"), "{svg}");
    let path = format!(
        "/badges/gate.svg?gate={}&commit=c0ffee1",
        lenient_gate.display()
    );
    let (status, body) = http(port, "GET", &path, &viewer, None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("saved gates: lenient, tests"), "{body}");
    let (status, _) = http(
        port,
        "GET",
        "/badges/gate.svg?gate=tests&commit=c0ffee1",
        "",
        None,
    );
    assert_ne!(status, 200, "the badge needs a login");
}
