//! Provenance and insights (issue 19): README.md's insights session run as written in a git
//! repository made here (a human commit, a commit co-authored by Claude, a Copilot branch that
//! needed a second commit, an explicit `--tag ai.tool=aider`, a CODEOWNERS file), with real
//! `assay run`s; then the tags each execution got, the exact figures of `assay insights`, the
//! README's printed answers, `GET /v1/insights` for a viewer, the dashboard's `/insights` page,
//! and the MCP tool `insights` through the official Python client.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::run_support::{free_port, serve};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The README's block after `marker` up to its closing fence.
fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    readme
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has `{marker}`"))
        .split("\n```")
        .next()
        .unwrap()
        .to_string()
}

/// A shell in `dir` with the built `assay` first on `PATH`, its store in `dir/data`, git's
/// identity set and no configuration of this machine (user, system) read.
fn sh(dir: &Path, script: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("ASSAY_") && k != "ASSAY_STEP_USER" || k.starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    // CI variables would give the runs a CI context (its branch is used on a detached HEAD).
    for ci in [
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "BUILDKITE",
        "CIRCLECI",
        "JENKINS_URL",
    ] {
        cmd.env_remove(ci);
    }
    cmd.env("PATH", path)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ann Dev")
        .env("GIT_AUTHOR_EMAIL", "ann@example.com")
        .env("GIT_COMMITTER_NAME", "Ann Dev")
        .env("GIT_COMMITTER_EMAIL", "ann@example.com")
        .env("ASSAY_DATA_DIR", dir.join("data"))
        .env("ASSAY_CONFIG", dir.join("contexts.yaml"))
        .env("NO_COLOR", "1");
    cmd
}

fn output(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn http(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The group `key` of an insights answer.
fn group<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no group `{key}` in {answer:#}"))
}

/// (changes, first try, green, runs until green, reworked) of a group.
fn figures(g: &Value) -> (u64, u64, u64, Option<f64>, u64) {
    (
        g["changes"].as_u64().unwrap(),
        g["firstTryPassed"].as_u64().unwrap(),
        g["green"].as_u64().unwrap(),
        g["runsUntilGreen"].as_f64(),
        g["reworked"].as_u64().unwrap(),
    )
}

#[test]
fn readme_insights_session_records_provenance_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::symlink(root().join("examples"), d.join("examples")).unwrap();
    let session = readme_block("<!-- insights-session -->\n```sh\n");
    let (code, stdout, stderr) = output(sh(d, &session));
    assert_eq!(code, 0, "the README session:\n{stdout}\n{stderr}");
    assert!(
        !stderr.contains("provenance"),
        "a readable repository gives no warning: {stderr}"
    );
    let shop = d.join("shop");
    let git = |args: &str| {
        let (code, out, err) = output(sh(&shop, &format!("git {args}")));
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let main_head = git("rev-parse main");
    let claude = git("rev-parse claude/fix-rounding");
    let copilot_fix = git("rev-parse copilot/cart-total");
    let copilot_first = git("rev-parse copilot/cart-total~1");

    // The tags each execution got from the repository.
    let (code, listed, err) = output(sh(d, "assay get executions -o json"));
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let tags: BTreeMap<String, Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["tags"].clone()))
        .collect();
    let expect = |name: &str, want: Value| {
        assert_eq!(tags[name], want, "tags of {name}");
    };
    let first = git("rev-parse main~1");
    expect(
        "unit-1",
        serde_json::json!({"commit": first, "branch": "main", "team": "platform"}),
    );
    for n in ["unit-2", "unit-3"] {
        expect(
            n,
            serde_json::json!({"commit": claude, "branch": "claude/fix-rounding",
                "ai.tool": "claude", "ai.source": "trailer", "team": "payments"}),
        );
    }
    expect(
        "unit-4",
        serde_json::json!({"commit": copilot_first, "branch": "copilot/cart-total",
            "ai.tool": "copilot", "ai.source": "branch", "team": "web"}),
    );
    for n in ["unit-5", "e2e-1"] {
        expect(
            n,
            serde_json::json!({"commit": copilot_fix, "branch": "copilot/cart-total",
                "ai.tool": "copilot", "ai.source": "branch", "team": "web"}),
        );
    }
    expect(
        "unit-6",
        serde_json::json!({"commit": main_head, "branch": "main",
            "ai.tool": "aider", "ai.source": "tag", "team": "payments"}),
    );

    // The figures, by tool.
    let (code, json, err) = output(sh(d, "assay insights -o json"));
    assert_eq!(code, 0, "{err}");
    let by_tool: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (&by_tool["executions"], &by_tool["withoutCommit"]),
        (&Value::from(7), &Value::from(0))
    );
    // none: the human commit, green at once.
    assert_eq!(figures(group(&by_tool, "none")), (1, 1, 1, Some(1.0), 0));
    // claude: red first, green on the second run of the same commit.
    assert_eq!(figures(group(&by_tool, "claude")), (1, 0, 1, Some(2.0), 0));
    // copilot: unit on the first commit never green, fixed by the next commit (rework);
    // unit and e2e green at once on the second.
    assert_eq!(figures(group(&by_tool, "copilot")), (3, 2, 2, Some(1.0), 1));
    assert_eq!(figures(group(&by_tool, "aider")), (1, 1, 1, Some(1.0), 0));
    assert_eq!(figures(&by_tool["total"]), (6, 4, 5, Some(1.2), 1));
    assert_eq!(
        group(&by_tool, "copilot")["reworkRate"].as_f64(),
        Some(1.0 / 3.0)
    );
    assert_eq!(
        group(&by_tool, "claude")["firstTryPassRate"].as_f64(),
        Some(0.0)
    );
    // Both failures judged by assay-analysis: the workflow passed before on another commit.
    assert_eq!(by_tool["classified"], 2);
    assert_eq!(
        group(&by_tool, "claude")["failureClasses"],
        serde_json::json!({"regression": 1})
    );
    assert_eq!(
        group(&by_tool, "copilot")["failureClasses"],
        serde_json::json!({"regression": 1})
    );
    // Payments' AI-made commits (Claude's, and the one tagged aider) ran no system-level
    // workflow; web's fixed commit ran e2e.
    assert_eq!(
        by_tool["systemCoverage"],
        serde_json::json!([
            {"team": "payments", "aiCommits": 2, "withSystemRun": 0},
            {"team": "web", "aiCommits": 2, "withSystemRun": 1},
        ])
    );
    assert_eq!(
        by_tool["teamsWithoutSystemRuns"],
        serde_json::json!(["payments"])
    );
    assert_eq!(by_tool["systemLabel"], "level=system");
    let weeks: u64 = by_tool["weeks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["changes"].as_u64().unwrap())
        .sum();
    assert_eq!(weeks, 6, "every change is in one week");

    let (code, json, err) = output(sh(d, "assay insights --by team -o json"));
    assert_eq!(code, 0, "{err}");
    let by_team: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        figures(group(&by_team, "payments")),
        (2, 1, 2, Some(1.5), 0)
    );
    assert_eq!(figures(group(&by_team, "web")), (3, 2, 2, Some(1.0), 1));
    assert_eq!(
        figures(group(&by_team, "platform")),
        (1, 1, 1, Some(1.0), 0)
    );
    let (code, json, err) = output(sh(d, "assay insights --by workflow -o json"));
    assert_eq!(code, 0, "{err}");
    let by_workflow: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        figures(group(&by_workflow, "unit")),
        (5, 3, 4, Some(1.25), 1)
    );
    assert_eq!(figures(group(&by_workflow, "e2e")), (1, 1, 1, Some(1.0), 0));

    // The README's printed answers, as written.
    let shown = readme_block("```console\n$ assay insights\n");
    let (tool_text, team_text) = shown
        .split_once("$ assay insights --by team\n")
        .expect("the README shows both answers");
    let (code, out, err) = output(sh(d, "assay insights"));
    assert_eq!((code, out.as_str()), (0, tool_text), "{err}");
    let (code, by_team_text, err) = output(sh(d, "assay insights --by team"));
    assert_eq!(
        (code, by_team_text.as_str()),
        (0, format!("{team_text}\n").as_str()),
        "{err}"
    );

    // Bad input: exit 2 with the rule.
    let (code, _, err) = output(sh(d, "assay insights --since yesterday"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`since` is a duration like `30d`"), "{err}");

    // The REST API for a viewer, and the dashboard page.
    let port = free_port();
    let _server = serve(&d.join("data"), port);
    let (code, viewer, err) = output(sh(d, "assay token create --role viewer --name reader"));
    assert_eq!(code, 0, "{err}");
    let viewer = viewer.trim();
    let (status, body) = http(port, "/v1/insights?by=team", Some(viewer));
    assert_eq!(status, 200, "{body}");
    let remote: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(remote["groups"], by_team["groups"]);
    assert_eq!(remote["systemCoverage"], by_team["systemCoverage"]);
    let (status, _) = http(port, "/v1/insights", None);
    assert_eq!(status, 401);
    let (status, body) = http(port, "/v1/insights?by=colour", Some(viewer));
    assert_eq!(status, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .contains("`by` is `tool`, `team` or `workflow`"),
        "{err}"
    );
    let (status, body) = http(port, "/v1/insights?since=1d&limit=5", Some(viewer));
    assert_eq!(status, 400, "{body}");

    let (status, page) = http(port, "/insights?by=team", Some(viewer));
    assert_eq!(status, 200, "{page}");
    for needle in [
        "<svg class=\"rates\"",
        "<svg class=\"weekly\"",
        "<tr data-key=\"payments\">",
        "<tr data-team=\"payments\"><th scope=\"row\">payments</th><td>2</td><td class=\"warn\">0</td>",
        "Ran no system-level workflow on AI-made changes: payments",
        "aria-current=\"page\">Insights</a>",
    ] {
        assert!(page.contains(needle), "`{needle}` not in the page:\n{page}");
    }
    let (status, page) = http(port, "/insights?since=soon", Some(viewer));
    assert_eq!(status, 400);
    assert!(page.contains("`since` is a duration"), "{page}");

    // Through a server context (a viewer's token): the server's answer, printed the same.
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = output(sh(
        d,
        &format!("assay context add srv --server {url} --token {viewer}"),
    ));
    assert_eq!(code, 0, "{err}");
    let (code, text, err) = output(sh(d, "assay insights --by team --context srv"));
    assert_eq!((code, text.as_str()), (0, by_team_text.as_str()), "{err}");

    // The MCP tool through the official client: the same text as the CLI.
    if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("MCP half skipped: ASSAY_TEST_SKIP_PYTHON=1");
    } else {
        let tests = root().join("crates/assay-mcp/tests");
        let python = crate::mcp::python_with_sdk(&tests.join("requirements.txt"));
        let out = Command::new(&python)
            .arg(tests.join("mcp_insights.py"))
            .arg(env!("CARGO_BIN_EXE_assay"))
            .arg(d.join("data"))
            .arg("team")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text, by_team_text);
    }

    // A run through a server context carries the provenance of the repository it starts in.
    let admin = std::fs::read_to_string(d.join("data/admin.token")).unwrap();
    let (code, _, err) = output(sh(
        d,
        &format!(
            "assay context add adm --server {url} --token {} && \
             assay apply -f examples/insights/checks.yaml --context adm",
            admin.trim()
        ),
    ));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = output(sh(d, "cd shop && assay run e2e --context adm -o json"));
    assert_eq!(code, 0, "{out}{err}");
    let remote_run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        remote_run["tags"],
        serde_json::json!({"commit": main_head, "branch": "main", "team": "payments"}),
        "{remote_run:#}"
    );

    // A repository git cannot read: said once, the run goes on and passes.
    let broken = d.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join(".git"), "not a gitdir line\n").unwrap();
    let (code, out, err) = output(sh(
        &broken,
        "assay run ../examples/insights/checks.yaml --name e2e -q",
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        err.matches("warning: provenance not recorded: failed to")
            .count(),
        1,
        "{err}"
    );
}
