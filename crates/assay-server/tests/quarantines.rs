//! `/v1/quarantines` on a real server: viewers read, only admins add and lift (403 JSON
//! otherwise), bad bodies are 400 JSON naming the problem, and a run the server queues passes
//! when its only failure is quarantined, saying so on the step and the execution.

use assay_store::TokenRole;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support;

/// A workflow whose step writes a JUnit report with one failing test (`clock::drift`) and
/// exits 1.
const CLOCK: &str = r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: clock
spec:
  steps:
  - name: tests
    shell: |
      mkdir -p reports
      printf '%s\n' '<testsuites><testsuite name="clock" tests="2" failures="1">' \
        '<testcase classname="clock" name="ticks"/>' \
        '<testcase classname="clock" name="drift"><failure message="drifted">x</failure></testcase>' \
        '</testsuite></testsuites>' > reports/junit.xml
      exit 1
    artifacts:
      paths: ["reports/*.xml"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quarantines_over_rest_with_roles_and_a_queued_run() {
    let s = support::start().await;
    let viewer = s.token(TokenRole::Viewer).await;
    let runner = s.token(TokenRole::Runner).await;
    let url = s.url("/v1/quarantines");
    let post = |token: &str, body: String| {
        s.http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Roles: a viewer reads; viewers and runners may not add or lift.
    let r = s.http.get(&url).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    let good = json!({"test": "clock::drift", "workflow": "clock", "reason": "JIRA-4"}).to_string();
    for token in [&viewer, &runner] {
        let r = post(token, good.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 403);
        assert!(
            body["detail"].as_str().unwrap().contains("needs `admin`"),
            "{body}"
        );
        let r = s
            .http
            .delete(s.url("/v1/quarantines/clock::drift"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    // Bad bodies: 400 with a JSON body that says what is wrong.
    for (body, needle) in [
        ("not json".to_string(), "is not a quarantine request"),
        (json!({"test": "t"}).to_string(), "missing field `reason`"),
        (
            json!({"test": "t", "reason": "r", "extra": 1}).to_string(),
            "unknown field",
        ),
        (
            json!({"test": "t", "reason": "  "}).to_string(),
            "needs a reason",
        ),
        (
            json!({"test": "", "reason": "r"}).to_string(),
            "test to quarantine is empty",
        ),
        (
            json!({"test": "t", "reason": "r", "until": "someday"}).to_string(),
            "is not a date",
        ),
        (
            json!({"test": "t", "reason": "r", "until": "2001-01-01"}).to_string(),
            "already past",
        ),
        (
            json!({"test": "t".repeat(2000), "reason": "r"}).to_string(),
            "at most",
        ),
    ] {
        let r = post(&s.admin, body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["status"], 400);
        assert!(
            answer["detail"].as_str().unwrap().contains(needle),
            "{body}: {answer}"
        );
    }
    assert!(s.store.list_quarantines(true).await.unwrap().is_empty());

    // A run the server queues: failed, then passed once its one failure is quarantined.
    assert_eq!(s.put_yaml(CLOCK).await.status(), StatusCode::CREATED);
    let first = s.run("clock", json!({})).await;
    let first = s
        .wait_status(first["id"].as_str().unwrap(), &["passed", "failed"])
        .await;
    assert_eq!(first["result"]["status"], "failed");

    let r = post(&s.admin, good.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let entry: Value = r.json().await.unwrap();
    assert_eq!(entry["test"], "clock::drift");
    assert_eq!(entry["workflow"], "clock");
    assert_eq!(entry["active"], true);
    assert_eq!(entry["createdBy"], "admin");

    let second = s.run("clock", json!({})).await;
    let second = s
        .wait_status(second["id"].as_str().unwrap(), &["passed", "failed"])
        .await;
    assert_eq!(second["result"]["status"], "passed", "{second:#}");
    assert_eq!(
        second["result"]["quarantinedFailures"],
        json!(["clock::drift"])
    );
    let step = second["result"]["steps"]
        .as_object()
        .unwrap()
        .values()
        .find(|st| st.get("quarantinedFailures").is_some())
        .unwrap_or_else(|| panic!("no step says so: {second:#}"));
    assert_eq!(step["status"], "passed");
    assert_eq!(step["exitCode"], 1);
    // The dashboard's execution page says so too, and marks the case.
    let page = s
        .http
        .get(s.url(&format!("/executions/{}", second["id"].as_str().unwrap())))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "<dt>Quarantined failures</dt><dd id=\"quarantined\"><code>clock::drift</code>"
        ),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"label\">quarantined</span>"),
        "{page}"
    );

    // The list, for a viewer; a test name with a slash is lifted through its encoded path.
    let r = post(
        &s.admin,
        json!({"test": "tests/test_x.py::test_y", "reason": "r", "until": "2999-01-01"})
            .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let listed: Value = s
        .http
        .get(&url)
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tests: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["clock::drift", "tests/test_x.py::test_y"]);
    assert_eq!(listed[1]["until"], "2999-01-01T00:00:00.000Z");
    assert!(listed[1].get("workflow").is_none());
    let r = s
        .http
        .delete(s.url("/v1/quarantines/tests%2Ftest_x.py::test_y"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The entry is for one workflow: lifting it needs that workflow.
    let r = s
        .http
        .delete(s.url("/v1/quarantines/clock::drift"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not quarantined for every workflow"),
        "{body}"
    );
    let r = s
        .http
        .delete(s.url("/v1/quarantines/clock::drift?workflow=clock"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(s.store.list_quarantines(true).await.unwrap().is_empty());

    // In the OpenAPI document.
    let doc = s.get("/v1/openapi.json").await;
    assert!(doc["paths"]["/v1/quarantines"]["get"].is_object());
    assert!(doc["paths"]["/v1/quarantines"]["post"].is_object());
    assert!(doc["paths"]["/v1/quarantines/{test}"]["delete"].is_object());
}
