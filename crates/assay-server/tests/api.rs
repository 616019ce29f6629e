//! The server over real HTTP on 127.0.0.1 (started by `support`): auth per role, workflows,
//! runs through the queue, live notifications (replay, follow, resume), abort, errors, OpenAPI
//! and metrics.

use std::time::{Duration, Instant};

use assay_store::TokenRole;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support;
use support::{TestServer, start_with};

async fn start(max_concurrent: usize) -> TestServer {
    start_with(max_concurrent, assay_server::REQUEST_TIMEOUT).await
}

fn workflow(name: &str, shell: &str) -> String {
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\n  labels:\n    team: qa\nspec:\n  config:\n    greeting:\n      type: string\n      default: hello\n  steps:\n  - name: greet\n    shell: |\n      {shell}\n"
    )
}

/// Every `log` line of a notification stream (with its event id), and every result, until it
/// ends.
async fn collect_sse(resp: reqwest::Response) -> (Vec<String>, Vec<String>, Vec<Value>) {
    let mut lines = Vec::new();
    let mut ids = Vec::new();
    let mut results = Vec::new();
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = "";
            let mut id = None;
            let mut data = String::new();
            for l in block.lines() {
                if let Some(e) = l.strip_prefix("event: ") {
                    event = if e == "log" {
                        "log"
                    } else if e == "result" {
                        "result"
                    } else {
                        "other"
                    };
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data.push_str(d);
                } else if let Some(i) = l.strip_prefix("id: ") {
                    id = Some(i.to_string());
                }
            }
            let v: Value = match serde_json::from_str(&data) {
                Ok(v) => v,
                Err(_) => continue,
            };
            match event {
                "log" => {
                    lines.push(v["log"].as_str().unwrap().trim_end().to_string());
                    ids.push(id.expect("every log event has an id"));
                }
                "result" => results.push(v["result"].clone()),
                _ => {}
            }
        }
    }
    (lines, ids, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_per_role() {
    let s = start(2).await;
    let viewer = s.token(TokenRole::Viewer).await;
    let runner = s.token(TokenRole::Runner).await;
    assert_eq!(
        s.put_yaml(&workflow("auth", "echo hi")).await.status(),
        StatusCode::CREATED
    );

    // No token, a wrong token: 401 with a JSON body.
    let r = s
        .http
        .get(s.url("/v1/test-workflows"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert_eq!(body["title"], "Unauthorized");
    let r = s
        .http
        .get(s.url("/v1/test-workflows"))
        .bearer_auth("assay_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A viewer reads but may not run or write.
    let r = s
        .http
        .get(s.url("/v1/test-workflows"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .post(s.url("/v1/test-workflows/auth/executions"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("needs `runner`"),
        "{body}"
    );

    // A runner runs but may not change workflows.
    let r = s
        .http
        .post(s.url("/v1/test-workflows/auth/executions"))
        .bearer_auth(&runner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .delete(s.url("/v1/test-workflows/auth"))
        .bearer_auth(&runner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Revoked tokens stop working: at once when revoked through the server's own store, though
    // the viewer was accepted (and its lookup kept in memory) a moment ago.
    assert!(s.store.revoke_token("viewer-test").await.unwrap());
    let r = s
        .http
        .get(s.url("/v1/test-workflows"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // /health and /metrics need no token; the API description is public.
    assert_eq!(
        s.http.get(s.url("/health")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        s.http.get(s.url("/metrics")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let doc: Value = s
        .http
        .get(s.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/test-workflow-executions/{id}/notifications"].is_object());
    assert!(doc["paths"]["/v1/test-workflow-executions/{id}/artifacts/{path}"].is_object());
    assert!(doc["paths"]["/v1/test-workflow-executions/{id}/analysis"].is_object());
    assert!(doc["components"]["schemas"]["Analysis"].is_object());
    assert!(doc["paths"]["/v1/insights"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Insights"].is_object());
    let docs = s.http.get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workflows_crud_and_validation() {
    let s = start(2).await;
    assert_eq!(
        s.put_yaml(&workflow("crud", "echo hi")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.put_yaml(&workflow("crud", "echo hi")).await.status(),
        StatusCode::CONFLICT
    );

    // JSON works too.
    let json_doc = json!({"apiVersion": "testworkflows.testkube.io/v1", "kind": "TestWorkflow",
        "metadata": {"name": "other", "labels": {"team": "dev"}},
        "spec": {"steps": [{"shell": "echo json"}]}});
    let r = s
        .http
        .post(s.url("/v1/test-workflows"))
        .bearer_auth(&s.admin)
        .json(&json_doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let all = s.get("/v1/test-workflows").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let qa = s.get("/v1/test-workflows?selector=team%3Dqa").await;
    assert_eq!(qa.as_array().unwrap().len(), 1);
    assert_eq!(qa[0]["metadata"]["name"], "crud");
    let one = s.get("/v1/test-workflows/other").await;
    assert_eq!(one["spec"]["steps"][0]["shell"], "echo json");

    // Invalid documents: 400 with each problem at line:col.
    let bad = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: bad\nspec:\n  steps:\n  - name: x\n    shel: echo\n";
    let r = s.put_yaml(bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 400);
    let p = &body["problems"][0];
    assert_eq!(p["line"], 8, "{body}");
    assert_eq!(p["column"], 5, "{body}");
    let r = s
        .http
        .post(s.url("/v1/test-workflows"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 400);

    // Update, delete, 404s with JSON bodies.
    let r = s
        .http
        .put(s.url("/v1/test-workflows/crud"))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(workflow("crud", "echo changed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .put(s.url("/v1/test-workflows/nope"))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(workflow("crud", "echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .delete(s.url("/v1/test-workflows/crud"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s
        .http
        .get(s.url("/v1/test-workflows/crud"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["title"], "Not Found");
    let r = s
        .http
        .get(s.url("/v1/nothing-here"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], 404);

    // Request size limit.
    let huge = "x".repeat(assay_server::BODY_LIMIT + 10);
    let r = s
        .http
        .post(s.url("/v1/test-workflows"))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], 413);

    // Templates have the same endpoints.
    let tpl = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: tpl\nspec:\n  steps:\n  - shell: echo from template\n";
    let r = s
        .http
        .post(s.url("/v1/test-workflow-templates"))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(tpl)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        s.get("/v1/test-workflow-templates")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s
        .http
        .post(s.url("/v1/test-workflow-templates"))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(workflow("wrong-kind", "echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_through_the_api_and_follow_live() {
    let s = start(2).await;
    let shell = "for i in $(seq 1 20); do echo \"{{ config.greeting }} $i\"; sleep 0.1; done";
    assert_eq!(
        s.put_yaml(&workflow("live", shell)).await.status(),
        StatusCode::CREATED
    );
    let queued = s
        .run(
            "live",
            json!({"config": {"greeting": "hey"}, "tags": {"build": "7"}}),
        )
        .await;
    let id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(queued["workflow"]["name"], "live");
    assert_eq!(queued["tags"]["build"], "7");
    assert!(["queued", "running"].contains(&queued["result"]["status"].as_str().unwrap()));

    // An early follower, while it runs.
    let early = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/notifications")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::OK);
    assert_eq!(early.headers()["content-type"], "text/event-stream");
    let early = tokio::spawn(collect_sse(early));

    let done = s.wait_status(&id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    let expected: Vec<String> = (1..=20).map(|i| format!("hey {i}")).collect();

    let (lines, ids, results) = early.await.unwrap();
    assert_eq!(lines, expected);
    assert_eq!(results.last().unwrap()["status"], "passed");
    // Ids are `SEQ;STEP=OFFSET…` with SEQ the sum of the offsets: it grows with every line.
    let seqs: Vec<u64> = ids
        .iter()
        .map(|i| {
            let mut parts = i.split(';');
            let seq: u64 = parts.next().unwrap().parse().unwrap();
            let sum: u64 = parts
                .map(|p| p.rsplit_once('=').unwrap().1.parse::<u64>().unwrap())
                .sum();
            assert_eq!(seq, sum, "{i}");
            seq
        })
        .collect();
    assert_eq!(seqs.len(), 20);
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");

    // A late follower replays every line, then the stream ends.
    let late = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/notifications")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    let (late_lines, late_ids, late_results) = collect_sse(late).await;
    assert_eq!(late_lines, expected);
    assert_eq!(late_results.last().unwrap()["status"], "passed");

    // Resume after the 5th line: exactly the rest.
    let r = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/notifications")))
        .bearer_auth(&s.admin)
        .header("last-event-id", &late_ids[4])
        .send()
        .await
        .unwrap();
    let (rest, _, _) = collect_sse(r).await;
    assert_eq!(rest, expected[5..].to_vec());
    let r = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/notifications")))
        .bearer_auth(&s.admin)
        .header("last-event-id", "junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Logs as text, list with filters and paging.
    let text = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/logs")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hey 1\n") && text.contains("hey 20\n"),
        "{text}"
    );
    let second = s.run("live", json!({})).await;
    s.wait_status(second["id"].as_str().unwrap(), &["passed"])
        .await;
    let page = s
        .get("/v1/test-workflow-executions?workflow=live&pageSize=1")
        .await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["results"][0]["id"], second["id"]);
    let next = page["next"].as_str().unwrap();
    let page2 = s
        .get(&format!(
            "/v1/test-workflow-executions?workflow=live&pageSize=1&before={next}"
        ))
        .await;
    assert_eq!(page2["results"][0]["id"], id.as_str());
    assert!(page2.get("next").is_none());
    let passed = s.get("/v1/test-workflow-executions?status=passed").await;
    assert_eq!(passed["results"].as_array().unwrap().len(), 2);
    // The list is written from borrowed parts (`ListEntry`): it is exactly an `ExecutionsPage`
    // as serde writes one, field for field and in the same order.
    let raw = s
        .http
        .get(s.url("/v1/test-workflow-executions?workflow=live&pageSize=1"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "application/json");
    let raw = raw.text().await.unwrap();
    let typed: assay_api::ExecutionsPage = serde_json::from_str(&raw).unwrap();
    assert!(typed.next.is_some() && typed.totals.results >= 2, "{raw}");
    assert_eq!(serde_json::to_string(&typed).unwrap(), raw);
    let r = s
        .http
        .get(s.url("/v1/test-workflow-executions?status=bogus"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Rerun: same config and tags, a new number.
    let r = s
        .http
        .post(s.url(&format!("/v1/test-workflow-executions/{id}/rerun")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["tags"]["build"], "7");
    assert_eq!(again["number"], 3);
    let again_id = again["id"].as_str().unwrap();
    s.wait_status(again_id, &["passed"]).await;
    let text = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{again_id}/logs")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hey 20\n"), "{text}");
    let of_workflow = s.get("/v1/test-workflows/live/executions").await;
    assert_eq!(of_workflow["results"].as_array().unwrap().len(), 3);

    // Per-workflow metrics over the three ended runs.
    let m = s.get("/v1/test-workflows/live/metrics").await;
    assert_eq!(m["totalExecutions"], 3, "{m}");
    assert_eq!(m["failedExecutions"], 0);
    assert_eq!(m["passFailRatio"], 100.0);
    assert!(m["executionDurationP50ms"].as_i64().unwrap() >= 2000, "{m}");
    assert_eq!(m["executions"].as_array().unwrap().len(), 3);

    // Metrics count what ran.
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("assay_executions_total{workflow=\"live\",status=\"passed\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("assay_queue_depth 0"), "{metrics}");
    // Each step's duration, by workflow, step name and status.
    assert!(
        metrics.contains(
            "assay_step_duration_seconds_count{workflow=\"live\",step=\"greet\",status=\"passed\"} 3"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_bounds_running_and_abort_works_queued_and_running() {
    let s = start(1).await;
    assert_eq!(
        s.put_yaml(&workflow("slow", "echo start; sleep 30; echo never"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let first = s.run("slow", json!({})).await;
    let second = s.run("slow", json!({})).await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    s.wait_status(first_id, &["running"]).await;
    // One slot: the second waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = s
        .get(&format!("/v1/test-workflow-executions/{second_id}"))
        .await;
    assert_eq!(e["result"]["status"], "queued");
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("assay_executions_running 1"), "{metrics}");
    assert!(metrics.contains("assay_queue_depth 1"), "{metrics}");

    // Abort the queued one: aborted at once, never runs.
    let r: Value = s
        .http
        .post(s.url(&format!("/v1/test-workflow-executions/{second_id}/abort")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["outcome"], "aborted");
    s.wait_status(second_id, &["aborted"]).await;

    // Abort the running one: its runner stops it.
    let started = Instant::now();
    let r: Value = s
        .http
        .post(s.url(&format!("/v1/test-workflow-executions/{first_id}/abort")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["outcome"], "requested");
    let e = s
        .wait_status(first_id, &["aborted", "failed", "passed"])
        .await;
    assert_eq!(e["result"]["status"], "aborted", "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let logs = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{first_id}/logs")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(logs.contains("start") && !logs.contains("never"), "{logs}");

    // The slot is free again; the aborted queued one did not take it.
    let third = s.run("slow", json!({})).await;
    s.wait_status(third["id"].as_str().unwrap(), &["running"])
        .await;
    let e = s
        .get(&format!("/v1/test-workflow-executions/{second_id}"))
        .await;
    assert_eq!(e["result"]["status"], "aborted");
    assert!(e["result"].get("startedAt").is_none());
    s.http
        .post(s.url(&format!(
            "/v1/test-workflow-executions/{}/abort",
            third["id"].as_str().unwrap()
        )))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    s.wait_status(third["id"].as_str().unwrap(), &["aborted"])
        .await;

    // Bad input to runs: unknown workflow, unknown config, not JSON.
    let r = s
        .http
        .post(s.url("/v1/test-workflows/none/executions"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s
        .http
        .post(s.url("/v1/test-workflows/slow/executions"))
        .bearer_auth(&s.admin)
        .json(&json!({"config": {"nope": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .post(s.url("/v1/test-workflows/slow/executions"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .get(s.url("/v1/test-workflow-executions/0190a0b0-0000-7000-8000-000000000000"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn artifacts_list_and_download() {
    let s = start(2).await;
    let yaml = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: arts\nspec:\n  steps:\n  - shell: mkdir -p /data/out/sub && echo report > /data/out/sub/r.txt\n    artifacts:\n      workingDir: /data/out\n      paths:\n      - '**/*'\n";
    assert_eq!(s.put_yaml(yaml).await.status(), StatusCode::CREATED);
    let e = s.run("arts", json!({})).await;
    let id = e["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    let list = s
        .get(&format!("/v1/test-workflow-executions/{id}/artifacts"))
        .await;
    let path = list[0]["path"].as_str().unwrap().to_string();
    assert!(path.ends_with("r.txt"), "{list}");
    let r = s
        .http
        .get(s.url(&format!(
            "/v1/test-workflow-executions/{id}/artifacts/{path}"
        )))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "report\n");
    let r = s
        .http
        .get(s.url(&format!(
            "/v1/test-workflow-executions/{id}/artifacts/missing.txt"
        )))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_groups_wait_or_cancel_in_progress() {
    let s = start(4).await;
    let grouped = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: one-at-a-time\nspec:\n  concurrency:\n    max: 1\n  steps:\n  - shell: sleep 1.5\n";
    assert_eq!(s.put_yaml(grouped).await.status(), StatusCode::CREATED);
    let a = s.run("one-at-a-time", json!({})).await;
    let b = s.run("one-at-a-time", json!({})).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    s.wait_status(a, &["running"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Free global slots, but the group is full.
    let e = s.get(&format!("/v1/test-workflow-executions/{b}")).await;
    assert_eq!(e["result"]["status"], "queued");
    s.wait_status(a, &["passed"]).await;
    s.wait_status(b, &["passed"]).await;

    let newest_wins = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: newest-wins\nspec:\n  concurrency:\n    group: deploy\n    max: 1\n    cancelInProgress: true\n  steps:\n  - shell: sleep 30\n";
    assert_eq!(s.put_yaml(newest_wins).await.status(), StatusCode::CREATED);
    let old = s.run("newest-wins", json!({})).await;
    let old = old["id"].as_str().unwrap();
    s.wait_status(old, &["running"]).await;
    let new = s.run("newest-wins", json!({})).await;
    let new = new["id"].as_str().unwrap();
    let e = s.wait_status(old, &["aborted", "passed", "failed"]).await;
    assert_eq!(e["result"]["status"], "aborted", "{e}");
    s.wait_status(new, &["running"]).await;
    s.http
        .post(s.url(&format!("/v1/test-workflow-executions/{new}/abort")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    s.wait_status(new, &["aborted"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validate_without_storing_and_update_tags() {
    let s = start(2).await;
    let viewer = s.token(TokenRole::Viewer).await;
    let runner = s.token(TokenRole::Runner).await;

    // Validate: a viewer may check a document; nothing is stored either way.
    let check = |body: String, token: String| {
        let req = s
            .http
            .put(s.url("/v1/test-workflows"))
            .bearer_auth(token)
            .header("content-type", "text/yaml")
            .body(body);
        async move { req.send().await.unwrap() }
    };
    let r = check(workflow("checked", "echo ok"), viewer.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let broken = workflow("checked", "echo ok").replace("  steps:", "  stepz:");
    let r = check(broken, viewer.clone()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let problem = &body["problems"][0];
    assert_eq!(problem["line"], 12, "{body}");
    assert!(
        problem["message"].as_str().unwrap().contains("stepz"),
        "{body}"
    );
    let listed = s.get("/v1/test-workflows").await;
    assert_eq!(listed, json!([]), "validation stored nothing");
    let template = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: t\nspec:\n  steps:\n  - shell: echo t\n";
    let r = s
        .http
        .put(s.url("/v1/test-workflow-templates"))
        .bearer_auth(&viewer)
        .header("content-type", "text/yaml")
        .body(template)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A workflow is not a template.
    let r = s
        .http
        .put(s.url("/v1/test-workflow-templates"))
        .bearer_auth(&viewer)
        .header("content-type", "text/yaml")
        .body(workflow("checked", "echo ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Tags: replaced by a runner, refused to a viewer, filterable afterwards.
    assert_eq!(
        s.put_yaml(&workflow("tagged", "echo ok")).await.status(),
        StatusCode::CREATED
    );
    let e = s.run("tagged", json!({"tags": {"old": "1"}})).await;
    let id = e["id"].as_str().unwrap().to_string();
    s.wait_status(&id, &["passed"]).await;
    let patch = |body: &'static str, token: String| {
        let req = s
            .http
            .patch(s.url(&format!("/v1/test-workflow-executions/{id}/tags")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(
        patch(r#"{"env":"prod"}"#, viewer.clone()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        patch(r#"{"env":"prod","team":"qa"}"#, runner.clone())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let got = s.get(&format!("/v1/test-workflow-executions/{id}")).await;
    assert_eq!(got["tags"], json!({"env": "prod", "team": "qa"}));
    let by_new = s.get("/v1/test-workflow-executions?tag=env=prod").await;
    assert_eq!(by_new["results"].as_array().unwrap().len(), 1);
    let by_old = s.get("/v1/test-workflow-executions?tag=old=1").await;
    assert_eq!(by_old["results"], json!([]), "the old tag left the index");
    assert_eq!(
        s.get("/v1/test-workflows/tagged/tags").await,
        json!({"env": ["prod"], "team": ["qa"]})
    );
    for bad in [r#"["a"]"#, r#"{"a":1}"#, r#"{"a=b":"c"}"#] {
        let r = patch(bad, runner.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 400);
    }
    let r = s
        .http
        .patch(s.url("/v1/test-workflow-executions/no-such/tags"))
        .bearer_auth(&runner)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The venv's Python (made by `scripts/test.sh` with schemathesis from
/// `tests/requirements.txt`); `None` only when the run asked to skip Python tests.
fn test_python() -> Option<std::path::PathBuf> {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p.into()),
        _ if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") => None,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (it makes the venv with schemathesis), or set ASSAY_TEST_SKIP_PYTHON=1"
        ),
    }
}

/// schemathesis (PyPI) against `/v1/openapi.json` of a real server with an admin token and real
/// data: every check it has (no 5xx, status codes and bodies as documented, content types,
/// auth enforced, …) over generated requests, half of the names and ids drawn from what is
/// stored so that requests get past 404. The seed is fixed so a failure reproduces.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_holds_under_schemathesis() {
    let Some(python) = test_python() else { return };
    let schemathesis = python.with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: the venv lacks crates/assay-server/tests/requirements.txt",
        schemathesis.display()
    );
    let s = start(4).await;
    let yaml = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: st-flow\n  labels:\n    team: qa\nspec:\n  config:\n    who:\n      type: string\n      default: world\n  steps:\n  - shell: mkdir -p /data/out && echo hello {{config.who}} > /data/out/r.txt\n    artifacts:\n      workingDir: /data/out\n      paths:\n      - '*'\n";
    assert_eq!(s.put_yaml(yaml).await.status(), StatusCode::CREATED);
    let template = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: st-template\nspec:\n  steps:\n  - shell: echo t\n";
    let r = s
        .http
        .post(s.url("/v1/test-workflow-templates"))
        .bearer_auth(&s.admin)
        .header("content-type", "text/yaml")
        .body(template)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let e = s.run("st-flow", json!({"tags": {"k": "v"}})).await;
    let id = e["id"].as_str().unwrap().to_string();
    let name = e["name"].as_str().unwrap().to_string();
    s.wait_status(&id, &["passed"]).await;

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
headers = {{ Authorization = "Bearer {admin}" }}
seed = 20261123
request-timeout = 30.0

[generation]
max-examples = 40

[dictionaries.names]
values = ["st-flow", "st-template"]
[dictionaries.executions]
values = ["{id}", "{name}"]
[dictionaries.artifacts]
values = ["r.txt"]

[parameters]
"path.name" = {{ dictionary = "names", probability = 0.5 }}
"path.id" = {{ dictionary = "executions", probability = 0.5 }}
"path.path" = {{ dictionary = "artifacts", probability = 0.5 }}

# A document that fits the JSON shape can still be an invalid workflow (unknown fields, bad
# expressions, a name that differs from the path): Assay's validator answers 400 with the
# problems, which the document describes.
[[operations]]
include-name = ["POST /v1/test-workflows", "PUT /v1/test-workflows", "PUT /v1/test-workflows/{{name}}",
  "POST /v1/test-workflow-templates", "PUT /v1/test-workflow-templates", "PUT /v1/test-workflow-templates/{{name}}"]
checks.positive_data_acceptance.expected-statuses = [200, 201, 204, 400, 404, 409]

# Webhook and TestTrigger documents and hooks that fit the loose JSON shape are still checked
# (kind, apiVersion, event names, secret length, selector): a 400 names the problem.
[[operations]]
include-name = ["POST /v1/webhooks", "PUT /v1/webhooks/{{name}}", "POST /v1/triggers",
  "PUT /v1/triggers/{{name}}", "PUT /v1/hooks/{{name}}"]
checks.positive_data_acceptance.expected-statuses = [200, 201, 400, 404, 409]

# Agents: a claim may wait up to `waitMs` (20 s at most) for work, so few examples; 409 is a
# name another agent session holds, or an execution this session does not hold.
[[operations]]
include-path-regex = "^/v1/agents/"
generation.max-examples = 5
checks.positive_data_acceptance.expected-statuses = [200, 204, 400, 409]

# A gate document that fits the JSON shape can still be no gate (unknown rules, none on, both or
# neither of execution and commit): a 400 names the problem.
[[operations]]
include-name = "POST /v1/gates/evaluate"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404]

# A quarantine request that fits the JSON shape can still name no test or workflow (blank
# text), or an expiry that is no date or already past: a 400 names the problem.
[[operations]]
include-name = "POST /v1/quarantines"
checks.positive_data_acceptance.expected-statuses = [201, 400]

# Generated config values may not fit the workflow's parameters: a 400 names them.
[[operations]]
include-name = "POST /v1/test-workflows/{{name}}/executions"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404]
"#,
        admin = s.admin
    );
    let config_path = dir.path().join("schemathesis.toml");
    std::fs::write(&config_path, config).unwrap();
    let out = tokio::process::Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", "--checks", "all", "--no-color"])
        .arg(s.url("/v1/openapi.json"))
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(
        text.contains("Tested:"),
        "schemathesis did not test:\n{text}"
    );
}

/// A request that stalls mid-upload gets 408 with a JSON body once the timeout passes; a live
/// notification stream that outlasts the timeout is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_timeout_cuts_stalled_requests_not_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start_with(2, Duration::from_secs(1)).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/test-workflows HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: text/yaml\r\nContent-Length: 500\r\n\r\napiVersion: test",
        s.admin
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers a stalled upload")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"status\":408"), "{answer}");
    assert_eq!(
        s.get("/v1/test-workflows").await,
        json!([]),
        "nothing stored"
    );

    assert_eq!(
        s.put_yaml(&workflow(
            "slow",
            "for i in 1 2 3; do echo line $i; sleep 1; done"
        ))
        .await
        .status(),
        StatusCode::CREATED
    );
    let e = s.run("slow", json!({})).await;
    let id = e["id"].as_str().unwrap();
    let r = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/notifications")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (logs, _, results) = collect_sse(r).await;
    let text = logs.join("\n");
    for i in 1..=3 {
        assert!(text.contains(&format!("line {i}")), "{text}");
    }
    assert_eq!(results.last().unwrap()["status"], "passed");
}

/// Runs started by agents through `/mcp` wait in the server's queue like every other run: with
/// one slot taken, an MCP run stays `queued`, and aborting it through MCP ends it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mcp_runs_go_through_the_queue() {
    let s = start(1).await;
    assert_eq!(
        s.put_yaml(&workflow("hold", "sleep 30")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.put_yaml(&workflow("quick", "echo quick")).await.status(),
        StatusCode::CREATED
    );
    let holder = s.run("hold", json!({})).await;
    let holder = holder["id"].as_str().unwrap().to_string();
    s.wait_status(&holder, &["running"]).await;

    let args: assay_mcp::args::RunWorkflowArgs =
        serde_json::from_value(json!({"name": "quick", "wait": false})).unwrap();
    let answer = s.mcp.run_workflow(args).await.unwrap();
    assert!(answer.contains("started quick-1"), "{answer}");
    // The slot is taken: it waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = s.get("/v1/test-workflow-executions/quick-1").await;
    assert_eq!(queued["result"]["status"], "queued", "{queued}");
    let args: assay_mcp::args::AbortExecutionArgs =
        serde_json::from_value(json!({"execution": "quick-1"})).unwrap();
    let answer = s.mcp.abort_execution(args).await.unwrap();
    assert!(answer.contains("aborted"), "{answer}");
    let e = s.get("/v1/test-workflow-executions/quick-1").await;
    assert_eq!(e["result"]["status"], "aborted", "{e}");

    // A second MCP run goes once the slot frees up, and passes.
    let args: assay_mcp::args::RunWorkflowArgs =
        serde_json::from_value(json!({"name": "quick", "wait": false})).unwrap();
    s.mcp.run_workflow(args).await.unwrap();
    let r = s
        .http
        .post(s.url(&format!("/v1/test-workflow-executions/{holder}/abort")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let done = s
        .wait_status("quick-2", &["passed", "failed", "aborted"])
        .await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
}

/// An execution queued in the store by someone else (another server on the same database, or
/// one that stopped) is picked up by this server's queue without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executions_queued_elsewhere_are_adopted() {
    let s = start(2).await;
    let yaml = workflow("adopted", "echo adopted");
    assert_eq!(s.put_yaml(&yaml).await.status(), StatusCode::CREATED);
    let loaded = assay_spec::load::load("adopted.yaml", &yaml);
    let wf = loaded
        .documents
        .into_iter()
        .find_map(|d| match d.document {
            assay_spec::model::Document::TestWorkflow(w) => Some(w),
            _ => None,
        })
        .unwrap();
    let run = assay_runner::RunRequest::new(wf, assay_spec::TemplateSet::default());
    // Recorded straight in the store: this server's queue was never told.
    let queued = s
        .store
        .create_execution(assay_runner::queued_execution(&run).unwrap())
        .await
        .unwrap();
    let done = s
        .wait_status(&queued.id, &["passed", "failed", "aborted"])
        .await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    let logs = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{}/logs", queued.id)))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(logs.contains("adopted"), "{logs}");
}

/// A sensitive value: the workflows below check it reversed, so their text never holds it.
const SECRET: &str = "s3cr3t-HELD-7c1e";

/// A workflow whose sensitive `token` parameter has no default; it prints the token (masked in
/// the log) and checks that the run got the right value.
fn sensitive_workflow(name: &str, events: &str) -> String {
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\nspec:\n  config:\n    token: {{type: string, sensitive: true}}\n{events}  steps:\n  - name: use\n    shell: |\n      echo \"token is {{{{ config.token }}}}\"\n      test \"$(printf %s '{{{{ config.token }}}}' | rev)\" = e1c7-DLEH-t3rc3s\n      echo token matches\n"
    )
}

/// The run passed with the value it was given, which shows masked in its log.
async fn assert_ran_with_the_secret(s: &TestServer, id: &str) {
    let done = s.wait_status(id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    assert!(!done.to_string().contains(SECRET), "{done}");
    let logs = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/logs")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(logs.contains("token is *****"), "{logs}");
    assert!(logs.contains("token matches"), "{logs}");
    assert!(!logs.contains(SECRET), "{logs}");
}

/// Sensitive config values given to `POST …/executions` reach the queued run (held in memory
/// until it starts, even while it waits for a slot) and are stored nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sensitive_config_from_the_api_reaches_the_run_and_is_never_stored() {
    let s = start(1).await;
    assert_eq!(
        s.put_yaml(&workflow("hold", "sleep 30")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.put_yaml(&sensitive_workflow("secret-api", ""))
            .await
            .status(),
        StatusCode::CREATED
    );
    let holder = s.run("hold", json!({})).await;
    let holder = holder["id"].as_str().unwrap().to_string();
    s.wait_status(&holder, &["running"]).await;
    let queued = s
        .run("secret-api", json!({"config": {"token": SECRET}}))
        .await;
    assert!(!queued.to_string().contains(SECRET), "{queued}");
    let id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.get(&format!("/v1/test-workflow-executions/{id}")).await["result"]["status"],
        "queued"
    );
    s.http
        .post(s.url(&format!("/v1/test-workflow-executions/{holder}/abort")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_ran_with_the_secret(&s, &id).await;
    s.assert_never_stored(SECRET);
}

/// The dashboard's Run form hands sensitive values to the run the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sensitive_config_from_the_dashboard_run_form_reaches_the_run() {
    let s = start(2).await;
    assert_eq!(
        s.put_yaml(&sensitive_workflow("secret-form", ""))
            .await
            .status(),
        StatusCode::CREATED
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(s.url("/workflows/secret-form/run"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("config.token={SECRET}&tags="))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/executions/").unwrap().to_string();
    assert_ran_with_the_secret(&s, &id).await;
    s.assert_never_stored(SECRET);
}

/// `run_workflow` over `/mcp` (through the server's queue) hands sensitive values to the run;
/// the agent's answer does not repeat them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sensitive_config_from_mcp_reaches_the_run() {
    let s = start(2).await;
    assert_eq!(
        s.put_yaml(&sensitive_workflow("secret-mcp", ""))
            .await
            .status(),
        StatusCode::CREATED
    );
    let args: assay_mcp::args::RunWorkflowArgs = serde_json::from_value(
        json!({"name": "secret-mcp", "config": {"token": SECRET}, "wait": true}),
    )
    .unwrap();
    let answer = s.mcp.run_workflow(args).await.unwrap();
    assert!(!answer.contains(SECRET), "{answer}");
    assert!(answer.contains("passed"), "{answer}");
    assert_ran_with_the_secret(&s, "secret-mcp-1").await;
    s.assert_never_stored(SECRET);
}

/// A schedule's sensitive config values (from the stored workflow's event) reach its runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sensitive_config_from_a_schedule_reaches_the_run() {
    let s = start(2).await;
    let events = format!(
        "  events:\n  - cronjob:\n      cron: '* * * * * *'\n      config:\n        token: {SECRET}\n"
    );
    assert_eq!(
        s.put_yaml(&sensitive_workflow("secret-cron", &events))
            .await
            .status(),
        StatusCode::CREATED
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let page = s.get("/v1/test-workflows/secret-cron/executions").await;
        if let Some(id) = page["results"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|e| e["id"].as_str())
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the schedule never fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ran_with_the_secret(&s, &id).await;
}

/// Issue 14, attack 3: 40 bytes that would build a hundred million values (several GB).
const BOMB: &str = r#"{{ len(map(range(10000), "range(10000)")) }}"#;

/// One `tools/call` over `/mcp`'s streamable HTTP transport, as an MCP client sends it:
/// initialize, the initialized notification, then the call; the answer is an SSE `data:` line.
async fn mcp_call(s: &TestServer, token: &str, tool: &str, arguments: Value) -> Value {
    let post = |body: Value, session: Option<String>| {
        let mut r = s
            .http
            .post(s.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(id) = session {
            r = r.header("mcp-session-id", id);
        }
        async move { r.send().await.unwrap() }
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": "budget-test", "version": "0"}}});
    let r = post(init, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = r.text().await.unwrap();
    let r = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        session.clone(),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}});
    let r = post(call, session).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == 2)
        .unwrap_or_else(|| panic!("no answer to the call in {text}"))
}

async fn health_is_ok(s: &TestServer) {
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the server must still answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_expression_budget_validate_by_a_viewer_answers_and_the_server_stays_up() {
    let s = start(2).await;
    let viewer = s.token(TokenRole::Viewer).await;
    let yaml = workflow("bomb", &format!("echo '{BOMB}'"));

    // REST: the validate route (PUT without storing) answers.
    let r = s
        .http
        .put(s.url("/v1/test-workflows"))
        .bearer_auth(&viewer)
        .header("content-type", "text/yaml")
        .body(yaml.clone())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status() == StatusCode::BAD_REQUEST,
        "{}",
        r.status()
    );
    health_is_ok(&s).await;

    // MCP: `validate_workflow` is a viewer's tool; it reports the problem with its line.
    let answer = mcp_call(&s, &viewer, "validate_workflow", json!({"yaml": yaml})).await;
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("invalid: 1 problem"), "{answer}");
    assert!(text.contains("evaluation budget"), "{answer}");
    health_is_ok(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_expression_budget_config_values_of_a_run_are_data() {
    let s = start(2).await;
    let runner = s.token(TokenRole::Runner).await;
    let r = s
        .put_yaml(&workflow("greeter", "echo 'said: {{ config.greeting }}'"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // A runner gives the expression as a config value: it is text, as in Testkube.
    let r = s
        .http
        .post(s.url("/v1/test-workflows/greeter/executions"))
        .bearer_auth(&runner)
        .json(&json!({"config": {"greeting": BOMB}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let e: Value = r.json().await.unwrap();
    let id = e["id"].as_str().unwrap().to_string();
    let done = s.wait_status(&id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    let logs = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/logs")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(logs.contains(&format!("said: {BOMB}")), "{logs}");
    health_is_ok(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_expression_budget_running_a_stored_bomb_is_a_clear_error() {
    let s = start(2).await;
    let runner = s.token(TokenRole::Runner).await;
    let r = s
        .put_yaml(&workflow("bomb", &format!("echo '{BOMB}'")))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    // The server compiles the workflow to queue it: the budget ends that with a 4xx that names
    // the expression, instead of the server being killed.
    let r = s
        .http
        .post(s.url("/v1/test-workflows/bomb/executions"))
        .bearer_auth(&runner)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(body.contains("evaluation budget"), "{body}");
    assert!(body.contains("len(map(range(10000)"), "{body}");
    health_is_ok(&s).await;
}

/// Issue 13 #11 through MCP: `validate_workflow` lists the problems of every phase at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mcp_validate_reports_every_phase_at_once() {
    let s = start(2).await;
    let yaml = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: w\nspec:\n  container:\n    imagee: python:3\n  steps:\n  - name: Build\n    shell: echo {{ lenn(1) }}\n    timeout: 5 minutes\n  - shell: echo {{ step.biuld.outputs.x }}\n";
    let args: assay_mcp::args::ValidateWorkflowArgs =
        serde_json::from_value(json!({ "yaml": yaml })).unwrap();
    let out = s.mcp.validate_workflow(args).await.unwrap();
    assert!(out.starts_with("invalid: 4 problems"), "{out}");
    for wanted in [
        "unknown field `imagee`",
        "unknown function `lenn`",
        "duration \"5 minutes\"",
        "step id `biuld`",
    ] {
        assert!(out.contains(wanted), "{wanted}: {out}");
    }
}

/// Stored logs keep a tool's colour codes; the dashboard shows them as colour (spans with
/// classes from a fixed set), never as raw escapes, and text in the line stays escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_shows_log_colours_as_classes() {
    let s = start(2).await;
    let shell = r#"printf '\033[1;31mFAILED\033[0m <i>x</i> \033]0;title\007\033[32mok\033[0m\n'"#;
    assert_eq!(
        s.put_yaml(&workflow("colours", shell)).await.status(),
        StatusCode::CREATED
    );
    let run = s.run("colours", json!({})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let done = s.wait_status(&id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    let raw = s
        .http
        .get(s.url(&format!("/v1/test-workflow-executions/{id}/logs")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("\u{1b}[1;31mFAILED"), "stored raw: {raw:?}");
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
    assert!(
        page.contains(
            r#"<span class="line"><span class="ansi-fg-1 ansi-bold">FAILED</span> &#60;i&#62;x&#60;/i&#62; <span class="ansi-fg-2">ok</span></span>"#
        ) || page.contains(
            r#"<span class="line"><span class="ansi-fg-1 ansi-bold">FAILED</span> &lt;i&gt;x&lt;/i&gt; <span class="ansi-fg-2">ok</span></span>"#
        ),
        "{page}"
    );
    assert!(!page.contains('\u{1b}'), "{page}");
    // The filter matches the text, not the codes.
    let filtered = s
        .http
        .get(s.url(&format!("/executions/{id}?q=FAILED%20%3Ci")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("ansi-fg-1"), "{filtered}");
}
