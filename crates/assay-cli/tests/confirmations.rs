//! One stream for confirmations (README, "Output"): stdout carries data only, so what a command
//! did (`created`, `deleted`, `pruned`, `aborted`, `using context`, `revoked`) goes to stderr for
//! every command, and `assay X | tool` never feeds a confirmation to the tool. Data stays on
//! stdout: `prune --dry-run`'s names, a new token.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

const WORKFLOW: &str = "\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: hello
spec:
  steps:
  - shell: echo hi
";

fn assay(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_DATA_DIR", home.join("data"))
        .env("ASSAY_CONFIG", home.join("contexts.yaml"))
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

/// Runs `args`; asserts success, nothing on stdout but `stdout`, and `confirmation` on stderr.
fn confirms(home: &Path, args: &[&str], stdout: &str, confirmation: &str) -> Output {
    let out = assay(home).args(args).output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "assay {args:?} failed: {e}");
    assert_eq!(o, stdout, "stdout of assay {args:?} (stderr: {e})");
    assert!(
        e.contains(confirmation),
        "stderr of assay {args:?} lacks `{confirmation}`: {e}"
    );
    out
}

#[test]
fn confirmations_go_to_stderr_and_data_to_stdout() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let file = home.join("wf.yaml");
    std::fs::write(&file, WORKFLOW).unwrap();
    let file = file.to_str().unwrap();

    confirms(
        home,
        &["apply", "-f", file],
        "",
        "workflow hello created (revision 1)",
    );
    confirms(
        home,
        &["apply", "-f", file],
        "",
        "workflow hello unchanged (revision 1)",
    );
    assay(home)
        .args(["run", "--name", "hello", file])
        .assert()
        .success();
    confirms(home, &["abort", "hello-1"], "", "hello-1 has already ended");
    // The names are the data of a dry run; the count is a confirmation.
    confirms(
        home,
        &["prune", "--keep-per-workflow", "0", "--dry-run"],
        "hello-1\n",
        "would prune 1 execution(s)",
    );
    confirms(
        home,
        &["prune", "--keep-per-workflow", "0"],
        "",
        "pruned 1 execution(s)",
    );
    confirms(
        home,
        &["delete", "workflow", "hello"],
        "",
        "workflow hello deleted",
    );

    // A new token is data (printed once, on stdout); revoking it is a confirmation.
    let out = assay(home)
        .args(["token", "create", "--role", "viewer", "--name", "ci"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("assay_"));
    confirms(home, &["token", "revoke", "ci"], "", "revoked token `ci`");

    confirms(
        home,
        &["context", "use", "embedded"],
        "",
        "using the embedded store on this machine",
    );
}

/// A reader that stops reading (`assay get executions -o json | head -1`) ends the command
/// quietly with 141, the shell's code for SIGPIPE, instead of `error: Broken pipe`. The pipe's
/// reading end is closed before `assay` starts, so every write to stdout fails.
#[test]
fn a_closed_stdout_ends_quietly_with_141() {
    let home = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("assay"))
        .env("ASSAY_DATA_DIR", home.path().join("data"))
        .env("ASSAY_CONFIG", home.path().join("contexts.yaml"))
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .args(["get", "executions", "-o", "json"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(141),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
