//! Bulk seeding of execution history for benchmarks: `n` executions over the last 90 days,
//! spread over `workflows` workflows, with step results and 2 tags each, loaded with multi-row
//! INSERTs (not the store API: a million executions load in about a minute).
//!
//! Shared by `history.rs` here, `crates/assay-server/benches/{api,dashboard}.rs` and
//! `crates/assay-service/benches/analysis.rs` (`#[path]`).

#![allow(dead_code)]

use std::time::Instant;

use sqlx::{AnyPool, AssertSqlSafe};

pub const BATCH: usize = 2_000;
/// Bind parameters per statement: SQLite looks `$N` names up linearly, so a statement with
/// thousands of them is quadratic. A few hundred keep the bulk load fast on both databases.
pub const PARAMS_PER_STATEMENT: usize = 300;

/// A value of a row to insert.
pub enum V {
    T(String),
    I(i64),
    /// NULL
    N,
}

/// Multi-row INSERTs of `rows` into `table (cols)`, a few hundred parameters per statement.
pub async fn insert_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &str,
    rows: Vec<Vec<V>>,
) {
    let Some(width) = rows.first().map(Vec::len) else {
        return;
    };
    let per = (PARAMS_PER_STATEMENT / width).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<V>> = rows.by_ref().take(per).collect();
        let mut sql = format!("INSERT INTO {table} VALUES ");
        let mut p = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..width {
                p += 1;
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${p}"));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    V::T(t) => q.bind(t),
                    V::I(i) => q.bind(i),
                    V::N => q.bind(None::<String>),
                };
            }
        }
        q.execute(&mut **tx).await.unwrap();
    }
}

/// A realistic stored definition; `WF` is replaced by the workflow's name.
pub const DEFINITION: &str = "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata:\n  name: WF\n  labels:\n    team: qa\nspec:\n  content:\n    git:\n      uri: https://example.invalid/repo.git\n      revision: main\n  container:\n    image: python:3.12\n    workingDir: /data/repo\n  steps:\n  - name: install\n    shell: pip install -r requirements.txt\n  - name: test\n    shell: pytest --junitxml=/data/artifacts/junit.xml\n    artifacts:\n      paths: ['/data/artifacts/**']\n  - name: report\n    condition: always\n    shell: echo done\n";

/// Load `n` executions of `workflows` workflows (`workflow-00` …) with `step_count` step results
/// each into the database at `pool`, and their counters; prints progress to stderr.
pub async fn seed_executions(
    pool: &AnyPool,
    n: usize,
    workflows: usize,
    step_count: usize,
    backend: &str,
) {
    let resolved = format!(
        "{{\"workflow\":{{\"name\":\"WF\"}},\"steps\":[{}]}}",
        (0..step_count)
            .map(|i| format!("{{\"ref\":\"r{i}\",\"name\":\"step {i}\",\"run\":{{\"shell\":\"pytest -q tests/part{i}\",\"env\":[{{\"name\":\"CI\",\"value\":\"1\"}}]}},\"condition\":\"passed\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let now = assay_store::now_ms();
    let span = 90 * 86_400_000i64;
    let t0 = Instant::now();
    let mut numbers = vec![0i64; workflows];
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut done = 0;
    while done < n {
        let batch = BATCH.min(n - done);
        let mut execs = Vec::with_capacity(batch);
        let mut tags = Vec::with_capacity(batch * 2);
        let mut steps = Vec::with_capacity(batch * step_count);
        for k in done..done + batch {
            let at = now - span + (span * k as i64) / n as i64;
            let w = (next() % workflows as u64) as usize;
            numbers[w] += 1;
            let number = numbers[w];
            let roll = next() % 100;
            let status = if roll < 80 {
                "passed"
            } else if roll < 95 {
                "failed"
            } else {
                "aborted"
            };
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                (at / 1000) as u64,
                ((at % 1000) * 1_000_000) as u32,
            );
            let id = uuid::Uuid::new_v7(ts).hyphenated().to_string();
            let wf = format!("workflow-{w:02}");
            execs.push(vec![
                V::T(id.clone()),
                V::T(format!("{wf}-{number}")),
                V::T(wf.clone()),
                V::I(number),
                V::T(status.into()),
                V::I(at),
                V::I(at + 500),
                V::I(at + 60_500),
                V::I(at + 60_500),
                V::T(DEFINITION.replace("WF", &wf)),
                V::T(resolved.replace("WF", &wf)),
                V::T(r#"{"browser":{"value":"chromium"}}"#.into()),
                V::T(format!(
                    r#"{{"branch":"b{}","env":"e{}"}}"#,
                    number % 7,
                    w % 3
                )),
                V::T(
                    r#"{"type":"ci","ci":{"provider":"github","commit":"0123456789abcdef"}}"#
                        .into(),
                ),
            ]);
            tags.push(vec![
                V::T(id.clone()),
                V::T("branch".into()),
                V::T(format!("b{}", number % 7)),
            ]);
            tags.push(vec![
                V::T(id.clone()),
                V::T("env".into()),
                V::T(format!("e{}", w % 3)),
            ]);
            for s in 0..step_count {
                let last = s == step_count - 1;
                steps.push(vec![
                    V::T(id.clone()),
                    V::T(format!("r{s}")),
                    V::I(s as i64),
                    V::T(format!("step {s}")),
                    V::T(if last { status } else { "passed" }.into()),
                    V::I(if status == "failed" && last { 1 } else { 0 }),
                    V::I(at + 500 + s as i64 * 20_000),
                    V::I(at + 500 + (s as i64 + 1) * 20_000),
                    V::I(50_000_000),
                    V::I(1_200),
                ]);
            }
        }
        let mut tx = pool.begin().await.unwrap();
        insert_rows(
            &mut tx,
            "executions (id, name, workflow, number, status, scheduled_at, started_at, \
             finished_at, status_at, definition, resolved, config, tags, running_context)",
            execs,
        )
        .await;
        insert_rows(&mut tx, "execution_tags (execution_id, key, value)", tags).await;
        insert_rows(
            &mut tx,
            "step_results (execution_id, ref, position, name, status, exit_code, \
             started_at, finished_at, peak_memory_bytes, cpu_time_ms)",
            steps,
        )
        .await;
        tx.commit().await.unwrap();
        done += batch;
        if done % 100_000 == 0 {
            eprintln!(
                "  {backend}: {done} executions loaded ({:.0?})",
                t0.elapsed()
            );
        }
    }
    for (w, last) in numbers.iter().enumerate() {
        sqlx::query("INSERT INTO workflow_counters (workflow, last_number) VALUES ($1, $2)")
            .bind(format!("workflow-{w:02}"))
            .bind(*last)
            .execute(pool)
            .await
            .unwrap();
    }
}
