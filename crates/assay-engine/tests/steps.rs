//! Step semantics with real processes: conditions, optional, negative, retry, timeout, abort,
//! env, outputs, artifacts and masking.

use crate::common;

use assay_engine::Event;
use assay_spec::plan::{PlanArtifacts, PlanRetry};
use assay_spec::status::{ExecutionStatus, StepStatus};
use common::*;

#[tokio::test]
async fn passing_steps_pass() {
    let (opts, _dir) = options();
    let (out, events) = run(
        plan(vec![shell("a", "echo hello"), shell("b", "true")]),
        opts,
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Passed);
    assert_eq!(status(&out, "a"), StepStatus::Passed);
    assert_eq!(logs(&events, "a"), "hello\n");
    assert_eq!(out.steps["a"].exit_code, Some(0));
    assert!(out.steps["a"].cpu_time.is_some());
    assert!(matches!(
        events.last(),
        Some(Event::ExecutionFinished {
            status: ExecutionStatus::Passed,
            ..
        })
    ));
}

#[tokio::test]
async fn conditions_follow_testkube() {
    let (opts, _dir) = options();
    let mut always = shell("always", "echo always");
    always.condition = "always".into();
    let mut on_failure = shell("on-failure", "echo failed-branch");
    on_failure.condition = "failed".into();
    let mut never = shell("never", "echo never");
    never.condition = "never".into();
    let p = plan(vec![
        shell("ok", "true"),
        shell("bad", "exit 3"),
        shell("after-bad", "echo should-not-run"),
        always,
        on_failure,
        never,
    ]);
    let (out, events) = run(p, opts).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(status(&out, "ok"), StepStatus::Passed);
    assert_eq!(status(&out, "bad"), StepStatus::Failed);
    assert_eq!(out.steps["bad"].exit_code, Some(3));
    assert_eq!(status(&out, "after-bad"), StepStatus::Skipped);
    assert_eq!(status(&out, "always"), StepStatus::Passed);
    assert_eq!(status(&out, "on-failure"), StepStatus::Passed);
    assert_eq!(status(&out, "never"), StepStatus::Skipped);
    assert_eq!(logs(&events, "after-bad"), "");
}

#[tokio::test]
async fn optional_failure_does_not_fail_the_parent() {
    let (opts, _dir) = options();
    let mut opt = shell("opt", "exit 1");
    opt.optional = true;
    let inner = group("inner", vec![opt, shell("next", "echo next")]);
    let (out, events) = run(plan(vec![inner]), opts).await;
    assert_eq!(status(&out, "opt"), StepStatus::Failed);
    assert_eq!(
        status(&out, "next"),
        StepStatus::Passed,
        "a failed optional step does not change `passed`"
    );
    assert_eq!(status(&out, "inner"), StepStatus::Passed);
    assert_eq!(out.status, ExecutionStatus::Passed);
    assert_eq!(logs(&events, "next"), "next\n");
}

#[tokio::test]
async fn negative_inverts_the_result() {
    let (opts, _dir) = options();
    let mut neg_fail = shell("expected-failure", "exit 1");
    neg_fail.negative = true;
    let mut neg_pass = shell("unexpected-pass", "true");
    neg_pass.negative = true;
    neg_pass.optional = true;
    let (out, _) = run(plan(vec![neg_fail, neg_pass]), opts).await;
    assert_eq!(status(&out, "expected-failure"), StepStatus::Passed);
    assert_eq!(status(&out, "unexpected-pass"), StepStatus::Failed);
    assert_eq!(out.status, ExecutionStatus::Passed);
}

#[tokio::test]
async fn retry_until_passed() {
    let (opts, dir) = options();
    let counter = dir.path().join("count");
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo attempt $n; [ $n -ge 3 ]",
        c = counter.display()
    );
    let mut flaky = shell("flaky", &script);
    flaky.retry = Some(PlanRetry {
        count: 5,
        until: "passed".into(),
    });
    let mut exhausted = shell("exhausted", "exit 1");
    exhausted.retry = Some(PlanRetry {
        count: 2,
        until: "self.passed".into(),
    });
    exhausted.optional = true;
    let (out, events) = run(plan(vec![flaky, exhausted]), opts).await;
    assert_eq!(status(&out, "flaky"), StepStatus::Passed);
    assert_eq!(out.steps["flaky"].attempts, 3);
    assert!(logs(&events, "flaky").contains("Retrying: attempt #2 (of 5)"));
    assert_eq!(status(&out, "exhausted"), StepStatus::Failed);
    assert_eq!(
        out.steps["exhausted"].attempts, 3,
        "count: 2 means two more tries"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let (opts, dir) = options();
    let pidfile = dir.path().join("grandchild.pid");
    let marker = unique_marker(&dir);
    let seen = tokio::spawn(wait_for_marker(pidfile.clone(), marker.clone()));
    let mut slow = shell(
        "slow",
        &format!(
            "bash -c 'sleep 300; : {marker}' & echo $! > {}; sleep 300",
            pidfile.display()
        ),
    );
    slow.timeout_ms = Some(700);
    let mut cleanup = shell("cleanup", "echo cleanup");
    cleanup.condition = "always".into();
    let (out, _) = run(plan(vec![slow, shell("next", "true"), cleanup]), opts).await;
    assert_eq!(status(&out, "slow"), StepStatus::Timeout);
    assert_eq!(status(&out, "next"), StepStatus::Skipped);
    assert_eq!(status(&out, "cleanup"), StepStatus::Passed);
    assert_eq!(out.status, ExecutionStatus::Failed);
    // `$!` is a pid of the step's own PID namespace: the grandchild is found by its marker.
    assert!(pidfile.exists(), "the grandchild was never started");
    assert!(seen.await.unwrap(), "the grandchild was never seen running");
    let left = with_marker(&marker);
    assert!(
        left.is_empty(),
        "the grandchild survived the timeout: {left:?}"
    );
}

#[tokio::test]
async fn timeout_of_a_group_times_out_running_children() {
    let (opts, _dir) = options();
    let mut g = group(
        "g",
        vec![shell("child", "sleep 300"), shell("later", "true")],
    );
    g.timeout_ms = Some(500);
    let (out, _) = run(plan(vec![g]), opts).await;
    assert_eq!(status(&out, "g"), StepStatus::Timeout);
    assert_eq!(status(&out, "child"), StepStatus::Timeout);
    assert_eq!(status(&out, "later"), StepStatus::Skipped);
}

#[tokio::test]
async fn abort_stops_everything_without_orphans() {
    let (opts, dir) = options();
    let cancel = opts.cancel.clone();
    let pidfile = dir.path().join("pid");
    let marker = unique_marker(&dir);
    let slow = shell(
        "slow",
        &format!(
            "echo started; (bash -c 'sleep 300; : {marker}'; echo never) & echo $! > {}; sleep 300",
            pidfile.display()
        ),
    );
    let mut after = shell("after", "true");
    after.condition = "always".into();
    let p = plan(vec![slow, after]);
    let pf = pidfile.clone();
    let m = marker.clone();
    let seen = tokio::spawn(async move {
        let seen = wait_for_marker(pf, m).await;
        cancel.cancel();
        seen
    });
    let (out, events) = run(p, opts).await;
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(status(&out, "slow"), StepStatus::Aborted);
    assert_eq!(status(&out, "after"), StepStatus::Skipped);
    assert!(logs(&events, "slow").contains("started"));
    assert!(
        seen.await.unwrap(),
        "the background process was never seen running"
    );
    let left = with_marker(&marker);
    assert!(
        left.is_empty(),
        "the background process survived the abort: {left:?}"
    );
}

#[tokio::test]
async fn deadline_aborts_the_execution() {
    let (opts, _dir) = options();
    let mut p = plan(vec![shell("slow", "sleep 300"), shell("next", "true")]);
    p.deadline_ms = Some(500);
    let (out, _) = run(p, opts).await;
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert!(out.error.as_deref().unwrap_or("").contains("deadline"));
    assert_eq!(status(&out, "slow"), StepStatus::Aborted);
    assert_eq!(status(&out, "next"), StepStatus::Skipped);
}

#[tokio::test]
async fn env_and_templates_resolve_at_run_time() {
    let (mut opts, _dir) = options();
    opts.context.insert(
        "execution".into(),
        serde_json::json!({"id": "exec-1", "number": 7}),
    );
    let mut s = shell(
        "env",
        "echo \"$GREETING|$DERIVED|{{ env.GREETING }}|{{ env.UNSET_VAR }}|{{ execution.number }}|$CI\"",
    );
    s.commands[0].env = vec![
        env("GREETING", "hi"),
        env("DERIVED", "{{ env.GREETING }} there"),
    ];
    let (out, events) = run(plan(vec![s]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed, "{events:#?}");
    assert_eq!(logs(&events, "env"), "hi|hi there|hi||7|1\n");
}

#[tokio::test]
async fn run_with_command_and_args() {
    let (opts, _dir) = options();
    let mut s = shell("argv", "");
    s.commands[0].shell = None;
    s.commands[0].command = vec!["printf".into()];
    s.commands[0].args = vec!["%s-%s\\n".into(), "a b".into(), "{{ env.X }}".into()];
    s.commands[0].env = vec![env("X", "x")];
    let (out, events) = run(plan(vec![s]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed);
    assert_eq!(logs(&events, "argv"), "a b-x\n");
}

#[tokio::test]
async fn outputs_become_step_values() {
    let (opts, _dir) = options();
    let mut producer = shell("producer", "echo '  42 ' > /testkube/outputs/answer");
    producer.id = Some("producer".into());
    let consumer = shell("consumer", "echo got={{ step.producer.outputs.answer }}");
    let (out, events) = run(plan(vec![producer, consumer]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed, "{events:#?}");
    assert_eq!(out.outputs["producer"]["answer"], "42");
    assert!(events.iter().any(
        |e| matches!(e, Event::Output { key, value, .. } if key == "answer" && value == "42")
    ));
    assert_eq!(logs(&events, "consumer"), "got=42\n");
}

#[tokio::test]
async fn artifacts_by_glob_even_when_the_step_fails() {
    let (opts, _dir) = options();
    let mut s = shell(
        "report",
        "mkdir -p out/a/b && echo 1 > out/a/b/r.xml && echo 2 > out/top.xml && echo 3 > out/a/skip.txt && exit 1",
    );
    s.artifacts = Some(PlanArtifacts {
        working_dir: None,
        paths: vec!["out/**/*.xml".into()],
        compress: None,
    });
    let (out, events) = run(plan(vec![s]), opts).await;
    assert_eq!(status(&out, "report"), StepStatus::Failed);
    let mut found: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Artifact {
                path, size, source, ..
            } => {
                assert!(source.is_file());
                Some((path.clone(), *size))
            }
            _ => None,
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![("out/a/b/r.xml".into(), 2), ("out/top.xml".into(), 2)]
    );
}

#[tokio::test]
async fn secrets_are_masked_across_chunks_and_in_errors() {
    let (mut opts, _dir) = options();
    opts.secrets
        .insert("password".into(), "hunter2-very-secret".into());
    opts.masked.push("tok-ABCDEF".into());
    let s = shell(
        "leaky",
        "printf 'pw={{ config.password }}\\n'; printf 'tok-A'; sleep 0.3; printf 'BCDEF end\\n'; echo done",
    );
    let mut bad = shell("bad-condition", "true");
    bad.condition = "{{ config.password }} == nope( ".into();
    bad.optional = true;
    let (out, events) = run(plan(vec![s, bad]), opts).await;
    let text = logs(&events, "leaky");
    assert_eq!(text, "pw=*****\n***** end\ndone\n");
    for e in &events {
        let debug = format!("{e:?}");
        assert!(!debug.contains("hunter2"), "secret leaked in {debug}");
        assert!(!debug.contains("tok-ABCDEF"), "secret leaked in {debug}");
    }
    assert_eq!(status(&out, "leaky"), StepStatus::Passed);
}

/// Issue 14 #7: a secret is masked in the encodings Assay's own functions produce from it
/// (`shellquote`, `tojson`) and in base64 of the whole value, not only as written.
#[tokio::test]
async fn security_step_log_masks_secret_encodings() {
    let (mut opts, _dir) = options();
    opts.secrets.insert("password".into(), "pa$$ \"wd".into());
    let s = shell(
        "encoded",
        "cat <<'EOF'\nq={{ shellquote(config.password) }}\nj={{ tojson(config.password) }}\nEOF\nprintf '%s' {{ shellquote(config.password) }} | base64",
    );
    let (out, events) = run(plan(vec![s]), opts).await;
    assert_eq!(status(&out, "encoded"), StepStatus::Passed);
    let text = logs(&events, "encoded");
    assert_eq!(text, "q=*****\nj=\"*****\"\n*****\n");
}

#[tokio::test]
async fn a_missing_program_fails_the_step_clearly() {
    let (opts, _dir) = options();
    let mut s = shell("missing", "");
    s.commands[0].shell = None;
    s.commands[0].command = vec!["definitely-not-a-program-xyz".into()];
    let (out, _) = run(plan(vec![s]), opts).await;
    assert_eq!(status(&out, "missing"), StepStatus::Failed);
    assert!(
        out.steps["missing"]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("definitely-not-a-program-xyz")
    );
}

#[tokio::test]
async fn long_lines_are_bounded() {
    let (opts, _dir) = options();
    let s = shell(
        "long",
        "head -c 200000 /dev/zero | tr '\\0' 'x'; echo; echo tail",
    );
    let (_, events) = run(plan(vec![s]), opts).await;
    let text = logs(&events, "long");
    assert!(text.lines().all(|l| l.len() <= assay_engine::MAX_LINE));
    assert_eq!(text.matches('x').count(), 200000);
    assert!(text.ends_with("tail\n"));
}

#[tokio::test]
async fn colour_settings_are_the_users_and_never_forced() {
    // `printenv`, not `$TERM`: bash itself sets TERM=dumb for its own use when it is unset.
    let script = "for v in FORCE_COLOR NO_COLOR TERM COLUMNS; do printf '%s=%s ' $v \"$(printenv $v || echo unset)\"; done; echo";
    // A user with NO_COLOR and no terminal: steps get NO_COLOR and nothing that asks for colour.
    let (mut opts, _dir) = options();
    opts.base_env = [("PATH", "/usr/bin:/bin"), ("NO_COLOR", "1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (out, events) = run(plan(vec![shell("env", script)]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed, "{events:#?}");
    assert_eq!(
        logs(&events, "env"),
        "FORCE_COLOR=unset NO_COLOR=1 TERM=unset COLUMNS=unset \n"
    );
    // A user who asks for colour gets it, with their terminal's type and width.
    let (mut opts, _dir) = options();
    opts.base_env = [
        ("PATH", "/usr/bin:/bin"),
        ("FORCE_COLOR", "3"),
        ("TERM", "xterm-256color"),
        ("COLUMNS", "132"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (out, events) = run(plan(vec![shell("env", script)]), opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed, "{events:#?}");
    assert_eq!(
        logs(&events, "env"),
        "FORCE_COLOR=3 NO_COLOR=unset TERM=xterm-256color COLUMNS=132 \n"
    );
    // Every terminal setting is in the one list callers and allowlists share.
    for k in [
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "TERM",
        "COLUMNS",
    ] {
        assert!(assay_engine::TERMINAL_ENV.contains(&k), "{k}");
    }
}

/// A run-time expression that fails names the expression as written and why, in the step's
/// error: the condition's, and a command's.
#[tokio::test]
async fn expression_errors_name_the_expression() {
    let (opts, _dir) = options();
    let mut bad_condition = shell("cond", "echo never");
    bad_condition.condition = "nosuchfn(1)".into();
    bad_condition.optional = true;
    let mut bad_command = shell("cmd", "echo {{ nosuchfn(2) }}");
    bad_command.optional = true;
    let (out, _) = run(plan(vec![bad_condition, bad_command]), opts).await;
    let cond = out.steps["cond"].error.clone().unwrap();
    assert!(
        cond.starts_with("failed to evaluate the condition: `nosuchfn(1)`: "),
        "{cond}"
    );
    assert!(cond.contains("nosuchfn"), "{cond}");
    let cmd = out.steps["cmd"].error.clone().unwrap();
    assert!(cmd.starts_with("`echo {{ nosuchfn(2) }}`: "), "{cmd}");
}
