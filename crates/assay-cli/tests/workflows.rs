//! End-to-end acceptance of `assay run` (issue 3's semantics, issue 4's records): every workflow
//! under `tests/workflows/` runs through the real `assay` binary with a fresh data dir, and the
//! test checks the exit code, the execution and step statuses, outputs, logs and artifacts as
//! recorded in that data dir.
//!
//! Each `workflow!` case is its own test, so nextest runs them in parallel.

use crate::run_support;

use run_support::*;

// ---------------------------------------------------------------------------------------------
// Steps: order, nesting, setup/after, refs.

workflow!(steps_run_in_order_with_setup_and_after, "steps.yaml", "step-order"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("prepare", "passed"),
        ("first", "passed"),
        ("_3", "passed"),
        ("nested_two", "passed"),
        ("nested_two.1", "passed"),
        ("last", "passed"),
        ("report_order", "passed"),
    ]);
    // `after` sees what setup and every step wrote, in order.
    assert_eq!(
        run.log("report_order"),
        "setup\nfirst\nnested-1\nnested-2\nlast\n",
        "{run}"
    );
});

workflow!(after_runs_when_a_step_failed, "steps.yaml", "after-runs-on-failure"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("breaks", "failed"),
        ("never_reached", "skipped"),
        ("cleanup", "passed"),
        ("report", "skipped"),
    ]);
    assert_eq!(run.exit_code("breaks"), Some(7), "{run}");
    assert_eq!(run.log("breaks"), "breaking\n");
    assert_eq!(run.log("never_reached"), "");
    assert_eq!(run.log("cleanup"), "cleanup ran\n");
    // Testkube's `after` has no implicit condition: without `always` it follows `passed`.
    assert_eq!(run.log("report"), "");
});

// The private /data must be in place for the very first process of an execution, every time.
#[test]
fn data_is_ready_for_the_first_step() {
    for attempt in 0..8 {
        let run = Run::new("steps.yaml", "step-order", &[]);
        assert_eq!(run.code, PASSED, "attempt {attempt}:\n{run}");
    }
}

// ---------------------------------------------------------------------------------------------
// shell and run.

workflow!(shell_is_bash_and_run_takes_argv, "shell_and_run.yaml", "shell-and-run"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("bash_features", "passed"),
        ("multi_line_script_stops_at_a_failure", "failed"),
        ("program_with_args", "passed"),
        ("working_directory", "passed"),
        ("shell_with_env_and_workingdir", "passed"),
    ]);
    assert_eq!(
        run.log("bash_features"),
        "random is a number\nbash runs this\narray b\n"
    );
    // `set -e`: the script stops at `false`.
    assert_eq!(run.log("multi_line_script_stops_at_a_failure"), "before\n");
    // No shell: `$NOT_EXPANDED` stays as written, `{{ env.X }}` is resolved.
    assert_eq!(
        run.log("program_with_args"),
        "two words|from-run-env|$NOT_EXPANDED\n"
    );
    assert_eq!(run.log("working_directory"), "/tmp\n");
    assert_eq!(run.log("shell_with_env_and_workingdir"), "step-value in /usr\n");
});

// ---------------------------------------------------------------------------------------------
// Conditions.

workflow!(conditions_follow_testkube, "conditions.yaml", "conditions"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("ok", "passed"),
        ("runs_when_passed", "passed"),
        ("never_runs", "skipped"),
        ("expression_true", "passed"),
        ("expression_false", "skipped"),
        ("bad", "failed"),
        ("skipped_after_failure", "skipped"),
        ("runs_on_failure", "passed"),
        ("runs_always", "passed"),
        ("expression_over_failed_step", "passed"),
        ("failed_and_passed_fields", "passed"),
    ]);
    assert_eq!(run.exit_code("bad"), Some(4));
    assert_eq!(run.log("never_runs"), "");
    assert_eq!(run.log("skipped_after_failure"), "");
    assert_eq!(run.log("runs_on_failure"), "failed-branch\n");
    assert_eq!(run.log("runs_always"), "always-branch\n");
    assert_eq!(run.log("expression_over_failed_step"), "bad-was-failed\n");
    // Testkube's `failed`: neither passed nor skipped (a skipped step has not failed).
    assert_eq!(run.log("failed_and_passed_fields"), "failed-fields\n");
    assert_eq!(run.output("ok", "flag"), Some("yes".into()));
});

workflow!(failed_condition_skips_when_nothing_failed, "conditions.yaml", "failed-branch-skipped"; |run| {
    run.expect(PASSED, &[("root", "passed"), ("_1", "passed"), ("on_failure_only", "skipped")]);
    assert_eq!(run.log("_1"), "fine\n");
    assert_eq!(run.log("on_failure_only"), "");
});

workflow!(children_take_their_parents_condition, "conditions.yaml", "inherited-conditions"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("breaks", "failed"),
        ("cleanup", "passed"),
        ("inherits_always", "passed"),
        ("says_passed", "skipped"),
        ("inner_group", "passed"),
        ("grandchild", "skipped"),
        ("via_template", "passed"),
        // The group that holds the template's container defaults.
        ("via_template.1", "passed"),
        ("from_template", "passed"),
    ]);
    assert_eq!(run.log("inherits_always"), "child-cleanup\n", "{run}");
    assert_eq!(run.log("from_template"), "template-cleanup\n", "{run}");
    assert_eq!(run.log("says_passed"), "");
    assert_eq!(run.log("grandchild"), "");
});

// ---------------------------------------------------------------------------------------------
// optional and negative.

workflow!(optional_and_negative, "optional_negative.yaml", "optional-negative"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("optional_failure", "failed"),
        ("still_runs", "passed"),
        ("group_with_optional_child", "passed"),
        ("inner_optional", "failed"),
        ("inner_next", "passed"),
        ("expected_failure", "passed"),
        ("unexpected_pass", "failed"),
    ]);
    assert_eq!(run.exit_code("optional_failure"), Some(2));
    assert_eq!(run.exit_code("expected_failure"), Some(3));
    assert_eq!(run.log("still_runs"), "still-runs\n");
    assert_eq!(run.log("inner_next"), "inner-next\n");
});

workflow!(negative_step_that_passes_fails, "optional_negative.yaml", "negative-fails"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("should_have_failed", "failed"),
        ("skipped", "skipped"),
    ]);
    assert_eq!(run.exit_code("should_have_failed"), Some(0));
});

// ---------------------------------------------------------------------------------------------
// retry.

workflow!(retry_until, "retry.yaml", "retry"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("flaky", "passed"),
        ("until_failed", "failed"),
        ("exhausted", "failed"),
        ("count_attempts", "passed"),
    ]);
    // Three attempts until it passed; `until: self.failed` stopped at the first failure;
    // `count: 2` means two more attempts after the first.
    assert_eq!(run.log("count_attempts"), "flaky=3 until=2\n");
    let flaky = run.log("flaky");
    assert!(flaky.contains("attempt 1\n") && flaky.contains("attempt 3\n"), "{flaky}");
    assert!(!flaky.contains("attempt 4"), "{flaky}");
    assert_eq!(run.log("exhausted").matches("always fails").count(), 3);
});

// ---------------------------------------------------------------------------------------------
// timeout, delay, activeDeadlineSeconds.

workflow!(timeout_kills_the_process_group, "timing.yaml", "timeout"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("slow", "timeout"),
        ("skipped", "skipped"),
        ("cleanup", "passed"),
    ]);
    // The step ignores SIGTERM, so it took SIGKILL.
    assert_eq!(run.exit_code("slow"), Some(137), "{run}");
    let log = run.log("slow");
    assert!(log.starts_with("grandchild "), "no grandchild in {log:?}");
    // Steps run in their own PID namespace, so `$!` is not a pid of ours: the grandchild is
    // found by the execution id in its command line.
    let marker = format!("grandchild of {}", run.id());
    let left = with_marker(&marker);
    assert!(left.is_empty(), "the grandchild survived the timeout: {left:?}");
    assert_eq!(run.log("cleanup"), "cleanup-after-timeout\n");
});

workflow!(delay_waits_before_the_step, "timing.yaml", "delay"; |run| {
    run.expect(PASSED, &[("root", "passed"), ("start_clock", "passed"), ("delayed", "passed")]);
    assert!(run.log("delayed").starts_with("waited "), "{run}");
});

workflow!(active_deadline_aborts_the_execution, "timing.yaml", "deadline"; |run| {
    run.expect(FAILED, &[("root", "aborted"), ("too_slow", "aborted"), ("never_reached", "skipped")]);
    assert_eq!(run.status(), "aborted");
    let reason = run.error();
    assert!(reason.contains("activeDeadlineSeconds"), "{run}");
    assert_eq!(run.log("too_slow"), "started\n");
});

// ---------------------------------------------------------------------------------------------
// Environment.

workflow!(env_overrides_and_templates, "env.yaml", "env-overrides"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("workflow_env", "passed"),
        ("step_env_wins", "passed"),
        ("run_env_wins", "passed"),
        ("templates", "passed"),
        ("group_env_reaches_children", "passed"),
        ("group_env_reaches_children.1", "passed"),
    ]);
    assert_eq!(run.log("workflow_env"), "LEVEL=workflow KEEP=kept\n");
    assert_eq!(run.log("step_env_wins"), "LEVEL=step KEEP=kept\n");
    assert_eq!(run.log("run_env_wins"), "LEVEL=run KEEP=kept\n");
    assert_eq!(run.log("templates"), "[workflow] [workflow-derived] [] [workflow-derived]\n");
    assert_eq!(run.log("group_env_reaches_children.1"), "child LEVEL=group\n");
});

workflow!(global_env_reaches_services_and_workers, "env.yaml", "global-env"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("with_service", "passed"),
        ("workers", "passed"),
        ("workers/0/root", "passed"),
        ("workers/0/_1", "passed"),
        ("workers/1/root", "passed"),
        ("workers/1/_1", "passed"),
    ]);
    assert_eq!(run.log("with_service"), "step sees SHARED=everywhere LOCAL=main-only\n");
    assert_eq!(
        run.log("with_service/service/echoer/0"),
        "service sees SHARED=everywhere\n"
    );
    assert_eq!(run.log("workers/0/_1"), "worker 0 sees SHARED=everywhere LOCAL=[]\n");
    assert_eq!(run.log("workers/1/_1"), "worker 1 sees SHARED=everywhere LOCAL=[]\n");
});

// ---------------------------------------------------------------------------------------------
// Content.

workflow!(content_files_with_mode, "content.yaml", "content-files"; |run| {
    run.expect(PASSED, &[("root", "passed"), ("executable", "passed"), ("modes", "passed")]);
    assert_eq!(run.log("executable"), "script ran with arg1\n");
    assert_eq!(
        run.log("modes"),
        "755 run.sh\n644 config/settings.ini\n600 relative/note.txt\nanswer = 42\n"
    );
});

#[test]
fn content_git_clones_a_local_repository() {
    let repo = GitRepo::new();
    let uri = format!("repo={}", repo.uri());
    let run = Run::new("content.yaml", "content-git", &["--config", &uri]);
    run.expect(PASSED, &[("root", "passed"), ("cloned", "passed")]);
    assert_eq!(
        run.log("cloned"),
        "from feature branch\ndocs not checked out\nfeature\n",
        "{run}"
    );
}

/// `content.git` with a token, over HTTP from a server that refuses requests without it: the
/// clone works, and the token is in no URI: not on git's command line, not in the clone's
/// `.git/config` (the steps read it and may archive it), not in anything stored.
#[test]
fn security_content_git_sends_its_token_in_a_header_not_in_the_uri() {
    const TOKEN: &str = "tok-3f9a61c2e7";
    let repo = GitRepo::new();
    let (_server, uri) = repo.serve_with_basic_auth("bot", TOKEN);
    let repo_arg = format!("repo={uri}");
    let token_arg = format!("token={TOKEN}");
    let run = Run::new(
        "content.yaml",
        "content-git-token",
        &["--config", &repo_arg, "--config", &token_arg],
    );
    run.expect(PASSED, &[("root", "passed"), ("cloned", "passed")]);
    assert_eq!(
        run.log("cloned"),
        format!("from feature branch\n{uri}\nno credential in .git\n"),
        "{run}"
    );
    for file in walk(run.data.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "{} holds the token",
            file.display()
        );
    }
    // A wrong token: the server refuses, the step fails saying so, the token is not shown.
    let run = Run::new(
        "content.yaml",
        "content-git-token",
        &["--config", &repo_arg, "--config", "token=not-the-token"],
    );
    assert_eq!(run.code, 1, "{run}");
    let cloned = run.log("cloned");
    assert!(!cloned.contains("not-the-token"), "{cloned}");
}

/// `content.git` with an inline `sshKey` that cannot open the repository (not a key, a port
/// nothing listens on) fails the clone before any step runs, and the key is never shown.
#[test]
fn content_git_with_an_ssh_key_that_cannot_connect_fails_without_showing_it() {
    let run = Run::new("content.yaml", "content-git-ssh-key", &[]);
    assert_eq!(run.code, 1, "{run}");
    let text = run.to_string();
    assert!(text.contains("failed to clone"), "{run}");
    assert!(!text.contains("never-ran"), "{run}");
    assert!(!text.contains("not-a-real-key-material"), "{run}");
}

/// The files under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `python3 -m http.server` over a folder on a free 127.0.0.1 port, stopped on drop.
struct HttpDir {
    child: std::process::Child,
    base: String,
}

impl HttpDir {
    fn new(dir: &std::path::Path) -> HttpDir {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpDir {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for HttpDir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn content_tarball_downloads_and_unpacks() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("hello.txt"), "hello from the tarball\n").unwrap();
    std::fs::write(src.join("sub/nested.txt"), "nested\n").unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    for (file, flags) in [("app.tar.gz", "-czf"), ("app.tar", "-cf")] {
        let ok = std::process::Command::new("tar")
            .arg(flags)
            .arg(served.join(file))
            .args(["-C", &src.display().to_string(), "hello.txt", "sub"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar {file}");
    }
    let server = HttpDir::new(&served);
    let base = format!("base={}", server.base);
    let run = Run::new("content.yaml", "content-tarball", &["--config", &base]);
    run.expect(PASSED, &[("root", "passed"), ("unpacked", "passed")]);
    assert_eq!(
        run.log("unpacked"),
        "hello from the tarball\nnested\nhello from the tarball\n",
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------------
// Outputs and artifacts.

workflow!(outputs_become_step_values, "outputs.yaml", "outputs"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("producer", "passed"),
        ("consumer", "passed"),
        ("condition_on_output", "passed"),
        ("condition_on_missing_output", "skipped"),
    ]);
    assert_eq!(run.output("producer", "version"), Some("1.2.3".into()), "{run}");
    assert_eq!(run.output("producer", "state"), Some("ok".into()), "{run}");
    assert_eq!(run.log("consumer"), "version=1.2.3 state=ok\n");
    assert_eq!(run.log("condition_on_output"), "matched\n");
});

workflow!(a_steps_results_folder_is_shared_with_later_steps, "results.yaml", "results"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("producer", "passed"),
        ("consumer", "passed"),
    ]);
    assert_eq!(run.log("producer"), "folder=/data/.steps/producer\n", "{run}");
    assert_eq!(run.log("consumer"), "report of the producer\n", "{run}");
});

workflow!(artifacts_by_glob_even_on_failure, "artifacts.yaml", "artifacts"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("reports", "passed"),
        ("failing_with_logs", "failed"),
        ("absolute_path", "passed"),
    ]);
    assert_eq!(
        run.artifact_paths(),
        ["logs/crash.log", "out/a.xml", "out/deep/er/b.xml", "work/out/a.xml"],
        "{run}"
    );
    assert_eq!(run.artifact("out/a.xml"), "<testsuite name=\"a\"/>\n");
    assert_eq!(run.artifact("out/deep/er/b.xml"), "<testsuite name=\"b\"/>\n");
    assert_eq!(run.artifact("logs/crash.log"), "crash dump\n");
    assert_eq!(run.artifact_ref("logs/crash.log"), "failing_with_logs");
    assert_eq!(run.artifact_ref("out/deep/er/b.xml"), "reports");
});

// ---------------------------------------------------------------------------------------------
// Parallel workers.

workflow!(parallel_count_matrix_shards, "parallel.yaml", "parallel"; |run| {
    assert_eq!(run.code, PASSED, "{run}");
    for (reference, n) in [("count", 3), ("matrix", 4), ("shards", 2)] {
        assert_eq!(run.step(reference), "passed", "{reference}\n{run}");
        for i in 0..n {
            assert_eq!(run.step(&format!("{reference}/{i}/root")), "passed", "{run}");
            assert_eq!(run.step(&format!("{reference}/{i}/_1")), "passed", "{run}");
        }
        assert!(
            run.steps().keys().all(|k| !k.starts_with(&format!("{reference}/{n}/"))),
            "more than {n} workers of {reference}\n{run}"
        );
    }
    for i in 0..3 {
        assert_eq!(run.log(&format!("count/{i}/_1")), format!("count worker {i} of 3\n"));
    }
    let mut matrix: Vec<String> = (0..4).map(|i| run.log(&format!("matrix/{i}/_1"))).collect();
    matrix.sort();
    assert_eq!(
        matrix,
        [
            "matrix chrome-large\n",
            "matrix chrome-small\n",
            "matrix firefox-large\n",
            "matrix firefox-small\n"
        ]
    );
    let shards: String = (0..2).map(|i| run.log(&format!("shards/{i}/_1"))).collect();
    assert_eq!(shards, "shard 0:a.test,b.test\nshard 1:c.test,d.test\n");
});

#[test]
fn parallelism_limits_workers_running_at_once() {
    let marks = tempfile::tempdir().unwrap();
    let config = format!("marks={}", marks.path().display());
    let run = Run::new("parallel.yaml", "parallel-limit", &["--config", &config]);
    assert_eq!(run.code, PASSED, "{run}");
    let mut seen = Vec::new();
    for i in 0..5 {
        assert_eq!(run.step(&format!("limited/{i}/_1")), "passed", "{run}");
        let log = run.log(&format!("limited/{i}/_1"));
        let n: u32 = log
            .trim()
            .strip_prefix("running together: ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{log:?}\n{run}"));
        seen.push(n);
    }
    assert!(
        seen.iter().all(|n| (1..=2).contains(n)),
        "more than 2 at once: {seen:?}"
    );
}

workflow!(parallel_transfer_and_fetch, "parallel.yaml", "parallel-files"; |run| {
    run.expect(PASSED, &[
        ("root", "passed"),
        ("prepare", "passed"),
        ("workers", "passed"),
        ("workers/0/root", "passed"),
        ("workers/0/_1", "passed"),
        ("workers/1/root", "passed"),
        ("workers/1/_1", "passed"),
        ("collect", "passed"),
    ]);
    assert_eq!(run.log("workers/0/_1"), "shared input\n");
    assert_eq!(run.log("workers/1/_1"), "shared input\n");
    assert_eq!(run.log("collect"), "result of 0\nresult of 1\n", "{run}");
});

workflow!(parallel_shards_from_glob, "parallel.yaml", "parallel-glob"; |run| {
    assert_eq!(run.code, PASSED, "{run}");
    for step in ["glob/0/_1", "glob/1/_1", "inline", "nothing/0/_1", "nothing/1/_1"] {
        assert_eq!(run.step(step), "passed", "{step}\n{run}");
    }
    // Relative to the working directory /data/repo, absolute out, split like Testkube.
    assert_eq!(
        run.log("glob/0/_1"),
        "/data/repo/tests/sub/test_c.py=c\n/data/repo/tests/test_a.py=a\n",
        "{run}"
    );
    assert_eq!(run.log("glob/1/_1"), "/data/repo/tests/test_b.py=b\n", "{run}");
    assert_eq!(
        run.log("inline"),
        "/data/repo/tests/test_a.py,/data/repo/tests/test_b.py\n"
    );
    // No match: a warning the CLI prints and the store keeps with the step.
    let warning = "shards.files: `glob(\"spec/*.py\")` gave no items (relative to /data/repo)";
    assert!(run.stderr.contains(warning), "{run}");
    assert!(run.log("nothing").contains(&format!("warning: {warning}")), "{run}");
    assert_eq!(run.log("nothing/0/_1"), "worker 0 got 0 files\n", "{run}");
});

workflow!(parallel_fail_fast, "parallel.yaml", "parallel-fail-fast"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("workers", "failed"),
        ("workers/0/root", "failed"),
        ("workers/0/_1", "failed"),
        ("workers/1/root", "aborted"),
        ("workers/1/_1", "aborted"),
        ("workers/2/root", "aborted"),
        ("workers/2/_1", "aborted"),
    ]);
    assert_eq!(run.log("workers/0/_1"), "worker 0 fails\n");
});

workflow!(parallel_without_fail_fast, "parallel.yaml", "parallel-no-fail-fast"; |run| {
    run.expect(FAILED, &[
        ("root", "failed"),
        ("workers", "failed"),
        ("workers/0/root", "passed"),
        ("workers/0/_1", "passed"),
        ("workers/1/root", "failed"),
        ("workers/1/_1", "failed"),
        ("workers/2/root", "passed"),
        ("workers/2/_1", "passed"),
    ]);
    assert_eq!(run.log("workers/0/_1"), "worker 0 done\n");
    assert_eq!(run.log("workers/2/_1"), "worker 2 done\n");
});

// ---------------------------------------------------------------------------------------------
// Services.

#[test]
fn services_with_readiness_probes() {
    let http = format!("http_port={}", free_port());
    let tcp = format!("tcp_port={}", free_port());
    let run = Run::new(
        "services.yaml",
        "services",
        &["--config", &http, "--config", &tcp],
    );
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("use_services", "passed"),
            ("fetch", "passed"),
            ("connect", "passed"),
            ("after_group", "passed"),
        ],
    );
    assert_eq!(run.log("fetch"), "hello from web\n");
    assert_eq!(run.log("connect"), "connected\n");
    // Stopped after their group.
    assert_eq!(run.log("after_group"), "web stopped\n", "{run}");
    // Their logs are kept.
    let tcp_log = run.log("use_services/service/tcp/0");
    assert!(
        tcp_log.starts_with("tcp service starting\nlistening\n"),
        "{tcp_log:?}\n{run}"
    );
}

#[test]
fn a_service_that_never_gets_ready_fails_the_execution() {
    let port = format!("port={}", free_port());
    let run = Run::new("services.yaml", "service-never-ready", &["--config", &port]);
    assert_eq!(run.code, FAILED, "{run}");
    assert_eq!(run.status(), "failed", "{run}");
    assert_eq!(run.step("query"), "skipped", "{run}");
    assert_eq!(run.log("query"), "");
    assert_ne!(run.step("needs_db"), "passed", "{run}");
    let reason = format!("{} {}", run.error(), run.step_error("needs_db"));
    assert!(
        reason.contains("db") && reason.contains("never became ready"),
        "no clear reason: {reason:?}\n{run}"
    );
    assert_eq!(run.log("needs_db/service/db/0"), "db pretending\n", "{run}");
}

/// A folder for the service's fifo that the steps can write in, whichever user they run as
/// (as root they run as `nobody`, who cannot enter a 0700 temporary folder of ours).
fn fifo_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn a_service_without_probe_that_exits_non_zero_fails_its_step() {
    let dir = fifo_dir();
    let dir_arg = format!("dir={}", dir.path().display());
    let run = Run::new(
        "services.yaml",
        "service-exits-early",
        &["--config", &dir_arg, "--config", "code=3"],
    );
    assert_eq!(run.code, FAILED, "{run}");
    assert_eq!(run.status(), "failed", "{run}");
    assert_eq!(run.step("wait_for_it"), "passed", "{run}");
    assert_eq!(run.log("wait_for_it"), "service gone\n", "{run}");
    assert_eq!(run.step("uses_crashing"), "failed", "{run}");
    let reason = run.step_error("uses_crashing");
    assert!(
        reason.contains("service crashing (0) exited with code 3"),
        "no clear reason: {reason:?}\n{run}"
    );
    assert_eq!(
        run.log("uses_crashing/service/crashing/0"),
        "crashing now\n"
    );
}

#[test]
fn a_service_without_probe_that_exits_zero_is_fine() {
    let dir = fifo_dir();
    let dir_arg = format!("dir={}", dir.path().display());
    let run = Run::new(
        "services.yaml",
        "service-exits-early",
        &["--config", &dir_arg, "--config", "code=0"],
    );
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("make_fifo", "passed"),
            ("uses_crashing", "passed"),
            ("wait_for_it", "passed"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Config and secrets.

const TOKEN: &str = "tok-SENSITIVE-4b1d";

#[test]
fn config_values_are_typed_and_sensitive_ones_masked() {
    let token = format!("token={TOKEN}");
    let args = [
        "--config",
        &token,
        "--config",
        "workers=5",
        "--config",
        "ratio=0.25",
        "--config",
        "verbose=true",
    ];
    let run = Run::new("config.yaml", "config", &args);
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("typed", "passed"),
            ("sensitive", "passed"),
        ],
    );
    assert_eq!(
        run.log("typed"),
        "name=world workers=5 ratio=0.25 verbose=true\nsum=6\n"
    );
    // The step got the real value (it compares it) but its log holds the mask.
    assert_eq!(run.log("sensitive"), "token is *****\ntoken matches\n");
    let params = &run.json["configParams"];
    assert_eq!(params["workers"]["value"], "5", "{run}");
    assert_eq!(params["name"]["value"], "world", "{run}");
    assert_eq!(params["token"]["sensitive"], true, "{run}");
    assert!(params["token"].get("value").is_none(), "{run}");
    run.assert_never_stored(TOKEN);
}

#[test]
fn sensitive_config_from_a_secret_is_masked() {
    let token = format!("token={TOKEN}");
    let run = Run::new("config.yaml", "config", &["--secret", &token]);
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("typed", "passed"),
            ("sensitive", "passed"),
        ],
    );
    assert_eq!(run.log("sensitive"), "token is *****\ntoken matches\n");
    run.assert_never_stored(TOKEN);
}

workflow!(boolean_config_as_a_condition, "config.yaml", "config-condition", "--config", "verbose=true"; |run| {
    run.expect(PASSED, &[("root", "passed"), ("verbose_only", "passed"), ("quiet_only", "skipped")]);
    assert_eq!(run.log("verbose_only"), "verbose-on\n");
});

const SECRET: &str = "s3cr3t-VALUE-xyzzy";

#[test]
fn secrets_are_masked_everywhere() {
    let secret = format!("API_KEY={SECRET}");
    let run = Run::new("secrets.yaml", "secrets", &["--secret", &secret]);
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("whole", "passed"),
            ("slowly", "passed"),
            ("output", "passed"),
            ("template", "passed"),
            ("in_a_failure", "failed"),
        ],
    );
    assert_eq!(run.log("whole"), "the secret is *****.\n");
    // Printed one byte at a time, 50 ms apart: many chunks, one mask.
    assert_eq!(run.log("slowly"), "slow: ***** end\n");
    assert_eq!(run.output("output", "leak"), Some("*****".into()), "{run}");
    assert_eq!(run.log("template"), "output is *****\n");
    assert_eq!(run.log("in_a_failure"), "failing with *****\n");
    run.assert_never_stored(SECRET);
    // Not even a long piece of it.
    run.assert_never_stored(&SECRET[..10]);
}

// Without --quiet, step output streams to stderr: masked there too.
#[test]
fn secrets_are_masked_in_streamed_output() {
    let secret = format!("API_KEY={SECRET}");
    let run = Run::with_flags("secrets.yaml", "secrets", &["--secret", &secret], &[]);
    assert_eq!(run.code, PASSED, "{run}");
    assert!(run.stderr.contains("the secret is *****."), "{run}");
    assert!(run.stderr.contains("slow: ***** end"), "{run}");
    run.assert_never_stored(SECRET);
}

// ---------------------------------------------------------------------------------------------
// What an execution records: tags, exit codes, resource use; Kubernetes-only fields noted.

workflow!(records_tags_exit_codes_and_resource_use, "records.yaml", "records", "--tag", "from=cli"; |run| {
    run.expect(PASSED, &[("root", "passed"), ("busy", "passed"), ("exit_code", "failed")]);
    assert_eq!(run.exit_code("exit_code"), Some(42));
    assert_eq!(run.exit_code("busy"), Some(0));
    assert_eq!(
        run.json["tags"],
        serde_json::json!({"from": "cli", "owner": "qa-team", "suite": "smoke"}),
        "{run}"
    );
    let busy = &run.steps()["busy"];
    let memory = busy["peakMemoryBytes"].as_i64().unwrap_or(0);
    assert!(memory >= 40 << 20, "peak memory {memory} under the 40 MiB it held\n{run}");
    let cpu = busy["cpuTimeMs"].as_i64().unwrap_or(0);
    assert!(cpu >= 50, "CPU time {cpu} ms\n{run}");
    assert!(busy["startedAt"].is_string() && busy["finishedAt"].is_string(), "{run}");
    assert!(run.stderr.contains("images are recorded but not pulled"), "{run}");
    assert!(run.stderr.contains("apply on Kubernetes only"), "{run}");
});

// ---------------------------------------------------------------------------------------------
// execute of stored workflows.

#[test]
fn execute_runs_stored_workflows_as_their_own_executions() {
    let run = Run::stored("execute.yaml", "execute-parent", &[], &[]);
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("children", "passed"),
            ("after", "passed"),
        ],
    );
    let children = run.executions_of("execute-child");
    assert_eq!(children.len(), 2, "one execution per matrix copy\n{run}");
    let mut greetings: Vec<&str> = children
        .iter()
        .map(|c| {
            c["configParams"]["greeting"]["value"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    greetings.sort();
    assert_eq!(greetings, ["hello ann", "hello bob"]);
    for c in &children {
        assert_eq!(c["result"]["status"], "passed", "{c:#}");
        assert_eq!(c["runningContext"]["type"], "api", "{c:#}");
        assert_eq!(
            c["runningContext"]["interface"]["type"], "internal",
            "{c:#}"
        );
        let actor = &c["runningContext"]["actor"];
        assert_eq!(actor["type"], "testworkflowexecution", "{c:#}");
        assert_eq!(actor["name"], "execute-parent-1", "{c:#}");
        assert_eq!(actor["executionId"], c["parent"]["id"], "{c:#}");
    }
}

#[test]
fn execute_fails_the_step_for_a_failing_or_unknown_workflow() {
    let run = Run::stored("execute.yaml", "execute-failing-child", &[], &[]);
    run.expect(
        FAILED,
        &[
            ("root", "failed"),
            ("failing_child", "failed"),
            ("unknown_workflow", "failed"),
        ],
    );
    assert!(
        run.step_error("failing_child").contains("execute-child"),
        "{run}"
    );
    assert!(
        run.step_error("unknown_workflow")
            .contains("`execute-nobody`"),
        "{run}"
    );
    let children = run.executions_of("execute-child");
    assert_eq!(children.len(), 1, "{run}");
    assert_eq!(children[0]["result"]["status"], "failed");
    assert_eq!(children[0]["configParams"]["code"]["value"], "5");
    assert_eq!(
        children[0]["testWorkflowExecutionName"],
        "execute-failing-child-1"
    );
    // The error, the summary, `-o json` and `get execution` name the child execution and
    // where to look.
    assert!(
        run.step_error("failing_child")
            .contains("execute-child-1 failed (`assay get execution execute-child-1`)"),
        "{run}"
    );
    assert!(
        run.stderr.contains(
            "  executed: execute-child-1 (execute-child) failed — `assay get execution execute-child-1`"
        ),
        "{run}"
    );
    let listed = run.json["children"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}"));
    assert_eq!(listed.len(), 1, "{run}");
    assert_eq!(listed[0]["name"], "execute-child-1");
    assert_eq!(listed[0]["workflow"], "execute-child");
    assert_eq!(listed[0]["status"], "failed");
    assert_eq!(listed[0]["ref"], children[0]["parent"]["ref"]);
    let get = assay()
        .args(["get", "execution", "execute-failing-child-1", "--data-dir"])
        .arg(run.data.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&get.stdout);
    assert!(table.contains("EXECUTED"), "{table}");
    assert!(table.contains("execute-child-1"), "{table}");
}

workflow!(recording_problems_keep_the_verdict_and_what_was_recorded, "recording.yaml", "recording"; |run| {
    // The step's own failure is the verdict (exit 1), not an aborted run (exit 3).
    run.expect(FAILED, &[("root", "failed"), ("tests", "failed")]);
    assert_eq!(run.error(), "", "{run}");
    assert_eq!(run.artifact_paths(), ["junit.xml"], "{run}");
    assert!(run.artifact("junit.xml").contains("<testsuite"), "{run}");
    assert_eq!(run.log("tests"), "ran the tests\n");
    let problems = run.json["recordErrors"].as_array().unwrap_or_else(|| panic!("{run}"));
    assert_eq!(problems.len(), 1, "{run}");
    let problem = problems[0].as_str().unwrap();
    assert!(problem.contains("artifact `we\\ird.txt` of step `tests`"), "{problem}");
    assert!(run.stderr.contains("warning: failed to record artifact `we\\ird.txt`"), "{run}");
    // The test results of the single-file report are there, and `get` lists the problem.
    let tests = assay()
        .args(["get", "tests", run.id(), "-o", "json", "--data-dir"])
        .arg(run.data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tests.stdout);
    assert!(text.contains("\"bad\""), "{text}");
    let get = assay()
        .args(["get", "execution", run.id(), "--data-dir"])
        .arg(run.data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&get.stdout);
    assert!(text.contains("Not recorded: failed to record artifact `we\\ird.txt`"), "{text}");
});

#[test]
fn the_summary_blames_the_step_that_failed_the_run_not_an_optional_one() {
    let run = Run::with_flags("optional_negative.yaml", "blame", &[], &[]);
    assert_eq!(run.code, FAILED, "{run}");
    assert!(
        run.stderr
            .contains("failed step: Unit tests [unit_tests] failed, exit code 1"),
        "{run}"
    );
    assert!(!run.stderr.contains("failed step: Lint"), "{run}");
    assert!(!run.stderr.contains("failed step: Flaky probe"), "{run}");
    // The JSON names the same step (remote runs print it), by the one shared rule.
    let run = Run::new("optional_negative.yaml", "blame", &[]);
    assert_eq!(run.json["failedStep"], "unit_tests", "{run}");
}

/// Logs are stored raw, colour codes included; `assay run`'s plain-text output (no terminal)
/// and `assay logs` to a pipe print them without the codes.
#[test]
fn colour_codes_are_stored_raw_and_left_out_of_plain_text() {
    let run = Run::with_flags("colour.yaml", "colour", &[], &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("red text and green"), "{run}");
    assert!(!run.stderr.contains('\u{1b}'), "{run}");
    let logs = assay()
        .args(["logs", "colour-1", "--data-dir"])
        .arg(run.data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&logs.stdout);
    assert!(stdout.contains("red text and green"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    let json = assay()
        .args(["get", "execution", "colour-1", "-o", "json", "--data-dir"])
        .arg(run.data.path())
        .output()
        .unwrap();
    assert!(json.status.success());
    let id = serde_json::from_slice::<serde_json::Value>(&json.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = std::fs::read_dir(
        run.data
            .path()
            .join("files/executions")
            .join(id)
            .join("logs"),
    )
    .unwrap()
    .map(|e| std::fs::read(e.unwrap().path()).unwrap())
    .map(|b| zstd::decode_all(&b[..]).unwrap_or(b))
    .any(|b| b.windows(2).any(|w| w == b"\x1b["));
    assert!(stored, "the stored log keeps the codes");
}

/// Issue 13 #7: log prefixes were the whole first line of an unnamed step's command, or internal
/// refs (`glob/0/_1`) for workers made at run time. Every prefix of the live output, and every
/// stored step name (what the dashboard, MCP and `assay logs` show), is a readable label.
#[test]
fn log_labels_are_readable() {
    let live = Run::with_flags("parallel.yaml", "parallel-glob", &[], &[]);
    assert_eq!(live.code, PASSED, "{live}");
    // Workers of a `glob()` shard list, known only at run time.
    for line in [
        "  Glob · worker 1/2 | /data/repo/tests/sub/test_c.py=c",
        "  Glob · worker 2/2 | /data/repo/tests/test_b.py=b",
        "  Nothing · worker 2/2 | worker 1 got 0 files",
    ] {
        assert!(live.stderr.lines().any(|l| l == line), "`{line}`\n{live}");
    }
    // A worker whose one step is the worker is shown once.
    let started = live
        .stderr
        .lines()
        .filter(|l| l.trim() == "▶ Glob · worker 1/2")
        .count();
    assert_eq!(started, 1, "{live}");
    let prefixes: Vec<&str> = live
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_once(" | ").map(|(p, _)| p))
        .collect();
    assert!(!prefixes.is_empty(), "{live}");
    for p in &prefixes {
        assert!(
            !p.contains("/_") && !p.contains("/root") && p.chars().count() <= 60,
            "unreadable prefix `{p}`\n{live}"
        );
    }

    let run = Run::new("parallel.yaml", "parallel", &[]);
    assert_eq!(run.code, PASSED, "{run}");
    let names: std::collections::HashMap<&str, &str> = run.json["signature"]
        .as_array()
        .unwrap_or_else(|| panic!("no signature\n{run}"))
        .iter()
        .filter_map(|s| Some((s["ref"].as_str()?, s["name"].as_str()?)))
        .collect();
    assert_eq!(
        names.get("count/1/root"),
        Some(&"Count · worker 2/3"),
        "{names:?}"
    );
    assert_eq!(
        names.get("count/1/_1"),
        Some(&"Count · worker 2/3"),
        "{names:?}"
    );
    assert_eq!(
        names.get("matrix/3/_1"),
        Some(&"Matrix · worker 4/4"),
        "{names:?}"
    );
    // Every step has a name, and none is a ref or a whole command.
    assert_eq!(names.len(), run.steps().len(), "{names:?}\n{run}");
    assert!(
        names
            .values()
            .all(|n| !n.contains("/_") && !n.contains("{{")),
        "{names:?}"
    );

    // An unnamed step: what it runs.
    let unnamed = Run::new("steps.yaml", "step-order", &[]);
    let signature = unnamed.json["signature"].as_array().unwrap();
    let name = |r: &str| {
        signature
            .iter()
            .find(|s| s["ref"] == r)
            .and_then(|s| s["name"].as_str())
            .unwrap_or_else(|| panic!("no name for {r}\n{unnamed}"))
            .to_string()
    };
    assert_eq!(name("_3"), "shell: echo nested-1 >> /data/order");
    assert_eq!(name("last"), "shell: echo last >> /data/order");
    assert_eq!(name("root"), "root");
}
