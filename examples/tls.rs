//! Echo over TLS: `wss://HOST:PORT/echo` returns every text and binary message unchanged, and
//! `https://HOST:PORT/` serves a small page that opens it from a browser.
//!
//! ```text
//! cargo run --example tls                          # wss://127.0.0.1:8443/echo, self-signed
//! TLS_ADDR=0.0.0.0:8443 cargo run --example tls    # or: cargo run --example tls -- 127.0.0.1:9443
//! TLS_CERT=cert.pem TLS_KEY=key.pem cargo run --example tls
//! websocat --insecure wss://127.0.0.1:8443/echo    # --insecure: the certificate is self-signed
//! ```
//! Without `TLS_CERT` and `TLS_KEY` (PEM files: the certificate chain, leaf first, and its
//! private key in PKCS#8, PKCS#1 or SEC1 form), the server makes a self-signed certificate for
//! `localhost` and `127.0.0.1` at start, which no client trusts: give websocat `--insecure`, and
//! in a browser open `https://127.0.0.1:8443/` first and accept the warning, after which the
//! page's `wss://` connection goes through.
//!
//! TLS is rustls with its `ring` provider, passed to the config explicitly (no process-wide
//! default needed); actix-web serves it with `HttpServer::bind_rustls_0_23`.

use std::{io, net::SocketAddr, path::Path, sync::Arc};

use actix_web::{dev::Server, HttpResponse};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    ServerConfig,
};
use ws_endpoint::prelude::*;

/// The echo endpoint, at `/echo`.
#[derive(Default)]
pub struct Echo;

#[server_endpoint("/echo", max_message_size = "1MiB")]
impl Echo {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) -> Bytes {
        data
    }
}

/// The page at `/`: a text box whose lines go to `wss://<same host>/echo`, and a log of what
/// comes back.
pub const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>wss echo</title></head>
<body>
<h1>wss:// echo</h1>
<form id="f"><input id="t" size="40" autofocus placeholder="a message"> <button>Send</button></form>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
const ws = new WebSocket("wss://" + location.host + "/echo");
ws.onopen = () => log("open");
ws.onmessage = (e) => log("< " + e.data);
ws.onclose = (e) => log("closed " + e.code);
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const t = document.getElementById("t");
  if (ws.readyState === WebSocket.OPEN && t.value) { ws.send(t.value); log("> " + t.value); }
  t.value = "";
};
</script>
</body>
</html>
"#;

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}

/// The application: the page at `/` and the echo endpoint at `/echo`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .service(Echo::endpoint());
}

/// A certificate and its private key.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`, and its key (ECDSA P-256).
pub fn self_signed() -> Result<Identity, rcgen::Error> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let key = PrivatePkcs8KeyDer::from(signing_key.serialize_der());
    Ok((vec![cert.der().clone()], key.into()))
}

/// The certificate chain and private key in two PEM files.
pub fn load_pem(cert: &Path, key: &Path) -> io::Result<Identity> {
    let bad = |path: &Path, e: rustls::pki_types::pem::Error| {
        let kind = match &e {
            rustls::pki_types::pem::Error::Io(io) => io.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, format!("{}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate", cert.display()),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
    Ok((certs, key_der))
}

/// A rustls server config with the `ring` provider and the given identity (no client
/// certificates). actix-web adds the `h2` and `http/1.1` ALPN protocols itself.
pub fn server_config((certs, key): Identity) -> Result<ServerConfig, rustls::Error> {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
}

/// Binds the TLS server to `addr` (port 0: any free port) with one worker; returns it, not yet
/// awaited, and the address it listens on. Call it inside an actix (tokio) runtime.
///
/// `with_ws_defaults()` works as over plain TCP (close linger, 1001 on Ctrl-C / SIGTERM), except
/// that its `on_connect` hook is handed the TLS stream, not the `TcpStream`, and so skips it: no
/// socket descriptor is recorded, and a dead peer that stalls with a full write buffer is not shut
/// down at once (its session's queue is still freed; the connection goes when the kernel gives
/// up on it). `tcp_nodelay(true)` stands in for the hook's `TCP_NODELAY`: actix-http sets it on
/// the TCP stream under the TLS one.
pub fn serve(addr: &str, config: ServerConfig) -> io::Result<(Server, SocketAddr)> {
    serve_app(addr, config, configure)
}

/// [`serve`] with the application `app` builds instead of this example's.
pub fn serve_app<F>(addr: &str, config: ServerConfig, app: F) -> io::Result<(Server, SocketAddr)>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let server = HttpServer::new(move || App::new().configure(app.clone()))
        .with_ws_defaults()
        .tcp_nodelay(true)
        .workers(1)
        .bind_rustls_0_23(addr, config)?;
    let bound = server.addrs()[0];
    Ok((server.run(), bound))
}

#[allow(dead_code)]
#[actix_web::main]
async fn main() -> io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TLS_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8443".to_owned());
    let files = (std::env::var_os("TLS_CERT"), std::env::var_os("TLS_KEY"));
    let self_signed_cert = files.0.is_none() && files.1.is_none();
    let identity = match files {
        (Some(cert), Some(key)) => load_pem(Path::new(&cert), Path::new(&key))?,
        (None, None) => self_signed().map_err(io::Error::other)?,
        _ => return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "set both TLS_CERT and TLS_KEY (PEM files), or neither for a self-signed certificate",
        )),
    };
    let config = server_config(identity).map_err(io::Error::other)?;
    let (server, mut bound) = serve(&addr, config)?;
    if bound.ip().is_unspecified() {
        bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    println!("TLS echo server on wss://{bound}/echo, its page on https://{bound}/");
    if self_signed_cert {
        println!(
            "self-signed certificate for localhost and 127.0.0.1, made now: connect with \
             `websocat --insecure wss://{bound}/echo`, or in a browser open https://{bound}/ \
             and accept the certificate warning (set TLS_CERT and TLS_KEY to serve your own)"
        );
    }
    server.await
}
