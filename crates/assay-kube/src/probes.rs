//! A TestTrigger's `probeSpec`: HTTP GETs that must all succeed before its runs are queued.
//!
//! Testkube's semantics (read from kubeshop/testkube `pkg/triggers/matcher.go`, not copied):
//! every probe is sent at once; one succeeds when it gets an answer with a status below 400;
//! when any fails, all are sent again after `delay` seconds (default 1), until `timeout`
//! seconds (default 60) have passed since the first try. A probe without `host` goes to the
//! event's object: a pod's IP as its DNS name (`10-1-2-3.NS.pod.cluster.local`, once the pod
//! has one), a service's `NAME.NS.svc.cluster.local`; other kinds have no address. `scheme`
//! defaults to `http`, `path` to `/`.
//!
//! A probe is a request the server makes to a URL a trigger's author wrote (server-side request
//! forgery, by design): the answer's body is never read, only its status; redirects are not
//! followed (a 3xx is an answer below 400: it succeeds, as the redirect target would be asked
//! for nothing more); every request ends at the probe's timeout, which validation caps at
//! [`assay_spec::triggers::MAX_PROBE_TIMEOUT`]. Who may write probes is the business of whoever
//! may create triggers (README, Security).

use std::time::Duration;

use assay_spec::triggers::{TestTriggerProbe, TestTriggerProbeSpec};
use serde_json::Value;

/// How long one probe waits for a connection, at most (within the probes' timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client probes are sent with: no redirects, no body read, a connect timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!(
            "assay-testtrigger-probe/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The address a probe without `host` goes to, for an object of trigger resource `resource`:
/// `None` for kinds without one, and for a pod that has no IP yet.
pub fn default_host(resource: &str, object: &Value) -> Option<String> {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (name, namespace) = (text("/metadata/name"), text("/metadata/namespace"));
    match resource {
        "service" if !name.is_empty() => Some(format!("{name}.{namespace}.svc.cluster.local")),
        "pod" => {
            let ip = text("/status/podIP");
            (!ip.is_empty()).then(|| {
                format!(
                    "{}.{namespace}.pod.cluster.local",
                    ip.replace(['.', ':'], "-")
                )
            })
        }
        _ => None,
    }
}

/// Why a TestTrigger's probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("the probe has no `host` and the object has no address")]
    NoHost,
    /// The URL the probe's fields make, as text.
    #[error("`{text}` is not a URL: {source}")]
    NotUrl {
        text: String,
        source: <reqwest::Url as std::str::FromStr>::Err,
    },
    /// The answer's status was 400 or above.
    #[error("GET {url}: {status}")]
    Status {
        url: reqwest::Url,
        status: reqwest::StatusCode,
    },
    /// No answer (shown with its whole chain of causes).
    #[error("GET {url}: {}", error_chain(source))]
    Send {
        url: reqwest::Url,
        source: reqwest::Error,
    },
}

/// The URL of `probe`, its host defaulting to `default_host`.
pub fn url(
    probe: &TestTriggerProbe,
    default_host: Option<&str>,
) -> Result<reqwest::Url, ProbeError> {
    let host = if probe.host.is_empty() {
        default_host.ok_or(ProbeError::NoHost)?
    } else {
        probe.host.as_str()
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // an IPv6 address
    } else {
        host.to_string()
    };
    let scheme = if probe.scheme.is_empty() {
        "http"
    } else {
        &probe.scheme
    };
    let path = if probe.path.is_empty() {
        "/"
    } else {
        &probe.path
    };
    let port = if probe.port > 0 {
        format!(":{}", probe.port)
    } else {
        String::new()
    };
    let text = format!("{scheme}://{host}{port}{path}");
    reqwest::Url::parse(&text).map_err(|source| ProbeError::NotUrl { text, source })
}

/// Send every probe once, together; `Err` says why the first that failed did.
pub async fn check_once(
    client: &reqwest::Client,
    probes: &[TestTriggerProbe],
    default_host: Option<&str>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let sends = probes.iter().map(|probe| async move {
        let url = url(probe, default_host)?;
        let mut request = client.get(url.clone()).timeout(timeout);
        for (k, v) in &probe.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        // The body is not read: dropping the response closes it.
        match request.send().await {
            Ok(response) if response.status().as_u16() < 400 => Ok(()),
            Ok(response) => Err(ProbeError::Status {
                status: response.status(),
                url,
            }),
            Err(source) => Err(ProbeError::Send { url, source }),
        }
    });
    for result in futures::future::join_all(sends).await {
        result?;
    }
    Ok(())
}

/// An error with its sources (`error sending request: client error (Connect): ...`).
fn error_chain(e: &dyn std::error::Error) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The probes' overall timeout and the pause between tries.
pub fn timing(spec: &TestTriggerProbeSpec) -> (Duration, Duration) {
    let secs = |n: i32, default: u64| {
        u64::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(default)
            .min(assay_spec::triggers::MAX_PROBE_TIMEOUT as u64)
    };
    (
        Duration::from_secs(secs(spec.timeout, 60)),
        Duration::from_secs(secs(spec.delay, 1)),
    )
}

/// Try the probes until they all succeed (`Ok`) or the timeout passes (`Err`: the last
/// failure). `address` gives the object's default host, asked again before each try while it
/// has none (a new pod gets its IP a little later).
pub async fn wait_for<F, Fut>(
    client: &reqwest::Client,
    spec: &TestTriggerProbeSpec,
    mut address: F,
) -> Result<(), ProbeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let (timeout, every) = timing(spec);
    let deadline = tokio::time::Instant::now() + timeout;
    let needs_address = spec.probes.iter().any(|p| p.host.is_empty());
    let mut host: Option<String> = None;
    loop {
        if needs_address && host.is_none() {
            host = address().await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let last = match check_once(client, &spec.probes, host.as_deref(), left).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() + every > deadline {
            return Err(last);
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn probe(host: &str, port: i32, path: &str) -> TestTriggerProbe {
        TestTriggerProbe {
            host: host.into(),
            port,
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn urls_and_default_hosts_follow_testkube() {
        let svc = json!({"metadata": {"name": "web", "namespace": "shop"}});
        assert_eq!(
            default_host("service", &svc).as_deref(),
            Some("web.shop.svc.cluster.local")
        );
        let pod = json!({"metadata": {"name": "p", "namespace": "shop"}, "status": {"podIP": "10.1.2.3"}});
        assert_eq!(
            default_host("pod", &pod).as_deref(),
            Some("10-1-2-3.shop.pod.cluster.local")
        );
        assert_eq!(default_host("pod", &svc), None, "no IP yet");
        assert_eq!(default_host("deployment", &svc), None);
        assert_eq!(
            url(&probe("", 0, ""), Some("web.shop.svc.cluster.local"))
                .unwrap()
                .as_str(),
            "http://web.shop.svc.cluster.local/"
        );
        let mut p = probe("::1", 8443, "/ready");
        p.scheme = "https".into();
        assert_eq!(url(&p, None).unwrap().as_str(), "https://[::1]:8443/ready");
        assert!(matches!(
            url(&probe("", 80, "/"), None),
            Err(ProbeError::NoHost)
        ));
    }

    /// A real HTTP server on 127.0.0.1 that answers `503` to the first `failures` requests and
    /// `200` after; it counts requests and the `x-check` headers it saw.
    async fn server(failures: usize) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (count, headers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, h) = (count.clone(), headers.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                if request.contains("x-check: yes") {
                    h.fetch_add(1, Ordering::SeqCst);
                }
                let status = if c.fetch_add(1, Ordering::SeqCst) < failures {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        (port, count, headers)
    }

    #[tokio::test]
    async fn probes_are_tried_again_until_they_all_answer() {
        let (port, count, headers) = server(2).await;
        let mut p = probe("127.0.0.1", i32::from(port), "/ready");
        p.headers.insert("X-Check".into(), "yes".into());
        let spec = TestTriggerProbeSpec {
            probes: vec![p],
            timeout: 30,
            delay: 1,
        };
        wait_for(&client(), &spec, || async { None }).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3, "503, 503, then 200");
        assert_eq!(headers.load(Ordering::SeqCst), 3, "the headers were sent");
    }

    #[tokio::test]
    async fn a_probe_that_never_answers_below_400_fails_with_the_reason() {
        let (ready, _, _) = server(0).await;
        let (never, count, _) = server(usize::MAX).await;
        let spec = TestTriggerProbeSpec {
            probes: vec![
                probe("127.0.0.1", i32::from(ready), "/"),
                probe("127.0.0.1", i32::from(never), "/health"),
            ],
            timeout: 2,
            delay: 1,
        };
        let err = wait_for(&client(), &spec, || async { None })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProbeError::Status { status, .. } if status.as_u16() == 503),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("GET http://127.0.0.1:{never}/health: 503 Service Unavailable")
        );
        assert!(count.load(Ordering::SeqCst) >= 2, "tried again");
        // Nothing listens: a connection error, said as such.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let spec = TestTriggerProbeSpec {
            probes: vec![probe("127.0.0.1", i32::from(closed), "/")],
            timeout: 1,
            delay: 1,
        };
        let err = wait_for(&client(), &spec, || async { None })
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Send { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("GET http://127.0.0.1:{closed}/: ")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_default_host_is_asked_for_until_the_object_has_one() {
        let (port, count, _) = server(0).await;
        let asked = Arc::new(AtomicUsize::new(0));
        let spec = TestTriggerProbeSpec {
            probes: vec![probe("", i32::from(port), "/")],
            timeout: 30,
            delay: 1,
        };
        let a = asked.clone();
        wait_for(&client(), &spec, move || {
            let a = a.clone();
            async move { (a.fetch_add(1, Ordering::SeqCst) >= 1).then(|| "127.0.0.1".to_string()) }
        })
        .await
        .unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 2, "no address, then one");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    /// A probe is a request to a URL a trigger's author wrote: it follows no redirect (the
    /// address it would be sent on to is never asked) and reads no body (an endless one does
    /// not hold it).
    #[tokio::test]
    async fn security_probes_follow_no_redirect_and_read_no_body() {
        let (elsewhere, asked, _) = server(0).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    if request.starts_with("GET /redirect") {
                        let _ = socket
                            .write_all(format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{elsewhere}/\r\ncontent-length: 0\r\n\r\n").as_bytes())
                            .await;
                        return;
                    }
                    // An endless body.
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        let spec = |path: &str| TestTriggerProbeSpec {
            probes: vec![probe("127.0.0.1", i32::from(port), path)],
            timeout: 30,
            delay: 1,
        };
        wait_for(&client(), &spec("/redirect"), || async { None })
            .await
            .unwrap();
        assert_eq!(
            asked.load(Ordering::SeqCst),
            0,
            "the redirect was not followed"
        );
        wait_for(&client(), &spec("/endless"), || async { None })
            .await
            .unwrap();
    }
}
