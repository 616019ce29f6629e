//! `assay mcp` driven over stdio by the official MCP client SDK (the Python package `mcp`),
//! through `crates/assay-mcp/tests/mcp_stdio.py`; and `assay server`'s `/mcp` over streamable
//! HTTP with viewer and runner tokens, through `crates/assay-mcp/tests/mcp_http.py`.
//!
//! The SDK lives in a virtual environment: `ASSAY_TEST_PYTHON` when `scripts/test.sh` made
//! one, else one built here once under `target/test-venvs/`, keyed by the requirements file.
//! Without Python or PyPI this test fails — set `ASSAY_TEST_SKIP_PYTHON=1` to skip it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/assay-cli sits two levels below the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to {what}: {e} (set ASSAY_TEST_SKIP_PYTHON=1 to skip)"));
    assert!(
        out.status.success(),
        "failed to {what}: {}\n{}\n{}\n(set ASSAY_TEST_SKIP_PYTHON=1 to skip)",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python of a venv holding the SDK: the given one, or a cached one built here.
pub(crate) fn python_with_sdk(requirements: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("ASSAY_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let text = std::fs::read_to_string(requirements).expect("read requirements.txt");
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let venv = workspace_root()
        .join("target/test-venvs")
        .join(format!("mcp-{:016x}", h.finish()));
    let python = venv.join("bin/python");
    if venv.join(".complete").exists() {
        return python;
    }
    // Build beside, then rename: a half-made venv is never taken for a finished one.
    let building = venv.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(building.parent().unwrap()).expect("create target/test-venvs");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&building),
        "create a Python venv (python3 -m venv; Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(building.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements),
        "pip install the MCP SDK from PyPI",
    );
    std::fs::write(building.join(".complete"), &text).expect("mark the venv complete");
    if std::fs::rename(&building, &venv).is_err() {
        // Another test process finished first: use its venv.
        let _ = std::fs::remove_dir_all(&building);
    }
    python
}

#[test]
fn mcp_stdio_with_the_official_python_sdk() {
    if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("skipped: ASSAY_TEST_SKIP_PYTHON=1");
        return;
    }
    let tests = workspace_root().join("crates/assay-mcp/tests");
    let python = python_with_sdk(&tests.join("requirements.txt"));
    let data = tempfile::tempdir().expect("temp dir");
    let out = Command::new(&python)
        .arg(tests.join("mcp_stdio.py"))
        .arg(env!("CARGO_BIN_EXE_assay"))
        .arg(data.path())
        .output()
        .unwrap_or_else(|e| panic!("failed to start {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The figures of the agent scenario, for whoever reads the test output.
    for line in stdout.lines().filter(|l| l.contains(" SCENARIO: ")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "the MCP client script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// Kills the server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `assay token create --role ROLE` on `data`: the token it prints once.
fn create_token(data: &Path, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(["token", "create", "--role", role, "--data-dir"])
        .arg(data)
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .output()
        .expect("run assay token create");
    assert!(
        out.status.success(),
        "assay token create --role {role}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `assay server` on a free loopback port over `data`, with `extra` flags: the process (killed
/// when dropped) and its base URL, once it listens.
fn start_server(data: &Path, extra: &[&str]) -> (Killed, String) {
    use std::io::{BufRead, BufReader, Read};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start assay server");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let server = Killed(child);
    let mut printed = String::new();
    while !printed.contains("listening on") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "assay server exited: {printed}"
        );
        printed.push_str(&line);
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut String::new());
    });
    (server, format!("http://127.0.0.1:{port}"))
}

/// Run the Python client script `script` (in crates/assay-mcp/tests) with `args`; it must
/// print "all checks passed".
fn run_script(python: &Path, script: &Path, args: &[&str]) {
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("failed to start {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the MCP client script {} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn mcp_http_with_the_official_python_sdk() {
    if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("skipped: ASSAY_TEST_SKIP_PYTHON=1");
        return;
    }
    let tests = workspace_root().join("crates/assay-mcp/tests");
    let python = python_with_sdk(&tests.join("requirements.txt"));
    let data = tempfile::tempdir().expect("temp dir");
    let viewer = create_token(data.path(), "viewer");
    let runner = create_token(data.path(), "runner");
    let admin = create_token(data.path(), "admin");
    let (server, base) = start_server(data.path(), &["--allowed-host", "assay.internal"]);
    run_script(
        &python,
        &tests.join("mcp_http.py"),
        &[&base, &viewer, &runner, &admin],
    );
    drop(server);
}

/// Issue 14 #1: a runner token ran inline YAML through `/mcp` `run_workflow`, whose step read
/// the server's admin token. Running a text of one's own is authoring: admins only, over MCP
/// and REST; a runner runs stored workflows with config values.
#[test]
fn security_runner_cannot_run_inline_yaml() {
    if std::env::var("ASSAY_TEST_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("skipped: ASSAY_TEST_SKIP_PYTHON=1");
        return;
    }
    let tests = workspace_root().join("crates/assay-mcp/tests");
    let python = python_with_sdk(&tests.join("requirements.txt"));
    let data = tempfile::tempdir().expect("temp dir");
    let runner = create_token(data.path(), "runner");
    let admin = create_token(data.path(), "admin");
    let (server, base) = start_server(data.path(), &["--mcp-allowed-host", "assay.internal"]);
    run_script(
        &python,
        &tests.join("mcp_inline_yaml.py"),
        &[&base, &runner, &admin],
    );
    drop(server);
}
