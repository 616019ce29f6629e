//! Testkube `Webhook` and `TestTrigger` documents through the real `assay` binary: `validate`
//! checks them with locations, `apply` stores them (and says what a TestTrigger does today).

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn assay(data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .env_remove("ASSAY_SERVER")
        .env_remove("ASSAY_CONTEXT");
    cmd
}

const DOCS: &str = "\
apiVersion: executor.testkube.io/v1
kind: Webhook
metadata:
  name: slack-failures
  labels: {team: qa}
spec:
  uri: https://hooks.example.com/T000/B000
  events: [end-testworkflow-failed, become-testworkflow-up]
  selector: team=qa
  payloadTemplate: '{\"text\": \"{{ workflowName }} {{ status }}\"}'
---
apiVersion: tests.testkube.io/v1
kind: TestTrigger
metadata:
  name: on-image-update
spec:
  resource: deployment
  resourceSelector: {name: web, namespace: prod}
  event: deployment-image-update
  action: run
  execution: testworkflow
  testSelector:
    name: smoke
";

#[test]
fn apply_and_validate_webhooks_and_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("hooks.yaml");
    std::fs::write(&file, DOCS).unwrap();

    assay(&data)
        .arg("validate")
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("2 documents, 2 valid, 0 invalid"));
    assay(&data)
        .args(["apply", "-f"])
        .arg(&file)
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains(
            "webhook slack-failures created\ntest trigger on-image-update created\n",
        ))
        .stderr(predicate::str::contains("assay server --kubernetes"));
    assay(&data)
        .args(["apply", "-f"])
        .arg(&file)
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("webhook slack-failures unchanged"));

    // A typo in an event: located, with a hint, nothing stored.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        DOCS.replace("slack-failures", "other")
            .replace("become-testworkflow-up", "become-testworkflow-upp"),
    )
    .unwrap();
    assay(&data)
        .args(["apply", "-f"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:8:37: unknown webhook event `become-testworkflow-upp`",
            bad.display()
        )))
        .stderr(predicate::str::contains(
            "did you mean `become-testworkflow-up`?",
        ));
}
