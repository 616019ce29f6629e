//! Dashboard benchmark (prints figures; asserts nothing about time): server time of each page
//! with 100,000 executions stored in SQLite, requested in-process through the whole app (auth,
//! error layers, templates) with tower's `oneshot`, against two baselines measured in the same
//! run: `GET /health` (routing only) and the JSON list `GET /v1/test-workflow-executions`
//! (auth plus one store query).
//!
//! ```sh
//! cargo bench -p assay-server --bench dashboard
//! ASSAY_BENCH_EXECUTIONS=20000 ASSAY_BENCH_REQUESTS=100 cargo bench -p assay-server --bench dashboard
//! ```
//! The goal is under 50 ms p95 for every page.

#[path = "../../assay-store/benches/support/seed.rs"]
mod seed;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_server::{LocalDispatch, Options, Server};
use assay_store::{DefinitionKind, ExecutionFilter, SQLITE_FILE, Store, StoreConfig, TokenRole};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

const WORKFLOWS: usize = 20;
const STEPS: usize = 3;
const LOG_LINES: usize = 2_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let n: usize = std::env::var("ASSAY_BENCH_EXECUTIONS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    let requests: usize = std::env::var("ASSAY_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(SQLITE_FILE).display()
        );
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("PRAGMA synchronous = OFF")
            .execute(&pool)
            .await
            .unwrap();
        let t0 = Instant::now();
        seed::seed_executions(&pool, n, WORKFLOWS, STEPS, "sqlite").await;
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
        for w in 0..WORKFLOWS {
            let name = format!("workflow-{w:02}");
            let labels = BTreeMap::from([("team".to_string(), format!("t{}", w % 3))]);
            store
                .apply(
                    DefinitionKind::Workflow,
                    &name,
                    &seed::DEFINITION.replace("WF", &name),
                    &labels,
                )
                .await
                .unwrap();
        }
        // The execution page reads its log: give the newest execution of workflow-01 one.
        let newest = store
            .list_executions(&ExecutionFilter {
                workflow: Some("workflow-01".into()),
                limit: Some(1),
                ..ExecutionFilter::default()
            })
            .await
            .unwrap()
            .remove(0);
        let mut writer = store.log_writer(&newest.id, "r1").await.unwrap();
        for i in 0..LOG_LINES {
            writer
                .append_now(&format!("tests/part1/test_{i}.py::test_case PASSED [{i}%]\n"))
                .await
                .unwrap();
        }
        writer.finish().await.unwrap();
        let middle = store
            .list_executions(&ExecutionFilter {
                limit: Some(n as u32 / 2),
                ..ExecutionFilter::default()
            })
            .await
            .unwrap()
            .pop()
            .unwrap();
        println!(
            "dashboard benchmark: {n} executions of {WORKFLOWS} workflows in SQLite (seeded in {:.1?}), {requests} requests per page",
            t0.elapsed()
        );

        let (_, token) = store.create_token("bench", TokenRole::Admin).await.unwrap();
        let server = Server::start(store, Options::default(), Arc::new(LocalDispatch::default()))
            .await
            .unwrap();
        let app = server.router();
        let pages: Vec<(&str, String)> = vec![
            ("baseline: GET /health", "/health".into()),
            (
                "baseline: JSON list, newest 50",
                "/v1/test-workflow-executions?pageSize=50".into(),
            ),
            ("/ (workflows)", "/".into()),
            ("/?label=team%3Dt1", "/?label=team%3Dt1".into()),
            ("/workflows/{name}", "/workflows/workflow-01".into()),
            ("/executions", "/executions".into()),
            (
                "/executions?workflow&status",
                "/executions?workflow=workflow-01&status=failed".into(),
            ),
            ("/executions?tag&since=7d", "/executions?tag=env%3De1&since=7d".into()),
            (
                "/executions?before (middle page)",
                format!("/executions?before={}", middle.id),
            ),
            (
                "/executions/{id} (2000 log lines)",
                format!("/executions/{}", newest.id),
            ),
        ];
        println!("\n{:<38} {:>10} {:>10} {:>10}", "page", "p50", "p95", "max");
        let mut baseline = None;
        for (label, path) in &pages {
            let mut times = Vec::with_capacity(requests);
            for i in 0..requests + 10 {
                let request = Request::get(path.as_str())
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap();
                let started = Instant::now();
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let elapsed = started.elapsed();
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{path}: {}",
                    String::from_utf8_lossy(&body)
                );
                if i >= 10 {
                    times.push(elapsed);
                }
            }
            times.sort();
            let (p50, p95) = (percentile(&times, 50.0), percentile(&times, 95.0));
            if label.starts_with("baseline: JSON") {
                baseline = Some(p95);
            }
            let ratio = match baseline {
                Some(b) if !label.starts_with("baseline") => {
                    format!("  {:.1}x the JSON list", p95.as_secs_f64() / b.as_secs_f64())
                }
                _ => String::new(),
            };
            println!(
                "{label:<38} {:>8.2}ms {:>8.2}ms {:>8.2}ms{ratio}{}",
                p50.as_secs_f64() * 1000.0,
                p95.as_secs_f64() * 1000.0,
                times.last().unwrap().as_secs_f64() * 1000.0,
                if !label.starts_with("baseline") && p95 > Duration::from_millis(50) {
                    "  (over the 50 ms goal)"
                } else {
                    ""
                }
            );
        }
    });
}
