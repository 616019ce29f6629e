//! Quality gates over a real server on both stores (SQLite file and PostgreSQL): executions run
//! through the queue, tagged with a commit, judged by `POST /v1/gates/evaluate` as a viewer — a
//! test that failed then passed on the commit is newly flaky, the passing rerun supersedes the
//! failure for the other rules.

use crate::support;

use std::sync::Arc;

use assay_store::{Store, StoreConfig, TokenRole};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The fixture the CLI's gate tests share.
const FLIP: &str = include_str!("../../../tests/workflows/flip.yaml");

async fn judged_on(s: &support::TestServer) {
    assert_eq!(s.put_yaml(FLIP).await.status(), StatusCode::CREATED);
    for (commit, fail) in [("a1", "false"), ("b2", "true"), ("b2", "false")] {
        let e = s
            .run(
                "flip",
                json!({"config": {"fail": fail}, "tags": {"commit": commit}}),
            )
            .await;
        let wanted = if fail == "true" { "failed" } else { "passed" };
        s.wait_status(e["id"].as_str().unwrap(), &[wanted]).await;
    }
    let viewer = s.token(TokenRole::Viewer).await;
    let evaluate = |body: Value| {
        let r = s
            .http
            .post(s.url("/v1/gates/evaluate"))
            .bearer_auth(&viewer)
            .json(&body);
        async move {
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let rules = "rules:\n  noFailingTests: true\n  noNewFlakyTests: true\n  minPassRate: 100\n  requiredWorkflows: [flip]\n";
    let (status, v) = evaluate(json!({"rules": rules, "commit": "b2"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(v["executions"][0]["name"], "flip-3", "{v}");
    let by_rule = |name: &str| {
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    assert_eq!(by_rule("noFailingTests")["passed"], true, "{v}");
    assert_eq!(by_rule("minPassRate")["passed"], true, "{v}");
    assert_eq!(by_rule("requiredWorkflows")["passed"], true, "{v}");
    let flaky = by_rule("noNewFlakyTests");
    assert_eq!(flaky["passed"], false, "{v}");
    assert_eq!(
        flaky["evidence"][0]["item"], "tests.test_io::test_read",
        "{v}"
    );
    assert_eq!(
        flaky["evidence"][0]["detail"],
        "passed and failed on commit b2"
    );

    // The failing execution alone fails noFailingTests with its evidence.
    let (status, v) = evaluate(json!({"rules": rules, "execution": "flip-2"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rules"][0]["passed"], false, "{v}");
    assert_eq!(
        v["rules"][0]["evidence"][0]["item"], "tests.test_io::test_read",
        "{v}"
    );
    assert_eq!(v["rules"][0]["evidence"][0]["detail"], "timed out", "{v}");

    // Commit a1: nothing flaky, all passed.
    let (status, v) = evaluate(json!({"rules": rules, "commit": "a1"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["passed"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_judge_commits_on_sqlite() {
    let s = support::start().await;
    judged_on(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_judge_commits_on_postgres() {
    let Some(url) = support::postgres_database("gates").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.database_url = Some(url);
    let store = Store::open(config).await.unwrap();
    let s = support::serve_signals_only(store, "admin", Arc::new(dir)).await;
    judged_on(&s).await;
}
