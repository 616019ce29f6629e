//! `assay secret`: named secrets that workflows read where Kubernetes would read a Secret or a
//! ConfigMap (`valueFrom`, `envFrom`, `contentFrom`), sealed at rest and masked everywhere.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::run_support::*;

const PASSWORD: &str = "hunter2-VALUE-q9";

fn secret(data: &Path, args: &[&str]) -> std::process::Output {
    assay()
        .arg("secret")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

/// `assay run tests/workflows/named-secrets.yaml --name NAME` on the data dir `data`.
fn run_in(data: tempfile::TempDir, name: &str) -> Run {
    let path = workflows_dir().join("named-secrets.yaml");
    let args: Vec<String> = vec![
        "run".into(),
        path.display().to_string(),
        "--name".into(),
        name.into(),
        "-q".into(),
        "-o".into(),
        "json".into(),
        "--data-dir".into(),
        data.path().display().to_string(),
    ];
    let out = assay().args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        data,
        args,
    }
}

/// Sets `db` with a key from stdin and one from a file, as the README shows.
fn set_db(data: &Path) {
    let file = data.join("user.txt");
    std::fs::write(&file, "app-user-7").unwrap();
    let mut child = assay()
        .args(["secret", "set", "db", "--from-stdin", "password"])
        .arg("--from-file")
        .arg(format!("user={}", file.display()))
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("set secret `db`: user, password"));
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn security_workflows_read_named_secrets_which_are_masked_and_sealed() {
    let data = tempfile::tempdir().unwrap();
    set_db(data.path());
    let list = secret(data.path(), &["list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "db\tpassword,user\n");

    let run = run_in(data, "named-secrets");
    run.expect(
        PASSED,
        &[
            ("root", "passed"),
            ("value_from", "passed"),
            ("env_from", "passed"),
            ("content_from", "passed"),
        ],
    );
    assert_eq!(run.log("value_from"), "password is *****\n");
    assert_eq!(run.log("env_from"), "user is *****\n");
    assert_eq!(run.log("content_from"), "*****\n");
    // Not in the logs, the database (sealed) or anything else under the data dir.
    run.assert_never_stored(PASSWORD);
}

#[test]
fn a_missing_secret_fails_its_step_with_what_to_set() {
    let data = tempfile::tempdir().unwrap();
    set_db(data.path());
    let run = run_in(data, "named-secrets-missing");
    run.expect(
        FAILED,
        &[
            ("root", "failed"),
            ("missing_key", "failed"),
            ("field_ref", "failed"),
        ],
    );
    let missing = run.step_error("missing_key");
    assert!(
        missing.contains("secret `db` has no key `absent`")
            && missing.contains("assay secret set db absent="),
        "{run}"
    );
    assert!(
        run.step_error("field_ref").contains("needs Kubernetes"),
        "{run}"
    );
}

#[test]
fn set_list_and_delete_check_their_input() {
    let data = tempfile::tempdir().unwrap();
    let bad = secret(data.path(), &["set", "Not_A_Name", "k=v"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid secret name"));
    let empty = secret(data.path(), &["set", "db"]);
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("hint: give KEY=VALUE"));
    let twice = secret(data.path(), &["set", "db", "k=1", "k=2"]);
    assert_eq!(twice.status.code(), Some(2));
    // Nothing was written by the refused commands.
    assert_eq!(secret(data.path(), &["list"]).stdout, b"");

    assert!(
        secret(data.path(), &["set", "db", "a=1", "b=2"])
            .status
            .success()
    );
    assert!(
        secret(data.path(), &["set", "db", "--replace", "c=3"])
            .status
            .success()
    );
    assert_eq!(secret(data.path(), &["list"]).stdout, b"db\tc\n");
    let gone = secret(data.path(), &["delete", "db", "a"]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("secret `db` has no key `a`"));
    let deleted = secret(data.path(), &["delete", "db"]);
    assert!(deleted.status.success());
    assert!(deleted.stdout.is_empty(), "confirmations go to stderr");
    assert_eq!(secret(data.path(), &["list"]).stdout, b"");
}

/// The README's example, as written: its workflow file and its shell lines, run by bash with
/// `assay` on the PATH and a fresh data dir.
#[test]
fn readme_example_runs_as_written() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let start = readme
        .find("```yaml\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: db-check\n")
        .expect("the README has the named secrets example");
    let body = &readme[start + "```yaml\n".len()..];
    let yaml = &body[..body.find("```").unwrap()];
    let script = &body[body.find("```sh\n").unwrap() + "```sh\n".len()..];
    let script = &script[..script.find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db-check.yaml"), yaml).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_assay"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // Each line, then what `assay secret list` says after it.
    let mut listed = Vec::new();
    let mut stderr = String::new();
    for line in script.lines().filter(|l| !l.trim().is_empty()) {
        let out = assay_env(std::process::Command::new("bash"))
            .args(["-e", "-c", line])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("ASSAY_DATA_DIR", dir.path().join("data"))
            .env("DB_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{line}\n{err}");
        stderr.push_str(&err);
        let list = secret(&dir.path().join("data"), &["list"]);
        listed.push(String::from_utf8_lossy(&list.stdout).into_owned());
    }
    assert!(
        stderr.contains("connecting as ***** with *****"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert_eq!(
        listed,
        [
            "db\tpassword\n",
            "db\tpassword,user\n",
            "db\tpassword,user\n",
            "db\tpassword,user\n",
            ""
        ]
    );
}

/// A command with `assay()`'s environment (no `ASSAY_*` of the caller, no colour).
fn assay_env(mut cmd: std::process::Command) -> std::process::Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ASSAY_") && key != "ASSAY_STEP_USER" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}
