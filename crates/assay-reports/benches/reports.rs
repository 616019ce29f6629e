//! Benchmarks that print figures (no timed assertions):
//!
//! 1. JUnit parse throughput (MB/s) and peak memory for a generated 200 MB report
//!    (`ASSAY_BENCH_JUNIT_MB` to change the size). Peak RSS is `VmHWM` from /proc/self/status,
//!    read before and after the parse.
//! 2. Sharding quality on a synthetic suite of 500 tests with known durations over 8 shards:
//!    makespan / max(longest, total / 8), for the planner and for Testkube's even split.
//!
//! `cargo bench -p assay-reports`

use std::io::{BufWriter, Write};
use std::time::Instant;

use assay_reports::{JunitReader, Summary};
use assay_shard::{Item, even_split, lower_bound_ms, plan};

fn main() {
    junit_throughput();
    sharding_quality();
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A 200 MB report in the shape of a large Surefire/pytest run: many suites, mostly passing
/// cases, some failures with stack traces and output.
fn generate(path: &std::path::Path, target_bytes: u64) -> (u64, u64) {
    let file = std::fs::File::create(path).unwrap();
    let mut out = BufWriter::new(file);
    let mut written = 0u64;
    let mut cases = 0u64;
    let w = |s: &str, out: &mut BufWriter<std::fs::File>| {
        out.write_all(s.as_bytes()).unwrap();
        s.len() as u64
    };
    written += w(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bench\">\n",
        &mut out,
    );
    let mut suite = 0u64;
    while written < target_bytes {
        written += w(
            &format!("<testsuite name=\"com.example.suite{suite}.ServiceTest\" tests=\"100\">\n"),
            &mut out,
        );
        for i in 0..100u64 {
            cases += 1;
            let head = format!(
                "  <testcase classname=\"com.example.suite{suite}.ServiceTest\" name=\"handles_request_{i}[param-{}]\" time=\"0.{:03}\"",
                i * 7,
                i % 1000
            );
            written += w(&head, &mut out);
            if i % 10 == 0 {
                let mut body = String::from(
                    ">\n    <failure message=\"expected &lt;200&gt; but was &lt;500&gt;\" type=\"AssertionError\">",
                );
                for f in 0..20 {
                    body.push_str(&format!(
                        "\tat com.example.suite{suite}.ServiceTest.frame{f}(ServiceTest.java:{})\n",
                        100 + f
                    ));
                }
                body.push_str("</failure>\n    <system-out><![CDATA[");
                for l in 0..30 {
                    body.push_str(&format!(
                        "request {l}: GET /api/items?id={i} -> 500 & retrying\n"
                    ));
                }
                body.push_str("]]></system-out>\n  </testcase>\n");
                written += w(&body, &mut out);
            } else {
                written += w("/>\n", &mut out);
            }
        }
        written += w("</testsuite>\n", &mut out);
        suite += 1;
    }
    written += w("</testsuites>\n", &mut out);
    out.flush().unwrap();
    (written, cases)
}

fn junit_throughput() {
    let mb: u64 = std::env::var("ASSAY_BENCH_JUNIT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    let (bytes, cases) = generate(&path, mb << 20);
    let before = vm_hwm_kib();
    let start = Instant::now();
    let file = std::fs::File::open(&path).unwrap();
    let mut summary = Summary::default();
    let mut longest_output = 0;
    for case in JunitReader::new(file) {
        let case = case.expect("the generated report parses");
        longest_output = longest_output.max(case.output.as_ref().map_or(0, String::len));
        summary.add(&case);
    }
    let elapsed = start.elapsed();
    let after = vm_hwm_kib();
    assert_eq!(summary.tests, cases);
    println!("junit parse (streaming, quick-xml 0.41)");
    println!(
        "  report:       {:.1} MB, {} cases ({} failed)",
        bytes as f64 / 1e6,
        summary.tests,
        summary.failed
    );
    println!("  time:         {:.2} s", elapsed.as_secs_f64());
    println!(
        "  throughput:   {:.1} MB/s",
        bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    println!("  longest kept output excerpt: {longest_output} bytes");
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "  peak RSS:     {:.1} MB before the parse, {:.1} MB after (growth {:.1} MB)",
            b as f64 / 1024.0,
            a as f64 / 1024.0,
            a.saturating_sub(b) as f64 / 1024.0
        ),
        _ => println!("  peak RSS:     /proc/self/status not available"),
    }
}

/// Durations in ms with a long tail, as real suites have: most tests short, a few very long.
fn synthetic_suite(n: usize) -> Vec<f64> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            // Pareto-like: 50 ms to about 60 s.
            (50.0 / (1.0 - u * 0.999).powf(1.0 / 1.1)).min(60_000.0)
        })
        .collect()
}

fn sharding_quality() {
    let shards = 8;
    let durations = synthetic_suite(500);
    let items: Vec<Item> = durations
        .iter()
        .enumerate()
        .map(|(i, d)| Item {
            name: format!("test_{i:03}"),
            duration_ms: Some(*d),
        })
        .collect();
    let lower = lower_bound_ms(&durations, shards);
    let start = Instant::now();
    let planned = plan(&items, shards);
    let took = start.elapsed();
    let even = even_split(items.len(), shards, |i| durations[i]);
    let total: f64 = durations.iter().sum();
    println!(
        "sharding: 500 tests over {shards} shards, total {:.1} s, longest {:.1} s",
        total / 1e3,
        durations.iter().copied().fold(0.0, f64::max) / 1e3
    );
    println!(
        "  lower bound max(longest, total/{shards}): {:.1} s",
        lower / 1e3
    );
    println!(
        "  assay (longest first):  makespan {:.1} s, ratio {:.3} (planned in {:?})",
        planned.makespan_ms() / 1e3,
        planned.makespan_ms() / lower,
        took
    );
    println!(
        "  even split (Testkube):  makespan {:.1} s, ratio {:.3}",
        even.makespan_ms() / 1e3,
        even.makespan_ms() / lower
    );
}
