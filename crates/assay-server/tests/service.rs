//! Every way into the queue is an adapter over `assay-service`: runs through the API, MCP and
//! hooks are submitted by the same `Service::submit` (counted once in
//! `assay_executions_queued_total`, sensitive values held in memory, never stored), and a rerun
//! follows the CLI's rules (config keys the workflow no longer declares are dropped; a needed
//! sensitive value that was never recorded refuses the rerun with the CLI's message).

use crate::support;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use support::{TestServer, start};

/// A workflow labelled `app: held` whose step needs the sensitive `commit` (no default).
fn sensitive_workflow(name: &str) -> String {
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\n  labels: {{app: held}}\nspec:\n  config:\n    commit: {{type: string, sensitive: true}}\n  steps:\n  - name: check\n    shell: test -n \"{{{{ config.commit }}}}\"\n"
    )
}

/// A workflow declaring `keep` and, when `with_old`, `old`.
fn two_params(name: &str, with_old: bool) -> String {
    let old = if with_old {
        "    old: {type: string, default: o}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\nspec:\n  config:\n    keep: {{type: string, default: k}}\n{old}  steps:\n  - shell: echo {{{{ config.keep }}}}\n"
    )
}

async fn put_workflow(s: &TestServer, yaml: &str) {
    let name = assay_spec::load::load("w", yaml).documents[0].name.clone();
    let r = s
        .http
        .put(s.url(&format!("/v1/test-workflows/{name}")))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(yaml.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn rerun(s: &TestServer, id: &str) -> reqwest::Response {
    s.http
        .post(s.url(&format!("/v1/test-workflow-executions/{id}/rerun")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
}

/// `assay_executions_queued_total` of `workflow` on `/metrics` (0 when absent).
async fn queued_total(s: &TestServer, workflow: &str) -> u64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = format!("assay_executions_queued_total{{workflow=\"{workflow}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerun_drops_config_keys_the_workflow_no_longer_declares() {
    let s = start().await;
    assert_eq!(
        s.put_yaml(&two_params("evolving", true)).await.status(),
        StatusCode::CREATED
    );
    let first = s
        .run(
            "evolving",
            json!({"config": {"keep": "kept", "old": "gone"}}),
        )
        .await;
    let first = first["id"].as_str().unwrap().to_string();
    s.wait_status(&first, &["passed"]).await;
    // The workflow drops `old`: rerunning must not send it (it would be refused).
    put_workflow(&s, &two_params("evolving", false)).await;
    let r = rerun(&s, &first).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let again: Value = r.json().await.unwrap();
    let id = again["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    assert_eq!(done["configParams"]["keep"]["value"], "kept", "{done}");
    assert!(done["configParams"].get("old").is_none(), "{done}");
    assert_eq!(queued_total(&s, "evolving").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerun_refuses_a_needed_sensitive_value_with_the_clis_message() {
    let s = start().await;
    assert_eq!(
        s.put_yaml(&sensitive_workflow("needs-secret"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let first = s
        .run(
            "needs-secret",
            json!({"config": {"commit": "s3cr3t-value-77"}}),
        )
        .await;
    let first = first["id"].as_str().unwrap().to_string();
    s.wait_status(&first, &["passed"]).await;
    let r = rerun(&s, &first).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    // The same words `assay rerun` prints (both come from `assay_service::rerun_config`).
    assert!(
        detail.starts_with("needs-secret-1 used sensitive values, which are not recorded: commit"),
        "{detail}"
    );
    assert_eq!(queued_total(&s, "needs-secret").await, 1);
    s.assert_never_stored("s3cr3t-value-77");
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A hook delivery is submitted like an API run: its sensitive values are held in memory until
/// the run starts. Before, hooks recorded the run themselves, the value was lost at dequeue and
/// the run failed ("no longer compiles").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hook_delivery_holds_sensitive_values_like_every_submit() {
    let s = start().await;
    assert_eq!(
        s.put_yaml(&sensitive_workflow("hooked")).await.status(),
        StatusCode::CREATED
    );
    let secret = "it's-a-secret-to-everybody";
    let r = s
        .http
        .put(s.url("/v1/hooks/gh"))
        .bearer_auth(&s.admin)
        .json(&json!({"secret": secret, "selector": "app=held"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body =
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": "c0ffee-held-commit-4242"}))
            .unwrap();
    let r = s
        .http
        .post(s.url("/v1/hooks/gh"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", github_signature(secret, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let delivery: Value = r.json().await.unwrap();
    assert_eq!(delivery["outcome"], "started", "{delivery}");
    let id = delivery["executions"][0]["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    assert_eq!(queued_total(&s, "hooked").await, 1);
    s.assert_never_stored("c0ffee-held-commit-4242");
}

/// MCP's `run_workflow` inside a server is submitted by the service too: counted like the
/// others, its sensitive value held and never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mcp_run_is_submitted_by_the_service() {
    let s = start().await;
    assert_eq!(
        s.put_yaml(&sensitive_workflow("agent")).await.status(),
        StatusCode::CREATED
    );
    let args: assay_mcp::args::RunWorkflowArgs = serde_json::from_value(
        json!({"name": "agent", "config": {"commit": "mcp-held-value-9191"}, "wait": false}),
    )
    .unwrap();
    let answer = s.mcp.run_workflow(args).await.unwrap();
    assert!(answer.contains("started agent-1"), "{answer}");
    let done = s
        .wait_status("agent-1", &["passed", "failed", "aborted"])
        .await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    assert_eq!(queued_total(&s, "agent").await, 1);
    s.assert_never_stored("mcp-held-value-9191");
}
