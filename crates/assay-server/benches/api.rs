//! Server benchmarks (print figures; assert nothing about time), each against a baseline
//! measured in the same run:
//!
//! - **fan-out**: 200 SSE followers of one execution that writes 10,000 log lines/s for 5 s
//!   (a real `python3` step). Every follower must get every line once and in order; the delay
//!   from write (the timestamp inside the line) to follower is reported as p50/p99. Baseline:
//!   the same execution with one follower.
//! - **list**: `GET /v1/test-workflow-executions?pageSize=50` under `wrk` (2 threads, 32
//!   connections) with 100,000 executions stored in SQLite; requests/s and p99. Baseline:
//!   `GET /health` under the same load.
//! - **queue**: 400 trivial executions (`true`) submitted at once through the API to a server
//!   with `--max-concurrent 16`; executions/s until the last one is recorded passed.
//!   Baseline: 400 `bash -c true` processes, 16 at a time.
//!
//! ```sh
//! cargo bench -p assay-server --bench api            # all three
//! cargo bench -p assay-server --bench api -- fanout  # one: fanout | list | queue
//! ```
//! `ASSAY_BENCH_EXECUTIONS` changes the stored history of `list` (default 100000).

#[path = "../../assay-store/benches/support/seed.rs"]
mod seed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_client::Client;
use assay_server::{LocalDispatch, Options, Server};
use assay_store::{DefinitionKind, SQLITE_FILE, Store, StoreConfig, TokenRole};
use futures::StreamExt;

const FOLLOWERS: usize = 200;
const LINES_PER_SECOND: usize = 10_000;
const SECONDS: usize = 5;
const QUEUED: usize = 400;
const QUEUE_SLOTS: usize = 16;

/// A running server on 127.0.0.1 and an admin client of it.
struct Bench {
    client: Client,
    base: String,
    token: String,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn start(dir: tempfile::TempDir, store: Store, max_concurrent: usize) -> Bench {
    let (_, token) = store.create_token("bench", TokenRole::Admin).await.unwrap();
    let server = Server::start(
        store.clone(),
        Options {
            max_concurrent,
            ..Options::default()
        },
        Arc::new(LocalDispatch::default()),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    Bench {
        client: Client::new(&base, Some(token.clone())).unwrap(),
        base,
        token,
        store,
        _dir: dir,
    }
}

async fn fresh(max_concurrent: usize) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    start(dir, store, max_concurrent).await
}

async fn apply(bench: &Bench, name: &str, yaml: &str) {
    bench
        .store
        .apply(DefinitionKind::Workflow, name, yaml, &Default::default())
        .await
        .unwrap();
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// What one follower saw: lines in order, delays in µs.
struct Seen {
    lines: usize,
    in_order: bool,
    delays_us: Vec<u64>,
}

/// Run the emitting workflow with `followers` SSE followers connected before it writes.
async fn fan_out(bench: &Bench, followers: usize) -> (Vec<Seen>, Duration) {
    // The gate must be outside the data folder: steps run with the server's data folder
    // hidden (an empty tmpfs over it), so a gate inside it never appears and the run waits
    // forever. Its folder is readable by anyone: as root, steps run as an unprivileged user.
    let gates = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        gates.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let gate = gates.path().join(format!("go-{followers}"));
    let total = LINES_PER_SECOND * SECONDS;
    // Ten lines per millisecond, paced on the clock, each "seq ns-timestamp".
    let yaml = format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: emit\nspec:\n  steps:\n  - name: wait for followers\n    shell: while [ ! -e {gate} ]; do sleep 0.02; done\n  - name: emit\n    run:\n      command: [python3, -c, \"import sys, time\\nout = sys.stdout\\nstart = time.monotonic()\\nfor i in range({total}):\\n    if i % 10 == 0:\\n        d = start + i / {LINES_PER_SECOND} - time.monotonic()\\n        if d > 0: time.sleep(d)\\n        out.flush()\\n    out.write(f'{{i}} {{time.time_ns()}}\\\\n')\\nout.flush()\\n\"]\n",
        gate = gate.display()
    );
    apply(bench, "emit", &yaml).await;
    let exec = bench
        .client
        .run_workflow("emit", &Default::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(followers);
    for _ in 0..followers {
        // One client per follower: one connection each, as separate browsers or CLIs have.
        // The stream is read raw and only the `log` text of `log` events is looked at: 200
        // followers in this process parsing every event fully would measure the client more
        // than the server.
        let http = reqwest::Client::new();
        let url = format!(
            "{}/v1/test-workflow-executions/{}/notifications",
            bench.base, exec.id
        );
        let token = bench.token.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            ready.send(()).await.unwrap();
            let mut seen = Seen {
                lines: 0,
                in_order: true,
                delays_us: Vec::with_capacity(total),
            };
            let mut next = 0usize;
            let mut body = response.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut in_log = false;
            while let Some(chunk) = body.next().await {
                let arrived = now_ns();
                buf.extend_from_slice(&chunk.unwrap());
                let mut start = 0;
                // memchr, not a byte-by-byte scan: the clients share the server's cores, and
                // a slow scan of every byte 200 times over measured the clients (a profile of
                // this run showed that loop as the hottest code of the process).
                while let Some(len) = memchr::memchr(b'\n', &buf[start..]) {
                    let line = &buf[start..start + len];
                    start += len + 1;
                    if let Some(kind) = line.strip_prefix(b"event: ") {
                        in_log = kind == b"log";
                    } else if line.is_empty() {
                        in_log = false;
                    } else if let Some(data) = line.strip_prefix(b"data: ")
                        && in_log
                    {
                        let Some((seq, ts)) = std::str::from_utf8(data)
                            .ok()
                            .and_then(log_text)
                            .and_then(|l| l.trim().split_once(' '))
                        else {
                            continue;
                        };
                        let (Ok(seq), Ok(ts)) = (seq.parse::<usize>(), ts.parse::<u64>()) else {
                            continue;
                        };
                        seen.in_order &= seq == next;
                        next = seq + 1;
                        seen.lines += 1;
                        seen.delays_us.push(arrived.saturating_sub(ts) / 1000);
                    }
                }
                buf.drain(..start);
            }
            seen
        }));
    }
    drop(ready_tx);
    for _ in 0..followers {
        ready_rx.recv().await.unwrap();
    }
    let t0 = Instant::now();
    std::fs::write(&gate, b"go").unwrap();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    (seen, t0.elapsed())
}

/// The `"log"` string of a Notification's JSON when it needs no unescaping (the emitter's lines
/// are digits and a space); `None` otherwise.
fn log_text(data: &str) -> Option<&str> {
    let start = memchr::memmem::find(data.as_bytes(), b"\"log\":\"")? + "\"log\":\"".len();
    let len = memchr::memchr(b'"', &data.as_bytes()[start..])?;
    let text = &data[start..start + len];
    (!text.contains('\\')).then_some(text)
}

fn report_fan_out(label: &str, seen: &[Seen], took: Duration) -> u64 {
    let total = LINES_PER_SECOND * SECONDS;
    let complete = seen.iter().filter(|s| s.lines == total).count();
    let lost: usize = seen.iter().map(|s| total.saturating_sub(s.lines)).sum();
    let ordered = seen.iter().all(|s| s.in_order);
    let mut all: Vec<u64> = seen
        .iter()
        .flat_map(|s| s.delays_us.iter().copied())
        .collect();
    all.sort_unstable();
    let p99 = percentile(&all, 99.0);
    println!(
        "{label}: {complete}/{} followers got all {total} lines, {lost} lines lost, in order: {ordered}; delay write→follower p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; run {:.1?}",
        seen.len(),
        percentile(&all, 50.0) as f64 / 1000.0,
        p99 as f64 / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
        took
    );
    p99
}

async fn bench_fan_out() {
    println!(
        "== fan-out: one execution writing {LINES_PER_SECOND} lines/s for {SECONDS} s (python3), followed over SSE"
    );
    let bench = fresh(4).await;
    let (one, took) = fan_out(&bench, 1).await;
    let base = report_fan_out("baseline, 1 follower", &one, took);
    let (many, took) = fan_out(&bench, FOLLOWERS).await;
    let ours = report_fan_out(&format!("{FOLLOWERS} followers"), &many, took);
    println!(
        "p99 delay ratio {FOLLOWERS} followers / 1 follower: {:.2}x",
        ours as f64 / base.max(1) as f64
    );
}

/// `wrk` on `path`: (requests/s, p99 in ms), or `None` when wrk is missing.
fn wrk(base: &str, token: &str, path: &str) -> Option<(f64, f64)> {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{base}{path}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_wrk_time(v.trim()))?;
    let non_2xx = text.lines().find(|l| l.contains("Non-2xx"));
    if let Some(line) = non_2xx {
        println!("  wrk on {path}: {}", line.trim());
    }
    Some((rps, p99))
}

/// wrk prints `1.23ms`, `456.00us`, `1.02s`.
fn parse_wrk_time(v: &str) -> f64 {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * scale
}

async fn bench_list() {
    let n: usize = std::env::var("ASSAY_BENCH_EXECUTIONS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    println!(
        "== list: GET /v1/test-workflow-executions?pageSize=50 under wrk, {n} executions in SQLite"
    );
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
    seed::seed_executions(&pool, n, 20, 3, "sqlite").await;
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    pool.close().await;
    let bench = start(dir, store, 4).await;
    let Some((base_rps, base_p99)) = wrk(&bench.base, &bench.token, "/health") else {
        println!("skipped: `wrk` is not installed (apt-get install wrk; scripts/bench.sh does)");
        return;
    };
    println!("baseline GET /health: {base_rps:.0} requests/s, p99 {base_p99:.2} ms");
    let (rps, p99) = wrk(
        &bench.base,
        &bench.token,
        "/v1/test-workflow-executions?pageSize=50",
    )
    .unwrap();
    println!("GET executions (50 per page): {rps:.0} requests/s, p99 {p99:.2} ms");
    let (rps_f, p99_f) = wrk(
        &bench.base,
        &bench.token,
        "/v1/test-workflow-executions?pageSize=50&workflow=workflow-07&status=failed",
    )
    .unwrap();
    println!(
        "GET executions filtered by workflow and status: {rps_f:.0} requests/s, p99 {p99_f:.2} ms"
    );
    println!(
        "throughput ratio list / health: {:.2}; filtered / health: {:.2}",
        rps / base_rps,
        rps_f / base_rps
    );
}

async fn bench_queue() {
    println!(
        "== queue: {QUEUED} executions of `true` submitted at once, --max-concurrent {QUEUE_SLOTS}"
    );
    // Baseline: the processes alone, 16 at a time.
    let t0 = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..QUEUED {
        if running.len() == QUEUE_SLOTS {
            running.join_next().await.unwrap().unwrap();
        }
        running.spawn(async {
            tokio::process::Command::new("bash")
                .args(["-c", "true"])
                .status()
                .await
                .unwrap()
        });
    }
    while running.join_next().await.is_some() {}
    let base = t0.elapsed();
    println!(
        "baseline, {QUEUED} × bash -c true, 16 at a time: {:.1?} ({:.0}/s)",
        base,
        QUEUED as f64 / base.as_secs_f64()
    );

    let bench = fresh(QUEUE_SLOTS).await;
    apply(
        &bench,
        "trivial",
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: trivial\nspec:\n  steps:\n  - shell: 'true'\n",
    )
    .await;
    let t0 = Instant::now();
    let submits = futures::future::join_all((0..QUEUED).map(|_| {
        let client = bench.client.clone();
        async move {
            client
                .run_workflow("trivial", &Default::default())
                .await
                .unwrap()
        }
    }))
    .await;
    let submitted = t0.elapsed();
    let ids: Vec<String> = submits.into_iter().map(|e| e.id).collect();
    // One indexed query per look (any of them not ended yet?), not one per execution: the
    // poller must not take the database from the server it measures.
    let active = assay_store::ExecutionFilter {
        workflow: Some("trivial".into()),
        statuses: vec![
            assay_store::ExecutionStatus::Queued,
            assay_store::ExecutionStatus::Running,
            assay_store::ExecutionStatus::Paused,
        ],
        limit: Some(1),
        ..Default::default()
    };
    loop {
        if bench
            .store
            .list_executions(&active)
            .await
            .unwrap()
            .is_empty()
        {
            let took = t0.elapsed();
            let mut failed = 0;
            for id in &ids {
                let e = bench
                    .store
                    .find_execution(&assay_store::ExecutionRef::Id(id.clone()))
                    .await
                    .unwrap();
                assert!(e.status.is_terminal(), "{} is {:?}", e.name, e.status);
                failed += usize::from(e.status != assay_store::ExecutionStatus::Passed);
            }
            println!(
                "assay server: {QUEUED} submitted in {submitted:.1?}, all ended in {took:.1?} ({:.1} executions/s, {failed} not passed); ratio to baseline {:.1}x",
                QUEUED as f64 / took.as_secs_f64(),
                took.as_secs_f64() / base.as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let only: Option<String> = std::env::args()
        .skip(1)
        .find(|a| ["fanout", "list", "queue"].contains(&a.as_str()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    sqlx::any::install_default_drivers();
    let wants = |name: &str| only.as_deref().is_none_or(|o| o == name);
    rt.block_on(async {
        if wants("fanout") {
            bench_fan_out().await;
        }
        if wants("queue") {
            bench_queue().await;
        }
        if wants("list") {
            bench_list().await;
        }
    });
    // Runs of the local dispatcher may still be recording; the process ends here anyway.
    rt.shutdown_timeout(Duration::from_secs(1));
}
