//! The REST answers on Testkube's paths against Testkube's published JSON schemas
//! (`data/testkube-schemas.json`, extracted from kubeshop/testkube's `api/v1/testkube.yaml`):
//! `testkube_schemas.py` (jsonschema from PyPI) fetches live answers of a real server —
//! executions passed, failed, queued and started by `execute`, the lists with filters, a run's
//! `POST` answer, stored workflows — and validates each. Where Assay differs on purpose (the
//! README's "REST answers and Testkube's schemas") the test pins the difference.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support;

const CHILD: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: tk-child\nspec:\n  steps:\n  - shell: echo child\n";

const PARENT: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: tk-parent\nspec:\n  steps:\n  - execute:\n      workflows:\n      - name: tk-child\n";

/// Steps, artifacts, an output, a JUnit report and a failing step when `code` is not 0.
const SHAPES: &str = r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: tk-shapes
  labels:
    team: qa
spec:
  config:
    code: {type: string, default: "0"}
  steps:
  - name: Tests
    shell: |
      mkdir -p /data/out
      printf '<testsuite name="s" tests="2" failures="1"><testcase classname="c" name="ok"/><testcase classname="c" name="bad"><failure message="no"/></testcase></testsuite>' > /data/out/junit.xml
      echo '"v"' > /testkube/outputs/answer
    artifacts:
      workingDir: /data/out
      paths: ['*.xml']
  - name: Verdict
    shell: exit {{ config.code }}
"#;

fn test_python() -> Option<PathBuf> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p.into()),
        _ if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with jsonschema), or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

/// One answer to validate: Testkube's schema name (`NAME[]`: an array of them), the request,
/// and the JSON paths (regular expressions) where Assay differs on purpose.
struct Check {
    schema: &'static str,
    method: &'static str,
    path: String,
    differs: &'static [&'static str],
}

fn check(schema: &'static str, method: &'static str, path: impl Into<String>) -> Check {
    Check {
        schema,
        method,
        path: path.into(),
        differs: &[],
    }
}

/// Validate each answer; the helper's output and whether all conform.
fn validate(python: &Path, s: &support::TestServer, checks: &[Check]) -> (bool, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let list: Vec<Value> = checks
        .iter()
        .map(|c| {
            json!({"schema": c.schema, "method": c.method, "path": c.path, "differs": c.differs})
        })
        .collect();
    let mut child = std::process::Command::new(python)
        .arg(dir.join("testkube_schemas.py"))
        .arg(dir.join("data/testkube-schemas.json"))
        .arg(&s.base)
        .arg(&s.admin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&list).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_answers_conform_to_testkubes_published_schemas() {
    let Some(python) = test_python() else { return };
    let s = support::start_with(1, assay_server::REQUEST_TIMEOUT).await;
    for yaml in [CHILD, PARENT, SHAPES] {
        assert_eq!(s.put_yaml(yaml).await.status(), StatusCode::CREATED);
    }
    let passed = s.run("tk-shapes", json!({"tags": {"k": "v"}})).await;
    let passed = passed["id"].as_str().unwrap().to_string();
    s.wait_status(&passed, &["passed"]).await;
    let failed = s.run("tk-shapes", json!({"config": {"code": "3"}})).await;
    let failed = failed["id"].as_str().unwrap().to_string();
    s.wait_status(&failed, &["failed"]).await;
    let parent = s.run("tk-parent", json!({})).await;
    let parent = parent["id"].as_str().unwrap().to_string();
    let done = s.wait_status(&parent, &["passed"]).await;
    let child = done["children"][0]["id"].as_str().unwrap().to_string();

    let mut checks = vec![
        check(
            "TestWorkflowExecutionsResult",
            "GET",
            "/v1/test-workflow-executions",
        ),
        check(
            "TestWorkflowExecutionsResult",
            "GET",
            "/v1/test-workflow-executions?status=failed,passed&pageSize=1",
        ),
        check(
            "TestWorkflowExecutionsResult",
            "GET",
            "/v1/test-workflows/tk-shapes/executions?tag=k=v",
        ),
        // Stored workflows are answered as the document (`spec` values as written in YAML);
        // Testkube's REST model boxes some of them (README: REST answers and Testkube's schemas).
        Check {
            differs: &["boxed"],
            ..check("TestWorkflow", "GET", "/v1/test-workflows/tk-shapes")
        },
        Check {
            differs: &["boxed"],
            ..check("TestWorkflow[]", "GET", "/v1/test-workflows")
        },
    ];
    for id in [&passed, &failed] {
        // A step's output keeps its value as written (here a string); Testkube's `output` holds
        // its own records with object values (README: REST answers and Testkube's schemas).
        checks.push(Check {
            differs: &[r"output/\d+/value"],
            ..check(
                "TestWorkflowExecution",
                "GET",
                format!("/v1/test-workflow-executions/{id}"),
            )
        });
    }
    for id in [&parent, &child] {
        checks.push(check(
            "TestWorkflowExecution",
            "GET",
            format!("/v1/test-workflow-executions/{id}"),
        ));
    }
    // A run's answer: the queued record.
    checks.push(check(
        "TestWorkflowExecution",
        "POST",
        "/v1/test-workflows/tk-child/executions",
    ));
    let (ok, text) = validate(&python, &s, &checks);
    assert!(
        ok,
        "answers that do not conform to Testkube's schemas:\n{text}"
    );
    assert!(
        text.contains(&format!("all {} answers conform", checks.len())),
        "{text}"
    );
    // The documented differences are there (else the README says too much).
    assert_eq!(text.matches("differs output/0/value").count(), 2, "{text}");
    assert!(
        text.contains("differs (boxed) spec/config/code/default"),
        "{text}"
    );

    // The counts are the store's, by status, over all pages.
    let list = s
        .get("/v1/test-workflows/tk-shapes/executions?pageSize=1")
        .await;
    assert_eq!(list["results"].as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(list["totals"]["results"], 2, "{list:#}");
    assert_eq!(list["totals"]["passed"], 1, "{list:#}");
    assert_eq!(list["totals"]["failed"], 1, "{list:#}");
    let filtered = s
        .get("/v1/test-workflows/tk-shapes/executions?status=failed")
        .await;
    assert_eq!(filtered["totals"]["results"], 2, "{filtered:#}");
    assert_eq!(filtered["filtered"]["results"], 1, "{filtered:#}");
    assert_eq!(filtered["filtered"]["failed"], 1, "{filtered:#}");
    assert_eq!(filtered["filtered"]["passed"], 0, "{filtered:#}");
    // Testkube's running context: the child's actor is its parent execution.
    let c = s
        .get(&format!("/v1/test-workflow-executions/{child}"))
        .await;
    assert_eq!(
        c["runningContext"]["actor"]["type"], "testworkflowexecution",
        "{c:#}"
    );
    assert_eq!(
        c["runningContext"]["actor"]["executionId"],
        parent.as_str(),
        "{c:#}"
    );
    assert_eq!(
        c["runningContext"]["interface"]["type"], "internal",
        "{c:#}"
    );
    let f = s
        .get(&format!("/v1/test-workflow-executions/{failed}"))
        .await;
    assert_eq!(f["result"]["predictedStatus"], "failed", "{f:#}");
    assert_eq!(f["result"]["pausedMs"], 0, "{f:#}");
}
