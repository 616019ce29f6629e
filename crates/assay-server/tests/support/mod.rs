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
    _dir: tempfile::TempDir,
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
        },
        Arc::new(LocalDispatch::default()),
    )
    .await
    .unwrap()
    .with_request_timeout(timeout);
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
        _dir: dir,
    }
}

impl TestServer {
    /// The server's data dir (database, logs, artifacts).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
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
