//! The TLS example (`examples/tls.rs`), compiled into this test: served on 127.0.0.1 with a fresh
//! self-signed certificate, driven over wss:// by tokio-tungstenite with a rustls client that
//! trusts that certificate only.

mod common;
#[path = "../examples/tls.rs"]
mod tls;

use std::{
    io::{Read, Write},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use actix_web::{dev::ServerHandle, web};
use common::*;
use futures_util::SinkExt;
use rustls::{pki_types::CertificateDer, ClientConfig, RootCertStore};
use tokio_tungstenite::{tungstenite::Message, Connector};
use ws_endpoint::prelude::*;

/// Bound on every connect and on the server's start and stop.
const WAIT: Duration = Duration::from_secs(5);

struct TlsServer {
    addr: SocketAddr,
    handle: ServerHandle,
    /// The server's self-signed certificate, for the client's root store.
    cert: CertificateDer<'static>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    /// The example's app and setup (`tls::serve`, so `with_ws_defaults()` too) on 127.0.0.1:0,
    /// in its own thread and actix runtime.
    fn start() -> Self {
        Self::start_app(tls::configure)
    }

    /// Like [`start`](Self::start), with the app `app` builds.
    fn start_app<F>(app: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let identity = tls::self_signed().expect("self-signed certificate");
        let cert = identity.0[0].clone();
        let config = tls::server_config(identity).expect("rustls server config");
        Self::start_config(config, cert, app)
    }

    /// The server with a rustls configuration of the test's own (`cert` is its certificate).
    fn start_config<F>(config: rustls::ServerConfig, cert: CertificateDer<'static>, app: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let (server, addr) =
                    tls::serve_app("127.0.0.1:0", config, app).expect("bind 127.0.0.1:0");
                tx.send((addr, server.handle())).unwrap();
                let _ = server.await;
            })
        });
        let (addr, handle) = rx.recv_timeout(WAIT).expect("server started");
        TlsServer {
            addr,
            handle,
            cert,
            thread: Some(thread),
        }
    }

    /// A rustls client config (ring provider) whose only root is the server's certificate.
    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("add the certificate");
        Arc::new(client_config(roots))
    }

    async fn stop(mut self) {
        tokio::time::timeout(WAIT, self.handle.stop(false))
            .await
            .expect("server stopped within 5 s");
        if let Some(t) = self.thread.take() {
            let joined = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || t.join()))
                .await
                .expect("server thread ended within 5 s");
            assert!(joined.is_ok_and(|r| r.is_ok()), "server thread panicked");
        }
    }
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Connects to `url` with `connector`, within 5 s (a timeout fails the test; a refused
/// connection or handshake is returned).
async fn connect_with(
    url: &str,
    connector: Connector,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)),
    )
    .await
    .unwrap_or_else(|_| panic!("connecting to {url} did not finish within 5 s"))
    .map(|(ws, _response)| ws)
}

#[tokio::test]
async fn echoes_text_and_binary_over_wss_and_closes_with_1000() {
    let srv = TlsServer::start();
    let url = format!("wss://{}/echo", srv.addr);
    let mut ws = connect_with(&url, Connector::Rustls(srv.client_config()))
        .await
        .expect("wss handshake");

    send_text(&mut ws, "hello over TLS ✓").await;
    assert_eq!(recv_text(&mut ws).await, "hello over TLS ✓");

    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    ws.send(Message::binary(data.clone())).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::binary(data));

    ws.send(close_frame(1000, "done"))
        .await
        .expect("send close");
    let (code, _reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1000, "the server's close frame echoes 1000");
    srv.stop().await;
}

#[tokio::test]
async fn plain_ws_to_the_tls_port_fails() {
    let srv = TlsServer::start();
    let url = format!("ws://{}/echo", srv.addr);
    match connect_with(&url, Connector::Plain).await {
        Ok(_) => panic!("a plain ws:// handshake succeeded on the TLS port"),
        Err(e) => eprintln!("ws:// to the TLS port fails as it should: {e}"),
    }
    // The port does listen: the same URL over wss:// goes through.
    let wss = format!("wss://{}/echo", srv.addr);
    let mut ws = connect_with(&wss, Connector::Rustls(srv.client_config()))
        .await
        .expect("wss handshake after the plain attempt");
    send_text(&mut ws, "still here").await;
    assert_eq!(recv_text(&mut ws).await, "still here");
    srv.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let srv = TlsServer::start();
    let url = format!("wss://{}/echo", srv.addr);
    let untrusting = Arc::new(client_config(RootCertStore::empty()));
    match connect_with(&url, Connector::Rustls(untrusting)).await {
        Ok(_) => panic!("the self-signed certificate was accepted without being trusted"),
        Err(e) => {
            let e = e.to_string();
            eprintln!("an untrusting client is refused: {e}");
            assert!(e.to_ascii_lowercase().contains("certificate"), "{e}");
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn the_page_is_served_over_https() {
    let srv = TlsServer::start();
    let (addr, config) = (srv.addr, srv.client_config());
    // A blocking rustls client on a std socket, with read and write timeouts.
    let response = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let tcp = std::net::TcpStream::connect(addr)?;
            tcp.set_read_timeout(Some(WAIT))?;
            tcp.set_write_timeout(Some(WAIT))?;
            let name = rustls::pki_types::ServerName::from(addr.ip());
            let conn =
                rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            write!(
                tls,
                "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )?;
            tls.flush()?;
            let mut out = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                // The server may close without a TLS close_notify: keep what came before.
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }),
    )
    .await
    .expect("https request within 5 s")
    .expect("request thread")
    .expect("https request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{response}"
    );
    assert!(response.contains("<!doctype html>"), "{response}");
    assert!(
        response.contains("\"wss://\" + location.host + \"/echo\""),
        "the page opens the wss echo: {response}"
    );
    srv.stop().await;
}

/// Tells the client, on open, whether its session is secure.
#[derive(Default)]
struct Secure;

#[server_endpoint("/secure")]
impl Secure {
    #[on_open]
    async fn open(&mut self, session: &Session) {
        let _ = session.text(session.is_secure().to_string()).await;
    }
}

fn secure_app(cfg: &mut web::ServiceConfig) {
    cfg.service(Secure::endpoint());
}

#[tokio::test]
async fn sessions_on_the_tls_listener_are_secure() {
    let srv = TlsServer::start_app(secure_app);
    let url = format!("wss://{}/secure", srv.addr);
    let mut ws = connect_with(&url, Connector::Rustls(srv.client_config()))
        .await
        .expect("wss handshake");
    assert_eq!(recv_text(&mut ws).await, "true");
    srv.stop().await;

    // The same endpoint on a plain listener.
    let plain = start(secure_app);
    let mut ws = connect(&plain.url("/secure")).await;
    assert_eq!(recv_text(&mut ws).await, "false");
    plain.stop().await;
}

// ---- the client endpoint over wss:// ---------------------------------------------------------

/// A client endpoint that hands what it receives to the test.
#[derive(Default)]
struct Received;

static RECEIVED: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>> =
    std::sync::Mutex::new(None);

#[client_endpoint]
impl Received {
    #[on_message]
    fn text(&mut self, msg: String) {
        if let Some(tx) = RECEIVED.lock().unwrap().as_ref() {
            let _ = tx.send(msg);
        }
    }
}

/// The TLS client tests share `RECEIVED`: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn receive() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    *RECEIVED.lock().unwrap() = Some(tx);
    rx
}

async fn received(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message within 5 s")
        .expect("channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_endpoint_connects_over_wss_trusting_its_own_root() {
    let _one = SERIAL.lock().await;
    let srv = TlsServer::start();
    let mut rx = receive();
    let client = Received::connector(format!("wss://localhost:{}/echo", srv.addr.port()))
        .tls_config(srv.client_config())
        .connect()
        .await
        .expect("wss connect");
    let session = client.session();
    assert!(session.is_secure());
    session.text("over TLS ✓").await.unwrap();
    assert_eq!(received(&mut rx).await, "over TLS ✓");
    let big = "y".repeat(50_000);
    session.text(big.clone()).await.unwrap();
    assert_eq!(received(&mut rx).await, big);
    assert_eq!(client.close(CloseReason::normal()).await.code_u16(), 1000);

    // By IP address too (the certificate names 127.0.0.1).
    let client = Received::connector(format!("wss://{}/echo", srv.addr))
        .tls_config(srv.client_config())
        .connect()
        .await
        .expect("wss connect by address");
    client.session().text("by address").await.unwrap();
    assert_eq!(received(&mut rx).await, "by address");
    client.close(CloseReason::normal()).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_endpoint_refuses_an_untrusted_certificate() {
    let _one = SERIAL.lock().await;
    let srv = TlsServer::start();
    // The default configuration: Mozilla's roots, which do not hold a self-signed certificate.
    let err = Received::connect(format!("wss://localhost:{}/echo", srv.addr.port()))
        .await
        .unwrap_err();
    match &err {
        ws_endpoint::client::ConnectError::Tls(e) => {
            assert!(
                e.to_string().to_ascii_lowercase().contains("certificate"),
                "{e}"
            )
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(!err.is_transient());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let _one = SERIAL.lock().await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (server_certs, server_key) = tls::self_signed().expect("server certificate");
    let (client_certs, client_key) = tls::self_signed().expect("client certificate");
    let mut client_roots = RootCertStore::empty();
    client_roots.add(client_certs[0].clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_certs.clone(), server_key)
        .unwrap();
    let srv = TlsServer::start_config(server_config, server_certs[0].clone(), tls::configure);
    let url = format!("wss://localhost:{}/echo", srv.addr.port());

    // Without a certificate: refused (in TLS 1.3 the refusal comes after the client's side of
    // the handshake, so it may surface as a TLS or an I/O error).
    let err = Received::connector(url.clone())
        .tls_config(srv.client_config())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ws_endpoint::client::ConnectError::Tls(_)
                | ws_endpoint::client::ConnectError::Io(_)
                | ws_endpoint::client::ConnectError::Handshake(_)
        ),
        "{err:?}"
    );

    // With it: accepted.
    let mut server_roots = RootCertStore::empty();
    server_roots.add(server_certs[0].clone()).unwrap();
    let with_cert = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(server_roots)
        .with_client_auth_cert(client_certs, client_key)
        .expect("client certificate");
    let mut rx = receive();
    let client = Received::connector(url)
        .tls_config(Arc::new(with_cert))
        .connect()
        .await
        .expect("mTLS connect");
    client.session().text("mutual").await.unwrap();
    assert_eq!(received(&mut rx).await, "mutual");
    client.close(CloseReason::normal()).await;
    srv.stop().await;
}
