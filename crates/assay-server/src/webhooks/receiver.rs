//! Which receivers a webhook may reach: public addresses only, unless allowed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `ip` is an address a webhook may not reach by default: loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast, documentation, IPv6 unique
/// local, and IPv4 addresses written as IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// The message for a refused receiver.
pub(super) fn refused(host: &str, ip: IpAddr) -> String {
    format!(
        "refused: `{host}` is {ip}, a loopback or private address; webhooks reach public \
         addresses only unless the server runs with --allow-private-webhooks"
    )
}

/// reqwest's resolver for webhooks: the system's, with non-public addresses refused.
pub(super) struct PublicOnly {
    pub(super) allow_private: Arc<AtomicBool>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private.load(Ordering::Relaxed);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err(refused(&host, bad.ip()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Check the receiver's address before sending: an IP literal as written (reqwest does not
/// resolve those), a name as it resolves now. `Err` is the message to record.
pub(super) async fn check_receiver(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("the uri `{url}` is not a URL: {e}"))?;
    let port = parsed.port_or_known_default().unwrap_or(0);
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) if is_private(IpAddr::V4(ip)) => {
            Err(refused(&ip.to_string(), IpAddr::V4(ip)))
        }
        Some(url::Host::Ipv6(ip)) if is_private(IpAddr::V6(ip)) => {
            Err(refused(&ip.to_string(), IpAddr::V6(ip)))
        }
        Some(url::Host::Domain(name)) => {
            let addrs = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("`{name}` does not resolve: {e}"))?;
            for a in addrs {
                if is_private(a.ip()) {
                    return Err(refused(name, a.ip()));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
