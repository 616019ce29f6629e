//! `execute` of stored workflows: each child is its own recorded execution with the config the
//! step gave it, started by the parent; a failing or unknown child fails the step, and a
//! workflow that executes itself stops at the depth limit.

use std::collections::BTreeMap;

use assay_runner::{MAX_EXECUTE_DEPTH, RunRequest, prepare};
use assay_spec::TemplateSet;
use assay_spec::model::Document;
use assay_store::{
    ContextType, DefinitionKind, Execution, ExecutionFilter, ExecutionStatus, StepStatus, Store,
    StoreConfig,
};

const CHILD: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: child
spec:
  config:
    greeting:
      type: string
    code:
      type: string
      default: "0"
  steps:
    - name: Greet
      shell: echo "{{ config.greeting }}"; exit {{ config.code }}
"#;

const SELF: &str = r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: ouroboros
spec:
  steps:
    - name: Again
      execute:
        workflows:
          - name: ouroboros
"#;

fn parent(execute: &str) -> String {
    format!(
        r#"
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: parent
spec:
  steps:
    - name: Run the child
      execute:
        workflows:
{execute}
    - name: After
      shell: echo after
"#
    )
}

async fn store(dir: &tempfile::TempDir) -> Store {
    let store = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    for yaml in [CHILD, SELF] {
        let name = if yaml.contains("name: child") {
            "child"
        } else {
            "ouroboros"
        };
        store
            .apply(DefinitionKind::Workflow, name, yaml, &BTreeMap::new())
            .await
            .unwrap();
    }
    store
}

async fn run(store: &Store, yaml: &str) -> Execution {
    let loaded = assay_spec::load::load("wf.yaml", yaml);
    let Document::TestWorkflow(workflow) = loaded.documents[0].document.clone() else {
        panic!("a workflow: {:?}", loaded.diagnostics);
    };
    let prepared = prepare(store, RunRequest::new(workflow, TemplateSet::new()))
        .await
        .unwrap();
    prepared.run(|_| {}).await.unwrap().execution
}

async fn executions_of(store: &Store, workflow: &str) -> Vec<Execution> {
    let filter = ExecutionFilter {
        workflow: Some(workflow.into()),
        ..ExecutionFilter::default()
    };
    let mut out = Vec::new();
    for s in store.list_executions(&filter).await.unwrap() {
        out.push(
            store
                .get_execution(&assay_store::ExecutionRef::Id(s.id.clone()))
                .await
                .unwrap(),
        );
    }
    out
}

fn step<'a>(exec: &'a Execution, name: &str) -> &'a assay_store::StepResult {
    exec.steps
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no step {name}: {:#?}", exec.steps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_runs_a_stored_workflow_as_its_own_execution() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(
        &store,
        &parent("          - name: child\n            config: {greeting: hello-from-parent}"),
    )
    .await;
    assert_eq!(exec.summary.status, ExecutionStatus::Passed, "{exec:#?}");
    assert_eq!(step(&exec, "Run the child").status, StepStatus::Passed);
    assert_eq!(step(&exec, "After").status, StepStatus::Passed);

    let children = executions_of(&store, "child").await;
    assert_eq!(children.len(), 1);
    let child = &children[0].summary;
    assert_eq!(child.status, ExecutionStatus::Passed);
    assert_eq!(
        child.config["greeting"].value.as_deref(),
        Some("hello-from-parent")
    );
    assert_eq!(child.running_context.kind, ContextType::Api);
    // Testkube's actor of an executed workflow: the parent execution, by name and id.
    assert_eq!(
        child.running_context.actor.as_deref(),
        Some(exec.summary.name.as_str())
    );
    assert_eq!(
        child.running_context.execution_id.as_deref(),
        Some(exec.summary.id.as_str())
    );
    assert_eq!(child.running_context.actor_type(), "testworkflowexecution");
}

/// An execution's work folder (its `TMPDIR` among others) is gone once the run has ended:
/// removed on the blocking pool and waited for, not left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_folder_is_gone_when_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(
        &store,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: leaves\nspec:\n  steps:\n  - shell: echo kept > \"$TMPDIR/left\"\n",
    )
    .await;
    assert_eq!(exec.summary.status, ExecutionStatus::Passed, "{exec:#?}");
    let work = dir.path().join("data").join("work");
    assert!(work.is_dir(), "no {}", work.display());
    let own = work.join(&exec.summary.id);
    assert!(!own.exists(), "{} was left behind", own.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_child_fails_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(
        &store,
        &parent("          - name: child\n            config: {greeting: bye, code: \"3\"}"),
    )
    .await;
    assert_eq!(exec.summary.status, ExecutionStatus::Failed);
    let s = step(&exec, "Run the child");
    assert_eq!(s.status, StepStatus::Failed);
    let error = s.error_message.clone().unwrap_or_default();
    assert!(
        error.contains("child") && error.contains("failed"),
        "{error}"
    );
    assert_eq!(step(&exec, "After").status, StepStatus::Skipped);
    let children = executions_of(&store, "child").await;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].summary.status, ExecutionStatus::Failed);
    assert_eq!(
        children[0].summary.config["code"].value.as_deref(),
        Some("3")
    );
    // The error names the child execution and where to look, not a copy number.
    let child = &children[0].summary;
    assert!(
        error.contains(&format!(
            "{} failed (`assay get execution {}`)",
            child.name, child.name
        )),
        "{error}"
    );
    assert!(!error.contains("#0"), "{error}");
}

/// The parent records which executions its `execute` steps started (a store link that a
/// reopened store, a server or a remote client reads back), and each child names its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_lists_its_children_and_each_child_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(
        &store,
        &parent(
            "          - name: child\n            matrix: {n: [\"0\", \"4\"]}\n            config: {greeting: hi, code: \"{{ matrix.n }}\"}",
        ),
    )
    .await;
    assert_eq!(exec.summary.status, ExecutionStatus::Failed);
    let step_ref = step(&exec, "Run the child").step_ref.clone();
    let error = step(&exec, "Run the child")
        .error_message
        .clone()
        .unwrap_or_default();
    drop(store);

    // A store opened afresh (another process, a server) reads the link back.
    let reopened = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let again = reopened
        .get_execution(&assay_store::ExecutionRef::Name(exec.summary.name.clone()))
        .await
        .unwrap();
    let mut children = again.children.clone();
    children.sort_by_key(|c| c.number);
    assert_eq!(children.len(), 2, "{again:#?}");
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["child-1", "child-2"]);
    for c in &children {
        assert_eq!(c.workflow, "child");
        assert_eq!(c.step_ref, step_ref);
        let recorded = executions_of(&reopened, "child")
            .await
            .into_iter()
            .find(|e| e.summary.id == c.id)
            .expect("the child is recorded");
        assert_eq!(recorded.summary.status, c.status);
        assert_eq!(
            recorded.summary.parent,
            Some(assay_store::ParentExecution {
                id: exec.summary.id.clone(),
                name: exec.summary.name.clone(),
                step_ref: step_ref.clone(),
            })
        );
        let view = assay_store::testkube::TestWorkflowExecution::from(&recorded);
        assert_eq!(
            view.test_workflow_execution_name.as_deref(),
            Some(exec.summary.name.as_str())
        );
    }
    let failed = children
        .iter()
        .find(|c| c.status == ExecutionStatus::Failed)
        .expect("the copy with code 4 failed");
    assert!(
        children.iter().any(|c| c.status == ExecutionStatus::Passed),
        "{children:#?}"
    );
    // Only the failing copy is named in the error, by its execution.
    assert!(
        error.contains(&format!("{} failed", failed.name)),
        "{error}"
    );
    assert_eq!(error.matches("assay get execution").count(), 1, "{error}");
    // The parent's JSON (-o json, REST) carries them too.
    let view = assay_store::testkube::TestWorkflowExecution::from(&again);
    assert_eq!(view.children.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_workflow_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(&store, &parent("          - name: no-such-workflow")).await;
    assert_eq!(exec.summary.status, ExecutionStatus::Failed);
    let s = step(&exec, "Run the child");
    assert_eq!(s.status, StepStatus::Failed);
    let error = s.error_message.clone().unwrap_or_default();
    assert!(error.contains("`no-such-workflow`"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_executes_itself_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(&store, SELF).await;
    assert_eq!(exec.summary.status, ExecutionStatus::Failed);
    let all = executions_of(&store, "ouroboros").await;
    assert_eq!(all.len(), MAX_EXECUTE_DEPTH, "one execution per level");
    assert!(
        all.iter()
            .all(|e| e.summary.status == ExecutionStatus::Failed)
    );
    let deepest = all
        .iter()
        .find(|e| e.summary.number == MAX_EXECUTE_DEPTH as i64)
        .expect("the deepest level");
    let error = step(deepest, "Again")
        .error_message
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("levels deep") && error.contains("ouroboros -> ouroboros"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_copy_of_a_matrix_gets_its_own_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let exec = run(
        &store,
        &parent(
            "          - name: child\n            matrix: {n: [1, 2]}\n            config: {greeting: \"copy-{{ matrix.n }}\"}",
        ),
    )
    .await;
    assert_eq!(exec.summary.status, ExecutionStatus::Passed, "{exec:#?}");
    let mut greetings: Vec<String> = executions_of(&store, "child")
        .await
        .iter()
        .filter_map(|e| e.summary.config["greeting"].value.clone())
        .collect();
    greetings.sort();
    assert_eq!(greetings, ["copy-1", "copy-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_the_parent_aborts_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let slow = CHILD.replace("name: child", "name: slow").replace(
        "echo \"{{ config.greeting }}\"; exit {{ config.code }}",
        "sleep 60",
    );
    store
        .apply(DefinitionKind::Workflow, "slow", &slow, &BTreeMap::new())
        .await
        .unwrap();
    let loaded = assay_spec::load::load(
        "wf.yaml",
        &parent("          - name: slow\n            config: {greeting: x}"),
    );
    let Document::TestWorkflow(workflow) = loaded.documents[0].document.clone() else {
        panic!("a workflow: {:?}", loaded.diagnostics);
    };
    let prepared = prepare(&store, RunRequest::new(workflow, TemplateSet::new()))
        .await
        .unwrap();
    let cancel = prepared.cancel_token();
    let watcher = store.clone();
    tokio::spawn(async move {
        // Abort once the child runs.
        for _ in 0..200 {
            let filter = ExecutionFilter {
                workflow: Some("slow".into()),
                ..ExecutionFilter::default()
            };
            let running = watcher.list_executions(&filter).await.unwrap();
            if running.iter().any(|e| e.status == ExecutionStatus::Running) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                cancel.cancel();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let exec = prepared.run(|_| {}).await.unwrap().execution;
    assert_eq!(exec.summary.status, ExecutionStatus::Aborted);
    let mut child = None;
    for _ in 0..100 {
        let all = executions_of(&store, "slow").await;
        if let Some(c) = all
            .into_iter()
            .find(|c| c.summary.status != ExecutionStatus::Running)
        {
            child = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let child = child.expect("the child ended");
    assert_eq!(child.summary.status, ExecutionStatus::Aborted, "{child:#?}");
}
