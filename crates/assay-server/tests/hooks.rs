//! Inbound hooks over real HTTP on 127.0.0.1: a signed GitHub push runs the labelled workflow
//! with the branch and commit in its config; a badly signed one is refused (401), recorded and
//! runs nothing; GitLab's token form; TestTrigger documents are stored with a warning.

use crate::support;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use assay_store::TokenRole;
use support::{TestServer, start, workflow};

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

async fn put_hook(s: &TestServer, name: &str, body: Value) -> reqwest::Response {
    s.http
        .put(s.url(&format!("/v1/hooks/{name}")))
        .bearer_auth(&s.admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn deliver(
    s: &TestServer,
    name: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> reqwest::Response {
    let mut r = s
        .http
        .post(s.url(&format!("/v1/hooks/{name}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

async fn executions_of(s: &TestServer, workflow: &str) -> usize {
    s.get(&format!("/v1/test-workflows/{workflow}/executions"))
        .await["results"]
        .as_array()
        .map_or(0, Vec::len)
}

const SECRET: &str = "it's-a-secret-to-everybody";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn github_push_runs_the_labelled_workflow() {
    let s = start().await;
    for (name, labels) in [("web-smoke", "{app: web}"), ("api-smoke", "{app: api}")] {
        let r = s
            .post_yaml("/v1/test-workflows", &workflow(name, labels))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // Creating a hook needs an admin; its secret never comes back.
    let spec = json!({"secret": SECRET, "selector": "app=web", "events": ["push", "pull_request"]});
    let viewer = s.token(TokenRole::Viewer).await;
    let r = s
        .http
        .put(s.url("/v1/hooks/github"))
        .bearer_auth(&viewer)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = put_hook(&s, "github", spec.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET), "{text}");
    for path in ["/v1/hooks", "/v1/hooks/github"] {
        let text = s
            .http
            .get(s.url(path))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(SECRET), "{path}: {text}");
        assert!(text.contains("app=web"), "{path}: {text}");
    }
    let bad = put_hook(&s, "bad", json!({"secret": SECRET, "selector": ""})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // A real GitHub push payload's shape, signed as GitHub signs it.
    let push = json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "repository": {"id": 1, "name": "web", "full_name": "acme/web"},
        "pusher": {"name": "octocat"},
        "head_commit": {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "message": "Fix"}
    });
    let body = serde_json::to_vec(&push).unwrap();
    let signature = github_signature(SECRET, &body);
    let r = deliver(
        &s,
        "github",
        &[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &signature),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let delivery: Value = r.json().await.unwrap();
    assert_eq!(delivery["outcome"], "started", "{delivery}");
    assert_eq!(delivery["signature"], "valid");
    assert_eq!(delivery["event"], "push");
    let started = delivery["executions"].as_array().unwrap();
    assert_eq!(started.len(), 1, "{delivery}");
    assert_eq!(started[0]["workflow"], "web-smoke");
    let id = started[0]["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    assert_eq!(done["configParams"]["branch"]["value"], "main", "{done}");
    assert_eq!(
        done["configParams"]["commit"]["value"],
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    );
    assert_eq!(done["tags"]["hook"], "github");
    assert_eq!(
        done["runningContext"]["actor"]["name"], "hook github",
        "{done}"
    );
    assert_eq!(
        done["runningContext"]["actor"]["type"], "testtrigger",
        "{done}"
    );
    assert_eq!(executions_of(&s, "api-smoke").await, 0);

    // The same body signed with another secret: 401 JSON, recorded, nothing runs.
    let wrong = github_signature("not-the-secret", &body);
    let r = deliver(
        &s,
        "github",
        &[("x-github-event", "push"), ("x-hub-signature-256", &wrong)],
        &body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["status"], 401);
    assert!(
        err["detail"].as_str().unwrap().contains("does not match"),
        "{err}"
    );
    // Unsigned: 401 too.
    let r = deliver(&s, "github", &[("x-github-event", "push")], &body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A bearer token is no substitute for the signature.
    let r = s
        .http
        .post(s.url("/v1/hooks/github"))
        .bearer_auth(&s.admin)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(executions_of(&s, "web-smoke").await, 1);

    // Signed but not JSON: 400. Unknown hook: 404. An event the hook does not take: ignored.
    let junk = b"payload=%7B%7D";
    let r = deliver(
        &s,
        "github",
        &[("x-hub-signature-256", &github_signature(SECRET, junk))],
        junk,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = deliver(&s, "nope", &[("x-hub-signature-256", &signature)], &body).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], 404);
    let r = deliver(
        &s,
        "github",
        &[
            ("x-github-event", "issues"),
            ("x-hub-signature-256", &signature),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "ignored");
    // Larger than the body limit: refused before anything is read into memory.
    let huge = vec![b' '; assay_server::BODY_LIMIT + 1];
    let r = deliver(&s, "github", &[("x-hub-signature-256", &signature)], &huge).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(executions_of(&s, "web-smoke").await, 1);

    // The delivery log: newest first, for viewers, not without a token.
    let r = s
        .http
        .get(s.url("/v1/hooks/github/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let log: Value = s
        .http
        .get(s.url("/v1/hooks/github/deliveries"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["signature"].as_str().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("valid", "ignored"),
            ("valid", "rejected"),
            ("missing", "rejected"),
            ("missing", "rejected"),
            ("invalid", "rejected"),
            ("valid", "started"),
        ],
        "{log:#}"
    );
    let first = &log.as_array().unwrap()[5];
    assert_eq!(first["executions"][0]["id"], id);
    assert!(!log.to_string().contains(SECRET));
    let r = s
        .http
        .get(s.url("/v1/hooks/nope/deliveries"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The routes are in the OpenAPI document.
    let doc = s.get("/v1/openapi.json").await;
    for path in [
        "/v1/hooks/{name}",
        "/v1/hooks/{name}/deliveries",
        "/v1/webhooks/{name}/deliveries",
        "/v1/triggers",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gitlab_merge_request_with_token_and_mapped_config() {
    let s = start().await;
    let r = s
        .post_yaml("/v1/test-workflows", &workflow("api-mr", "{app: api}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // A config mapping: templates over the payload and the standard values.
    let r = put_hook(
        &s,
        "gitlab",
        json!({"secret": SECRET, "selector": "app=api", "events": ["merge_request"],
               "config": {"branch": "{{ payload.object_attributes.source_branch | upper }}",
                          "pr": "!{{ pr }}", "commit": "{{ commit[:7] }}"}}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let mr = json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "project": {"id": 1, "path_with_namespace": "acme/api"},
        "object_attributes": {"iid": 42, "source_branch": "fix-login", "target_branch": "main",
            "action": "open", "last_commit": {"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}}
    });
    let body = serde_json::to_vec(&mr).unwrap();
    let wrong = deliver(
        &s,
        "gitlab",
        &[
            ("x-gitlab-event", "Merge Request Hook"),
            ("x-gitlab-token", "it's-a-secret-to-everybody!"),
        ],
        &body,
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let r = deliver(
        &s,
        "gitlab",
        &[
            ("x-gitlab-event", "Merge Request Hook"),
            ("x-gitlab-token", SECRET),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let delivery: Value = r.json().await.unwrap();
    assert_eq!(delivery["event"], "merge_request");
    let id = delivery["executions"][0]["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed"]).await;
    let config = &done["configParams"];
    assert_eq!(config["branch"]["value"], "FIX-LOGIN", "{done}");
    assert_eq!(config["pr"]["value"], "!42");
    assert_eq!(config["commit"]["value"], "da15608");
    let log = s.get("/v1/hooks/gitlab/deliveries").await;
    let signatures: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["signature"].as_str().unwrap())
        .collect();
    assert_eq!(signatures, ["valid", "invalid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_triggers_are_stored_with_a_warning() {
    let s = start().await;
    let trigger = "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata:\n  name: on-deploy\n  labels: {team: qa}\nspec:\n  resource: deployment\n  resourceSelector: {name: web, namespace: prod}\n  event: deployment-image-update\n  action: run\n  execution: testworkflow\n  testSelector:\n    labelSelector:\n      matchLabels: {app: web}\n  concurrencyPolicy: allow\n  delay: 10s\n";
    let r = s.post_yaml("/v1/triggers", trigger).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let warning = r.headers()["warning"].to_str().unwrap().to_string();
    assert!(warning.contains("assay server --kubernetes"), "{warning}");
    let listed = s.get("/v1/triggers?selector=team%3Dqa").await;
    assert_eq!(listed[0]["spec"]["event"], "deployment-image-update");
    assert_eq!(
        s.post_yaml("/v1/triggers", trigger).await.status(),
        StatusCode::CONFLICT
    );
    // Located problems, like workflows.
    let r = s
        .post_yaml(
            "/v1/triggers",
            &trigger
                .replace("on-deploy", "typo")
                .replace("deployment-image-update", "deployment-image-updat"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["problems"][0]["line"], 9, "{body}");
    // A workflow endpoint does not take a trigger, nor the trigger endpoint a webhook.
    assert_eq!(
        s.post_yaml("/v1/test-workflows", trigger).await.status(),
        StatusCode::BAD_REQUEST
    );
    let webhook = "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {name: w}\nspec: {uri: 'http://127.0.0.1:9/x', events: [start-testworkflow]}\n";
    assert_eq!(
        s.post_yaml("/v1/triggers", webhook).await.status(),
        StatusCode::BAD_REQUEST
    );
    let r = s
        .http
        .delete(s.url("/v1/triggers/on-deploy"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// Issue 14, attack 3: a branch name is whatever the pusher chose, so it may be an expression
/// that would build a hundred million values. Payload fields are data: the run gets the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_expression_budget_a_hook_branch_name_is_data() {
    const BOMB: &str = r#"{{ len(map(range(10000), "range(10000)")) }}"#;
    let s = start().await;
    // Quoted for the shell too: the text reaches `echo` as it is.
    let yaml = workflow("web-smoke", "{app: web}").replace(
        r#"echo "branch={{ config.branch }} commit={{ config.commit }}""#,
        "echo 'branch={{ config.branch }}'",
    );
    assert!(yaml.contains("echo 'branch="), "{yaml}");
    let r = s.post_yaml("/v1/test-workflows", &yaml).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let spec = json!({"secret": SECRET, "selector": "app=web", "events": ["push"]});
    assert_eq!(
        put_hook(&s, "github", spec).await.status(),
        StatusCode::CREATED
    );
    let push = json!({
        "ref": format!("refs/heads/{BOMB}"),
        "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "repository": {"id": 1, "name": "web", "full_name": "acme/web"},
        "head_commit": {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "message": "x"}
    });
    let body = serde_json::to_vec(&push).unwrap();
    let signature = github_signature(SECRET, &body);
    let r = deliver(
        &s,
        "github",
        &[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &signature),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let delivery: Value = r.json().await.unwrap();
    assert_eq!(delivery["outcome"], "started", "{delivery}");
    let id = delivery["executions"][0]["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed", "aborted"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
    assert_eq!(done["configParams"]["branch"]["value"], BOMB, "{done}");
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the server must still answer");
}

/// The SQLite database's bytes on disk (with its write-ahead log).
fn database_bytes(s: &TestServer) -> u64 {
    ["assay.db", "assay.db-wal", "assay.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(s.data_dir().join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Issue 14: 3,000 badly signed deliveries with a huge `X-GitHub-Event` grew the database by
/// 198 MB. Now unverified deliveries are rate-limited per hook (429, not recorded), what is
/// recorded is cut, and a correctly signed delivery still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_unsigned_hook_flood_is_bounded() {
    let s = start().await;
    let r = s
        .post_yaml("/v1/test-workflows", &workflow("web-smoke", "{app: web}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = put_hook(
        &s,
        "github",
        json!({"secret": SECRET, "selector": "app=web"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = database_bytes(&s);

    let huge_event = "e".repeat(64 * 1024);
    let body = br#"{"ref": "refs/heads/main"}"#;
    let wrong = github_signature("not-the-secret", body);
    let (mut refused, mut limited) = (0, 0);
    for _ in 0..300 {
        let r = deliver(
            &s,
            "github",
            &[
                ("x-github-event", &huge_event),
                ("x-hub-signature-256", &wrong),
            ],
            body,
        )
        .await;
        match r.status() {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(wait >= 1);
                let err: Value = r.json().await.unwrap();
                assert_eq!(err["status"], 429, "{err}");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited > 0, "no 429 among 300 unverified deliveries");
    assert!(refused >= 20, "the burst is answered 401: {refused}");

    let deliveries = s.get("/v1/hooks/github/deliveries?limit=1000").await;
    let deliveries = deliveries.as_array().unwrap();
    // Only the deliveries let through are recorded.
    assert_eq!(
        deliveries.len(),
        refused,
        "limited deliveries are not stored"
    );
    assert!(deliveries.len() as i64 <= assay_store::MAX_DELIVERIES);
    for d in deliveries {
        let event = d["event"].as_str().unwrap();
        assert!(event.chars().count() <= 100 + assay_store::CUT_MARKER.chars().count());
        assert!(event.ends_with(assay_store::CUT_MARKER), "{event}");
        assert!(d["error"].as_str().unwrap().len() <= 1024 + assay_store::CUT_MARKER.len());
    }
    let grown = database_bytes(&s).saturating_sub(before);
    assert!(grown < 1024 * 1024, "the database grew by {grown} bytes");

    // The metrics count what was refused.
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "assay_hook_deliveries_limited_total{{hook=\"github\"}} {limited}"
        )),
        "{metrics}"
    );

    // The owner of the secret is not limited by the flood.
    let push = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": "abc"})).unwrap();
    let r = deliver(
        &s,
        "github",
        &[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &github_signature(SECRET, &push)),
        ],
        &push,
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let delivery: Value = r.json().await.unwrap();
    assert_eq!(delivery["outcome"], "started", "{delivery}");
    let id = delivery["executions"][0]["id"].as_str().unwrap();
    let done = s.wait_status(id, &["passed", "failed"]).await;
    assert_eq!(done["result"]["status"], "passed", "{done}");
}
