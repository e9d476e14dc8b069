//! The client's opening handshake (RFC 6455 §4.1): the URL, the upgrade request as an
//! `http::Request`, the response parsed by httparse and checked (status, `Upgrade`,
//! `Connection`, `Sec-WebSocket-Accept`, the subprotocol and the extensions).

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{ConnectError, Io};
use crate::wire::deflate;

/// Largest response head read (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest refusal body kept in [`ConnectError::Status`].
const MAX_BODY: usize = 64 * 1024;

/// Where to connect, read from a `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) secure: bool,
    /// The host to resolve and, over TLS, the server name (no brackets around IPv6).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header's value.
    pub(crate) authority: String,
    pub(crate) path: String,
    pub(crate) query: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, ConnectError> {
        let bad = |why: &str| ConnectError::InvalidUrl(format!("{url}: {why}"));
        let uri: http::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            Some(_) => return Err(bad("the scheme must be ws:// or wss://")),
            None => return Err(bad("expected ws://host/path or wss://host/path")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "user information in the URL is not sent; set an Authorization header instead",
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = match authority.port_u16() {
            Some(p) if p != if secure { 443 } else { 80 } => format!("{host}:{p}"),
            _ => host.to_owned(),
        };
        let path = match uri.path() {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        Ok(Target {
            secure,
            host: bare,
            port,
            authority,
            path,
            query: uri.query().unwrap_or("").to_owned(),
        })
    }

    fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

/// What the request offers.
pub(crate) struct Offer<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) subprotocols: &'a [String],
    pub(crate) origin: Option<&'a str>,
    /// permessage-deflate offered (and whether with `client_no_context_takeover`).
    pub(crate) deflate: Option<bool>,
}

/// What the server agreed to.
pub(crate) struct Accepted {
    pub(crate) subprotocol: Option<String>,
    pub(crate) extensions: Option<String>,
    pub(crate) deflate: Option<deflate::Agreed>,
    /// Bytes read past the response head: the first frames.
    pub(crate) leftover: Bytes,
}

/// The upgrade request for `target`.
fn request(target: &Target, offer: &Offer<'_>, key: &str) -> Result<Request<()>, ConnectError> {
    let invalid = |e: http::Error| ConnectError::InvalidRequest(e.to_string());
    let mut builder = Request::get(target.path_and_query())
        .header(header::HOST, target.authority.as_str())
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_KEY, key)
        .header(header::SEC_WEBSOCKET_VERSION, "13");
    if !offer.subprotocols.is_empty() {
        builder = builder.header(
            header::SEC_WEBSOCKET_PROTOCOL,
            offer.subprotocols.join(", "),
        );
    }
    if let Some(origin) = offer.origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    if let Some(client_nct) = offer.deflate {
        builder = builder.header(
            header::SEC_WEBSOCKET_EXTENSIONS,
            deflate::client_offer(client_nct),
        );
    }
    let mut req = builder.body(()).map_err(invalid)?;
    for (name, value) in offer.headers {
        if is_handshake_header(name) {
            return Err(ConnectError::InvalidRequest(format!(
                "the header {name} is the handshake's own; use the connector's setting for it"
            )));
        }
        req.headers_mut().append(name.clone(), value.clone());
    }
    Ok(req)
}

fn is_handshake_header(name: &HeaderName) -> bool {
    [
        header::HOST,
        header::UPGRADE,
        header::CONNECTION,
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::ORIGIN,
        // A body would swallow the first frames.
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ]
    .contains(name)
}

/// The request in HTTP/1.1 wire form, from its typed parts.
fn serialize(req: &Request<()>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
fn new_key() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends the upgrade request and reads and checks the response.
pub(crate) async fn handshake(
    io: &mut Io,
    target: &Target,
    offer: &Offer<'_>,
) -> Result<Accepted, ConnectError> {
    let key = new_key();
    let req = request(target, offer, &key)?;
    io.write_all(&serialize(&req)).await?;
    io.flush().await?;

    let mut buf = BytesMut::with_capacity(4096);
    let (status, headers, head_len) = loop {
        if io.read_buf(&mut buf).await? == 0 {
            // A proxy or load balancer without a server behind it: worth another try.
            return Err(ConnectError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering the upgrade",
            )));
        }
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut slots);
        match res.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = StatusCode::from_u16(res.code.unwrap_or(0))
                    .map_err(|_| ConnectError::Handshake("invalid status code".into()))?;
                let mut headers = HeaderMap::new();
                for h in res.headers.iter() {
                    let name = HeaderName::from_bytes(h.name.as_bytes())
                        .map_err(|_| ConnectError::Handshake("invalid header name".into()))?;
                    let value = HeaderValue::from_bytes(h.value)
                        .map_err(|_| ConnectError::Handshake("invalid header value".into()))?;
                    headers.append(name, value);
                }
                break (status, headers, n);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(ConnectError::Handshake("response head too large".into()))
            }
            Err(e) => return Err(ConnectError::Handshake(format!("invalid response: {e}"))),
        }
    };
    let _head = buf.split_to(head_len);

    if status != StatusCode::SWITCHING_PROTOCOLS {
        // The refusal's body, as far as it is announced and small (redirects are not followed).
        let len = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_BODY);
        while buf.len() < len {
            if io.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        buf.truncate(len);
        return Err(ConnectError::Status {
            status,
            headers: Box::new(headers),
            body: buf.freeze(),
        });
    }
    check(&headers, &key, offer, buf.freeze())
}

fn check(
    headers: &HeaderMap,
    key: &str,
    offer: &Offer<'_>,
    leftover: Bytes,
) -> Result<Accepted, ConnectError> {
    let fail = |why: &str| Err(ConnectError::Handshake(why.to_owned()));
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return fail("the 101 response has no `Upgrade: websocket`");
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return fail("the 101 response has no `Connection: upgrade`");
    }
    let expected = actix_http::ws::hash_key(key.as_bytes());
    match headers.get(header::SEC_WEBSOCKET_ACCEPT) {
        Some(v) if v.as_bytes() == expected.as_slice() => {}
        Some(_) => return fail("Sec-WebSocket-Accept does not match the key sent"),
        None => return fail("the 101 response has no Sec-WebSocket-Accept"),
    }
    let subprotocol = match headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        None => None,
        Some(v) => {
            let v = v.to_str().unwrap_or("").trim();
            if !offer.subprotocols.iter().any(|p| p == v) {
                return fail("the server chose a subprotocol that was not offered");
            }
            Some(v.to_owned())
        }
    };
    let values: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    let deflate = match offer.deflate {
        None if values.is_empty() => None,
        None => return fail("the server answered with an extension that was not offered"),
        Some(_) => deflate::accept_response(values.iter().copied())
            .map_err(|why| ConnectError::Handshake(why.to_owned()))?,
    };
    let extensions = (!values.is_empty()).then(|| values.join(", "));
    Ok(Accepted {
        subprotocol,
        extensions,
        deflate,
        leftover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://127.0.0.1:9001/runCase?case=1&agent=a").unwrap();
        assert_eq!(
            (t.secure, t.host.as_str(), t.port),
            (false, "127.0.0.1", 9001)
        );
        assert_eq!(t.authority, "127.0.0.1:9001");
        assert_eq!(t.path_and_query(), "/runCase?case=1&agent=a");
        let t = Target::parse("wss://example.test").unwrap();
        assert_eq!((t.secure, t.port, t.path.as_str()), (true, 443, "/"));
        assert_eq!(t.authority, "example.test");
        let t = Target::parse("ws://[::1]:8080/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("::1", "[::1]:8080")
        );
        for bad in ["http://a/", "a/b", "ws://user:pw@host/", "ws:///x", ""] {
            assert!(
                matches!(Target::parse(bad), Err(ConnectError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_request_is_typed_and_complete() {
        let t = Target::parse("ws://localhost:8080/chat/lobby?nick=bob").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        let protocols = vec!["chat.v2".to_owned(), "chat.v1".to_owned()];
        let offer = Offer {
            headers: &headers,
            subprotocols: &protocols,
            origin: Some("http://localhost:8080"),
            deflate: Some(true),
        };
        let req = request(&t, &offer, "dGhlIHNhbXBsZSBub25jZQ==").unwrap();
        let text = String::from_utf8(serialize(&req)).unwrap();
        assert!(text.starts_with("GET /chat/lobby?nick=bob HTTP/1.1\r\n"));
        for line in [
            "host: localhost:8080",
            "upgrade: websocket",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
            "sec-websocket-protocol: chat.v2, chat.v1",
            "origin: http://localhost:8080",
            "authorization: Bearer x",
            "sec-websocket-extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits",
        ] {
            assert!(text.contains(&format!("{line}\r\n")), "{line} in {text}");
        }
        assert!(text.ends_with("\r\n\r\n"));
        // The handshake's own headers cannot be overridden by hand.
        let mut own = headers.clone();
        own.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("x"));
        let offer = Offer {
            headers: &own,
            ..offer
        };
        assert!(matches!(
            request(&t, &offer, "k"),
            Err(ConnectError::InvalidRequest(_))
        ));
    }

    #[test]
    fn the_response_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = |extra: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            );
            for (k, v) in extra {
                h.insert(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let none = HeaderMap::new();
        let protocols = vec!["a".to_owned()];
        let offer = Offer {
            headers: &none,
            subprotocols: &protocols,
            origin: None,
            deflate: None,
        };
        let accepted = check(&ok(&[]), key, &offer, Bytes::new()).unwrap();
        assert_eq!(accepted.subprotocol, None);
        let accepted = check(
            &ok(&[("sec-websocket-protocol", "a")]),
            key,
            &offer,
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(accepted.subprotocol.as_deref(), Some("a"));
        let mut wrong = ok(&[]);
        wrong.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        );
        for bad in [
            wrong,
            ok(&[("sec-websocket-protocol", "b")]),
            ok(&[("sec-websocket-extensions", "permessage-deflate")]),
            ok(&[("upgrade", "h2c")]),
        ] {
            assert!(matches!(
                check(&bad, key, &offer, Bytes::new()),
                Err(ConnectError::Handshake(_))
            ));
        }
    }
}
