//! Trusted reverse proxies: whose `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Host` headers
//! are believed. A server-wide setting ([`set_trusted_proxies`]); the client address it gives is
//! what `Session::peer_addr`, `max_sessions_per_ip` and the Host / Origin checks use.

use std::{
    net::{IpAddr, SocketAddr},
    sync::RwLock,
};

use actix_web::{http::header, HttpRequest};
use ipnet::IpNet;

static TRUSTED: RwLock<Vec<IpNet>> = RwLock::new(Vec::new());

/// Sets the reverse proxies whose forwarding headers are trusted, as addresses (`10.0.0.5`,
/// `::1`) or networks (`10.0.0.0/8`, `fd00::/8`). Empty (the default): none; the TCP peer is
/// the client and forwarding headers are ignored (anyone can write them).
///
/// From a trusted peer, the client is the rightmost address of `Forwarded: for=` (or, without
/// it, `X-Forwarded-For`) that is not itself a trusted proxy, and the host is `X-Forwarded-Host`
/// (or `Forwarded: host=`) when present.
///
/// ```
/// ws_endpoint::set_trusted_proxies(["127.0.0.1", "10.0.0.0/8"]).unwrap();
/// assert!(ws_endpoint::set_trusted_proxies(["not an address"]).is_err());
/// # ws_endpoint::set_trusted_proxies(Vec::<String>::new()).unwrap();
/// ```
pub fn set_trusted_proxies<S: AsRef<str>>(
    proxies: impl IntoIterator<Item = S>,
) -> Result<(), String> {
    let mut parsed = Vec::new();
    for p in proxies {
        let p = p.as_ref().trim();
        let net = p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("`{p}` is not an IP address or network (`10.0.0.0/8`)"))?;
        parsed.push(net);
    }
    *TRUSTED.write().unwrap_or_else(|e| e.into_inner()) = parsed;
    Ok(())
}

fn trusted(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    TRUSTED
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|net| net.contains(&ip))
}

/// Whether the request came through a trusted proxy.
pub(crate) fn from_trusted_proxy(req: &HttpRequest) -> bool {
    req.peer_addr().is_some_and(|peer| trusted(peer.ip()))
}

/// One node of a forwarding list: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`,
/// `2001:db8::1`, `"[2001:db8::1]"` (quoted in `Forwarded`).
fn node(s: &str) -> Option<SocketAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

/// The values of parameter `key` (`for`, `host`) in every element of every `Forwarded`
/// header (RFC 7239), in order; quotes kept (`node` and the caller strip them).
fn forwarded_params(req: &HttpRequest, key: &str) -> Vec<String> {
    req.headers()
        .get_all(header::FORWARDED)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case(key)
                    .then(|| v.trim().to_owned())
            })
        })
        .collect()
}

/// The `for=` nodes of `Forwarded`, or the `X-Forwarded-For` list, in order.
fn forwarded_for(req: &HttpRequest) -> Vec<String> {
    let headers = req.headers();
    let forwarded = forwarded_params(req, "for");
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The client's address: the TCP peer, or, from a trusted proxy, the rightmost forwarded
/// address that is not a trusted proxy (port 0 when the proxy gave none).
pub(crate) fn client_addr(req: &HttpRequest) -> Option<SocketAddr> {
    let peer = req.peer_addr()?;
    if !trusted(peer.ip()) {
        return Some(peer);
    }
    let chain: Vec<SocketAddr> = forwarded_for(req).iter().filter_map(|n| node(n)).collect();
    chain
        .iter()
        .rev()
        .find(|a| !trusted(a.ip()))
        .or_else(|| chain.first())
        .copied()
        .or(Some(peer))
}

/// The host the client asked for: from a trusted proxy, `X-Forwarded-Host` or `Forwarded:
/// host=`, if given.
pub(crate) fn forwarded_host(req: &HttpRequest) -> Option<String> {
    if !from_trusted_proxy(req) {
        return None;
    }
    let headers = req.headers();
    headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .or_else(|| {
            forwarded_params(req, "host")
                .into_iter()
                .next()
                .map(|h| h.trim_matches('"').to_owned())
        })
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_chains() {
        // (The trusted list is process-wide; this test owns it.)
        set_trusted_proxies(["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let req = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("x-forwarded-for", "203.0.113.9, 10.1.2.3"))
            .to_http_request();
        assert_eq!(client_addr(&req).unwrap().ip().to_string(), "203.0.113.9");
        let req = TestRequest::default()
            .peer_addr(peer)
            .insert_header((
                header::FORWARDED,
                r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.2"#,
            ))
            .insert_header(("x-forwarded-host", "app.example"))
            .to_http_request();
        assert_eq!(
            client_addr(&req).unwrap(),
            "[2001:db8::1]:4711".parse().unwrap()
        );
        assert_eq!(forwarded_host(&req).as_deref(), Some("app.example"));
        // An untrusted peer's headers are ignored.
        let stranger: SocketAddr = "198.51.100.7:6000".parse().unwrap();
        let req = TestRequest::default()
            .peer_addr(stranger)
            .insert_header(("x-forwarded-for", "203.0.113.9"))
            .insert_header(("x-forwarded-host", "app.example"))
            .to_http_request();
        assert_eq!(client_addr(&req), Some(stranger));
        assert_eq!(forwarded_host(&req), None);
        set_trusted_proxies(Vec::<String>::new()).unwrap();
    }
}
