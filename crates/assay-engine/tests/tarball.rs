//! `content.tarball`: archives made here, served over HTTP by a tiny server in the test,
//! downloaded and unpacked where later steps read them; failed downloads and escaping entries.

use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use assay_spec::plan::{PlanContent, PlanStep, PlanTarball};
use assay_spec::status::{ExecutionStatus, StepStatus};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `files` (path → body) on a free 127.0.0.1 port; anything else is a 404.
async fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let files = Arc::new(files);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let files = files.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn file_header(size: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// A tar archive of regular files.
fn archive(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = file_header(body.len());
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An archive with one entry whose raw name (and link target) bypass the builder's checks.
fn raw_entry(name: &str, link: Option<&str>) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    let body: &[u8] = if link.is_some() { b"" } else { b"escaped\n" };
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(if link.is_some() {
        tar::EntryType::Symlink
    } else {
        tar::EntryType::Regular
    });
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, body).unwrap();
    b.into_inner().unwrap()
}

fn tarball_step(reference: &str, url: &str, path: &str, script: &str) -> PlanStep {
    let mut s = shell(reference, script);
    s.content = Some(PlanContent {
        tarball: vec![PlanTarball {
            url: url.into(),
            path: path.into(),
        }],
        ..Default::default()
    });
    s
}

#[tokio::test]
async fn tarballs_are_downloaded_and_unpacked() {
    let tgz = gzip(&archive(&[
        ("hello.txt", "hello from the tarball\n"),
        ("sub/nested.txt", "nested\n"),
    ]));
    let plain = archive(&[("plain.txt", "plain tar\n")]);
    let base = serve(HashMap::from([
        ("/app.tar.gz".to_string(), tgz),
        ("/plain.tar".to_string(), plain),
    ]))
    .await;
    let (opts, dir) = options();
    let p = plan(vec![
        tarball_step("get", &format!("{base}/app.tar.gz"), "app", "true"),
        // An absolute /data path is the execution's own data folder.
        tarball_step(
            "get-plain",
            &format!("{base}/plain.tar"),
            "/data/plain",
            "true",
        ),
        shell("read", "cat app/hello.txt app/sub/nested.txt"),
    ]);
    let (out, events) = run(p, opts).await;
    assert_eq!(out.status, ExecutionStatus::Passed, "{out:#?}");
    assert_eq!(status(&out, "get"), StepStatus::Passed);
    assert!(logs(&events, "get").contains("Downloading"));
    assert_eq!(logs(&events, "read"), "hello from the tarball\nnested\n");
    let data = dir.path().join("exec/data");
    assert_eq!(
        std::fs::read_to_string(data.join("plain/plain.txt")).unwrap(),
        "plain tar\n"
    );
    assert!(
        !dir.path().join("exec/tmp/.tarball-0").exists(),
        "the download is removed"
    );
}

#[tokio::test]
async fn a_failed_download_names_the_url_and_status() {
    let base = serve(HashMap::new()).await;
    let url = format!("{base}/missing.tgz");
    let (opts, _dir) = options();
    let (out, _) = run(
        plan(vec![
            tarball_step("get", &url, "app", "echo should-not-run"),
            shell("after", "true"),
        ]),
        opts,
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(status(&out, "get"), StepStatus::Failed);
    let error = out.steps["get"].error.clone().unwrap_or_default();
    assert!(error.contains(&url) && error.contains("404"), "{error}");
    assert_eq!(status(&out, "after"), StepStatus::Skipped);
}

#[tokio::test]
async fn escaping_entries_are_refused() {
    let cases = [
        ("/dotdot.tar", raw_entry("../evil.txt", None), "../evil.txt"),
        (
            "/abs.tgz",
            gzip(&raw_entry("/tmp/evil.txt", None)),
            "/tmp/evil.txt",
        ),
        ("/link.tar", raw_entry("link", Some("/etc")), "link"),
        ("/rel-link.tar", raw_entry("up", Some("../../..")), "up"),
    ];
    let base = serve(
        cases
            .iter()
            .map(|(p, b, _)| (p.to_string(), b.clone()))
            .collect(),
    )
    .await;
    for (path, _, entry) in &cases {
        let (opts, dir) = options();
        let (out, _) = run(
            plan(vec![tarball_step(
                "get",
                &format!("{base}{path}"),
                "target",
                "true",
            )]),
            opts,
        )
        .await;
        assert_eq!(status(&out, "get"), StepStatus::Failed, "{path}");
        let error = out.steps["get"].error.clone().unwrap_or_default();
        assert!(
            error.contains("refused") && error.contains(entry) && error.contains("outside"),
            "{path}: {error}"
        );
        assert!(!dir.path().join("exec/data/evil.txt").exists(), "{path}");
        assert!(!dir.path().join("exec/evil.txt").exists(), "{path}");
    }
}

#[tokio::test]
async fn only_http_urls_are_downloaded() {
    let (opts, _dir) = options();
    let (out, _) = run(
        plan(vec![tarball_step("get", "file:///etc/hosts", "x", "true")]),
        opts,
    )
    .await;
    let error = out.steps["get"].error.clone().unwrap_or_default();
    assert!(
        error.contains("file:///etc/hosts") && error.contains("http"),
        "{error}"
    );
}
