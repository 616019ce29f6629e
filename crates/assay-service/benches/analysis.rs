//! Failure analysis on a long history (prints figures; asserts nothing about time).
//!
//! ```sh
//! cargo bench -p assay-service --bench analysis                       # 1,000,000 executions
//! ASSAY_BENCH_EXECUTIONS=50000 cargo bench -p assay-service --bench analysis
//! ```
//!
//! The history: `n` executions of 20 workflows (3 steps and 2 tags each, 15% failed), loaded
//! by the store benches' bulk loader, and JUnit test cases (20 per execution, the failures with
//! a message and its signature) for the newest 2,000 executions of `workflow-00`. Figures:
//! `Service::analyze` of that workflow's newest failure (class, evidence, the diff against its
//! last pass, each failing test's history and similar failures), p50/p95 over 30 calls, against
//! the floor every answer about an execution pays — reading the execution and its test cases.

#[path = "../../assay-store/benches/support/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use assay_service::Service;
use assay_store::{ExecutionRef, SQLITE_FILE, Store, StoreConfig};
use seed::{V, insert_rows, seed_executions};
use sqlx::AnyPool;

const WORKFLOWS: usize = 20;
const WITH_TESTS: i64 = 2_000;
const TESTS: usize = 20;
const CALLS: usize = 30;

fn main() {
    let n: usize = std::env::var("ASSAY_BENCH_EXECUTIONS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        sqlx::any::install_default_drivers();
        println!(
            "analysis benchmark: {n} executions of {WORKFLOWS} workflows; {TESTS} test cases each for the newest {WITH_TESTS} of workflow-00"
        );
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(SQLITE_FILE).display()
        );
        let pool = AnyPool::connect(&url).await.unwrap();
        let t0 = Instant::now();
        seed_executions(&pool, n, WORKFLOWS, 3, "sqlite").await;
        seed_test_cases(&pool).await;
        eprintln!("  loaded in {:.0?}", t0.elapsed());

        let target: String = sqlx::query_scalar(
            "SELECT id FROM executions WHERE workflow = 'workflow-00' AND status = 'failed' \
             ORDER BY number DESC LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let service = Service::new(store.clone());
        let analysis = service.analyze(&target).await.unwrap();
        let verdict = analysis.verdict.as_ref().expect("a failed execution has a verdict");
        println!(
            "  {}: class {} (rule {}), {} failing test(s), last pass {}",
            analysis.execution.name,
            verdict.class,
            verdict.rule,
            analysis.failing_tests.len(),
            analysis
                .since_last_pass
                .as_ref()
                .map_or("none".to_string(), |d| d.last_pass.name.clone())
        );

        let reference = ExecutionRef::Id(target.clone());
        let floor = measure(|| async {
            store.get_execution(&reference).await.unwrap();
            store.test_cases(&reference, &[]).await.unwrap();
        })
        .await;
        let analyze = measure(|| async {
            service.analyze(&target).await.unwrap();
        })
        .await;
        println!(
            "  read the execution and its test cases (floor): p50 {:.2?}, p95 {:.2?}",
            floor.0, floor.1
        );
        println!(
            "  analyze (assay explain, GET …/analysis, why_failed): p50 {:.2?}, p95 {:.2?}; ratio {:.1}x the floor (goal: under 100 ms on 1M executions)",
            analyze.0,
            analyze.1,
            analyze.0.as_secs_f64() / floor.0.as_secs_f64().max(1e-9)
        );
        store.close().await;
    });
}

/// p50 and p95 of `CALLS` runs of `f`.
async fn measure<F, Fut>(f: F) -> (Duration, Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        f().await;
        times.push(t.elapsed());
    }
    times.sort();
    (times[CALLS / 2], times[CALLS * 95 / 100])
}

/// Test cases for the newest executions of `workflow-00`: in a failed execution `test_3`
/// fails (the same assertion each time) and, every fifth, `test_7` with a varying one.
async fn seed_test_cases(pool: &AnyPool) {
    let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
        "SELECT id, number, status, scheduled_at FROM executions WHERE workflow = 'workflow-00' \
         ORDER BY number DESC LIMIT $1",
    )
    .bind(WITH_TESTS)
    .fetch_all(pool)
    .await
    .unwrap();
    for chunk in rows.chunks(200) {
        let mut cases = Vec::with_capacity(chunk.len() * TESTS);
        for (id, number, status, at) in chunk {
            for t in 0..TESTS {
                let failed = status == "failed" && (t == 3 || (t == 7 && number % 5 == 0));
                let message = failed.then(|| {
                    if t == 3 {
                        "AssertionError: expected 3, got 4".to_string()
                    } else {
                        format!("TimeoutError: request {number} took 30s")
                    }
                });
                let signature = message
                    .as_deref()
                    .and_then(assay_reports::signature)
                    .map_or(V::N, V::T);
                cases.push(vec![
                    V::T(id.clone()),
                    V::I(t as i64),
                    V::T("workflow-00".into()),
                    V::T("r1".into()),
                    V::T("junit.xml".into()),
                    V::T(format!("tests.test_api::test_{t}")),
                    V::T("tests".into()),
                    V::T("tests.test_api".into()),
                    V::T(format!("test_{t}")),
                    V::T("tests/test_api.py".into()),
                    V::T(if failed { "failed" } else { "passed" }.into()),
                    V::I(100 + t as i64),
                    message.map_or(V::N, V::T),
                    V::I(0),
                    V::I(0),
                    V::T(format!("c{}", number / 3)),
                    V::I(*at),
                    signature,
                ]);
            }
        }
        let mut tx = pool.begin().await.unwrap();
        insert_rows(
            &mut tx,
            "test_cases (execution_id, seq, workflow, step_ref, report_file, test_key, suite, \
             class, name, file, status, duration_ms, message, failed_reruns, retry, commit_sha, \
             recorded_at, signature)",
            cases,
        )
        .await;
        tx.commit().await.unwrap();
    }
}
