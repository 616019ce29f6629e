//! What a follower sees while an execution runs: a step that prints and then goes quiet must
//! not keep its first lines from readers until it prints again or ends.

use std::time::Duration;

use assay_runner::{RunRequest, prepare};
use assay_spec::TemplateSet;
use assay_spec::model::Document;
use assay_store::{ExecutionStatus, Store, StoreConfig};

const WORKFLOW: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: quiet-step
spec:
  steps:
    - id: quiet
      shell: |
        echo first line
        sleep 0.05
        echo second line
        sleep 3
        echo third line
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_a_quiet_step_reach_readers_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path().join("data"));
    let store = Store::open(config.clone()).await.unwrap();
    let loaded = assay_spec::load::load("wf.yaml", WORKFLOW);
    let Document::TestWorkflow(workflow) = loaded.documents[0].document.clone() else {
        panic!("a workflow: {:?}", loaded.diagnostics);
    };
    let prepared = prepare(&store, RunRequest::new(workflow, TemplateSet::new()))
        .await
        .unwrap();
    let id = prepared.execution().id.clone();
    let run = tokio::spawn(prepared.run(|_| {}));

    // Another handle, as `assay logs --follow` in another process would open.
    let reader = Store::open(config).await.unwrap();
    // The second line comes 50 ms after the first, inside the writer's batching window; then
    // the step is quiet for 3 s. Both lines must be readable well before it ends.
    let mut seen = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = reader
            .read_logs(&id, Some("quiet"))
            .await
            .unwrap_or_default();
        if seen.len() >= 2 {
            break;
        }
    }
    assert!(!run.is_finished(), "the step should still be sleeping");
    let texts: Vec<&str> = seen.iter().map(|l| l.text.trim_end()).collect();
    assert_eq!(
        texts,
        vec!["first line", "second line"],
        "while the step sleeps"
    );

    let finished = run.await.unwrap().unwrap();
    assert_eq!(finished.execution.summary.status, ExecutionStatus::Passed);
    let all = reader.read_logs(&id, Some("quiet")).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|l| l.text.trim_end()).collect();
    assert_eq!(texts, vec!["first line", "second line", "third line"]);
}
