//! History benchmark (prints figures; asserts nothing about time).
//!
//! ```sh
//! cargo bench -p assay-store --bench history                       # 1,000,000 executions
//! ASSAY_BENCH_EXECUTIONS=50000 cargo bench -p assay-store --bench history
//! ```
//! PostgreSQL is measured too when `ASSAY_TEST_POSTGRES_URL` is set (scripts/pg.sh starts one);
//! the benchmark creates its own database there.
//!
//! Figures:
//! - `list executions` filtered by workflow and status, newest 50: p50/p95 through the store API
//!   (plus other filters for comparison);
//! - database size per 1M executions (each with 3 step results and 2 tags);
//! - log ingest through `LogWriter` vs a plain buffered file write of the same bytes (the floor),
//!   and vs batched `INSERT`s of the same lines as rows (the layout we did not pick);
//! - step events (`record_step`, one transaction each) per second.

use std::io::Write;
use std::time::{Duration, Instant};

#[path = "support/seed.rs"]
mod seed;

use assay_store::*;
use seed::{V, insert_rows, seed_executions};
use sqlx::{AnyPool, AssertSqlSafe, Connection};

const WORKFLOWS: usize = 20;
const STEPS: usize = 3;
/// Makes the filter of the r-th query of a case.
type FilterFor = Box<dyn Fn(u64) -> ExecutionFilter>;

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
        println!("history benchmark: {n} executions, {WORKFLOWS} workflows, {STEPS} steps and 2 tags each");
        let dir = tempfile::tempdir().unwrap();
        let sqlite_dir = dir.path().join("sqlite");
        let config = StoreConfig::new(&sqlite_dir);
        let store = Store::open(config.clone()).await.unwrap();
        let url = format!("sqlite://{}?mode=rwc", sqlite_dir.join(SQLITE_FILE).display());
        history(&store, &url, n, "sqlite").await;
        let db = sqlite_dir.join(SQLITE_FILE);
        let bulk = AnyPool::connect(&url).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&bulk).await.unwrap();
        let size = std::fs::metadata(&db).unwrap().len();
        print_size("sqlite", size, n);
        logs(&store, dir.path(), &bulk).await;
        steps(&store, "sqlite").await;

        match std::env::var("ASSAY_TEST_POSTGRES_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                let mut config = StoreConfig::new(dir.path().join("pg"));
                config.database_url = Some(url.to_string());
                let store = Store::open(config).await.unwrap();
                history(&store, url.as_str(), n, "postgres").await;
                let pool = AnyPool::connect(url.as_str()).await.unwrap();
                let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                print_size("postgres", size as u64, n);
                steps(&store, "postgres").await;
                store.close().await;
                pool.close().await;
                let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}")))
                    .execute(&mut conn)
                    .await;
            }
            _ => println!("\npostgres: skipped (ASSAY_TEST_POSTGRES_URL not set)"),
        }
    });
}

fn print_size(backend: &str, bytes: u64, n: usize) {
    let per_million = bytes as f64 * 1_000_000.0 / n as f64;
    println!(
        "{backend}: database size {:.1} MiB, {:.0} MiB per 1M executions ({:.0} bytes per execution)",
        bytes as f64 / 1048576.0,
        per_million / 1048576.0,
        bytes as f64 / n as f64
    );
}

/// Fill the database with `n` executions spread over the last 90 days, then time list queries.
async fn history(store: &Store, url: &str, n: usize, backend: &str) {
    let pool = AnyPool::connect(url).await.unwrap();
    if backend == "sqlite" {
        sqlx::query("PRAGMA synchronous = OFF")
            .execute(&pool)
            .await
            .unwrap();
    }
    let t0 = Instant::now();
    seed_executions(&pool, n, WORKFLOWS, STEPS, backend).await;
    // Statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` would gather in steady state.
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    println!(
        "\n{backend}: loaded {n} executions in {:.1?} ({:.0}/s, bulk SQL, not the store API)",
        t0.elapsed(),
        n as f64 / t0.elapsed().as_secs_f64()
    );
    if backend == "sqlite" {
        let plan: Vec<String> = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT id FROM executions WHERE workflow = 'workflow-01' \
             AND status IN ('failed') ORDER BY id DESC LIMIT 50",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::try_get::<String, _>(r, 3).unwrap_or_default())
        .collect();
        println!("{backend}: plan for workflow+status: {}", plan.join("; "));
    }
    pool.close().await;

    // The store API, as `assay get executions` calls it.
    let cases: Vec<(&str, FilterFor)> = vec![
        (
            "workflow + status, newest 50",
            Box::new(|r| ExecutionFilter {
                workflow: Some(format!("workflow-{:02}", r % WORKFLOWS as u64)),
                statuses: vec![if r % 2 == 0 {
                    ExecutionStatus::Passed
                } else {
                    ExecutionStatus::Failed
                }],
                limit: Some(50),
                ..Default::default()
            }),
        ),
        (
            "workflow + rare status (aborted), newest 50",
            Box::new(|r| ExecutionFilter {
                workflow: Some(format!("workflow-{:02}", r % WORKFLOWS as u64)),
                statuses: vec![ExecutionStatus::Aborted],
                limit: Some(50),
                ..Default::default()
            }),
        ),
        (
            "no filter, newest 50",
            Box::new(|_| ExecutionFilter {
                limit: Some(50),
                ..Default::default()
            }),
        ),
        (
            "tag branch=bN, newest 50",
            Box::new(|r| ExecutionFilter {
                tags: vec![("branch".into(), format!("b{}", r % 7))],
                limit: Some(50),
                ..Default::default()
            }),
        ),
        (
            "workflow, since 2h, newest 50",
            Box::new(|r| ExecutionFilter {
                workflow: Some(format!("workflow-{:02}", r % WORKFLOWS as u64)),
                since: Some(now_ms() - 2 * 3_600_000),
                limit: Some(50),
                ..Default::default()
            }),
        ),
    ];
    for (label, make) in cases {
        // Warm up the cache as a server would be.
        for r in 0..20 {
            store.list_executions(&make(r)).await.unwrap();
        }
        let mut times = Vec::new();
        let mut rows = 0;
        for r in 0..300u64 {
            let f = make(r.wrapping_mul(2654435761));
            let t = Instant::now();
            rows += store.list_executions(&f).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{backend}: list {label:<45} p50 {:>7.2} ms  p95 {:>7.2} ms  ({} rows/query)",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 95 / 100]),
            rows / times.len()
        );
    }
    let recent = store
        .list_executions(&ExecutionFilter {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut times = Vec::new();
    for e in &recent {
        let t = Instant::now();
        let _ = store
            .get_execution(&ExecutionRef::Id(e.id.clone()))
            .await
            .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{backend}: get one execution with its steps: p50 {:.2} ms  p95 {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100])
    );
    let t = Instant::now();
    store.recover_abandoned().await.unwrap();
    println!(
        "{backend}: recover_abandoned with nothing to do: {:.2} ms",
        ms(t.elapsed())
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Log ingest: the store's writer vs the floor (a buffered file) vs rows in SQLite.
async fn logs(store: &Store, dir: &std::path::Path, pool: &AnyPool) {
    const LINES: usize = 2_000_000;
    let text: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "tests/test_api.py::test_case_{i:04} PASSED [ {:>3}%] some output text here",
                i % 100
            )
        })
        .collect();
    let e = store
        .create_execution(NewExecution {
            workflow: "logs".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ts = now_ms();

    // Floor: the same bytes through a BufWriter to a file.
    let path = dir.join("baseline.log");
    let t = Instant::now();
    {
        let mut f =
            std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&path).unwrap());
        for i in 0..LINES {
            writeln!(f, "{} {}", ts + (i / 1000) as i64, text[i % 1000]).unwrap();
        }
        f.flush().unwrap();
    }
    let base = t.elapsed();
    let raw_size = std::fs::metadata(&path).unwrap().len();

    let t = Instant::now();
    let mut w = store.log_writer(&e.id, "r0").await.unwrap();
    for i in 0..LINES {
        w.append(ts + (i / 1000) as i64, &text[i % 1000])
            .await
            .unwrap();
    }
    w.finish().await.unwrap();
    let ours = t.elapsed();
    println!(
        "\nlogs: ingest {LINES} lines ({:.0} MiB): store LogWriter {:.0} lines/s; buffered file {:.0} lines/s; ratio {:.2}",
        raw_size as f64 / 1048576.0,
        LINES as f64 / ours.as_secs_f64(),
        LINES as f64 / base.as_secs_f64(),
        ours.as_secs_f64() / base.as_secs_f64()
    );
    let t = Instant::now();
    let mut reader = store.log_reader(&e.id, "r0", 0);
    let mut n = 0;
    loop {
        let b = reader.read_available().await.unwrap();
        if b.is_empty() {
            break;
        }
        n += b.len();
    }
    println!(
        "logs: replay of a running log: {:.0} lines/s ({n} lines)",
        n as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    store
        .finish_execution(
            &e.id,
            Finish {
                status: ExecutionStatus::Passed,
                error_message: None,
                at: now_ms(),
            },
        )
        .await
        .unwrap();
    let packed = store
        .config()
        .data_dir
        .join(FILES_DIR)
        .join("executions")
        .join(&e.id)
        .join("logs/r0.log.zst");
    let packed_size = std::fs::metadata(&packed).unwrap().len();
    println!(
        "logs: compaction at the end {:.0?}: {:.1} MiB -> {:.2} MiB (zstd, {:.0}x)",
        t.elapsed(),
        raw_size as f64 / 1048576.0,
        packed_size as f64 / 1048576.0,
        raw_size as f64 / packed_size as f64
    );
    let t = Instant::now();
    let lines = store.read_logs(&e.id, Some("r0")).await.unwrap();
    println!(
        "logs: replay of a finished (compressed) log: {:.0} lines/s",
        lines.len() as f64 / t.elapsed().as_secs_f64()
    );
    assert_eq!(lines.len(), LINES);

    // The alternative we did not pick: lines as rows in the database.
    sqlx::query("CREATE TABLE bench_log_lines (execution_id TEXT, step TEXT, seq BIGINT, ts BIGINT, text TEXT)")
        .execute(pool)
        .await
        .unwrap();
    const ROWS: usize = 400_000;
    let t = Instant::now();
    let mut seq = 0i64;
    while (seq as usize) < ROWS {
        let mut rows = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            rows.push(vec![
                V::T(e.id.clone()),
                V::T("r0".into()),
                V::I(seq),
                V::I(ts),
                V::T(text[seq as usize % 1000].clone()),
            ]);
            seq += 1;
        }
        let mut tx = pool.begin().await.unwrap();
        insert_rows(
            &mut tx,
            "bench_log_lines (execution_id, step, seq, ts, text)",
            rows,
        )
        .await;
        tx.commit().await.unwrap();
    }
    println!(
        "logs: baseline rows in SQLite (multi-row INSERT, 20k per transaction): {:.0} lines/s",
        ROWS as f64 / t.elapsed().as_secs_f64()
    );
}

/// Step events: one `record_step` (a transaction) each.
async fn steps(store: &Store, backend: &str) {
    let e = store
        .create_execution(NewExecution {
            workflow: "steps".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    const EVENTS: usize = 2_000;
    let t = Instant::now();
    for i in 0..EVENTS {
        let mut s = StepResult::new(
            format!("r{}", i / 2),
            (i / 2) as i64,
            if i % 2 == 0 {
                StepStatus::Running
            } else {
                StepStatus::Passed
            },
        );
        s.started_at = Some(now_ms());
        store.record_step(&e.id, &s).await.unwrap();
    }
    println!(
        "{backend}: step events (record_step, one transaction each): {:.0}/s",
        EVENTS as f64 / t.elapsed().as_secs_f64()
    );
}
