//! `execute` through the server: a run queued over the REST API starts stored workflows as
//! executions of their own, and the parent's REST JSON, dashboard page and MCP answer name each
//! child (name, workflow, status, where to look); a child names its parent.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support;

const CHILD: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: exe-child\nspec:\n  config:\n    code: {type: string, default: '0'}\n  steps:\n  - name: work\n    shell: exit {{ config.code }}\n";

const PARENT: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: exe-parent\nspec:\n  steps:\n  - name: Run children\n    execute:\n      workflows:\n      - name: exe-child\n        matrix: {code: ['0', '3']}\n        config: {code: '{{ matrix.code }}'}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_parent_names_its_children_over_rest_dashboard_and_mcp() {
    let s = support::start().await;
    for yaml in [CHILD, PARENT] {
        assert_eq!(s.put_yaml(yaml).await.status(), StatusCode::CREATED);
    }
    let run = s.run("exe-parent", json!({})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let done = s.wait_status(&id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "failed", "{done:#}");

    // REST: each child by id, name, workflow, status and the step that started it.
    let children = done["children"]
        .as_array()
        .unwrap_or_else(|| panic!("no children: {done:#}"));
    assert_eq!(children.len(), 2, "{done:#}");
    let step_ref = children[0]["ref"].as_str().unwrap().to_string();
    assert_eq!(
        done["result"]["steps"][&step_ref]["status"], "failed",
        "{done:#}"
    );
    let mut names: Vec<&str> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["exe-child-1", "exe-child-2"]);
    let failed: Vec<&Value> = children
        .iter()
        .filter(|c| c["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{children:?}");
    let failed_name = failed[0]["name"].as_str().unwrap();
    for c in children {
        assert_eq!(c["workflow"], "exe-child");
        assert_eq!(c["ref"], step_ref.as_str());
        // Each child is there to look at, and names its parent.
        let child = s
            .get(&format!(
                "/v1/test-workflow-executions/{}",
                c["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(child["name"], c["name"]);
        assert_eq!(child["result"]["status"], c["status"]);
        assert_eq!(
            child["testWorkflowExecutionName"], done["name"],
            "{child:#}"
        );
        assert_eq!(child["parent"]["id"], id.as_str(), "{child:#}");
        assert_eq!(child["parent"]["ref"], step_ref.as_str(), "{child:#}");
    }
    // The step's error names the child execution, not a copy number.
    let error = done["result"]["steps"][&step_ref]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains(&format!(
            "{failed_name} failed (`assay get execution {failed_name}`)"
        )),
        "{error}"
    );
    assert!(!error.contains("#0") && !error.contains("#1"), "{error}");

    // Dashboard: a link to each child, and the child's page links back.
    let page = s
        .http
        .get(s.url(&format!("/executions/{id}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for c in children {
        let link = format!(
            r#"<a href="/executions/{}" data-child="{}">"#,
            c["id"].as_str().unwrap(),
            c["name"].as_str().unwrap()
        );
        assert!(page.contains(&link), "{link} not in {page}");
    }
    let child_page = s
        .http
        .get(s.url(&format!("/executions/{failed_name}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        child_page.contains(&format!(r#"<a href="/executions/{id}">exe-parent-1</a>"#)),
        "{child_page}"
    );

    // MCP: the answer names each child with its status, and points at the failed one.
    let args: assay_mcp::args::ExecutionArgs =
        serde_json::from_value(json!({"execution": "exe-parent-1"})).unwrap();
    let answer = s.mcp.get_execution(args).await.unwrap();
    for c in children {
        let line = format!(
            "executed: {} (workflow exe-child, step {step_ref}) {}",
            c["name"].as_str().unwrap(),
            c["status"].as_str().unwrap()
        );
        assert!(answer.contains(&line), "{line} not in {answer}");
    }
    let next = format!(r#"get_execution {{"execution":"{failed_name}"}}"#);
    assert!(answer.contains(&next), "{next} not in {answer}");
}
