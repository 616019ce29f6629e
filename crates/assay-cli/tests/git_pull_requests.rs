//! `git-pull-request` TestTriggers through the real `assay server`, against a FAKE of GitHub's
//! REST API (`fake_github.py`, on 127.0.0.1: no GitHub can be reached here) given with
//! `--github-api-url`: the pages of pull requests, their files, a token from a Kubernetes
//! Secret (on the FAKE Kubernetes API server, `crates/assay-kube/tests/fake_api.py`), rate
//! limits, and replies that are huge, slow, cut short or failing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::git_triggers::{Server, execution, logged, post, runs_of, wait_for};
use crate::run_support::{
    FakeApi, Running, announced, apply, fake_api, files_under, http, logged_server, readme_sh, repo,
};
use serde_json::{Value, json};

const RUST_LOG: &str = "info,assay_server::git_triggers=debug";

/// The fake GitHub API, killed when dropped.
struct FakeGitHub {
    url: String,
    port: u16,
    _process: Running,
}

impl FakeGitHub {
    fn start(args: &[&str]) -> FakeGitHub {
        let mut child = Command::new("python3")
            .arg(repo().join("crates/assay-cli/tests/fake_github.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = announced(&mut child, "FAKE_GITHUB ");
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        FakeGitHub {
            url,
            port,
            _process: Running(child),
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let (status, text) = http(
            self.port,
            "POST",
            path,
            "",
            Some(("application/json", &body.to_string())),
        );
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Open or change pull request `number` (base `main` unless said, head `feature-N`).
    fn pull(&self, number: u64, state: &str, sha: &str, files: &[&str]) {
        self.pull_into(number, state, sha, files, "main");
    }

    fn pull_into(&self, number: u64, state: &str, sha: &str, files: &[&str], base: &str) {
        self.post(
            "/fake/pull",
            json!({
                "number": number,
                "state": state,
                "title": format!("Fix #{number}; $(echo injected)"),
                "head": {"ref": format!("feature-{number}"), "sha": sha},
                "base": {"ref": base},
                "user": "mona",
                "files": files,
            }),
        );
    }

    fn misbehave(&self, mode: &str) {
        self.post("/fake/misbehave", json!({"mode": mode, "times": 1}));
    }

    fn requests(&self) -> Vec<Value> {
        let (_, text) = http(self.port, "GET", "/fake/requests", "", None);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap()
    }
}

/// A workflow declaring every value a pull request passes.
const PR_WORKFLOW: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: pr-tests\nspec:\n  config:\n    TESTKUBE_GIT_COMMIT: {type: string, default: none}\n    TESTKUBE_GIT_REF: {type: string, default: none}\n    TESTKUBE_GIT_BRANCH: {type: string, default: none}\n    TESTKUBE_GIT_PR_NUMBER: {type: string, default: none}\n    TESTKUBE_GIT_PR_ACTION: {type: string, default: none}\n    TESTKUBE_GIT_PR_BASE_REF: {type: string, default: none}\n    TESTKUBE_GIT_PR_HEAD_REF: {type: string, default: none}\n    TESTKUBE_GIT_PR_HEAD_SHA: {type: string, default: none}\n    TESTKUBE_GIT_PR_URL: {type: string, default: none}\n    TESTKUBE_GIT_PR_TITLE: {type: string, default: none}\n    TESTKUBE_GIT_PR_AUTHOR: {type: string, default: none}\n    WATCHER_EVENT_EVENT_TYPE: {type: string, default: none}\n  steps:\n    - name: test\n      shell: echo tested pull request {{ config.TESTKUBE_GIT_PR_NUMBER }}\n";

fn pr_trigger(name: &str, git: &str) -> String {
    format!(
        "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata:\n  name: {name}\nspec:\n  resource: content\n  event: git-pull-request\n  contentSelector:\n    git:\n      uri: https://github.com/acme/app.git\n{git}  action: run\n  execution: testworkflow\n  testSelector:\n    name: pr-tests\n"
    )
}

/// The config values of a run, by name.
fn values(s: &Server, run: &Value) -> Value {
    let e = execution(s, run["id"].as_str().unwrap());
    let mut out = serde_json::Map::new();
    for (k, v) in e["configParams"].as_object().unwrap() {
        out.insert(k.clone(), v["value"].clone());
    }
    Value::Object(out)
}

fn server(data: &Path, github: &FakeGitHub, extra: &[&str]) -> Server {
    let mut args = vec![
        "--no-auth",
        "--git-poll-interval",
        "1s",
        "--github-api-url",
        &github.url,
    ];
    args.extend(extra);
    logged_server(data, &args, RUST_LOG)
}

#[test]
fn pull_requests_fire_with_testkubes_values_through_pages_and_a_token() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("ghp_pr{nanos}");
    // Two pull requests a page: every listing of more than two pages on.
    let github = FakeGitHub::start(&["--max-per-page", "2", "--token", &token]);
    github.pull(1, "open", "a1", &["src/a.rs"]);
    github.pull(2, "open", "b1", &["src/b.rs"]);
    github.pull_into(4, "open", "d1", &["src/d.rs"], "release");
    github.pull(6, "open", "f1", &["src/f.rs"]);
    // Closed, and on the newest page: recorded at the first sight.
    github.pull(9, "closed", "c1", &["src/c.rs"]);
    let dir = tempfile::tempdir().unwrap();
    let api: FakeApi = fake_api(dir.path());
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&token);
    apply(
        &api,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: github, namespace: assay}}\ndata:\n  token: {b64}\n"
        ),
    );
    let data = dir.path().join("data");
    let kubeconfig = api.kubeconfig.display().to_string();
    let s = server(
        &data,
        &github,
        &["--kubernetes", "--kubeconfig", &kubeconfig],
    );
    post(&s, "/v1/test-workflows", PR_WORKFLOW);
    let git = "      tokenFrom: {secretKeyRef: {name: github, key: token}}\n      paths: [src]\n      pathsIgnore: ['**/*.md']\n      pullRequest:\n        types: [opened, synchronize, reopened]\n        branches: [main]\n";
    post(&s, "/v1/triggers", &pr_trigger("prs", git));
    wait_for(&s, "the pull requests recorded", || {
        (logged(&s, &["recorded the repository's pull requests"]) == 1).then_some(())
    });
    assert!(
        github
            .requests()
            .iter()
            .any(|r| r["path"].as_str().unwrap().contains("state=open")
                && r["path"].as_str().unwrap().contains("page=2")),
        "the open pull requests are read page by page"
    );

    // Opened; pushed to; pushed to outside `src`; closed (not a watched type); reopened;
    // pushed to on another base branch.
    github.pull(5, "open", "e1", &["src/e.rs"]);
    github.pull(1, "open", "a2", &["src/a.rs"]);
    github.pull(2, "open", "b2", &["docs/b.md"]);
    github.pull(6, "closed", "f1", &["src/f.rs"]);
    github.pull(9, "open", "c1", &["src/c.rs"]);
    github.pull_into(4, "open", "d2", &["src/d.rs"], "release");
    let runs = wait_for(&s, "three runs", || {
        let runs = runs_of(&s, "prs");
        (runs.len() >= 3).then_some(runs)
    });
    wait_for(&s, "the two changes that do not fire", || {
        (logged(
            &s,
            &["no changed path of the pull request matches", "number=2"],
        ) == 1
            && logged(&s, &["not one of `types`", "number=6", "action=closed"]) == 1)
            .then_some(())
    });
    let mut seen: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            let v = values(&s, r);
            (
                v["TESTKUBE_GIT_PR_NUMBER"].as_str().unwrap().to_string(),
                v["TESTKUBE_GIT_PR_ACTION"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> =
        [("1", "synchronize"), ("5", "opened"), ("9", "reopened")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(seen, expected);
    let opened = runs
        .iter()
        .map(|r| values(&s, r))
        .find(|v| v["TESTKUBE_GIT_PR_NUMBER"] == "5")
        .unwrap();
    for (k, v) in [
        ("TESTKUBE_GIT_COMMIT", "e1"),
        ("TESTKUBE_GIT_REF", "refs/pull/5/head"),
        ("TESTKUBE_GIT_BRANCH", "feature-5"),
        ("TESTKUBE_GIT_PR_BASE_REF", "main"),
        ("TESTKUBE_GIT_PR_HEAD_REF", "feature-5"),
        ("TESTKUBE_GIT_PR_HEAD_SHA", "e1"),
        ("TESTKUBE_GIT_PR_URL", "https://github.com/acme/app/pull/5"),
        ("TESTKUBE_GIT_PR_TITLE", "Fix #5; $(echo injected)"),
        ("TESTKUBE_GIT_PR_AUTHOR", "mona"),
        ("WATCHER_EVENT_EVENT_TYPE", "git-pull-request"),
    ] {
        assert_eq!(opened[k], v, "{k}: {opened}");
    }
    // An API that says the token back: the log shows it cut out.
    github.misbehave("echo");
    wait_for(&s, "the echo said", || {
        (logged(&s, &["HTTP 500", "bad credentials: Bearer ***"]) == 1).then_some(())
    });
    // Nothing more fires at later polls.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(runs_of(&s, "prs").len(), 3);
    assert_eq!(logged(&s, &["git trigger fired"]), 3);
    // Every request carried the token; neither the log nor the store holds it.
    let requests = github.requests();
    assert!(
        requests
            .iter()
            .all(|r| r["authorization"] == format!("Bearer {token}")),
        "{requests:?}"
    );
    assert!(!s.log.lock().unwrap().contains(&token));
    for file in files_under(&data) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !crate::run_support::contains(&bytes, token.as_bytes()),
            "{}",
            file.display()
        );
    }
}

/// Each bad reply is said once, with what was wrong; a rate limit stops the polls until the
/// time it gives; the poll after works, and the pull request opened meanwhile fires once.
#[test]
fn a_hostile_or_limiting_github_api_is_reported_and_waited_out() {
    let github = FakeGitHub::start(&[]);
    github.pull(1, "open", "a1", &["src/a.rs"]);
    let dir = tempfile::tempdir().unwrap();
    let s = server(
        &dir.path().join("data"),
        &github,
        &["--git-api-timeout", "2s"],
    );
    post(&s, "/v1/test-workflows", PR_WORKFLOW);
    post(&s, "/v1/triggers", &pr_trigger("prs", ""));
    wait_for(&s, "the pull requests recorded", || {
        (logged(&s, &["recorded the repository's pull requests"]) == 1).then_some(())
    });
    let failed = "polling the git trigger's repository failed";
    let again = "the git trigger polls again";
    for (n, (mode, said)) in [
        ("ratelimit", "GitHub's API rate limit (HTTP 403)"),
        ("retry-after", "GitHub's API rate limit (HTTP 429)"),
        ("malformed", "the reply is not what GitHub's API sends"),
        ("huge", "a reply of more than 8 MiB, not read"),
        ("slow", "no answer within 2s"),
        ("error", "HTTP 500: {\"message\": \"Server Error\"}"),
        ("redirect", "HTTP 302"),
    ]
    .into_iter()
    .enumerate()
    {
        github.misbehave(mode);
        wait_for(&s, &format!("`{mode}` said"), || {
            (logged(&s, &[failed, "trigger=prs", said]) == 1).then_some(())
        });
        if said.contains("rate limit") {
            // Not asked again until the limit's time (two seconds ahead).
            let asked = github.requests().len();
            std::thread::sleep(Duration::from_millis(1000));
            assert_eq!(github.requests().len(), asked, "asked while limited");
        }
        wait_for(&s, &format!("the poll after `{mode}`"), || {
            (logged(&s, &[again, "trigger=prs"]) == n + 1).then_some(())
        });
    }
    assert_eq!(
        logged(
            &s,
            &[failed, "is not what GitHub's API sends", "line 1 column"]
        ),
        1,
        "the parse error says where"
    );
    github.pull(2, "open", "b1", &["src/b.rs"]);
    wait_for(&s, "the run of the new pull request", || {
        (runs_of(&s, "prs").len() == 1).then_some(())
    });
    assert_eq!(logged(&s, &[failed]), 7, "{}", s.log.lock().unwrap());
    assert!(
        github
            .requests()
            .iter()
            .all(|r| !r["path"].as_str().unwrap().contains("elsewhere")),
        "a redirect is not followed"
    );
}

/// The README's example (`examples/git/pull-requests.yaml`) applied as written, against the
/// fake GitHub.
#[test]
fn the_readmes_pull_request_example_runs() {
    let github = FakeGitHub::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // With tokens, as the README's server runs; the commands find its admin token in its
    // data dir, as they do on the server's machine.
    let s = logged_server(
        &data,
        &["--git-poll-interval", "1s", "--github-api-url", &github.url],
        RUST_LOG,
    );
    let port = s.port.to_string();
    let config = dir.path().join("contexts.yaml");
    let root = repo();
    let sh = readme_sh(&root, &port, &config);
    for line in crate::run_support::readme_block("git-pull-request") {
        let out = sh(&line).env("ASSAY_DATA_DIR", &data).output().unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
    }
    wait_for(&s, "the pull requests recorded", || {
        (logged(&s, &["recorded the repository's pull requests"]) == 1).then_some(())
    });
    github.pull(7, "open", "abc7", &["src/app.rs"]);
    let runs = wait_for(&s, "the example's run", || {
        let runs = runs_of(&s, "app-pull-requests");
        (!runs.is_empty()).then_some(runs)
    });
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let log = wait_for(&s, "the run's log", || {
        let (_, log) = http(
            s.port,
            "GET",
            &format!("/v1/test-workflow-executions/{id}/logs"),
            &s.token,
            None,
        );
        log.contains("pull request #7").then_some(log)
    });
    // The title reached the shell as one quoted word, not as a command.
    assert!(
        log.contains("pull request #7 opened at abc7: Fix #7; $(echo injected)"),
        "{log}"
    );
}
