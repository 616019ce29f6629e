//! A real third-party suite through `assay run`: Markdown 3.7's pytest suite (1,081 tests in 34
//! files, from its PyPI sdist, pinned by sha256 in `tests/real_suite_requirements.txt`;
//! `scripts/test.sh` downloads it and names it in `ASSAY_TEST_SDIST`), sharded over 4 workers
//! with `glob()` and `balance: durations`, by the README's sharding example exactly as written.
//!
//! Checked: every test case is recorded once, in exactly one worker, and their number is
//! pytest's own from a direct run; the second run's split differs from the even split of the
//! first, and its makespan is within 15% of the lower bound max(longest file, total / workers).
//! Makespans are computed from recorded test durations, not wall clocks: the balanced split of
//! run 2 is weighed with the per-file durations recorded in run 1 (the history it was planned
//! from), so the check is deterministic on a loaded machine. Run 2's own recorded makespan is
//! printed beside it (`scripts/bench.sh shards` prints all the figures).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const WORKERS: usize = 4;
/// Markdown's tests are unittest classes; `unittest.TestSuite`, imported into one module, would
/// also be collected as a test class and fail collection under the warnings filter another
/// module sets. The same arguments go to the direct run and to the workers.
const PYTEST_ARGS: &str = "-o python_classes=NotAPlainTestClass";

fn assay(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assay"));
    c.env("ASSAY_DATA_DIR", data).env("NO_COLOR", "1");
    c
}

/// The README's sharding example, as written.
fn readme_workflow() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("```yaml\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: pytest-shards\n")
        .expect("the README has the pytest-shards example");
    let body = &readme[start + "```yaml\n".len()..];
    let end = body.find("```").expect("the example block ends");
    let yaml = body[..end].to_string();
    assert!(yaml.contains("balance: durations") && yaml.contains("glob("));
    yaml
}

/// The pytest module of each test file (`tests/test_syntax/inline/test_links.py` →
/// `tests.test_syntax.inline.test_links`), by relative path.
fn modules(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            modules(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with("test_") && name.ends_with(".py") {
                let module = rel.trim_end_matches(".py").replace('/', ".");
                out.insert(rel, module);
            }
        }
    }
}

/// The test file a case's dotted classname lives in (the longest module it starts with).
fn file_of<'a>(class: &str, modules: &'a BTreeMap<String, String>) -> &'a str {
    modules
        .iter()
        .filter(|(_, m)| class == m.as_str() || class.starts_with(&format!("{m}.")))
        .max_by_key(|(_, m)| m.len())
        .map(|(f, _)| f.as_str())
        .unwrap_or_else(|| panic!("no test file for class {class}"))
}

struct Recorded {
    /// Test key → (worker index, file, duration ms).
    cases: BTreeMap<String, (usize, String, u64)>,
    count: usize,
}

fn run(
    data: &Path,
    wf: &Path,
    sdist: &Path,
    python: &str,
    modules: &BTreeMap<String, String>,
) -> Recorded {
    let out = assay(data)
        .arg("run")
        .arg(wf)
        .args(["-q", "-o", "json", "--config"])
        .arg(format!("sdist={}", sdist.display()))
        .arg("--config")
        .arg(format!("python={python}"))
        .arg("--config")
        .arg(format!("pytest_args={PYTEST_ARGS}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let exec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = exec["name"].as_str().unwrap().to_string();
    let out = assay(data)
        .args(["get", "tests", &name, "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut cases = BTreeMap::new();
    for c in &list {
        let key = c["key"].as_str().unwrap().to_string();
        // `tests/<worker>/<step>`: the worker that ran it.
        let reference = c["ref"].as_str().unwrap();
        let worker: usize = reference.split('/').nth(1).unwrap().parse().unwrap();
        let file = file_of(c["class"].as_str().unwrap(), modules).to_string();
        let ms = c["durationMs"].as_u64().unwrap_or(0);
        let before = cases.insert(key.clone(), (worker, file, ms));
        assert!(before.is_none(), "{key} recorded twice ({name})");
    }
    Recorded {
        cases,
        count: list.len(),
    }
}

/// Per-file durations (ms) of one run.
fn file_durations(r: &Recorded) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (_, file, ms) in r.cases.values() {
        *out.entry(file.clone()).or_default() += ms;
    }
    out
}

/// The files each worker ran.
fn split(r: &Recorded) -> Vec<BTreeSet<String>> {
    let mut out = vec![BTreeSet::new(); WORKERS];
    for (worker, file, _) in r.cases.values() {
        out[*worker].insert(file.clone());
    }
    out
}

fn makespan(split: &[BTreeSet<String>], durations: &BTreeMap<String, u64>) -> u64 {
    split
        .iter()
        .map(|files| {
            files
                .iter()
                .map(|f| durations.get(f).copied().unwrap_or(0))
                .sum()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn real_pytest_suite_sharded_by_glob_and_balanced_by_durations() {
    let Some(sdist) = std::env::var_os("ASSAY_TEST_SDIST").map(PathBuf::from) else {
        eprintln!(
            "\n\n*** SKIPPED real_suite: ASSAY_TEST_SDIST is not set. scripts/test.sh downloads \
             Markdown 3.7's sdist (crates/assay-cli/tests/real_suite_requirements.txt) and sets it. ***\n"
        );
        return;
    };
    let python =
        std::env::var("ASSAY_TEST_PYTHON").expect("ASSAY_TEST_PYTHON (a venv with pytest)");
    let dir = tempfile::tempdir().unwrap();

    // pytest's own count, from a direct run of the whole suite.
    let direct = dir.path().join("direct");
    std::fs::create_dir_all(&direct).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&sdist)
        .args(["--strip-components=1", "-C"])
        .arg(&direct)
        .status()
        .unwrap();
    assert!(untar.success());
    let junit = dir.path().join("direct.xml");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(PYTEST_ARGS.split(' '))
        .arg(format!("--junitxml={}", junit.display()))
        .arg("tests")
        .current_dir(&direct)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let own = std::fs::read_to_string(&junit)
        .unwrap()
        .matches("<testcase ")
        .count();
    assert!(own >= 1000, "pytest ran {own} tests");
    let mut modules_by_file = BTreeMap::new();
    modules(&direct, &direct.join("tests"), &mut modules_by_file);

    let wf = dir.path().join("pytest-shards.yaml");
    std::fs::write(&wf, readme_workflow()).unwrap();
    let data = dir.path().join("data");

    // Run 1: no history, Testkube's even split (contiguous chunks of the sorted glob).
    let first = run(&data, &wf, &sdist, &python, &modules_by_file);
    assert_eq!(first.count, own, "every test recorded once in run 1");
    assert_eq!(first.cases.len(), own);
    let durations = file_durations(&first);
    assert_eq!(durations.len(), modules_by_file.len(), "every file ran");
    let total: u64 = durations.values().sum();
    let longest = durations.values().copied().max().unwrap_or(0);
    let lower = longest.max(total.div_ceil(WORKERS as u64));
    let files: Vec<&String> = durations.keys().collect();
    let (size, bigger) = (files.len() / WORKERS, files.len() % WORKERS);
    let mut even = Vec::new();
    let mut start = 0;
    for w in 0..WORKERS {
        let n = size + usize::from(w < bigger);
        even.push(
            files[start..start + n]
                .iter()
                .map(|f| f.to_string())
                .collect::<BTreeSet<_>>(),
        );
        start += n;
    }
    assert_eq!(
        split(&first),
        even,
        "run 1 (no history) is Testkube's even split"
    );
    let even_makespan = makespan(&even, &durations);

    // Run 2: balanced by run 1's durations.
    let second = run(&data, &wf, &sdist, &python, &modules_by_file);
    assert_eq!(second.count, own, "every test recorded once in run 2");
    assert_eq!(
        second.cases.keys().collect::<Vec<_>>(),
        first.cases.keys().collect::<Vec<_>>()
    );
    let balanced = split(&second);
    assert_ne!(balanced, even, "run 2's split differs from the even split");
    let balanced_makespan = makespan(&balanced, &durations);
    let ratio = balanced_makespan as f64 / lower.max(1) as f64;
    let measured = makespan(&balanced, &file_durations(&second));
    println!(
        "shards: {own} tests in {} files over {WORKERS} workers; total {total} ms, lower bound {lower} ms \
         (longest file {longest} ms); balanced makespan {balanced_makespan} ms (ratio {ratio:.2}); \
         even-split makespan {even_makespan} ms; run 2 as recorded: {measured} ms",
        durations.len()
    );
    assert!(
        ratio <= 1.15,
        "balanced makespan {balanced_makespan} ms is more than 15% over the lower bound {lower} ms"
    );
}
