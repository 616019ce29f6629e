//! A real server on 127.0.0.1 for the server's integration tests, with an admin token.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_server::{LocalDispatch, Options, Server};
use assay_store::{Store, StoreConfig, TokenRole};
use reqwest::StatusCode;
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    pub admin: String,
    pub store: Store,
    pub http: reqwest::Client,
    pub webhooks: assay_server::webhooks::Webhooks,
    /// The tools behind `/mcp`, called directly (the transport is tested in assay-cli).
    pub mcp: Arc<assay_mcp::Tools>,
    /// The data dir (shared by servers on one PostgreSQL, see [`serve`]).
    dir: Arc<tempfile::TempDir>,
}

pub async fn start() -> TestServer {
    start_with(2, assay_server::REQUEST_TIMEOUT).await
}

/// A server with `max_concurrent` slots and a request timeout; the first admin token is
/// checked to be saved (mode 0600) and created only once.
pub async fn start_with(max_concurrent: usize, timeout: Duration) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    let (admin, path) = assay_server::bootstrap_admin(&store, dir.path())
        .await
        .unwrap()
        .expect("first start creates an admin token");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), admin);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        assay_server::bootstrap_admin(&store, dir.path())
            .await
            .unwrap()
            .is_none()
    );
    let server = Server::start(
        store.clone(),
        Options {
            max_concurrent,
            auth: true,
            agents_only: false,
        },
        Arc::new(LocalDispatch::default()),
    )
    .await
    .unwrap()
    .with_request_timeout(timeout);
    listen(server, store, admin, Arc::new(dir)).await
}

/// A server over `store` (whose data dir is `dir`) that looks at a followed execution only
/// when the store signals a change of it (no polling), with a new admin token named `admin`.
/// Several of these on one PostgreSQL act as several server processes.
pub async fn serve_signals_only(
    store: Store,
    admin: &str,
    dir: Arc<tempfile::TempDir>,
) -> TestServer {
    let (_, token) = store.create_token(admin, TokenRole::Admin).await.unwrap();
    let server = Server::start(
        store.clone(),
        Options::default(),
        Arc::new(LocalDispatch::default()),
    )
    .await
    .unwrap()
    .with_follow_fallback(None);
    listen(server, store, token, dir).await
}

/// [`start`], but followers are woken by the store's signals only (no polling).
pub async fn start_signals_only() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    serve_signals_only(store, "admin", Arc::new(dir)).await
}

async fn listen(
    server: Server,
    store: Store,
    admin: String,
    dir: Arc<tempfile::TempDir>,
) -> TestServer {
    let webhooks = server.state.webhooks.clone();
    let mcp = server.mcp_tools.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    TestServer {
        base,
        admin,
        store,
        http: reqwest::Client::new(),
        webhooks,
        mcp,
        dir,
    }
}

/// A fresh database named `PREFIX_…` on the test PostgreSQL server (`ASSAY_TEST_POSTGRES_URL`);
/// `None` only when `ASSAY_TEST_SKIP_POSTGRES=1` asks to skip on purpose.
pub async fn postgres_database(prefix: &str) -> Option<String> {
    use sqlx::Connection;
    let admin = match std::env::var("ASSAY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            if std::env::var("ASSAY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("skipping: ASSAY_TEST_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "ASSAY_TEST_POSTGRES_URL is not set: start a server with scripts/pg.sh (scripts/test.sh does) \
                 or set ASSAY_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL tests on purpose"
            );
        }
    };
    sqlx::any::install_default_drivers();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("{prefix}_{}_{nanos}", std::process::id());
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL at {admin}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}

impl TestServer {
    /// The server's data dir (database, logs, artifacts).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `needle` is in no file under the data dir (compressed logs decompressed).
    pub fn assert_never_stored(&self, needle: &str) {
        let mut todo = vec![self.data_dir().to_path_buf()];
        let mut files = 0;
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                    continue;
                }
                files += 1;
                let mut bytes = std::fs::read(&path).unwrap();
                if path.extension().is_some_and(|e| e == "zst") {
                    bytes = zstd::decode_all(&bytes[..]).unwrap();
                }
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "`{needle}` is stored in {}",
                    path.display()
                );
            }
        }
        assert!(files > 0);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn token(&self, role: TokenRole) -> String {
        self.store
            .create_token(&format!("{}-test", role.as_str()), role)
            .await
            .unwrap()
            .1
    }

    /// POST a YAML document to `path` as admin.
    pub async fn post_yaml(&self, path: &str, yaml: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.admin)
            .header("content-type", "text/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Create a workflow from YAML as admin.
    pub async fn put_yaml(&self, yaml: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/test-workflows"))
            .bearer_auth(&self.admin)
            .header("content-type", "text/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Queue a run of a stored workflow as admin; asserts 200.
    pub async fn run(&self, workflow: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/v1/test-workflows/{workflow}/executions")))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn wait_status(&self, id: &str, wanted: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let e = self
                .get(&format!("/v1/test-workflow-executions/{id}"))
                .await;
            let status = e["result"]["status"].as_str().unwrap().to_string();
            if wanted.contains(&status.as_str()) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "still {status}, waiting for {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A workflow labelled `labels` (YAML flow mapping) declaring `branch`, `commit`, `pr` and
/// `code` config parameters; it exits with `code`.
pub fn workflow(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  config:\n    branch: {{type: string, default: none}}\n    commit: {{type: string, default: none}}\n    pr: {{type: string, default: none}}\n    code: {{type: string, default: '0'}}\n  steps:\n  - name: build\n    shell: echo \"branch={{{{ config.branch }}}} commit={{{{ config.commit }}}}\"; exit {{{{ config.code }}}}\n"
    )
}
