//! `get_test_results` and `list_flaky_tests` over executions that really ran and left JUnit
//! reports (the transport is tested by the Python SDK scripts; this is the tool layer).

use assay_mcp::args::{
    CompareExecutionsArgs, GetTestResultsArgs, ListFailuresSinceLastPassArgs, ListFlakyTestsArgs,
    TestHistoryArgs, WhyFailedArgs,
};
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
        [ -z "$failure" ]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_tools_answer_the_cause_in_a_few_kb() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let passed = run(&store, "pass").await;
    let failed = run(&store, "fail").await;
    let tools = Tools::new(store.clone(), ToolsConfig::default());

    // Passed on the same commit, fails now: flaky, with the evidence.
    let text = tools
        .why_failed(WhyFailedArgs {
            execution: failed.clone(),
        })
        .await
        .unwrap();
    println!("why_failed: {} bytes\n{text}", text.len());
    assert!(
        text.contains("class: flaky (rule passed-on-same-commit)"),
        "{text}"
    );
    assert!(text.contains("calc::test_carries"), "{text}");
    assert!(text.contains("AssertionError: expected 3, got 4"), "{text}");
    assert!(text.contains(&format!("last pass {passed}")), "{text}");
    assert!(text.contains("next: test_history"), "{text}");
    assert!(text.len() < 4096);

    let text = tools
        .test_history(TestHistoryArgs {
            workflow: "calc".into(),
            test: "calc::test_carries".into(),
            limit: None,
        })
        .await
        .unwrap();
    assert!(
        text.contains("2 runs shown (newest first), 1 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{failed} failed commit c1")),
        "{text}"
    );
    assert!(text.len() < 4096);

    let text = tools
        .compare_executions(CompareExecutionsArgs {
            before: passed.clone(),
            after: failed.clone(),
        })
        .await
        .unwrap();
    assert!(text.contains("config outcome: pass -> fail"), "{text}");
    assert!(text.contains("newly failing: calc::test_carries"), "{text}");

    let text = tools
        .list_failures_since_last_pass(ListFailuresSinceLastPassArgs {
            workflow: "calc".into(),
        })
        .await
        .unwrap();
    assert!(text.contains(&format!("last passed in {passed}")), "{text}");
    assert!(text.contains(&format!("first failure: {failed}")), "{text}");

    let err = tools
        .why_failed(WhyFailedArgs {
            execution: "calc-99".into(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("calc-99"), "{err}");
}
