//! Issue 14, "what held (keep it holding)": every `/v1` route against every kind of
//! credential, artifact path traversal and oversize bodies, as regression tests.

use crate::support;

use assay_store::TokenRole;
use reqwest::{Method, StatusCode};

/// Routes with the role they need (hook deliveries are checked by signature: hooks.rs).
fn routes() -> Vec<(Method, &'static str, TokenRole)> {
    use TokenRole::*;
    vec![
        (Method::GET, "/v1/test-workflows", Viewer),
        (Method::POST, "/v1/test-workflows", Admin),
        (Method::PUT, "/v1/test-workflows", Viewer),
        (Method::GET, "/v1/test-workflows/held", Viewer),
        (Method::PUT, "/v1/test-workflows/held", Admin),
        (Method::DELETE, "/v1/test-workflows/nope", Admin),
        (Method::GET, "/v1/test-workflow-templates", Viewer),
        (Method::POST, "/v1/test-workflow-templates", Admin),
        (Method::PUT, "/v1/test-workflow-templates", Viewer),
        (Method::GET, "/v1/test-workflow-templates/nope", Viewer),
        (Method::PUT, "/v1/test-workflow-templates/nope", Admin),
        (Method::DELETE, "/v1/test-workflow-templates/nope", Admin),
        (Method::POST, "/v1/test-workflows/held/executions", Runner),
        (Method::GET, "/v1/test-workflows/held/executions", Viewer),
        (Method::GET, "/v1/test-workflows/held/metrics", Viewer),
        (Method::GET, "/v1/test-workflows/held/tags", Viewer),
        (Method::GET, "/v1/test-workflow-executions", Viewer),
        (Method::GET, "/v1/test-workflow-executions/nope", Viewer),
        (
            Method::POST,
            "/v1/test-workflow-executions/nope/abort",
            Runner,
        ),
        (
            Method::POST,
            "/v1/test-workflow-executions/nope/rerun",
            Runner,
        ),
        (
            Method::PATCH,
            "/v1/test-workflow-executions/nope/tags",
            Runner,
        ),
        (
            Method::GET,
            "/v1/test-workflow-executions/nope/logs",
            Viewer,
        ),
        (
            Method::GET,
            "/v1/test-workflow-executions/nope/artifacts",
            Viewer,
        ),
        (
            Method::GET,
            "/v1/test-workflow-executions/nope/artifacts/a.txt",
            Viewer,
        ),
        (
            Method::GET,
            "/v1/test-workflow-executions/nope/notifications",
            Viewer,
        ),
        (Method::GET, "/v1/hooks", Viewer),
        (Method::GET, "/v1/hooks/nope", Viewer),
        (Method::PUT, "/v1/hooks/nope", Admin),
        (Method::DELETE, "/v1/hooks/nope", Admin),
        (Method::GET, "/v1/hooks/nope/deliveries", Viewer),
        (Method::GET, "/v1/triggers", Viewer),
        (Method::POST, "/v1/triggers", Admin),
        (Method::GET, "/v1/triggers/nope", Viewer),
        (Method::PUT, "/v1/triggers/nope", Admin),
        (Method::DELETE, "/v1/triggers/nope", Admin),
        (Method::GET, "/v1/webhooks", Viewer),
        (Method::POST, "/v1/webhooks", Admin),
        (Method::GET, "/v1/webhooks/nope", Viewer),
        (Method::PUT, "/v1/webhooks/nope", Admin),
        (Method::DELETE, "/v1/webhooks/nope", Admin),
        (Method::GET, "/v1/webhooks/nope/deliveries", Viewer),
        (Method::GET, "/v1/quarantines", Viewer),
        (Method::POST, "/v1/quarantines", Admin),
        (Method::DELETE, "/v1/quarantines/nope", Admin),
        (Method::GET, "/v1/insights", Viewer),
        (Method::GET, "/v1/agents", Viewer),
        // Judging a gate only reads.
        (Method::POST, "/v1/gates/evaluate", Viewer),
        (Method::POST, "/v1/agents/nope/claim", Runner),
        (Method::POST, "/v1/agents/nope/heartbeat", Runner),
        (
            Method::POST,
            "/v1/agents/nope/executions/nope/events",
            Runner,
        ),
        (
            Method::PUT,
            "/v1/agents/nope/executions/nope/artifacts",
            Runner,
        ),
        (
            Method::POST,
            "/v1/agents/nope/executions/nope/execute",
            Runner,
        ),
    ]
}

const HELD: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: held\nspec:\n  steps:\n  - shell: echo held\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_every_v1_route_holds_the_role_matrix() {
    let s = support::start().await;
    assert_eq!(s.put_yaml(HELD).await.status(), StatusCode::CREATED);
    let viewer = s.token(TokenRole::Viewer).await;
    let runner = s.token(TokenRole::Runner).await;
    let (_, revoked) = s
        .store
        .create_token("revoked", TokenRole::Admin)
        .await
        .unwrap();
    assert!(s.store.revoke_token("revoked").await.unwrap());
    let send = |method: Method, path: &str, auth: Option<(&str, bool)>| {
        let mut r = s
            .http
            .request(method, s.url(path))
            .header("content-type", "application/json")
            .body("{}");
        match auth {
            Some((token, true)) => r = r.bearer_auth(token),
            // The login cookie, with this server's Origin (as its own pages send it).
            Some((token, false)) => {
                r = r
                    .header("cookie", format!("assay_token={token}"))
                    .header("origin", &s.base)
            }
            None => {}
        }
        async move { r.send().await.unwrap().status() }
    };
    for (method, path, needed) in routes() {
        let what = format!("{method} {path}");
        // No credential, an unknown one, a revoked admin token, as bearer or cookie: 401.
        assert_eq!(
            send(method.clone(), path, None).await,
            StatusCode::UNAUTHORIZED,
            "{what}: none"
        );
        for (token, bearer) in [
            ("assay_nope", true),
            (revoked.as_str(), true),
            (revoked.as_str(), false),
        ] {
            assert_eq!(
                send(method.clone(), path, Some((token, bearer))).await,
                StatusCode::UNAUTHORIZED,
                "{what}: {token} bearer={bearer}"
            );
        }
        for (role, token) in [
            (TokenRole::Viewer, viewer.as_str()),
            (TokenRole::Runner, runner.as_str()),
            (TokenRole::Admin, s.admin.as_str()),
        ] {
            for bearer in [true, false] {
                let status = send(method.clone(), path, Some((token, bearer))).await;
                if role < needed {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{what}: {} (bearer={bearer})",
                        role.as_str()
                    );
                } else {
                    assert!(
                        status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                        "{what}: {} (bearer={bearer}) got {status}",
                        role.as_str()
                    );
                }
            }
        }
    }
    // Nothing a refused call could have done happened: the workflow is as stored.
    let body = s.get("/v1/test-workflows/held").await;
    assert_eq!(body["metadata"]["name"], "held", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_artifact_paths_cannot_leave_the_execution() {
    let s = support::start().await;
    let flow = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: art\nspec:\n  steps:\n  - shell: mkdir -p out && echo ok > out/a.txt\n    artifacts:\n      paths: [\"out/*\"]\n";
    assert_eq!(s.put_yaml(flow).await.status(), StatusCode::CREATED);
    let e = s.run("art", serde_json::json!({})).await;
    let id = e["id"].as_str().unwrap().to_string();
    s.wait_status(&id, &["passed"]).await;
    for evil in [
        "../../../../etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "out/../../admin.token",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "..",
        "out/%2e%2e/%2e%2e/%2e%2e/assay.db",
        "..%5c..%5cassay.db",
        "out/..%00/a.txt",
        "./../admin.token",
        "out//../../admin.token",
    ] {
        let r = s
            .http
            .get(s.url(&format!(
                "/v1/test-workflow-executions/{id}/artifacts/{evil}"
            )))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{evil}: {status} {body}"
        );
        assert!(
            !body.contains("root:") && !body.contains("SQLite"),
            "{evil}"
        );
    }
    let r = s
        .http
        .get(s.url(&format!(
            "/v1/test-workflow-executions/{id}/artifacts/out/a.txt"
        )))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_oversize_bodies_are_413() {
    let s = support::start().await;
    let big = "x".repeat(assay_server::BODY_LIMIT + 1);
    for (method, path) in [
        (Method::POST, "/v1/test-workflows"),
        (Method::PUT, "/v1/test-workflows"),
        (Method::POST, "/v1/test-workflows/held/executions"),
        (Method::POST, "/v1/webhooks"),
        (Method::POST, "/v1/triggers"),
    ] {
        let r = s
            .http
            .request(method.clone(), s.url(path))
            .bearer_auth(&s.admin)
            .header("content-type", "application/yaml")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{method} {path}");
    }
}

/// A 403 says the role the request needs in `requiredRole`, so clients need not read `detail`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_required_role() {
    let s = support::start().await;
    assert_eq!(s.put_yaml(HELD).await.status(), StatusCode::CREATED);
    let viewer = s.token(TokenRole::Viewer).await;
    let runner = s.token(TokenRole::Runner).await;
    for (token, method, path, needed) in [
        (
            &viewer,
            Method::POST,
            "/v1/test-workflows/held/executions",
            "runner",
        ),
        (&runner, Method::PUT, "/v1/test-workflows/held", "admin"),
    ] {
        let r = s
            .http
            .request(method, s.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["requiredRole"], needed, "{body}");
    }
    // Other errors carry no role.
    let body = s
        .http
        .get(s.url("/v1/test-workflows/nope"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = body.json().await.unwrap();
    assert!(body.get("requiredRole").is_none(), "{body}");
}
