//! A request refused before its body is read must not leave a keep-alive client with a dead
//! connection: the answer says `Connection: close`, and the next request on a new connection is
//! answered. Before, a client that reused the connection after a 403 got no answer at all
//! ("server disconnected"), seen with the official MCP client's httpx under load.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use assay_store::TokenRole;

/// Send one raw HTTP/1.1 request with a body on `stream` and read the answer's status line and
/// headers (lower-cased), then its body by Content-Length.
fn exchange(stream: &mut TcpStream, request: &str) -> (String, Vec<String>) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        headers.push(line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status.trim_end().to_string(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_with_a_body_closes_its_connection() {
    let server = support::start().await;
    let runner = server.token(TokenRole::Runner).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let body = support::workflow("kept", "");
    let (status, headers) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let request = format!(
            "POST /v1/test-workflows HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {runner}\r\n\
             Content-Type: application/yaml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(&mut stream, &request)
    })
    .await
    .unwrap();
    assert!(
        status.contains(" 403 "),
        "a runner may not store a workflow: {status}"
    );
    assert!(
        headers.iter().any(|h| h == "connection: close"),
        "the refusal must close the connection, or a keep-alive client reuses a closed one: {headers:?}"
    );

    // A successful request keeps the connection: two answers on one connection.
    let addr = server.base.trim_start_matches("http://").to_string();
    let admin = server.admin.clone();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        for _ in 0..2 {
            let request = format!(
                "GET /v1/test-workflows HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\n\r\n"
            );
            let (status, headers) = exchange(&mut stream, &request);
            assert!(status.contains(" 200 "), "{status}");
            assert!(!headers.iter().any(|h| h == "connection: close"), "{headers:?}");
        }
    })
    .await
    .unwrap();
}
