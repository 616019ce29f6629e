//! Engine benchmarks; each runs its baseline in the same run and prints the ratio.
//! No timed assertions. `cargo bench -p assay-engine [-- overhead|parallel|logs]`.
//!
//! 1. overhead: 200 sequential `true` steps vs the same 200 commands in one bash script.
//! 2. parallel: 64 workers of `sleep 0.5` with parallelism 16 vs the ideal 2 s.
//! 3. logs: one step writing 1 GiB in 100-byte lines vs `cmd > file`; peak RSS; line count.

use std::time::{Duration, Instant};

use assay_engine::{Event, Isolation, RunOptions};
use assay_spec::plan::{
    Plan, PlanParallel, PlanProcess, PlanStep, PlanWorker, PlanWorkflow, StrategyInstance,
};
use assay_spec::status::ExecutionStatus;

fn step(reference: &str, process: PlanProcess) -> PlanStep {
    PlanStep {
        reference: reference.into(),
        condition: "passed".into(),
        commands: vec![process],
        ..Default::default()
    }
}

fn command(argv: &[&str]) -> PlanProcess {
    PlanProcess {
        command: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn shell(script: &str) -> PlanProcess {
    PlanProcess {
        shell: Some(script.into()),
        ..Default::default()
    }
}

fn plan(steps: Vec<PlanStep>) -> Plan {
    Plan {
        version: assay_spec::plan::PLAN_VERSION,
        workflow: PlanWorkflow {
            name: "bench".into(),
            ..Default::default()
        },
        config: Default::default(),
        tags: Default::default(),
        silent: false,
        concurrency: None,
        schedules: vec![],
        deadline_ms: None,
        disable_webhooks: false,
        kubernetes: None,
        notes: vec![],
        root: PlanStep {
            reference: "root".into(),
            condition: "passed".into(),
            steps,
            ..Default::default()
        },
    }
}

/// Runs a plan, handing every event to `on_event`; returns the status and the wall time.
async fn run(
    plan: Plan,
    isolation: Isolation,
    mut on_event: impl FnMut(&Event) + Send + 'static,
) -> (ExecutionStatus, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(dir.path().join("exec"));
    opts.isolation = isolation;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let consumer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            on_event(&e);
        }
    });
    let start = Instant::now();
    let outcome = assay_engine::run(plan, opts, tx).await;
    let took = start.elapsed();
    consumer.await.unwrap();
    (outcome.status, took)
}

fn bash(script: &str) -> Duration {
    let start = Instant::now();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success());
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn overhead() {
    const N: usize = 200;
    println!("== overhead: {N} sequential steps");
    let baseline_exec = bash(&"/usr/bin/true\n".repeat(N));
    let baseline_shell = bash(&"bash -e -c true\n".repeat(N));
    let run_plan = |p: PlanProcess, iso| {
        let steps = (0..N).map(|i| step(&format!("s{i}"), p.clone())).collect();
        run(plan(steps), iso, |_| {})
    };
    let (s1, engine_exec) = run_plan(command(&["true"]), Isolation::Auto).await;
    let (s2, engine_shell) = run_plan(shell("true"), Isolation::Auto).await;
    let (s3, engine_ns) = run_plan(shell("true"), Isolation::Namespace).await;
    assert!([s1, s2, s3].iter().all(|s| *s == ExecutionStatus::Passed));
    let per = |d: Duration| ms(d) / N as f64;
    println!(
        "baseline: bash script running /usr/bin/true x{N}:   {:7.3} ms/step",
        per(baseline_exec)
    );
    println!(
        "engine:   `run: command: [true]` steps:              {:7.3} ms/step  (+{:.3} ms/step, {:.2}x)",
        per(engine_exec),
        per(engine_exec) - per(baseline_exec),
        per(engine_exec) / per(baseline_exec)
    );
    println!(
        "baseline: bash script running `bash -e -c true` x{N}: {:7.3} ms/step",
        per(baseline_shell)
    );
    println!(
        "engine:   `shell: true` steps:                       {:7.3} ms/step  (+{:.3} ms/step, {:.2}x)",
        per(engine_shell),
        per(engine_shell) - per(baseline_shell),
        per(engine_shell) / per(baseline_shell)
    );
    println!(
        "engine:   `shell: true` steps in a private /data:    {:7.3} ms/step  (+{:.3} ms/step over the shell baseline)",
        per(engine_ns),
        per(engine_ns) - per(baseline_shell)
    );
}

async fn parallel() {
    const WORKERS: u64 = 64;
    println!("== parallel: {WORKERS} workers of `sleep 0.5`, parallelism 16");
    let workers = (0..WORKERS)
        .map(|i| PlanWorker {
            instance: StrategyInstance {
                index: i,
                count: WORKERS,
                ..Default::default()
            },
            root: PlanStep {
                reference: "root".into(),
                condition: "passed".into(),
                steps: vec![step("sleep", command(&["sleep", "0.5"]))],
                ..Default::default()
            },
            ..Default::default()
        })
        .collect();
    let par = PlanStep {
        reference: "par".into(),
        condition: "passed".into(),
        parallel: Some(Box::new(PlanParallel {
            parallelism: Some(16),
            workers: Some(workers),
            ..Default::default()
        })),
        ..Default::default()
    };
    let (status, took) = run(plan(vec![par]), Isolation::Auto, |_| {}).await;
    assert_eq!(status, ExecutionStatus::Passed);
    println!(
        "makespan {:.3} s vs ideal 2.000 s: {:.3}x ({:+.1}%)",
        took.as_secs_f64(),
        took.as_secs_f64() / 2.0,
        (took.as_secs_f64() / 2.0 - 1.0) * 100.0
    );
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
        })
        .unwrap_or(0)
}

async fn logs() {
    const BYTES: u64 = 1 << 30;
    const LINE: u64 = 100;
    println!("== logs: one step writing 1 GiB in {LINE}-byte lines");
    let generator = format!("yes \"$(printf '%0{}d' 0)\" | head -c {BYTES}", LINE - 1);
    let file = tempfile::NamedTempFile::new().unwrap();
    let baseline = bash(&format!("{generator} > {}", file.path().display()));
    let rss_before = vm_hwm_kib();
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (c, b) = (counted.clone(), bytes.clone());
    let (status, took) = run(
        plan(vec![step("log", shell(&generator))]),
        Isolation::Auto,
        move |e| {
            if let Event::Log(chunk) = e {
                c.fetch_add(
                    chunk.text.bytes().filter(|&x| x == b'\n').count() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                b.fetch_add(
                    chunk.text.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        },
    )
    .await;
    assert_eq!(status, ExecutionStatus::Passed);
    let lines = counted.load(std::sync::atomic::Ordering::Relaxed);
    let got = bytes.load(std::sync::atomic::Ordering::Relaxed);
    let mib_s = |d: Duration| BYTES as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!(
        "baseline `cmd > file`: {:8.1} MiB/s ({:.2} s)",
        mib_s(baseline),
        baseline.as_secs_f64()
    );
    println!(
        "engine (events):       {:8.1} MiB/s ({:.2} s), {:.2}x of the baseline",
        mib_s(took),
        took.as_secs_f64(),
        mib_s(took) / mib_s(baseline)
    );
    // 1 GiB is not a multiple of 100: the last, partial line gets the newline the engine adds.
    let (want_lines, want_bytes) = (
        BYTES.div_ceil(LINE),
        BYTES + u64::from(!BYTES.is_multiple_of(LINE)),
    );
    let verdict = if lines == want_lines && got == want_bytes {
        "nothing lost"
    } else {
        "MISMATCH"
    };
    println!("lines: {lines} of {want_lines} expected, bytes {got} of {want_bytes} ({verdict})");
    println!(
        "peak RSS of the bench process: {:.1} MiB (before the run: {:.1} MiB)",
        vm_hwm_kib() as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if want("overhead") {
            overhead().await;
        }
        if want("parallel") {
            parallel().await;
        }
        if want("logs") {
            logs().await;
        }
    });
}
