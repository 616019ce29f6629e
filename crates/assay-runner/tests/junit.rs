//! JUnit artifacts are recognised by content, parsed and recorded with the execution; a broken
//! report is recorded as a report error and the execution goes on.

use assay_reports::CaseStatus;
use assay_runner::{RunRequest, prepare};
use assay_spec::TemplateSet;
use assay_spec::model::Document;
use assay_store::{ExecutionRef, ExecutionStatus, Store, StoreConfig};

const WORKFLOW: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: junit-ingest
spec:
  container:
    workingDir: /data
  steps:
    - name: Tests
      shell: |
        mkdir -p out
        cat > out/results.txt <<'XML'
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites><testsuite name="unit">
          <testcase classname="calc" name="adds" time="0.25"/>
          <testcase classname="calc" name="divides" time="0.5"><failure message="division by zero">trace</failure></testcase>
          <testcase classname="calc" name="later"><skipped/></testcase>
        </testsuite></testsuites>
        XML
        printf '<testsuite name="cut"><testcase classname="c" name="kept"/><testcase classname="c" name="lost">' > out/truncated.xml
        echo '<html><body>not a report</body></html>' > out/page.xml
      artifacts:
        paths: ["out/*"]
    - name: After
      shell: echo still running
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_artifacts_become_test_cases_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let loaded = assay_spec::load::load("wf.yaml", WORKFLOW);
    let Document::TestWorkflow(workflow) = loaded.documents[0].document.clone() else {
        panic!("a workflow: {:?}", loaded.diagnostics);
    };
    let mut req = RunRequest::new(workflow, TemplateSet::new());
    req.tags.insert("commit".into(), "abc123".into());
    let prepared = prepare(&store, req).await.unwrap();
    let finished = prepared.run(|_| {}).await.unwrap();
    let exec = finished.execution;
    assert_eq!(exec.status, ExecutionStatus::Passed, "{exec:#?}");
    assert_eq!(exec.artifacts.len(), 3);

    // Two JUnit reports (one named .txt: recognised by content), the HTML page ignored.
    let mut reports = exec.reports.clone();
    reports.sort_by(|a, b| a.file.cmp(&b.file));
    assert_eq!(reports.len(), 2, "{reports:#?}");
    assert_eq!(reports[0].file.as_deref(), Some("out/results.txt"));
    assert_eq!(reports[0].kind, "junit");
    let summary = &reports[0].data["summary"];
    assert_eq!(summary["tests"], 3);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["duration"], 750);
    assert!(reports[0].data.get("error").is_none());
    let error = reports[1].data["error"].as_str().unwrap();
    assert!(error.contains("truncated"), "{error}");
    assert_eq!(reports[1].data["summary"]["tests"], 1);

    let cases = store
        .test_cases(&ExecutionRef::Id(exec.id.clone()), &[])
        .await
        .unwrap();
    assert_eq!(cases.len(), 4);
    let divides = cases.iter().find(|c| c.case.name == "divides").unwrap();
    assert_eq!(divides.case.status, CaseStatus::Failed);
    assert_eq!(divides.case.message.as_deref(), Some("division by zero"));
    let history = store
        .test_history("junit-ingest", "calc::adds")
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].commit.as_deref(), Some("abc123"));
}

const LEAKY: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: junit-secret
spec:
  config:
    token: {type: string, sensitive: true}
  container:
    workingDir: /data
  steps:
    - name: Tests
      shell: |
        mkdir -p out
        cat > out/junit.xml <<XML
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites><testsuite name="api {{ config.token }}">
          <testcase classname="auth" name="login with {{ config.token }}" file="t/{{ config.token }}.py">
            <failure message="401 for token {{ config.token }}">Authorization: Bearer {{ config.token }}</failure>
            <system-out>token={{ config.token }}</system-out>
          </testcase>
        </testsuite></testsuites>
        XML
      artifacts:
        paths: ["out/*"]
"#;

/// Issue 14 #12: a test's report prints a secret (a failing assertion shows the header it
/// sent); the parsed test results held it in clear text, for any viewer to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_secrets_in_junit_reports_are_masked_in_test_results() {
    const SECRET: &str = "sk-live-9f8e7d6c5b4a";
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let loaded = assay_spec::load::load("wf.yaml", LEAKY);
    let Document::TestWorkflow(workflow) = loaded.documents[0].document.clone() else {
        panic!("a workflow: {:?}", loaded.diagnostics);
    };
    let mut req = RunRequest::new(workflow, TemplateSet::new());
    req.secrets.insert("token".into(), SECRET.into());
    let prepared = prepare(&store, req).await.unwrap();
    let finished = prepared.run(|_| {}).await.unwrap();
    let exec = finished.execution;
    assert_eq!(exec.status, ExecutionStatus::Passed, "{exec:#?}");
    let cases = store
        .test_cases(&ExecutionRef::Id(exec.id.clone()), &[])
        .await
        .unwrap();
    assert_eq!(cases.len(), 1, "{cases:#?}");
    let case = &cases[0].case;
    assert_eq!(case.status, CaseStatus::Failed);
    assert_eq!(case.name, "login with *****");
    assert_eq!(case.message.as_deref(), Some("401 for token *****"));
    let recorded = format!("{cases:?} {:?}", exec.reports);
    assert!(!recorded.contains(SECRET), "{recorded}");
    assert!(recorded.contains("Bearer *****"), "{recorded}");
}
