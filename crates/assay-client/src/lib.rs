//! A typed client of `assay server`'s REST API over reqwest: one method per endpoint the CLI
//! uses, answers as the wire types of `assay-api`, and every error response as the server's
//! `{"title","detail","status"}` body ([`ClientError::Api`]).
//!
//! Live notifications ([`Client::follow`]) are Server-Sent Events read with a small parser;
//! a dropped connection is resumed with `Last-Event-ID`, so no line is lost or repeated.
//!
//! The methods are grouped by resource: `definitions.rs` (workflows, templates, other
//! documents), `executions.rs` (runs, history, logs, artifacts), `quarantines.rs`,
//! `agents.rs` (the runner agent's calls), `follow.rs` (live notifications over SSE).

mod agents;
mod definitions;
mod executions;
mod follow;
mod quarantines;

pub use follow::sse_events;

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use assay_api::{ErrorBody, Health, Notification};

/// What can go wrong talking to a server. Messages are lowercase fragments that read after
/// "failed to".
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not usable.
    #[error("use `{url}` as a server URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// No answer: connection refused, DNS, TLS, timeout, or the connection dropped.
    #[error("reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error status and its error body.
    #[error("{} ({} {})", .body.detail, .body.status, .body.title)]
    Api { body: ErrorBody },
    /// The server answered something this client does not understand.
    #[error("read the answer of {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { body } => Some(body.status),
            _ => None,
        }
    }
}

/// The innermost cause of an error, which says most (`Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if e.to_string() == text {
        text
    } else {
        format!("{}: {text}", short_reqwest(e))
    }
}

fn short_reqwest(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<reqwest::Error>() {
        Some(r) if r.is_connect() => "cannot connect".into(),
        Some(r) if r.is_timeout() => "timed out".into(),
        Some(r) if r.is_body() || r.is_decode() => "the connection broke".into(),
        _ => e.to_string(),
    }
}

/// A filter of `GET /v1/test-workflow-executions`.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    pub workflow: Option<String>,
    /// Any of these statuses (`passed`, `failed`, …).
    pub statuses: Vec<String>,
    /// Every one of these tags.
    pub tags: Vec<(String, String)>,
    /// At most this many (1–1000).
    pub page_size: Option<u32>,
    /// `next` of the previous page.
    pub before: Option<String>,
}

/// One artifact being downloaded.
pub struct Download {
    /// Its size in bytes, when the server said.
    pub size: Option<u64>,
    pub stream: BoxStream<'static, Result<Bytes, ClientError>>,
}

/// One Server-Sent Event as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub id: Option<String>,
    /// `log`, `result` or `error` (`message` when the server named none).
    pub event: String,
    pub data: String,
}

/// One notification of [`Client::follow`].
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// A log line (`ref`, `log`).
    Log(Notification),
    /// The whole result after a change of status (`result`).
    Result(Notification),
}

/// A client of one server with one token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:8088`), sending `token` as a bearer
    /// token. Nothing is sent until a method is called.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("it must start with http:// or https://"));
        }
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(bad("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it must not have a query or a fragment"));
        }
        // A base path (a server behind a proxy prefix) keeps its segments.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        if let Some(t) = &token
            && HeaderValue::from_str(&format!("Bearer {t}")).is_err()
        {
            return Err(bad("the token has characters a header cannot carry"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("assay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(&root_cause(&e)))?;
        Ok(Client {
            http,
            base: url,
            token,
        })
    }

    /// The server's base URL, as given (without a trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` + the segments, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        // Each segment percent-encoded here: the URL parser drops tabs and newlines (as
        // browsers do), so `a\nb.txt` pushed as a segment would name `ab.txt`.
        let mut url = self.base.clone();
        let mut path = url.path().trim_end_matches('/').to_string();
        for s in segments {
            path.push('/');
            path.push_str(&escape_segment(s));
        }
        url.set_path(&path);
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// Send; an error status becomes [`ClientError::Api`] with the server's body.
    async fn send(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        let req = req.build().map_err(|e| ClientError::Protocol {
            url: self.base_url().to_string(),
            reason: root_cause(&e),
        })?;
        let url = req.url().clone();
        let response = self
            .http
            .execute(req)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base_url().to_string(),
                reason: root_cause(&e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            detail: {
                let t = text.trim();
                if t.is_empty() {
                    format!("{} answered {status}", url.path())
                } else {
                    t.chars().take(300).collect()
                }
            },
            status: status.as_u16(),
            problems: Vec::new(),
            required_role: None,
        });
        Err(ClientError::Api { body })
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(req).await?;
        self.decode(response).await
    }

    /// The JSON body of an answer [`Client::send`] let through.
    async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T, ClientError> {
        let url = response.url().path().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base_url().to_string(),
                reason: root_cause(&e),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url: format!("{}{url}", self.base_url()),
            reason: e.to_string(),
        })
    }

    /// `GET /health` (no token needed).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(self.request(Method::GET, self.url(&["health"])))
            .await
    }
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment percent-encoded: everything but unreserved characters.
fn escape_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_each_segment() {
        let c = Client::new("http://127.0.0.1:8088/prefix", None).unwrap();
        assert_eq!(
            c.url(&["v1", "test-workflows", "a b/c"]).as_str(),
            "http://127.0.0.1:8088/prefix/v1/test-workflows/a%20b%2Fc"
        );
        assert_eq!(c.base_url(), "http://127.0.0.1:8088/prefix");
        assert!(Client::new("ftp://x", None).is_err());
        assert!(Client::new("not a url", None).is_err());
    }
}
