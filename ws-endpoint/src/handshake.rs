//! Handshake checks before the upgrade: a WebSocket request at all, the Origin policy.

use actix_http::ws::HandshakeError;
use actix_web::{
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};

use crate::{config::EndpointConfig, session::HandshakeInfo};

/// `None` when the request may be upgraded; otherwise the HTTP response refusing it.
pub(crate) fn refusal(req: &HttpRequest, config: &EndpointConfig) -> Option<HttpResponse> {
    if let Err(err) = actix_http::ws::verify_handshake(req.head()) {
        return Some(refuse(err));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, req, &config.allowed_origins) {
            tracing::debug!(
                origin,
                path = req.path(),
                "WebSocket handshake refused: origin"
            );
            return Some(HttpResponse::Forbidden().body(format!(
                "WebSocket handshake refused: origin `{origin}` is not allowed for this endpoint"
            )));
        }
    }
    None
}

fn refuse(err: HandshakeError) -> HttpResponse {
    match err {
        HandshakeError::NoWebsocketUpgrade | HandshakeError::NoConnectionUpgrade => {
            HttpResponse::BadRequest().body(
                "This is a WebSocket endpoint: connect with a WebSocket client \
                 (the request did not ask for `Connection: Upgrade` / `Upgrade: websocket`).",
            )
        }
        HandshakeError::UnsupportedVersion | HandshakeError::NoVersionHeader => {
            HttpResponse::build(StatusCode::UPGRADE_REQUIRED)
                .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
                .body("WebSocket handshake refused: only version 13 is supported")
        }
        HandshakeError::GetMethodRequired => HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET"))
            .body("WebSocket handshake refused: the method must be GET"),
        HandshakeError::BadWebsocketKey => HttpResponse::BadRequest()
            .body("WebSocket handshake refused: missing or malformed Sec-WebSocket-Key"),
    }
}

/// Same-origin (Origin's host equals the Host header), or listed, or `*` listed.
fn origin_allowed(origin: &str, req: &HttpRequest, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(origin_host) = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
    else {
        return false; // "null" or garbage
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// What the session remembers of the handshake.
pub(crate) fn info(req: &HttpRequest, response: &HttpResponse) -> HandshakeInfo {
    HandshakeInfo {
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        path_params: req
            .match_info()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        subprotocol: response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        peer_addr: req.peer_addr(),
        // The listener's own TLS, not the spoofable Forwarded / X-Forwarded-Proto headers.
        secure: req.app_config().secure(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(host: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::HOST, host))
            .to_http_request()
    }

    #[test]
    fn same_origin_is_allowed_by_host() {
        assert!(origin_allowed(
            "http://localhost:8080",
            &req("localhost:8080"),
            &[]
        ));
        assert!(origin_allowed(
            "https://LOCALHOST:8080",
            &req("localhost:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            "http://evil.test",
            &req("localhost:8080"),
            &[]
        ));
        assert!(!origin_allowed("null", &req("localhost:8080"), &[]));
    }

    #[test]
    fn listed_origins_and_star_widen_it() {
        let allowed = vec!["http://app.test".to_string()];
        assert!(origin_allowed(
            "http://app.test",
            &req("api.test"),
            &allowed
        ));
        assert!(origin_allowed(
            "http://x.test",
            &req("api.test"),
            &["*".into()]
        ));
    }
}
