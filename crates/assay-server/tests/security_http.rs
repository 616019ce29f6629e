//! Issue 14 #2 (drive-by execution on `--no-auth`), #4 (CSRF with the login cookie) and #6
//! (slow-loris): what a web page in the user's browser, or a client that holds connections
//! open, can do to a real server on 127.0.0.1.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use assay_server::{HttpLimits, LocalDispatch, Options, Server};
use assay_store::{Store, StoreConfig, TokenRole};
use reqwest::StatusCode;
use serde_json::Value;

const WORKFLOW: &str = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: pwned\nspec:\n  steps:\n  - shell: echo pwned\n";

/// A server on 127.0.0.1 with `auth` and `limits` (and `allowed` host names); its base URL,
/// port and store.
async fn start(
    auth: bool,
    allowed: &[&str],
    limits: HttpLimits,
) -> (String, u16, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    let server = Server::start(
        store.clone(),
        Options {
            max_concurrent: 2,
            auth,
            agents_only: false,
        },
        Arc::new(LocalDispatch::default()),
    )
    .await
    .unwrap()
    .with_allowed_hosts(allowed.iter().map(|s| s.to_string()).collect())
    .with_http_limits(limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(server.serve(listener, std::future::pending()));
    (format!("http://127.0.0.1:{port}"), port, store, dir)
}

async fn stored_workflows(store: &Store) -> usize {
    store
        .list_definitions(assay_store::DefinitionKind::Workflow, &Default::default())
        .await
        .unwrap()
        .len()
}

async fn detail(r: reqwest::Response) -> String {
    let body: Value = r.json().await.expect("a JSON error body");
    body["detail"].as_str().unwrap_or_default().to_string()
}

/// What a page on another site can send without a CORS preflight: a `text/plain` POST. The
/// browser adds its `Origin`. Both the origin and the content type refuse it; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_text_plain_cross_origin_post_is_refused() {
    let (base, _, store, _dir) = start(false, &[], HttpLimits::default()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(detail(r).await.contains("another origin"));
    // Without the browser's headers (an old browser, a plugin): the content type alone.
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .header("content-type", "text/plain")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = detail(r).await;
    assert!(
        text.contains("`text/plain`") && text.contains("application/yaml"),
        "{text}"
    );
    // A form post (no preflight either) and a body without a content type.
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = http
            .post(format!("{base}/v1/test-workflows"))
            .header("content-type", content_type)
            .body(WORKFLOW)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(stored_workflows(&store).await, 0, "nothing was stored");
    // A real client: YAML with its content type, no Origin.
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .header("content-type", "application/yaml")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Running it cross-origin (an empty text/plain POST) is refused too; same-origin works.
    let r = http
        .post(format!("{base}/v1/test-workflows/pwned/executions"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .post(format!("{base}/v1/test-workflows/pwned/executions"))
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = http
        .post(format!("{base}/v1/test-workflows/pwned/executions"))
        .header("origin", &base)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// DNS rebinding: a page on `evil.example` whose name now resolves to 127.0.0.1 reaches the
/// port, but its requests say `Host: evil.example`. A loopback server answers 421, to reads
/// too; names given with `--allowed-host` are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_dns_rebinding_host_is_refused() {
    let (base, port, store, _dir) = start(false, &["assay.internal"], HttpLimits::default()).await;
    let http = reqwest::Client::new();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("localhost.evil.example:{port}"),
    ] {
        let r = http
            .get(format!("{base}/v1/test-workflows"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let text = detail(r).await;
        assert!(
            text.contains(&host) && text.contains("--allowed-host"),
            "{text}"
        );
        let r = http
            .post(format!("{base}/v1/test-workflows"))
            .header("host", &host)
            .header("content-type", "application/yaml")
            .body(WORKFLOW)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        for path in ["/", "/mcp", "/health"] {
            let r = http
                .get(format!("{base}{path}"))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{host}{path}");
        }
    }
    assert_eq!(stored_workflows(&store).await, 0);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("assay.internal:{port}"),
    ] {
        let r = http
            .get(format!("{base}/v1/test-workflows"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
}

/// Another port of localhost is another origin but the same site: SameSite cookies go along
/// and `--no-auth` asks for nothing. Its requests carry `Origin: http://localhost:OTHER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_origin_from_another_localhost_port_is_refused() {
    let (base, port, store, _dir) = start(false, &[], HttpLimits::default()).await;
    let http = reqwest::Client::new();
    let other = if port == 3000 { 3001 } else { 3000 };
    for origin in [
        format!("http://localhost:{other}"),
        format!("http://127.0.0.1:{other}"),
        format!("http://evil.example:{port}"),
        "null".to_string(),
    ] {
        let r = http
            .post(format!("{base}/v1/test-workflows"))
            .header("host", format!("localhost:{port}"))
            .header("origin", &origin)
            .header("content-type", "application/json")
            .body(serde_json::to_string(&serde_json::json!({"kind": "TestWorkflow"})).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin}");
        assert!(detail(r).await.contains(&origin));
        let r = http
            .post(format!("{base}/login"))
            .header("host", format!("localhost:{port}"))
            .header("origin", &origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin}: login");
    }
    // Sec-Fetch-Site alone (some browsers omit Origin on same-origin GETs, never on POSTs).
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .header("sec-fetch-site", "same-site")
        .header("content-type", "application/yaml")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(stored_workflows(&store).await, 0);
    // This server's own origin, however the browser spells the loopback name it used.
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .header("host", format!("localhost:{port}"))
        .header("origin", format!("http://localhost:{port}"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/yaml")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Issue 14 #4: the login cookie authenticated every `/v1` route and dashboard form with no
/// Origin check. A state change authenticated by the cookie needs the browser's proof that it
/// comes from this server's pages; reads and bearer tokens are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_cookie_state_changes_need_this_servers_origin() {
    let (base, port, store, _dir) = start(true, &[], HttpLimits::default()).await;
    let (_, admin) = store.create_token("admin", TokenRole::Admin).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/v1/test-workflows"))
        .bearer_auth(&admin)
        .header("content-type", "application/yaml")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = format!("assay_token={admin}");
    let own = format!("http://127.0.0.1:{port}");
    let runs = format!("{base}/v1/test-workflows/pwned/executions");
    let forms = [
        (
            format!("{base}/workflows/pwned/run"),
            "application/x-www-form-urlencoded",
        ),
        (
            format!("{base}/logout"),
            "application/x-www-form-urlencoded",
        ),
    ];
    // A cross-site page (a form, or fetch with credentials): no Origin of ours.
    let r = http
        .post(&runs)
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(detail(r).await.contains("login cookie"));
    for (url, content_type) in &forms {
        let r = http
            .post(url)
            .header("cookie", &cookie)
            .header("content-type", *content_type)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
        let r = http
            .post(url)
            .header("cookie", &cookie)
            .header("origin", format!("http://localhost:{}", port + 1))
            .header("content-type", *content_type)
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
    }
    let r = http
        .delete(format!("{base}/v1/test-workflows/pwned"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        store
            .list_executions(&Default::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing ran"
    );
    assert_eq!(stored_workflows(&store).await, 1, "nothing was deleted");
    // Reads with the cookie work as before (the live log stream uses it).
    let r = http
        .get(format!("{base}/v1/test-workflows"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The dashboard's own pages: Origin (or Sec-Fetch-Site: same-origin) of this server.
    let r = http
        .post(&runs)
        .header("cookie", &cookie)
        .header("origin", &own)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .post(&forms[0].0)
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("tags=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A bearer token is no browser's ambient credential: no Origin needed.
    let r = http
        .post(&runs)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Issue 14 #6: connections that send their headers slowly, or nothing, are closed after
/// `--header-read-timeout`; past `--max-connections` new ones wait their turn; `/health`
/// answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_slow_loris_connections_are_closed_and_health_answers() {
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        max_connections: 16,
    };
    let (base, port, _store, _dir) = start(true, &[], limits).await;
    let addr = format!("127.0.0.1:{port}");
    // More slow connections than the limit: each sends part of a request head and stalls.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .unwrap();
        slow.push(c);
    }
    // /health still answers (it waits at most for slow connections to time out).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Every slow connection is closed by the server: reading reaches the end (possibly after
    // a 408 head), it does not block forever.
    let closed = tokio::task::spawn_blocking(move || {
        slow.into_iter().all(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut rest = Vec::new();
            match c.read_to_end(&mut rest) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        })
    })
    .await
    .unwrap();
    assert!(closed, "every slow connection was closed by the server");
    // A connection that trickles a header byte by byte is closed too, before it completes.
    let trickle = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for b in head {
            if c.write_all(&[*b]).is_err() {
                return "closed while writing".to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).to_string()
    })
    .await
    .unwrap();
    assert!(
        !trickle.contains("200 OK"),
        "a head trickled over 4 s was served: {trickle}"
    );
}
