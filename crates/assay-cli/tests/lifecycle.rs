//! `assay run` as a process: stopped by Ctrl-C or SIGTERM (aborted, exit 1, no process left),
//! killed with SIGKILL (the next command shows the execution aborted with a reason), two runs at
//! once on one data dir, and bad input (exit 2 with a location and a hint, nothing recorded).

use crate::run_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use run_support::*;
use serde_json::Value;

/// `assay run tests/workflows/lifecycle.yaml --name NAME ... -q -o json`, not waited for.
fn spawn(name: &str, data: &std::path::Path, args: &[&str]) -> Child {
    assay()
        .arg("run")
        .arg(workflows_dir().join("lifecycle.yaml"))
        .args(["--name", name, "-q", "-o", "json", "--data-dir"])
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start assay")
}

/// `(pid, start time)` of every process, with its parent and command line.
fn processes() -> BTreeMap<(i32, u64), (i32, String)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        // state ppid ... starttime is field 22 of stat, 20 after the command.
        if fields[0] == "Z" {
            continue;
        }
        let ppid = fields[1].parse().unwrap_or(0);
        let start = fields[19].parse().unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.insert((pid, start), (ppid, cmdline));
    }
    out
}

/// Every live descendant of `root` in one snapshot of the processes.
fn descendants(all: &BTreeMap<(i32, u64), (i32, String)>, root: i32) -> BTreeSet<(i32, u64)> {
    let mut found: BTreeSet<(i32, u64)> = BTreeSet::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (key, (ppid, _)) in all {
            if *ppid == parent && found.insert(*key) {
                parents.push(key.0);
            }
        }
    }
    found
}

fn with_marker(marker: &str) -> Vec<(i32, String)> {
    processes()
        .into_iter()
        .filter(|(_, (_, cmd))| cmd.contains(marker))
        .map(|((pid, _), (_, cmd))| (pid, cmd))
        .collect()
}

/// Still running, and the same process (not a recycled pid).
fn survivors(set: &BTreeSet<(i32, u64)>) -> Vec<(i32, String)> {
    let now = processes();
    set.iter()
        .filter_map(|k| now.get(k).map(|(_, cmd)| (k.0, cmd.clone())))
        .collect()
}

/// A unique marker for this test's processes.
fn marker(data: &tempfile::TempDir) -> String {
    let name = data.path().file_name().unwrap().to_string_lossy();
    format!("assay-lifecycle-{}", name.trim_start_matches('.'))
}

/// Kills what is left of a run when a test ends, whatever happened: the `assay` process, every
/// process it had, anything with its marker (checked by start time, so no recycled pid).
struct Leftovers {
    marker: String,
    tree: BTreeSet<(i32, u64)>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let ours = nix::unistd::getpgrp();
        for (pid, _) in survivors(&self.tree)
            .into_iter()
            .chain(with_marker(&self.marker))
        {
            // Its whole process group too (what it started later), never the test's own.
            if let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
                && group != ours
            {
                let _ = kill(Pid::from_raw(-group.as_raw()), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Start `long-running` and wait until its step has started the background grandchild; returns
/// the child and a guard that knows every process the run had at that moment.
fn start_long_run(data: &tempfile::TempDir) -> (Child, Leftovers) {
    let marker = marker(data);
    let mut child = spawn(
        "long-running",
        data.path(),
        &["--config", &format!("marker={marker}")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let root = child.id() as i32;
    // Wait for the grandchild, `bash -c 'sleep 300; : MARKER'` in the background of the step,
    // and for its own `sleep` (the marker is in assay's command line too).
    let grandchild = format!("bash -c sleep 300; : {marker}");
    let tree = loop {
        let all = processes();
        let tree = descendants(&all, root);
        let started = tree.iter().any(|k| {
            all.get(k)
                .is_some_and(|(_, cmd)| cmd.starts_with(&grandchild))
                && all.values().any(|(ppid, _)| *ppid == k.0)
        });
        if started {
            break tree;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "assay ended early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut tree = tree;
    let me = processes()
        .into_keys()
        .find(|(pid, _)| *pid == root)
        .expect("assay runs");
    tree.insert(me);
    let guard = Leftovers { marker, tree };
    assert!(
        guard.tree.len() >= 4,
        "expected assay, the step, its grandchild and its sleep: {:?}",
        survivors(&guard.tree)
    );
    (child, guard)
}

/// Wait for a child with a time limit; returns its exit code, stdout and stderr.
fn finish(mut child: Child, limit: Duration) -> (i32, String, String) {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "assay did not end within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stops_cleanly_on(signal: Signal) {
    let data = tempfile::tempdir().unwrap();
    let (child, guard) = start_long_run(&data);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, signal).unwrap();
    let (code, stdout, stderr) = finish(child, Duration::from_secs(20));
    let show = format!("--- stderr\n{stderr}\n--- stdout\n{stdout}");
    assert_eq!(code, FAILED, "{show}");
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{show}"));
    assert_eq!(json["result"]["status"], "aborted", "{show}");
    assert_eq!(
        json["result"]["steps"]["sleeps"]["status"], "aborted",
        "{show}"
    );
    assert_eq!(
        json["result"]["steps"]["not_reached"]["status"], "skipped",
        "{show}"
    );
    // As in Testkube, nothing starts after an abort, `condition: always` steps included.
    assert_eq!(
        json["result"]["steps"]["cleanup"]["status"], "skipped",
        "{show}"
    );
    // Nothing of the run is left: neither what it had when it was stopped nor anything that
    // carries its marker.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        survivors(&guard.tree),
        vec![],
        "processes of the run survived"
    );
    assert_eq!(
        with_marker(&guard.marker),
        vec![],
        "processes of the run survived"
    );
}

#[test]
fn ctrl_c_aborts_and_leaves_no_process() {
    stops_cleanly_on(Signal::SIGINT);
}

#[test]
fn sigterm_aborts_and_leaves_no_process() {
    stops_cleanly_on(Signal::SIGTERM);
}

/// The recorded execution in Testkube's JSON shape, read from the store as it is, without
/// recovering anything (`assay get execution` is not there yet; when it is, read through it).
fn recorded(data: &std::path::Path, name: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = assay_store::Store::open(assay_store::StoreConfig::new(data))
            .await
            .unwrap();
        let e = store
            .get_execution(&assay_store::ExecutionRef::Name(name.into()))
            .await
            .unwrap();
        store.close().await;
        serde_json::to_value(assay_store::testkube::TestWorkflowExecution::from(&e)).unwrap()
    })
}

/// `assay run short` on `data`, waited for.
fn run_short(data: &std::path::Path) -> (i32, Value, String) {
    let (code, stdout, stderr) = finish(spawn("short", data, &[]), Duration::from_secs(30));
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        code,
        json,
        format!("--- stderr\n{stderr}\n--- stdout\n{stdout}"),
    )
}

#[test]
fn sigkill_leaves_an_execution_that_the_next_command_shows_aborted() {
    let data = tempfile::tempdir().unwrap();
    let (child, _guard) = start_long_run(&data);
    // Another command while it runs leaves it alone: its owner is alive.
    let (code, json, show) = run_short(data.path());
    assert_eq!(code, PASSED, "{show}");
    assert_eq!(json["number"], 1, "{show}");
    let e = recorded(data.path(), "long-running-1");
    assert_eq!(e["result"]["status"], "running", "{e:#}");

    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let (code, _, _) = finish(child, Duration::from_secs(10));
    assert_eq!(code, -1, "killed by a signal");
    // Nothing can clean up after a killed process: the record says running until someone looks.
    let e = recorded(data.path(), "long-running-1");
    assert_eq!(e["result"]["status"], "running", "{e:#}");

    // The next command that opens the data dir marks it aborted, with a reason.
    let (code, json, show) = run_short(data.path());
    assert_eq!(code, PASSED, "{show}");
    assert_eq!(json["number"], 2, "{show}");
    let e = recorded(data.path(), "long-running-1");
    assert_eq!(e["result"]["status"], "aborted", "{e:#}");
    let reason = e["result"]["initialization"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(
        reason.starts_with("aborted: ") && reason.contains("ended without finishing"),
        "{e:#}"
    );
    assert_eq!(e["result"]["steps"]["sleeps"]["status"], "aborted", "{e:#}");
    assert!(e["result"]["finishedAt"].is_string(), "{e:#}");
}

#[test]
fn two_runs_at_once_on_one_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let a = spawn("short", data.path(), &[]);
    let b = spawn("short", data.path(), &[]);
    let mut numbers = Vec::new();
    let mut ids = BTreeSet::new();
    for child in [a, b] {
        let (code, stdout, stderr) = finish(child, Duration::from_secs(30));
        assert_eq!(code, PASSED, "{stderr}\n{stdout}");
        let json: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(json["result"]["status"], "passed", "{stdout}");
        numbers.push(json["number"].as_i64().unwrap());
        ids.insert(json["id"].as_str().unwrap().to_string());
        assert_eq!(json["name"], format!("short-{}", numbers.last().unwrap()));
    }
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(ids.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, a location and a hint, nothing recorded.

fn run_file(path: &std::path::Path, args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let out = assay()
        .arg("run")
        .arg(path)
        .args(args)
        .args(["-q", "-o", "json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "no execution printed on bad input");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        data,
    )
}

fn assert_nothing_recorded(data: &tempfile::TempDir) {
    let executions = data.path().join("files/executions");
    let recorded = std::fs::read_dir(&executions)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(recorded, 0, "files recorded for an invalid run");
    for file in files_under(data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, b"TestWorkflow") && !contains(&bytes, b"tokn"),
            "{} holds the invalid run",
            file.display()
        );
    }
}

#[test]
fn unknown_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let (code, stderr, data) = run_file(&missing, &[]);
    assert_eq!(code, INVALID, "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_nothing_recorded(&data);
}

#[test]
fn invalid_yaml_points_at_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: broken\nspec:\n  steps:\n    - shell: [unclosed\n",
    )
    .unwrap();
    let (code, stderr, data) = run_file(&file, &[]);
    assert_eq!(code, INVALID, "{stderr}");
    let location = format!("{}:7:", file.display());
    assert!(stderr.contains(&location), "no `{location}` in {stderr}");
    assert_nothing_recorded(&data);
}

#[test]
fn unknown_config_key_has_a_hint() {
    let file = workflows_dir().join("config.yaml");
    let (code, stderr, data) = run_file(
        &file,
        &[
            "--name", "config", "--config", "tokn=1", "--config", "token=x",
        ],
    );
    assert_eq!(code, INVALID, "{stderr}");
    assert!(stderr.contains("config.yaml:"), "no location: {stderr}");
    assert!(stderr.contains("`tokn`"), "{stderr}");
    assert!(stderr.contains("hint: did you mean `token`?"), "{stderr}");
    assert_nothing_recorded(&data);
}

#[test]
fn config_value_of_the_wrong_type() {
    let file = workflows_dir().join("config.yaml");
    let (code, stderr, data) = run_file(
        &file,
        &[
            "--name",
            "config",
            "--config",
            "workers=many",
            "--config",
            "token=x",
        ],
    );
    assert_eq!(code, INVALID, "{stderr}");
    assert!(
        stderr.contains("`workers`") && stderr.contains("integer"),
        "{stderr}"
    );
    assert_nothing_recorded(&data);
}
