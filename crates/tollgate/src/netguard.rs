//! Server-side request forgery rules for URLs that config points the
//! gateway at on a request's behalf (guardrail webhooks): a config author
//! who may add a webhook must not thereby make the gateway fetch cloud
//! instance metadata or reach hosts on its private network. Link-local
//! (where instance metadata lives), unspecified and multicast addresses are
//! never allowed; loopback and private ranges only with an explicit
//! `allow_private_network: true`.

use std::net::IpAddr;

/// Whether the gateway may connect to `ip`.
pub fn ip_allowed(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (never, private) = match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            (
                a.is_link_local() || a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
                a.is_loopback() || a.is_private() || (o[0] == 100 && (o[1] & 0xC0) == 64),
            )
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (
                (s[0] & 0xffc0) == 0xfe80 || a.is_unspecified() || a.is_multicast(),
                a.is_loopback() || (s[0] & 0xfe00) == 0xfc00,
            )
        }
    };
    if never {
        return Err(format!("{ip} is a link-local, unspecified or multicast address"));
    }
    if private && !allow_private {
        return Err(format!("{ip} is a loopback or private address; set allow_private_network: true to allow it"));
    }
    Ok(())
}

/// Resolves `uri`'s host and checks every address it resolves to.
pub async fn check(uri: &http::Uri, allow_private: bool) -> Result<(), String> {
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip_allowed(ip, allow_private);
    }
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("resolving {host}: {e}"))?;
    let mut any = false;
    for a in addrs {
        any = true;
        ip_allowed(a.ip(), allow_private).map_err(|e| format!("{host} resolves to {e}"))?;
    }
    if any { Ok(()) } else { Err(format!("{host} resolves to no address")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_private_ranges() {
        let ok = |s: &str, p| ip_allowed(s.parse().expect("ip"), p).is_ok();
        assert!(!ok("169.254.169.254", true));
        assert!(!ok("::ffff:169.254.169.254", true));
        assert!(!ok("fe80::1", true));
        assert!(!ok("0.0.0.0", true));
        assert!(!ok("127.0.0.1", false) && ok("127.0.0.1", true));
        assert!(!ok("10.1.2.3", false) && !ok("100.64.0.1", false) && !ok("fd00::1", false));
        assert!(ok("8.8.8.8", false) && ok("2606:4700::1111", false));
    }

    #[tokio::test]
    async fn hostnames_are_resolved_before_the_check() {
        let uri: http::Uri = "http://localhost:9/x".parse().expect("uri");
        assert!(check(&uri, false).await.is_err());
        assert!(check(&uri, true).await.is_ok());
    }
}
