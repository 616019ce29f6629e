//! Git `content` TestTriggers through the real `assay server`: a bare repository served over a
//! real HTTP server on 127.0.0.1 (git's dumb HTTP protocol: `git update-server-info` and
//! Python's static `http.server`), pushed to with the real `git`; the server polls it every
//! second.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run_support::{
    LoggedServer, Running, free_port, http, logged_server, logged_server_in, repo, wait_logged,
};
use serde_json::Value;

/// The repository a trigger watches: a work tree that pushes to `served/app.git`, which a
/// static HTTP server serves.
pub(crate) struct Origin {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
    _http: Running,
}

impl Origin {
    pub(crate) fn new() -> Origin {
        Origin::served_by(&[])
    }

    /// An origin whose HTTP server answers only requests with the credentials `auth` names
    /// (`--basic USER:TOKEN` or `--bearer TOKEN` of `git_auth_http.py`), 401 to the rest.
    pub(crate) fn with_auth(auth: &[&str]) -> Origin {
        Origin::served_by(auth)
    }

    fn served_by(auth: &[&str]) -> Origin {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("src")).unwrap();
        std::fs::create_dir_all(work.join("docs")).unwrap();
        std::fs::write(work.join("src/app.txt"), "1\n").unwrap();
        std::fs::write(work.join("docs/guide.md"), "guide\n").unwrap();
        let served = dir.path().join("served");
        std::fs::create_dir_all(&served).unwrap();
        let o = |args: &[&str]| git(&work, args);
        o(&["init", "-q", "-b", "main"]);
        o(&["add", "."]);
        o(&["commit", "-qm", "init"]);
        let bare = served.join("app.git");
        o(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        o(&["remote", "add", "origin", bare.to_str().unwrap()]);
        git(&bare, &["update-server-info"]);
        let port = free_port();
        let mut cmd = Command::new("python3");
        if auth.is_empty() {
            cmd.args(["-m", "http.server", "--bind", "127.0.0.1"])
                .arg(port.to_string())
                .arg("--directory")
                .arg(&served);
        } else {
            cmd.arg(repo().join("crates/assay-cli/tests/git_auth_http.py"))
                .args(["--port", &port.to_string()])
                .arg("--directory")
                .arg(&served)
                .args(auth);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Served: 200, or 401 from a server that asks for credentials.
        let ready = if auth.is_empty() { 200 } else { 401 };
        let origin = Origin {
            dir,
            port,
            _http: Running(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || http(port, "GET", "/app.git/info/refs", "", None).0 != ready
        {
            assert!(Instant::now() < deadline, "the HTTP server did not serve");
            std::thread::sleep(Duration::from_millis(100));
        }
        origin
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/app.git", self.port)
    }

    pub(crate) fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Commit `text` into `file` and push `main`; the new commit.
    pub(crate) fn push(&self, file: &str, text: &str) -> String {
        let work = self.work();
        let path = work.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", &format!("change {file}")]);
        git(&work, &["push", "-q", "origin", "main"]);
        self.served();
        head(&work)
    }

    /// Tag `HEAD` (annotated) and push the tag; the tagged commit.
    pub(crate) fn tag(&self, name: &str) -> String {
        let work = self.work();
        git(&work, &["tag", "-a", "-m", name, name]);
        git(&work, &["push", "-q", "origin", name]);
        self.served();
        head(&work)
    }

    pub(crate) fn served(&self) {
        git(
            &self.dir.path().join("served/app.git"),
            &["update-server-info"],
        );
    }
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub(crate) fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"])
}

/// `assay server` polling every second, its stderr kept.
pub(crate) type Server = LoggedServer;

/// Logging each poll (`git trigger polled`), which the tests wait for.
pub(crate) const RUST_LOG: &str = "info,assay_server::git_triggers=debug";

fn server(data: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--no-auth"];
    args.extend(extra);
    server_with_token(data, &args)
}

/// [`server`] with `args` as given (with tokens unless `--no-auth` is among them).
fn server_with_token(data: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--git-poll-interval", "1s"];
    args.extend(extra);
    logged_server(data, &args, RUST_LOG)
}

pub(crate) fn wait_for<T>(s: &Server, what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_logged(s, what, check)
}

/// The number of lines of the server's log holding every one of `needles`.
pub(crate) fn logged(s: &Server, needles: &[&str]) -> usize {
    s.log
        .lock()
        .unwrap()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Store one YAML document through the API.
pub(crate) fn post(s: &Server, path: &str, yaml: &str) {
    let (status, body) = http(s.port, "POST", path, &s.token, Some(("text/yaml", yaml)));
    assert_eq!(status, 201, "{path}: {body}");
}

/// The executions a trigger queued, newest first.
pub(crate) fn runs_of(s: &Server, trigger: &str) -> Vec<Value> {
    let (_, body) = http(
        s.port,
        "GET",
        &format!("/v1/test-workflow-executions?tag=testtrigger={trigger}"),
        &s.token,
        None,
    );
    serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn execution(s: &Server, id: &str) -> Value {
    let (_, body) = http(
        s.port,
        "GET",
        &format!("/v1/test-workflow-executions/{id}"),
        &s.token,
        None,
    );
    serde_json::from_str(&body).unwrap()
}

pub(crate) const WORKFLOW: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: app-tests\nspec:\n  config:\n    TESTKUBE_GIT_COMMIT: {type: string, default: none}\n    TESTKUBE_GIT_BRANCH: {type: string, default: none}\n    TESTKUBE_GIT_TAG: {type: string, default: none}\n  steps:\n    - name: test\n      shell: echo tested {{ config.TESTKUBE_GIT_COMMIT }}\n";

pub(crate) fn trigger(name: &str, event: &str, uri: &str, git: &str) -> String {
    format!(
        "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata:\n  name: {name}\nspec:\n  resource: content\n  event: {event}\n  contentSelector:\n    git:\n      uri: {uri}\n{git}  action: run\n  execution: testworkflow\n  testSelector:\n    name: app-tests\n"
    )
}

/// Wait until the server has polled the trigger and seen `commit`.
pub(crate) fn wait_polled(s: &Server, trigger: &str, commit: &str) {
    wait_for(s, &format!("a poll of {trigger} seeing {commit}"), || {
        (logged(s, &["git trigger polled", trigger, commit]) > 0).then_some(())
    });
}

#[test]
fn pushes_to_watched_paths_and_new_tags_queue_runs_with_the_commit() {
    let origin = Origin::new();
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), &[]);
    post(&s, "/v1/test-workflows", WORKFLOW);
    let paths = "      branches: [main]\n      paths: [src]\n      pathsIgnore: ['**/*.md']\n";
    post(
        &s,
        "/v1/triggers",
        &trigger("on-push", "git-push", &origin.uri(), paths),
    );
    post(
        &s,
        "/v1/triggers",
        &trigger(
            "on-tag",
            "git-tag-push",
            &origin.uri(),
            "      tags: ['v*']\n",
        ),
    );
    // The first sight records the heads and fires nothing.
    wait_for(&s, "the heads recorded", || {
        (logged(&s, &["recorded the repository's heads"]) == 2).then_some(())
    });

    // A push touching a watched path: one run, of that commit.
    let commit = origin.push("src/app.txt", "2\n");
    let runs = wait_for(&s, "the push's run", || {
        let runs = runs_of(&s, "on-push");
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let e = execution(&s, runs[0]["id"].as_str().unwrap());
    assert_eq!(
        e["configParams"]["TESTKUBE_GIT_COMMIT"]["value"], commit,
        "{e}"
    );
    assert_eq!(
        e["configParams"]["TESTKUBE_GIT_BRANCH"]["value"], "main",
        "{e}"
    );
    assert_eq!(e["tags"]["commit"], commit, "{e}");
    assert_eq!(
        e["runningContext"]["actor"]["name"], "testtrigger on-push",
        "{e}"
    );

    // A push touching only ignored paths (and unwatched ones): seen, and no run.
    let ignored = origin.push("src/notes.md", "notes\n");
    wait_polled(&s, "on-push", &ignored);
    wait_for(&s, "the ignored push judged", || {
        (logged(&s, &["no changed path matches", &ignored]) > 0).then_some(())
    });
    let outside = origin.push("docs/guide.md", "more\n");
    wait_for(&s, "the push outside `src` judged", || {
        (logged(&s, &["no changed path matches", &outside]) > 0).then_some(())
    });
    assert_eq!(runs_of(&s, "on-push").len(), 1);
    assert_eq!(
        runs_of(&s, "on-tag").len(),
        0,
        "branch pushes are not tag pushes"
    );

    // A new tag: `git-tag-push`, at the tagged commit (not the tag object).
    let tagged = origin.tag("v1.0.0");
    let runs = wait_for(&s, "the tag's run", || {
        let runs = runs_of(&s, "on-tag");
        (!runs.is_empty()).then_some(runs)
    });
    let e = execution(&s, runs[0]["id"].as_str().unwrap());
    assert_eq!(
        e["configParams"]["TESTKUBE_GIT_TAG"]["value"], "v1.0.0",
        "{e}"
    );
    assert_eq!(
        e["configParams"]["TESTKUBE_GIT_COMMIT"]["value"], tagged,
        "{e}"
    );
    // A tag the trigger does not watch: nothing.
    git(&origin.work(), &["tag", "other"]);
    git(&origin.work(), &["push", "-q", "origin", "other"]);
    origin.served();
    let again = origin.push("src/app.txt", "3\n");
    wait_for(&s, "the next push's run", || {
        (runs_of(&s, "on-push").len() == 2).then_some(())
    });
    // `on-tag` polled after `on-push` saw that later push: it saw the tag `other` too.
    wait_polled(&s, "on-push", &again);
    wait_for(&s, "a poll of on-tag after that", || {
        let log = s.log.lock().unwrap();
        let mut lines = log.lines().skip_while(|l| {
            !(l.contains("git trigger polled") && l.contains("on-push") && l.contains(&again))
        });
        lines
            .any(|l| l.contains("git trigger polled") && l.contains("trigger=on-tag"))
            .then_some(())
    });
    assert_eq!(runs_of(&s, "on-tag").len(), 1);
    assert_eq!(
        logged(&s, &["git trigger fired"]),
        3,
        "{}",
        s.log.lock().unwrap()
    );
}

/// Two triggers on one repository share each round's `ls-remote`: the log has one
/// `git repository listed` per round and one `git trigger polled` per trigger and round.
#[test]
fn triggers_on_one_repository_share_its_listing() {
    let origin = Origin::new();
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), &[]);
    post(&s, "/v1/test-workflows", WORKFLOW);
    post(
        &s,
        "/v1/triggers",
        &trigger("pushes", "git-push", &origin.uri(), ""),
    );
    post(
        &s,
        "/v1/triggers",
        &trigger("tags", "git-tag-push", &origin.uri(), ""),
    );
    let counts = || {
        (
            logged(&s, &["git repository listed"]),
            logged(&s, &["git trigger polled"]),
        )
    };
    // From a round in which both were polled on (rounds before the second trigger was stored
    // had one trigger each).
    wait_for(&s, "both triggers polled", || {
        (logged(&s, &["git trigger polled", "trigger=pushes"]) > 0
            && logged(&s, &["git trigger polled", "trigger=tags"]) > 0)
            .then_some(())
    });
    let (listed, polled) = counts();
    let (more_listed, more_polled) = wait_for(&s, "six more polls", || {
        let (l, p) = counts();
        (p >= polled + 6).then_some((l - listed, p - polled))
    });
    // Each round lists once and polls twice; a round may be half logged at either count.
    assert!(
        more_listed >= 2 && 2 * more_listed <= more_polled + 2,
        "{more_listed} listings for {more_polled} polls:\n{}",
        s.log.lock().unwrap()
    );
}

/// A fresh database on the test PostgreSQL server (`ASSAY_TEST_POSTGRES_URL`, made with
/// `createdb`); `None` only when `ASSAY_TEST_SKIP_POSTGRES=1` asks to skip on purpose.
fn postgres_database() -> Option<String> {
    let admin = match std::env::var("ASSAY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            if std::env::var("ASSAY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("skipping: ASSAY_TEST_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "ASSAY_TEST_POSTGRES_URL is not set: start a server with scripts/pg.sh (scripts/test.sh does)"
            );
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("t_gittrig_{}_{nanos}", std::process::id());
    let createdb = ["/usr/lib/postgresql/15/bin/createdb", "createdb"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).exists())
        .unwrap();
    let out = Command::new(createdb)
        .args(["--maintenance-db", &admin, &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "createdb: {out:?}");
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

#[test]
fn two_servers_on_one_postgres_fire_a_push_once() {
    let Some(url) = postgres_database() else {
        return;
    };
    let origin = Origin::new();
    let dir = tempfile::tempdir().unwrap();
    let a = server(&dir.path().join("a"), &["--database", &url]);
    let b = server(&dir.path().join("b"), &["--database", &url]);
    post(&a, "/v1/test-workflows", WORKFLOW);
    post(
        &a,
        "/v1/triggers",
        &trigger("shared", "git-push", &origin.uri(), ""),
    );
    let first = head(&origin.work());
    wait_polled(&a, "shared", &first);
    wait_polled(&b, "shared", &first);
    assert_eq!(
        logged(&a, &["recorded the repository's heads"])
            + logged(&b, &["recorded the repository's heads"]),
        1,
        "one server records the first sight"
    );
    for n in 1..=2 {
        let commit = origin.push("src/app.txt", &format!("pushed {n}\n"));
        // Both servers saw the push; only one queued its run.
        wait_polled(&a, "shared", &commit);
        wait_polled(&b, "shared", &commit);
        wait_for(&a, "the push's run", || {
            (runs_of(&a, "shared").len() == n).then_some(())
        });
    }
    let fired = logged(&a, &["git trigger fired"]) + logged(&b, &["git trigger fired"]);
    assert_eq!(
        fired,
        2,
        "a:\n{}\nb:\n{}",
        a.log.lock().unwrap(),
        b.log.lock().unwrap()
    );
    assert_eq!(runs_of(&b, "shared").len(), 2);
}

#[test]
fn file_repositories_and_kubernetes_secrets_are_refused_with_a_reason() {
    let origin = Origin::new();
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), &[]);
    post(&s, "/v1/test-workflows", WORKFLOW);
    let file = format!(
        "file://{}",
        origin.dir.path().join("served/app.git").display()
    );
    post(&s, "/v1/triggers", &trigger("local", "git-push", &file, ""));
    post(
        &s,
        "/v1/triggers",
        &trigger(
            "private",
            "git-push",
            &origin.uri(),
            "      tokenFrom: {secretKeyRef: {name: git, key: token}}\n",
        ),
    );
    wait_for(&s, "the refusals", || {
        (logged(&s, &["trigger=local", "does not poll", "--git-allow-file"]) == 1
            && logged(
                &s,
                &[
                    "trigger=private",
                    "does not watch Kubernetes",
                    "--kubernetes",
                ],
            ) == 1)
            .then_some(())
    });
    // Said once, not at every poll.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(logged(&s, &["trigger=local", "does not poll"]), 1);

    // With --git-allow-file, the same repository is polled.
    let data = dir.path().join("data2");
    let s = server(&data, &["--git-allow-file"]);
    post(&s, "/v1/test-workflows", WORKFLOW);
    post(&s, "/v1/triggers", &trigger("local", "git-push", &file, ""));
    wait_for(&s, "the heads recorded", || {
        (logged(&s, &["recorded the repository's heads"]) == 1).then_some(())
    });
    let commit = origin.push("src/app.txt", "2\n");
    wait_for(&s, "the push's run", || {
        (!runs_of(&s, "local").is_empty()).then_some(())
    });
    wait_polled(&s, "local", &commit);
}

/// A server started inside a git checkout (a team's project, CI's clean clone) polls the
/// trigger's repository: git must not take the checkout for its repository, whose `origin`
/// (another repository here) it listed instead, so that pushes to the trigger's never fired.
#[test]
fn a_server_started_inside_a_checkout_polls_the_triggers_repository() {
    let origin = Origin::new();
    let decoy = Origin::new();
    decoy.push("src/app.txt", "decoy\n");
    let checkout = decoy.work();
    let dir = tempfile::tempdir().unwrap();
    let s = logged_server_in(
        Some(&checkout.join("src")),
        &dir.path().join("data"),
        &["--no-auth", "--git-poll-interval", "1s"],
        RUST_LOG,
    );
    post(&s, "/v1/test-workflows", WORKFLOW);
    post(
        &s,
        "/v1/triggers",
        &trigger("inside", "git-push", &origin.uri(), ""),
    );
    wait_polled(&s, "inside", &head(&origin.work()));
    assert_eq!(logged(&s, &["trigger=inside", &head(&checkout)]), 0);
    let commit = origin.push("src/app.txt", "2\n");
    wait_for(&s, "the push's run", || {
        (!runs_of(&s, "inside").is_empty()).then_some(())
    });
    wait_polled(&s, "inside", &commit);
    // The informer's own repository took nothing from the checkout.
    assert!(!checkout.join(".git/FETCH_HEAD").exists());
}

/// The README's example (`examples/git/app-tests.yaml`), with its URI pointed at the local
/// repository, applied with `assay apply --server`.
#[test]
fn the_readmes_git_trigger_example_runs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block: Vec<&str> = readme
        .split("<!-- git-trigger -->\n```sh\n")
        .nth(1)
        .expect("the README's git-trigger block")
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .collect();
    let origin = Origin::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = server_with_token(&data, &[]);
    let example = std::fs::read_to_string(repo().join("examples/git/app-tests.yaml"))
        .unwrap()
        .replace("https://git.example.com/acme/app.git", &origin.uri());
    let file = dir.path().join("app-tests.yaml");
    std::fs::write(&file, example).unwrap();
    for line in block {
        let command = line.strip_prefix("$ ").expect("a command line");
        let command = command
            .replace("examples/git/app-tests.yaml", file.to_str().unwrap())
            .replace("8088", &s.port.to_string());
        if command.starts_with("git ") {
            // The push: made in the origin's work tree.
            origin.push("src/app.txt", "from the README\n");
            continue;
        }
        let bin = Path::new(env!("CARGO_BIN_EXE_assay")).parent().unwrap();
        let out = Command::new("sh")
            .args(["-c", &command])
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env_remove("ASSAY_CONTEXT")
            .env_remove("ASSAY_DATABASE")
            .env("ASSAY_DATA_DIR", &data)
            .env("ASSAY_CONFIG", dir.path().join("contexts.yaml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {out:?}");
        if command.contains("apply") {
            wait_for(&s, "the heads recorded", || {
                (logged(&s, &["recorded the repository's heads"]) == 1).then_some(())
            });
        }
    }
    let runs = wait_for(&s, "the example's run", || {
        let runs = runs_of(&s, "app-push");
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(runs[0]["workflow"]["name"], "app-tests", "{runs:#?}");
}
