//! The checks every request passes before routing, against web pages in the user's browser
//! (issue 14 #2 and #4):
//!
//! - **Host**: a loopback listener answers only requests addressed to a loopback name or to a
//!   name given with `--allowed-host` (else 421). A page on `evil.example` whose DNS is rebound
//!   to 127.0.0.1 sends `Host: evil.example`, so it never reaches the routes.
//! - **Origin**: a state-changing request (anything but GET, HEAD, OPTIONS) that a browser
//!   marks as coming from another origin is refused (403): an `Origin` that is not this server's
//!   own (`Host`), or `Sec-Fetch-Site: cross-site|same-site`. A request authenticated by the
//!   dashboard's login cookie must prove it comes from this server's pages (an `Origin` equal to
//!   the server's, or `Sec-Fetch-Site: same-origin`): SameSite=Strict does not stop another port
//!   of the same host (a different origin, but the same site).
//! - **Content type**: `/v1` documents are accepted only as JSON or YAML (415): a page can send
//!   `text/plain` cross-origin without a CORS preflight, never `application/json`.
//!
//! Clients that are not browsers (the CLI, curl, MCP clients) send neither `Origin` nor
//! `Sec-Fetch-Site` and authenticate with a bearer token: they pass.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{cookie_token, is_hook_delivery};
use crate::error::ApiError;

/// Host names a loopback server always answers (with any port).
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Which `Host` values the server answers and how strictly.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Refuse requests addressed to other names (on when the listener is loopback or names
    /// were given).
    enforce: bool,
    /// Lowercase names or `name:port`, as given with `--allowed-host`; loopback names and the
    /// listen address are added.
    allowed: Vec<String>,
}

impl HostPolicy {
    /// The policy of a server listening on `listen` with the `--allowed-host` values
    /// `allowed`: enforced on a loopback listener, and on any listener once names are given.
    pub fn new(listen: IpAddr, allowed: &[String]) -> HostPolicy {
        let mut names: Vec<String> = allowed
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let enforce = listen.is_loopback() || !names.is_empty();
        names.extend(LOOPBACK_NAMES.iter().map(|n| n.to_string()));
        if !listen.is_unspecified() {
            names.push(listen.to_string());
        }
        HostPolicy {
            enforce,
            allowed: names,
        }
    }

    /// Whether a request with `Host: host` is answered.
    fn accepts(&self, host: &str) -> bool {
        if !self.enforce {
            return true;
        }
        let host = host.trim().to_ascii_lowercase();
        let (name, _) = split_host(&host);
        let name = name.trim_end_matches('.');
        self.allowed.iter().any(|a| {
            *a == host || a == name || a.trim_start_matches('[').trim_end_matches(']') == name
        })
    }
}

/// `name` and `port` of a `Host` value (`[::1]:8088` → `::1`, `8088`).
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, tail)) => (name, tail.strip_prefix(':')),
            None => (rest, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// The state-changing methods (the ones a page must not make for the user).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The authority (`host[:port]`, default port dropped, lowercase) of an `Origin` value, or
/// `None` for `null` and anything that is not `scheme://authority`.
fn origin_authority(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    Some(drop_default_port(
        &authority.to_ascii_lowercase(),
        &scheme.to_ascii_lowercase(),
    ))
}

fn drop_default_port(authority: &str, scheme: &str) -> String {
    let default = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    authority
        .strip_suffix(default)
        .unwrap_or(authority)
        .to_string()
}

/// The `Host` of a request: the header (HTTP/1.1), or the URI's authority (HTTP/2).
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// Where a browser says a request comes from.
#[derive(Debug, PartialEq)]
enum Provenance {
    /// This server's own pages (`Origin` equal to `Host`, or `Sec-Fetch-Site: same-origin`), or
    /// the user typing a URL (`Sec-Fetch-Site: none`).
    SameOrigin,
    /// Another origin: another site, or another port of this host.
    Foreign(String),
    /// No browser header: a client that is not a browser (or a very old browser).
    Unknown,
}

fn provenance(headers: &HeaderMap, host: &str) -> Provenance {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let ours = drop_default_port(&host.trim().to_ascii_lowercase(), "http");
        let ours_tls = drop_default_port(&host.trim().to_ascii_lowercase(), "https");
        return match origin_authority(origin) {
            Some(a) if a == ours || a == ours_tls => Provenance::SameOrigin,
            _ => Provenance::Foreign(format!("Origin: {origin}")),
        };
    }
    match headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
    {
        Some(site) if site == "same-origin" || site == "none" => Provenance::SameOrigin,
        Some(site) => Provenance::Foreign(format!("Sec-Fetch-Site: {site}")),
        None => Provenance::Unknown,
    }
}

/// Whether `value` names a JSON or YAML media type (`application/json`, `text/yaml`,
/// `application/x-yaml`, `application/merge-patch+json`, …).
pub fn is_document_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    if kind != "application" && kind != "text" {
        return false;
    }
    matches!(sub, "json" | "yaml" | "x-yaml") || sub.ends_with("+json") || sub.ends_with("+yaml")
}

/// Whether the request carries a body (a length above 0, or a chunked one).
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// The middleware: Host, then Origin, then the content type of `/v1` documents.
pub async fn check(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request_host(&request).unwrap_or_default();
    if !policy.accepts(&host) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer for host `{host}`: it answers for localhost, 127.0.0.1, ::1 \
                 and the names given with --allowed-host (a page whose DNS name points here is refused)"
            ),
        )
        .into_response();
    }
    let method = request.method().clone();
    if !changes_state(&method) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let headers = request.headers();
    match provenance(headers, &host) {
        Provenance::SameOrigin => {}
        Provenance::Foreign(what) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "refused a {method} from another origin ({what}): state changes are accepted \
                     from this server's own pages and from clients that are not browsers"
                ),
            )
            .into_response();
        }
        Provenance::Unknown => {
            let bearer = headers.contains_key(header::AUTHORIZATION);
            if !bearer && cookie_token(headers).is_some() {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "refused a {method} authenticated by the login cookie without an Origin \
                         header: browsers send one; other clients use `Authorization: Bearer TOKEN`"
                    ),
                )
                .into_response();
            }
        }
    }
    // An agent's artifact upload is raw bytes. It cannot ride on the login cookie (a page
    // could send such a body cross-site without a preflight): only a bearer token, which a page
    // of another origin cannot add without one, or no credential at all (then 401).
    // (Any method: the router answers 405 to all but PUT.)
    let agent_upload = path.starts_with("/v1/agents/")
        && path.ends_with("/artifacts")
        && cookie_token(headers).is_none();
    if path.starts_with("/v1/") && !is_hook_delivery(&method, &path) && !agent_upload {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?").to_string());
        let refused = match &content_type {
            Some(t) => !is_document_type(t),
            None => has_body(headers),
        };
        if refused {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the body's content type is {}: send JSON (`Content-Type: application/json`) \
                     or YAML (`Content-Type: application/yaml`)",
                    content_type.map_or("missing".to_string(), |t| format!("`{t}`"))
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_listener_answers_loopback_names_and_allowed_ones() {
        let p = HostPolicy::new("127.0.0.1".parse().unwrap(), &["Assay.Internal".into()]);
        for ok in [
            "localhost:8088",
            "127.0.0.1:8088",
            "[::1]:8088",
            "localhost",
            "assay.internal:9000",
            "LOCALHOST.:1",
        ] {
            assert!(p.accepts(ok), "{ok}");
        }
        for refused in [
            "evil.example:8088",
            "",
            "127.0.0.2:8088",
            "localhost.evil.example",
        ] {
            assert!(!p.accepts(refused), "{refused}");
        }
        let port = HostPolicy::new("127.0.0.1".parse().unwrap(), &["a.example:8443".into()]);
        assert!(port.accepts("a.example:8443"));
        assert!(!port.accepts("a.example:80"));
    }

    #[test]
    fn a_public_listener_checks_only_when_told_names() {
        let open = HostPolicy::new("0.0.0.0".parse().unwrap(), &[]);
        assert!(open.accepts("anything.example"));
        let named = HostPolicy::new("0.0.0.0".parse().unwrap(), &["assay.example".into()]);
        assert!(named.accepts("assay.example"));
        assert!(!named.accepts("other.example"));
    }

    #[test]
    fn origins_compare_by_authority() {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "http://localhost:8088".parse().unwrap());
        assert_eq!(provenance(&h, "localhost:8088"), Provenance::SameOrigin);
        assert!(matches!(
            provenance(&h, "localhost:9000"),
            Provenance::Foreign(_)
        ));
        h.insert(header::ORIGIN, "https://assay.example".parse().unwrap());
        assert_eq!(provenance(&h, "assay.example"), Provenance::SameOrigin);
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(matches!(
            provenance(&h, "assay.example"),
            Provenance::Foreign(_)
        ));
        let mut s = HeaderMap::new();
        s.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(matches!(provenance(&s, "x"), Provenance::Foreign(_)));
        assert_eq!(provenance(&HeaderMap::new(), "x"), Provenance::Unknown);
    }

    #[test]
    fn documents_are_json_or_yaml() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "text/yaml",
            "application/yaml",
            "application/x-yaml",
            "application/merge-patch+json",
        ] {
            assert!(is_document_type(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert!(!is_document_type(refused), "{refused}");
        }
    }
}
