//! `get_test_results` and `list_flaky_tests` over executions that really ran and left JUnit
//! reports (the transport is tested by the Python SDK scripts; this is the tool layer).

use assay_mcp::args::{GetTestResultsArgs, ListFlakyTestsArgs};
use assay_mcp::{Tools, ToolsConfig};
use assay_runner::{RunRequest, prepare};
use assay_spec::TemplateSet;
use assay_spec::model::Document;
use assay_store::{Store, StoreConfig};

/// A step that writes a JUnit report where `test_carries` passes or fails by `$OUTCOME`.
const WORKFLOW: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: calc
spec:
  config:
    outcome: {type: string, default: fail}
  steps:
    - name: Unit tests
      shell: |
        mkdir -p out
        if [ "{{ config.outcome }}" = fail ]; then
          failure='<failure message="AssertionError: expected 3, got 4">assert add(1, 2) == 3</failure>'
        fi
        cat > out/junit.xml <<XML
        <testsuites><testsuite name="calc">
          <testcase classname="calc" name="test_adds" time="0.1"/>
          <testcase classname="calc" name="test_carries" time="0.2">$failure</testcase>
        </testsuite></testsuites>
        XML
      artifacts:
        paths: ["out/*.xml"]
"#;

async fn run(store: &Store, outcome: &str) -> String {
    let loaded = assay_spec::load::load("calc.yaml", WORKFLOW);
    let Document::TestWorkflow(wf) = loaded.documents[0].document.clone() else {
        panic!("{:?}", loaded.diagnostics);
    };
    let mut req = RunRequest::new(wf, TemplateSet::new());
    req.config.insert("outcome".into(), outcome.into());
    req.tags.insert("commit".into(), "c1".into());
    let finished = prepare(store, req)
        .await
        .unwrap()
        .run(|_| {})
        .await
        .unwrap();
    finished.execution.summary.name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_results_and_flaky_tests_for_agents() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let failed = run(&store, "fail").await;
    let tools = Tools::new(store.clone(), ToolsConfig::default());

    let text = tools
        .get_test_results(GetTestResultsArgs {
            execution: failed.clone(),
        })
        .await
        .unwrap();
    assert!(text.contains("2 tests, 1 passed, 1 failed"), "{text}");
    assert!(text.contains("calc::test_carries"), "{text}");
    assert!(text.contains("AssertionError: expected 3, got 4"), "{text}");
    assert!(
        !text.contains("test_adds"),
        "passes are only counted: {text}"
    );
    assert!(text.contains("next: get_execution_logs"), "{text}");
    assert!(text.len() < 4096);

    // Passed and failed on the same commit: flaky.
    run(&store, "pass").await;
    let text = tools
        .list_flaky_tests(ListFlakyTestsArgs {
            workflow: Some("calc".into()),
        })
        .await
        .unwrap();
    assert!(text.contains("1 flaky tests:"), "{text}");
    assert!(
        text.contains("calc calc::test_carries: passed and failed on commit c1"),
        "{text}"
    );
    assert!(!text.contains("test_adds"), "{text}");

    let err = tools
        .get_test_results(GetTestResultsArgs {
            execution: "calc-99".into(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("calc-99"), "{err}");
}
