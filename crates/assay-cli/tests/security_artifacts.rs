//! Issue 14 #13: an artifact named with a newline made every download of it a 500 (the
//! `Content-Disposition` header could not hold the name), and `assay artifacts --download`
//! stopped at the first artifact it could not have.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;

use crate::run_support;
use run_support::{free_port, serve};

const WORKFLOW: &str = r#"apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: odd-names
spec:
  steps:
  - name: make files
    shell: |
      mkdir -p out
      printf 'newline\n' > "out/$(printf 'a\nb').txt"
      printf 'report\n' > out/r.txt
      printf 'zed\n' > out/z.txt
    artifacts:
      paths: ["out/*"]
"#;

fn assay(config: &Path, data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("assay").unwrap();
    cmd.env("ASSAY_CONFIG", config)
        .env("ASSAY_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ASSAY_CONTEXT")
        .env_remove("ASSAY_DATABASE")
        .env_remove("ASSAY_ARTIFACTS");
    cmd
}

/// One raw HTTP/1.1 GET; the status line and headers, and the body.
fn get(port: u16, path: &str, token: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).to_string();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn security_artifact_named_with_a_newline_downloads_and_a_bad_entry_is_skipped() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("contexts.yaml");
    let flow = home.path().join("odd.yaml");
    std::fs::write(&flow, WORKFLOW).unwrap();
    let out = assay(&config, data.path())
        .args(["run"])
        .arg(&flow)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let _server = serve(data.path(), port);
    let admin = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();

    // The REST download and the dashboard's: 200, the name in filename* exactly, an ASCII
    // stand-in in filename.
    for path in [
        "/v1/test-workflow-executions/odd-names-1/artifacts/out/a%0Ab.txt",
        "/executions/odd-names-1/artifacts/out/a%0Ab.txt?download=1",
    ] {
        let (head, body) = get(port, path, &admin);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("filename=\"a_b.txt\"; filename*=UTF-8''a%0Ab.txt"),
            "{path}: {head}"
        );
        assert_eq!(body, "newline\n", "{path}");
    }

    // The CLI through the server: a local problem with one entry (its target is a folder) is a
    // warning; every other artifact, the newline one first, is downloaded; the exit code says
    // one was missed.
    let url = format!("http://127.0.0.1:{port}");
    let added = assay(&config, data.path())
        .args(["context", "add", "local", "--server", &url])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let into = home.path().join("downloaded");
    std::fs::create_dir_all(into.join("out/r.txt")).unwrap();
    let out = assay(&config, data.path())
        .args([
            "artifacts",
            "odd-names-1",
            "--context",
            "local",
            "--download",
        ])
        .arg(&into)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("warning: skipped \"out/r.txt\""),
        "{stderr}"
    );
    assert!(stderr.contains("downloaded 2 of 3 artifact(s)"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(into.join("out/a\nb.txt")).unwrap(),
        "newline\n"
    );
    assert_eq!(
        std::fs::read_to_string(into.join("out/z.txt")).unwrap(),
        "zed\n"
    );
}
