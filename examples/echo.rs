//! Echo server: every text and binary message comes back unchanged.
//!
//! A stable target for conformance runs and benchmarks.
//!
//! ```text
//! cargo run --example echo                         # ws://127.0.0.1:9001/
//! ECHO_ADDR=0.0.0.0:9001 cargo run --example echo  # or: cargo run --example echo -- 127.0.0.1:9002
//! ```
//! Limits: 16 MiB per message, no idle timeout, heartbeat off (a conformance client need not
//! answer pings while it fuzzes).

use ws_endpoint::prelude::*;

/// The echo endpoint.
#[derive(Default)]
pub struct Echo;

#[server_endpoint("/", max_message_size = "16MiB", heartbeat = false)]
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

/// Registers the echo endpoint (also used by the example's test).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Echo::endpoint());
}

#[allow(dead_code)]
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ECHO_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let workers = std::env::var("ECHO_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let server = HttpServer::new(|| App::new().configure(configure))
        .with_ws_defaults()
        .workers(workers)
        .bind(&addr)?;
    println!("echo server on ws://{addr}/");
    server.run().await
}
