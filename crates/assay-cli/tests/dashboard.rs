//! The dashboard in a real browser: the real `assay server` binary on 127.0.0.1 with a temp
//! data dir, driven by Debian's Chromium through Playwright (`playwright-core` from npm,
//! `crates/assay-server/tests/browser/`). The scenarios are in `dashboard.mjs`; this test
//! starts the server, stores the workflows, makes the tokens and fails when the script fails.
//!
//! Needs `/usr/bin/chromium` (or `ASSAY_TEST_CHROMIUM`) and `npm ci` in the browser folder —
//! `scripts/test.sh` installs both. Set `ASSAY_TEST_SKIP_BROWSER=1` to skip.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

use crate::run_support;
use run_support::{free_port, serve};

fn assay(data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

/// `greet` takes typed config and leaves artifacts (text and an HTML report that tries to
/// script its origin); `slow` prints a line every 300 ms for a minute (live logs, abort);
/// `flaky` fails the first time it runs for a commit and passes after (why it failed,
/// insights): the marks it leaves are files in `config.marks`.
const WORKFLOWS: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: greet
  labels:
    team: qa
description: Greets someone and leaves a report
spec:
  config:
    who: {type: string, default: world, description: whom to greet}
    times: {type: integer, default: 2}
    loud: {type: boolean, default: false}
    token: {type: string, sensitive: true, default: not-shown}
  events:
  - cronjob:
      cron: "0 6 * * 1-5"
  steps:
  - name: say hello
    shell: |
      for i in $(seq {{ config.times }}); do echo "hello {{ config.who }} $i"; done
      mkdir -p /data/artifacts
      echo "report for {{ config.who }}" > /data/artifacts/out.txt
      echo '<html><body><h1 id="r">Report</h1><script>document.title = "ran:" + document.cookie; try { localStorage.x = 1; document.body.dataset.storage = "yes" } catch (e) { document.body.dataset.storage = "no" }</script></body></html>' > /data/artifacts/report.html
    artifacts:
      paths: ["/data/artifacts/**"]
---
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: slow
  labels:
    team: perf
description: Ticks for a minute
spec:
  steps:
  - name: tick
    shell: 'for i in $(seq 200); do echo "tick $i"; sleep 0.3; done'
---
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: flaky
  labels:
    team: qa
description: Fails once per commit, then passes
spec:
  config:
    marks: {type: string}
    commit: {type: string}
  steps:
  - name: connect to the database
    shell: |
      echo "connecting for {{ config.commit }}"
      if [ -e "{{ config.marks }}/{{ config.commit }}" ]; then echo connected; exit 0; fi
      touch "{{ config.marks }}/{{ config.commit }}"
      echo "error: connection refused by db:5432"
      exit 1
"#;

#[test]
fn dashboard_in_a_real_browser() {
    if std::env::var("ASSAY_TEST_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("skipped: ASSAY_TEST_SKIP_BROWSER=1");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let browser_dir = root.join("crates/assay-server/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/test.sh (it runs npm ci there), \
         or set ASSAY_TEST_SKIP_BROWSER=1 to skip",
        browser_dir.display()
    );
    let chromium =
        std::env::var("ASSAY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/test.sh (it installs Debian's chromium), or set \
         ASSAY_TEST_SKIP_BROWSER=1 to skip"
    );
    let out = std::env::var("ASSAY_TEST_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".test-out"));
    let screenshots = out.join("screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::write(tmp.path().join("workflows.yaml"), WORKFLOWS).unwrap();
    let port = free_port();
    let _server = serve(&data, port);
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    assay(&data)
        .args(["apply", "-f"])
        .arg(tmp.path().join("workflows.yaml"))
        .assert()
        .success();
    let viewer = String::from_utf8(
        assay(&data)
            .args(["token", "create", "--role", "viewer", "--name", "watcher"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap()
    .trim()
    .to_string();
    assert!(!viewer.is_empty());
    // A runner token for the agent the /agents scenario starts (`ASSAY_BIN agent ...`).
    let runner = String::from_utf8(
        assay(&data)
            .args(["token", "create", "--role", "runner", "--name", "agent"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let runner_file = tmp.path().join("runner.token");
    std::fs::write(&runner_file, runner.trim()).unwrap();
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();

    let output = StdCommand::new("node")
        .arg("dashboard.mjs")
        .current_dir(&browser_dir)
        .env("ASSAY_URL", format!("http://127.0.0.1:{port}"))
        .env("ASSAY_ADMIN_TOKEN", &admin)
        .env("ASSAY_VIEWER_TOKEN", &viewer)
        .env("ASSAY_SCREENSHOTS", &screenshots)
        .env("ASSAY_TEST_CHROMIUM", &chromium)
        .env("ASSAY_BIN", assert_cmd::cargo::cargo_bin("assay"))
        .env("ASSAY_RUNNER_TOKEN_FILE", &runner_file)
        .env("ASSAY_MARKS", &marks)
        .output()
        .expect("failed to start node (install nodejs, or set ASSAY_TEST_SKIP_BROWSER=1)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "the browser scenarios failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("all dashboard scenarios passed"),
        "{stdout}"
    );
}
