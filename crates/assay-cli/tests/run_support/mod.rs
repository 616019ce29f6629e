//! Running the real `assay` binary on the workflows of `tests/workflows/` and reading back what
//! it recorded in its data dir.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};
use tempfile::TempDir;

pub const PASSED: i32 = 0;
pub const FAILED: i32 = 1;
pub const INVALID: i32 = 2;

/// One test per workflow of a file: `workflow!(test_name, "file.yaml", "workflow-name"
/// [, extra args...]; |run| { assertions })`.
#[macro_export]
macro_rules! workflow {
    ($test:ident, $file:literal, $name:literal $(, $arg:expr)* ; |$run:ident| $body:block) => {
        #[test]
        fn $test() {
            let $run = Run::new($file, $name, &[$($arg),*]);
            $body
        }
    };
}

/// The project's own workflows.
pub fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/workflows")
}

/// `assay` with a clean environment for the store (no `ASSAY_*` from the caller) and no colour.
pub fn assay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ASSAY_") {
            cmd.env_remove(&key);
        }
    }
    // Except the step user: the tests' fixtures are in root's 0700 temporary folders, so
    // scripts/test.sh keeps steps as root (isolation.rs tests the drop).
    if let Some(user) = std::env::var_os("ASSAY_STEP_USER") {
        cmd.env("ASSAY_STEP_USER", user);
    }
    cmd.env("NO_COLOR", "1");
    // The tests run inside this repository: its commit and branch would become tags of every
    // run (insights.rs turns it on in repositories it makes).
    cmd.env("ASSAY_PROVENANCE", "off");
    cmd
}

/// A finished `assay run`: its exit code, output and the data dir it recorded into.
pub struct Run {
    pub code: i32,
    /// The execution as `-o json` printed it (`Null` when stdout was not JSON).
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
    pub data: TempDir,
    pub args: Vec<String>,
}

impl Run {
    /// `assay run tests/workflows/FILE --name NAME ARGS... -q -o json` with a fresh data dir.
    pub fn new(file: &str, name: &str, args: &[&str]) -> Run {
        Self::with_flags(file, name, args, &["-q", "-o", "json"])
    }

    pub fn with_flags(file: &str, name: &str, args: &[&str], flags: &[&str]) -> Run {
        Self::with_env(file, name, args, flags, &[])
    }

    /// [`Run::with_flags`] with these environment variables set for `assay`.
    pub fn with_env(
        file: &str,
        name: &str,
        args: &[&str],
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        Self::in_data_dir(
            tempfile::tempdir().expect("temp dir"),
            file,
            name,
            args,
            flags,
            env,
        )
    }

    /// [`Run::with_env`] after `assay apply -f FILE` into the same data dir, so the file's
    /// workflows are stored (what `execute` steps run).
    pub fn stored(file: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let data = tempfile::tempdir().expect("temp dir");
        let applied = assay()
            .args(["apply", "-f"])
            .arg(workflows_dir().join(file))
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .expect("run assay apply");
        assert!(applied.status.success(), "{applied:?}");
        Self::in_data_dir(data, file, name, args, &["-q", "-o", "json"], env)
    }

    fn in_data_dir(
        data: TempDir,
        file: &str,
        name: &str,
        args: &[&str],
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let path = workflows_dir().join(file);
        let mut all: Vec<String> = vec![
            "run".into(),
            path.display().to_string(),
            "--name".into(),
            name.into(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        all.extend(flags.iter().map(|s| s.to_string()));
        all.push("--data-dir".into());
        all.push(data.path().display().to_string());
        let out = assay()
            .args(&all)
            .envs(env.iter().copied())
            .output()
            .expect("run assay");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        Run {
            code: out.status.code().unwrap_or(-1),
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            data,
            args: all,
        }
    }

    /// The recorded executions of `workflow` (Testkube's shape), oldest first.
    pub fn executions_of(&self, workflow: &str) -> Vec<Value> {
        let out = assay()
            .args(["get", "executions", "-o", "json", "--data-dir"])
            .arg(self.data.path())
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut found: Vec<Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["workflow"]["name"] == workflow)
            .map(|e| {
                let one = assay()
                    .args(["get", "execution", e["id"].as_str().unwrap(), "-o", "json"])
                    .arg("--data-dir")
                    .arg(self.data.path())
                    .output()
                    .unwrap();
                serde_json::from_slice(&one.stdout).unwrap()
            })
            .collect();
        found.sort_by_key(|e| e["number"].as_i64());
        found
    }

    pub fn id(&self) -> &str {
        self.json["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no execution id\n{self}"))
    }

    /// The execution's status.
    pub fn status(&self) -> &str {
        self.json["result"]["status"].as_str().unwrap_or("")
    }

    /// The execution's error (why it failed or was aborted), or "".
    pub fn error(&self) -> &str {
        self.json["result"]["initialization"]["errorMessage"]
            .as_str()
            .unwrap_or("")
    }

    pub fn steps(&self) -> &Map<String, Value> {
        self.json["result"]["steps"]
            .as_object()
            .unwrap_or_else(|| panic!("no steps\n{self}"))
    }

    /// A step's status by ref.
    pub fn step(&self, reference: &str) -> &str {
        self.steps()
            .get(reference)
            .and_then(|s| s["status"].as_str())
            .unwrap_or_else(|| panic!("no step `{reference}`\n{self}"))
    }

    pub fn exit_code(&self, reference: &str) -> Option<i64> {
        self.steps().get(reference)?["exitCode"].as_i64()
    }

    pub fn step_error(&self, reference: &str) -> &str {
        self.steps()
            .get(reference)
            .and_then(|s| s["errorMessage"].as_str())
            .unwrap_or("")
    }

    /// The exit code, the execution status (the root's) and every step's status: exactly
    /// these steps, no others.
    pub fn expect(&self, code: i32, steps: &[(&str, &str)]) {
        assert_eq!(self.code, code, "exit code\n{self}");
        let want: BTreeMap<&str, &str> = steps.iter().copied().collect();
        let got: BTreeMap<&str, &str> = self
            .steps()
            .iter()
            .map(|(k, v)| (k.as_str(), v["status"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(got, want, "step statuses\n{self}");
        if let Some(root) = want.get("root") {
            assert_eq!(self.status(), *root, "execution status\n{self}");
        }
        let expected_code = if self.status() == "passed" {
            PASSED
        } else {
            FAILED
        };
        assert_eq!(
            self.code,
            expected_code,
            "exit code for {}\n{self}",
            self.status()
        );
    }

    /// A step's output value.
    pub fn output(&self, reference: &str, key: &str) -> Option<String> {
        self.json["output"].as_array()?.iter().find_map(|o| {
            (o["ref"] == reference && o["name"] == key).then(|| match &o["value"] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
        })
    }

    fn files(&self) -> PathBuf {
        self.data.path().join("files/executions").join(self.id())
    }

    /// A step's stored log text (without timestamps); "" when it printed nothing.
    pub fn log(&self, reference: &str) -> String {
        let dir = self.files().join("logs");
        let name = encode_step(reference);
        let raw = dir.join(format!("{name}.log"));
        let packed = dir.join(format!("{name}.log.zst"));
        let bytes = if packed.exists() {
            zstd::decode_all(std::fs::File::open(&packed).unwrap()).unwrap()
        } else if raw.exists() {
            std::fs::read(&raw).unwrap()
        } else {
            return String::new();
        };
        let text = String::from_utf8(bytes).expect("logs are UTF-8");
        text.split_inclusive('\n')
            .map(|line| match line.split_once(' ') {
                Some((ts, rest)) if ts.parse::<i64>().is_ok() => rest,
                _ => panic!("stored log line without a timestamp: {line:?}"),
            })
            .collect()
    }

    /// Paths of the recorded artifacts, sorted.
    pub fn artifact_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.json["artifacts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["path"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths
    }

    /// The stored content of an artifact.
    pub fn artifact(&self, path: &str) -> String {
        let file = self.files().join("artifacts").join(path);
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("artifact {}: {e}\n{self}", file.display()))
    }

    /// Which step an artifact came from.
    pub fn artifact_ref(&self, path: &str) -> String {
        self.json["artifacts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["path"] == path))
            .and_then(|x| x["ref"].as_str())
            .unwrap_or("")
            .to_string()
    }

    /// `needle` appears in no file under the data dir (compressed logs decompressed), nor in
    /// what `assay` printed.
    pub fn assert_never_stored(&self, needle: &str) {
        assert!(!self.stdout.contains(needle), "found in stdout");
        assert!(!self.stderr.contains(needle), "found in stderr");
        let files = files_under(self.data.path());
        assert!(!files.is_empty());
        for file in files {
            let mut bytes = std::fs::read(&file).unwrap();
            if file.extension().is_some_and(|e| e == "zst") {
                bytes = zstd::decode_all(&bytes[..]).unwrap();
            }
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "`{needle}` is stored in {}",
                file.display()
            );
        }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- assay {}", self.args.join(" "))?;
        writeln!(f, "--- exit code {}", self.code)?;
        writeln!(f, "--- stderr\n{}", self.stderr)?;
        match &self.json {
            Value::Null => writeln!(f, "--- stdout\n{}", self.stdout),
            v => writeln!(
                f,
                "--- execution\n{}",
                serde_json::to_string_pretty(v).unwrap_or_default()
            ),
        }
    }
}

/// The store's file name for a step ref (`a/b` → `a~2Fb`).
fn encode_step(step: &str) -> String {
    let mut out = String::new();
    for b in step.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`, as `Bearer token`
/// (no `Authorization` header when `token` is empty); returns status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<(&str, &str)>,
) -> (u16, String) {
    http_with(port, method, path, token, "", body)
}

/// [`http`] with extra header lines (`Name: value\r\n` each).
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    headers: &str,
    body: Option<(&str, &str)>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let (ctype, text) = body.unwrap_or(("application/json", ""));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}{headers}Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Stores `yaml` (a workflow named `name`) on the server at `port` and queues a run of it, as
/// `token` (`""`: none); the execution's id. Fails the test unless the server answers 201 and 200.
pub fn store_and_run(port: u16, token: &str, name: &str, yaml: &str) -> String {
    let (status, body) = http(
        port,
        "POST",
        "/v1/test-workflows",
        token,
        Some(("text/yaml", yaml)),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(
        port,
        "POST",
        &format!("/v1/test-workflows/{name}/executions"),
        token,
        Some(("application/json", "{}")),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no execution id: {body}"))
        .to_string()
}

/// Running processes (zombies left out) whose command line contains `marker`, as
/// `(pid, command line)`.
pub fn with_marker(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) && alive(pid) {
            found.push((pid, cmd));
        }
    }
    found
}

/// Whether a process runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A bare git repository made here: `main` has `tests/check.txt` = "main" and `docs/`;
/// `feature` changes `tests/check.txt` to "from feature branch".
pub struct GitRepo {
    dir: TempDir,
}

impl GitRepo {
    pub fn new() -> GitRepo {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("tests")).unwrap();
        std::fs::create_dir_all(src.join("docs")).unwrap();
        std::fs::write(src.join("tests/check.txt"), "main\n").unwrap();
        std::fs::write(src.join("docs/readme.txt"), "docs\n").unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
                .args(args)
                .current_dir(&src)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "."]);
        git(&["commit", "-qm", "init"]);
        git(&["checkout", "-qb", "feature"]);
        std::fs::write(src.join("tests/check.txt"), "from feature branch\n").unwrap();
        git(&["commit", "-qam", "feature"]);
        git(&["checkout", "-q", "main"]);
        let bare = dir.path().join("repo.git");
        git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        GitRepo { dir }
    }

    pub fn uri(&self) -> String {
        format!("file://{}", self.dir.path().join("repo.git").display())
    }

    /// Serve the repository over git's dumb HTTP protocol on 127.0.0.1, answering only requests
    /// that carry `user:password` as Basic credentials; the server and the repository's URI.
    pub fn serve_with_basic_auth(&self, user: &str, password: &str) -> (Running, String) {
        let bare = self.dir.path().join("repo.git");
        let out = Command::new("git")
            .args(["update-server-info"])
            .current_dir(&bare)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let script = repo().join("crates/assay-cli/tests/git_auth_http.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--directory"])
            .arg(&bare)
            .args(["--basic", &format!("{user}:{password}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let port: u16 = announced(&mut child, "LISTENING ")
            .parse()
            .expect("the server's port");
        (Running(child), format!("http://127.0.0.1:{port}/"))
    }
}

/// A process killed and reaped when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `assay server` on a free port with its stderr kept for assertions (`log`), and its admin
/// token when it has one.
pub struct LoggedServer {
    _running: Running,
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    /// The admin token (empty with `--no-auth`).
    pub token: String,
}

/// Start `assay server --listen 127.0.0.1:PORT ARGS` on `data` with `RUST_LOG=rust_log` and
/// wait until it listens.
pub fn logged_server(data: &Path, args: &[&str], rust_log: &str) -> LoggedServer {
    logged_server_in(None, data, args, rust_log)
}

/// [`logged_server`] started in the working directory `cwd` (the test's own when `None`).
pub fn logged_server_in(
    cwd: Option<&Path>,
    data: &Path,
    args: &[&str],
    rust_log: &str,
) -> LoggedServer {
    use std::io::BufRead;
    let port = free_port();
    let mut cmd = assay();
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("ASSAY_DATA_DIR", data)
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let mut s = LoggedServer {
        _running: Running(child),
        port,
        log,
        token: String::new(),
    };
    wait_logged(&s, "the server listening", || {
        s.log.lock().unwrap().contains("listening on").then_some(())
    });
    if !args.contains(&"--no-auth") {
        s.token = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
    }
    s
}

/// Poll `check` until it gives a value; fail with the server's log after a minute.
pub fn wait_logged<T>(s: &LoggedServer, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited a minute for {what}; server log:\n{}",
            s.log.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Start `assay server` on `port` and wait until it listens.
pub fn serve(data: &Path, port: u16) -> Running {
    serve_with(data, port, &[])
}

/// [`serve`] with more arguments for `assay server`.
pub fn serve_with(data: &Path, port: u16, extra: &[&str]) -> Running {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("assay"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "server exited: {printed}"
        );
        printed.push_str(&line);
        if line.contains("listening on") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut sink);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Running(child)
}

// --- a FAKE Kubernetes API server (crates/assay-kube/tests/fake_api.py, on kmock) -------------

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn test_python() -> String {
    match std::env::var("ASSAY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "ASSAY_TEST_PYTHON is not set: run scripts/test.sh (its venv has kmock, for the fake Kubernetes API server)"
        ),
    }
}

/// The fake API server, killed when dropped; its kubeconfig is `dir/kubeconfig`.
pub struct FakeApi {
    child: std::process::Child,
    pub kubeconfig: PathBuf,
    pub url: String,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a fake server started as `child` says after `prefix` on its first line of stdout
/// (its URL, once it listens).
pub fn announced(child: &mut std::process::Child, prefix: &str) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("the fake server printed {line:?}, not {prefix}URL"))
        .trim()
        .to_string()
}

pub fn fake_api(dir: &Path) -> FakeApi {
    let kubeconfig = dir.join("kubeconfig");
    let crds = repo().join("deploy/kubernetes/crds");
    let mut cmd = std::process::Command::new(test_python());
    cmd.arg(repo().join("crates/assay-kube/tests/fake_api.py"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--namespace", "assay"]);
    for crd in ["testworkflows", "testworkflowtemplates", "testtriggers"] {
        cmd.arg("--crd").arg(crds.join(format!("{crd}.yaml")));
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the fake API server");
    let url = announced(&mut child, "FAKE_KUBE_API ");
    FakeApi {
        child,
        kubeconfig,
        url,
    }
}

/// `kubectl` against the fake; `stdin` is piped in for `-f -`.
pub fn kubectl(api: &FakeApi, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&api.kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl (Debian's kubernetes-client) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn apply(api: &FakeApi, yaml: &str) {
    kubectl(api, &["apply", "--validate=false", "-f", "-"], Some(yaml));
}

/// The `$ ` command lines of the README's ```sh block after `<!-- MARKER -->`, without the `$ `.
pub fn readme_block(marker: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    readme
        .split(&format!("<!-- {marker} -->\n```sh\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("the README's `{marker}` block"))
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.strip_prefix("$ ").expect("a command line").to_string())
        .collect()
}

/// A `sh -c` of one README command line as a new user runs it in `dir`: the built `assay` first
/// on `PATH`, the contexts file `config`, `8088` replaced by `port`, no colour, and none of the
/// test process's store variables.
pub fn readme_sh<'a>(
    dir: &'a Path,
    port: &'a str,
    config: &'a Path,
) -> impl Fn(&str) -> Command + 'a {
    let bin = Path::new(env!("CARGO_BIN_EXE_assay"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    move |line: &str| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line.replace("8088", port))
            .current_dir(dir)
            .env("PATH", &path)
            .env("ASSAY_CONFIG", config)
            .env("NO_COLOR", "1")
            .env_remove("ASSAY_DATA_DIR")
            .env_remove("ASSAY_DATABASE")
            .env_remove("ASSAY_ARTIFACTS");
        cmd
    }
}
