//! Git `content` TestTriggers with credentials from Kubernetes Secrets (`usernameFrom`,
//! `tokenFrom`, `sshKeyFrom`), end to end: the real `assay server --kubernetes` reads the
//! Secret from a FAKE Kubernetes API server (`crates/assay-kube/tests/fake_api.py`: no real
//! API server can be had here) and the real `git` lists a repository served by a real HTTP
//! server on 127.0.0.1 that answers only requests with those credentials
//! (`git_auth_http.py`: 401 to the rest). `sshKeyFrom` opens a repository on a real OpenSSH
//! server on 127.0.0.1 (Debian's openssh-server, which `scripts/test.sh` installs) whose host
//! key the server knows through `--git-known-hosts`; another test checks what the server does
//! with the key file (its mode, its removal) against a TCP listener that never answers.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::git_triggers::{
    Origin, RUST_LOG, Server, WORKFLOW, execution, logged, post, runs_of, trigger, wait_for,
};
use crate::run_support::{
    FakeApi, Running, apply, assay, contains, fake_api, files_under, free_port, http, logged_server,
};

/// `assay server --kubernetes` on the fake, polling every `interval`.
fn server(data: &Path, api: &FakeApi, interval: &str) -> Server {
    server_with(data, api, interval, &[])
}

/// [`server`] with more arguments.
fn server_with(data: &Path, api: &FakeApi, interval: &str, more: &[&str]) -> Server {
    let kubeconfig = api.kubeconfig.display().to_string();
    let mut args = vec![
        "--no-auth",
        "--git-poll-interval",
        interval,
        "--kubernetes",
        "--kubeconfig",
        &kubeconfig,
    ];
    args.extend_from_slice(more);
    logged_server(data, &args, RUST_LOG)
}

/// Stores the workflow and the `git-push` trigger `over-ssh` on `uri`, with the key of the
/// Secret `git-creds`'s `ssh`.
fn watch_over_ssh(s: &Server, uri: &str) {
    post(s, "/v1/test-workflows", WORKFLOW);
    post(
        s,
        "/v1/triggers",
        &trigger(
            "over-ssh",
            "git-push",
            uri,
            &from("sshKeyFrom", "git-creds", "ssh"),
        ),
    );
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The Secret `git-creds` in the server's namespace (`assay`) with `keys` (base64 `data`, as
/// Kubernetes keeps it).
fn secret(api: &FakeApi, keys: &[(&str, &str)]) {
    let data: String = keys
        .iter()
        .map(|(k, v)| format!("  {k}: {}\n", b64(v)))
        .collect();
    apply(
        api,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-creds\n  namespace: assay\ndata:\n{data}"
        ),
    );
}

fn from(field: &str, name: &str, key: &str) -> String {
    format!("      {field}: {{secretKeyRef: {{name: {name}, key: {key}}}}}\n")
}

/// Everything a viewer of the API sees of the triggers and their runs.
fn api_text(s: &Server, triggers: &[&str]) -> String {
    let mut out = String::new();
    for path in ["/v1/triggers", "/v1/test-workflow-executions"] {
        out.push_str(&http(s.port, "GET", path, &s.token, None).1);
    }
    for t in triggers {
        out.push_str(&http(s.port, "GET", &format!("/v1/triggers/{t}"), &s.token, None).1);
        for run in runs_of(s, t) {
            let id = run["id"].as_str().unwrap();
            out.push_str(&execution(s, id).to_string());
            out.push_str(
                &http(
                    s.port,
                    "GET",
                    &format!("/v1/test-workflow-executions/{id}/logs"),
                    &s.token,
                    None,
                )
                .1,
            );
        }
    }
    out
}

#[test]
fn tokens_from_secrets_open_a_repository_that_asks_for_them_and_never_show() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("ghp_secret{nanos}");
    let wrong = format!("ghp_wrong{nanos}");
    let basic = Origin::with_auth(&["--basic", &format!("bot:{token}")]);
    let bearer = Origin::with_auth(&["--bearer", &token]);
    let dir = tempfile::tempdir().unwrap();
    let api = fake_api(dir.path());
    secret(
        &api,
        &[("username", "bot"), ("token", &token), ("wrong", &wrong)],
    );
    let data = dir.path().join("data");
    let s = server(&data, &api, "1s");
    post(&s, "/v1/test-workflows", WORKFLOW);
    let user = from("usernameFrom", "git-creds", "username");
    let creds = format!("{user}{}", from("tokenFrom", "git-creds", "token"));
    post(
        &s,
        "/v1/triggers",
        &trigger("basic", "git-push", &basic.uri(), &creds),
    );
    let header = format!(
        "      authType: header\n{}",
        from("tokenFrom", "git-creds", "token")
    );
    post(
        &s,
        "/v1/triggers",
        &trigger("bearer", "git-push", &bearer.uri(), &header),
    );
    // A key the Secret lacks, a Secret that does not exist, a token the server refuses, and
    // no credentials at all.
    let no_key = format!("{user}{}", from("tokenFrom", "git-creds", "nope"));
    post(
        &s,
        "/v1/triggers",
        &trigger("nokey", "git-push", &basic.uri(), &no_key),
    );
    let no_secret = from("tokenFrom", "absent", "token");
    post(
        &s,
        "/v1/triggers",
        &trigger("nosecret", "git-push", &basic.uri(), &no_secret),
    );
    let refused = format!("{user}{}", from("tokenFrom", "git-creds", "wrong"));
    post(
        &s,
        "/v1/triggers",
        &trigger("refused", "git-push", &basic.uri(), &refused),
    );
    post(
        &s,
        "/v1/triggers",
        &trigger("anonymous", "git-push", &bearer.uri(), ""),
    );

    wait_for(&s, "both heads recorded", || {
        (logged(&s, &["recorded the repository's heads"]) == 2).then_some(())
    });
    let failed = "polling the git trigger's repository failed";
    wait_for(&s, "the four problems", || {
        (logged(
            &s,
            &[
                failed,
                "trigger=nokey",
                "Secret git-creds",
                "has no key nope",
            ],
        ) == 1
            && logged(
                &s,
                &[failed, "trigger=nosecret", "there is no Secret absent"],
            ) == 1
            && logged(&s, &[failed, "trigger=refused", "git ls-remote"]) == 1
            && logged(&s, &[failed, "trigger=anonymous", "git ls-remote"]) == 1)
            .then_some(())
    });

    // The pushes fire, through the credentials.
    let pushed = basic.push("src/app.txt", "2\n");
    let pushed_too = bearer.push("src/app.txt", "2\n");
    for (t, commit) in [("basic", &pushed), ("bearer", &pushed_too)] {
        let runs = wait_for(&s, &format!("the run of {t}"), || {
            let runs = runs_of(&s, t);
            (!runs.is_empty()).then_some(runs)
        });
        let e = execution(&s, runs[0]["id"].as_str().unwrap());
        assert_eq!(
            e["configParams"]["TESTKUBE_GIT_COMMIT"]["value"], *commit,
            "{e}"
        );
    }
    // Said once each, not at every poll (the next two polls have happened by now).
    std::thread::sleep(Duration::from_millis(2500));
    for t in ["nokey", "nosecret", "refused", "anonymous"] {
        assert_eq!(
            logged(&s, &[failed, &format!("trigger={t}")]),
            1,
            "{}",
            s.log.lock().unwrap()
        );
        assert!(runs_of(&s, t).is_empty());
    }

    // Neither token (nor the basic auth made of one) is in the log, the API or the store.
    let log = s.log.lock().unwrap().clone();
    let api_seen = api_text(&s, &["basic", "bearer", "refused"]);
    assert!(api_seen.contains(&pushed), "the API shows the runs");
    for needle in [
        token.clone(),
        wrong.clone(),
        b64(&format!("bot:{token}")),
        b64(&format!("bot:{wrong}")),
    ] {
        assert!(!log.contains(&needle), "{needle} in the log:\n{log}");
        assert!(!api_seen.contains(&needle), "{needle} in the API");
        for file in files_under(&data) {
            let mut bytes = Vec::new();
            std::fs::File::open(&file)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{needle} in {}",
                file.display()
            );
        }
    }
}

/// The key of `sshKeyFrom` is given to ssh as a file of the server's (mode 0600, in a 0700
/// folder under the data dir) for the length of one poll, and removed when the poll ends.
#[test]
fn an_ssh_key_from_a_secret_lives_in_a_private_file_for_one_poll() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("id"));
    let key = std::fs::read_to_string(dir.path().join("id")).unwrap();
    let api = fake_api(dir.path());
    secret(&api, &[("ssh", &key)]);
    // An "ssh server" that takes the connection and says nothing: ssh waits for its banner.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((conn, _)) = listener.accept() {
            let _ = tx.send(conn);
        }
    });
    let data = dir.path().join("data");
    // Polls far apart: between two of them the key file must be gone.
    let s = server(&data, &api, "1h");
    watch_over_ssh(&s, &format!("ssh://git@127.0.0.1:{port}/app.git"));
    let conn = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ssh connected");
    // While ssh is connected: the key is a private file of the server's.
    let keys: Vec<_> = files_under(&data.join("git-triggers"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("key-"))
        })
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys[0]), 0o600);
    assert_eq!(mode(keys[0].parent().unwrap()), 0o700);
    assert_eq!(
        std::fs::read_to_string(&keys[0]).unwrap().trim(),
        key.trim()
    );
    // The "server" hangs up: the poll fails, said once, without the key; the file is gone.
    drop(conn);
    wait_for(&s, "the failed poll", || {
        (logged(
            &s,
            &[
                "polling the git trigger's repository failed",
                "trigger=over-ssh",
            ],
        ) == 1)
            .then_some(())
    });
    assert!(!keys[0].exists(), "the key outlived its poll");
    let log = s.log.lock().unwrap().clone();
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!log.contains(secret_line), "{log}");
}

/// An ed25519 key pair at `path` (and `path.pub`), without a passphrase.
fn keygen(path: &Path) {
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "assay-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// A real OpenSSH server on 127.0.0.1 that lets the current user in with the key whose public
/// half is `client_pub` only: its port, the user, and its host key as a `known_hosts` line.
struct Sshd {
    port: u16,
    user: String,
    known_host: String,
    _child: Running,
}

impl Sshd {
    /// The URI of `origin`'s repository through this server (ssh reaches it by its path on
    /// this machine).
    fn uri_of(&self, origin: &Origin) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            origin.dir.path().join("served/app.git").display()
        )
    }
}

fn sshd(dir: &Path, client_pub: &str) -> Sshd {
    let program = Path::new("/usr/sbin/sshd");
    assert!(
        program.exists(),
        "/usr/sbin/sshd is missing: scripts/test.sh installs openssh-server"
    );
    keygen(&dir.join("host"));
    std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    if nix::unistd::geteuid().is_root() {
        // Its privilege separation folder, which a service manager would make.
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\nPidFile none\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\n",
            host = dir.join("host").display(),
            keys = dir.join("authorized_keys").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let child = std::process::Command::new(program)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "sshd did not listen: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let host_pub = std::fs::read_to_string(dir.join("host.pub")).unwrap();
    Sshd {
        port,
        user,
        known_host: format!("[127.0.0.1]:{port} {}", host_pub.trim()),
        _child: Running(child),
    }
}

/// `sshKeyFrom` opens a repository on a real ssh server whose host key the server knows from
/// `--git-known-hosts`: a push fires a run, and the key is in no log line. Without the option
/// ssh would check the host against the server user's own `known_hosts` and refuse it.
#[test]
fn an_ssh_key_from_a_secret_opens_a_repository_on_a_real_ssh_server() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("id"));
    let key = std::fs::read_to_string(dir.path().join("id")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("id.pub")).unwrap();
    let ssh = sshd(dir.path(), &public);
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, format!("{}\n", ssh.known_host)).unwrap();
    let origin = Origin::new();
    let uri = ssh.uri_of(&origin);
    let api = fake_api(dir.path());
    secret(&api, &[("ssh", &key)]);
    let data = dir.path().join("data");
    let known_arg = known.display().to_string();
    let s = server_with(&data, &api, "1s", &["--git-known-hosts", &known_arg]);
    watch_over_ssh(&s, &uri);
    wait_for(&s, "the heads read over ssh", || {
        (logged(&s, &["recorded the repository's heads"]) == 1).then_some(())
    });
    let pushed = origin.push("src/app.txt", "2\n");
    let runs = wait_for(&s, "the run of the push", || {
        let runs = runs_of(&s, "over-ssh");
        (!runs.is_empty()).then_some(runs)
    });
    let e = execution(&s, runs[0]["id"].as_str().unwrap());
    assert_eq!(
        e["configParams"]["TESTKUBE_GIT_COMMIT"]["value"], *pushed,
        "{e}"
    );
    let log = s.log.lock().unwrap().clone();
    assert!(
        !log.contains("polling the git trigger's repository failed"),
        "{log}"
    );
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!log.contains(secret_line), "{log}");
}

/// `--git-known-hosts` must name a readable file whose path ssh takes as one file: else the
/// server does not start, and says why.
#[test]
fn a_known_hosts_file_that_cannot_serve_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let spaced = dir.path().join("known hosts");
    std::fs::write(&spaced, "").unwrap();
    let missing = dir.path().join("absent");
    for (file, says) in [
        (&missing, "cannot read"),
        (&spaced, "ssh takes a path with whitespace as several files"),
    ] {
        let out = assay()
            .args(["server", "--listen", "127.0.0.1:0", "--git-known-hosts"])
            .arg(file)
            .env("ASSAY_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("--git-known-hosts"), "{stderr}");
    }
}

/// `content.git` with `sshKeyFrom` (an `assay secret`) clones over ssh from a real OpenSSH
/// server that lets in that key only: the key lives in a private file for the clone and is gone
/// before the step runs, and the same workflow without the key is refused by the server.
#[test]
fn security_content_git_over_ssh_keeps_its_key_in_a_private_file_for_the_clone() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("id"));
    let public = std::fs::read_to_string(dir.path().join("id.pub")).unwrap();
    let ssh = sshd(dir.path(), &public);
    let origin = Origin::new();
    let uri = ssh.uri_of(&origin);
    let data = dir.path().join("data");
    let set = assay()
        .args(["secret", "set", "deploy", "--from-file"])
        .arg(format!("key={}", dir.path().join("id").display()))
        .env("ASSAY_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let workflow = |name: &str, key: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata:\n  name: {name}\nspec:\n  content:\n    git:\n      uri: {uri}\n{key}  steps:\n  - name: cloned\n    workingDir: /data/repo\n    shell: cat src/app.txt && ls -A \"$TMPDIR/..\"\n"
            ),
        )
        .unwrap();
        let out = assay()
            .arg("run")
            .arg(&file)
            .env("ASSAY_DATA_DIR", &data)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, said) = workflow("with-key", &from("sshKeyFrom", "deploy", "key"));
    assert_eq!(code, Some(0), "{said}");
    // The clone's file, and the work folder's listing: `data` is there, the key's folder not.
    assert!(said.contains("cloned | 1\n"), "{said}");
    assert!(said.contains("cloned | outputs\n"), "{said}");
    assert!(!said.contains("known hosts"), "{said}");
    assert!(!said.contains(".git-ssh-"), "{said}");
    let key = std::fs::read_to_string(dir.path().join("id")).unwrap();
    assert!(!said.contains(key.lines().nth(1).unwrap()), "{said}");
    let (code, said) = workflow("without-key", "");
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("failed to clone"), "{said}");
}
