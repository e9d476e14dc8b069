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

#[derive(Default)]
struct Echo;

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
    let server = HttpServer::new(|| App::new().service(Echo::endpoint()))
        .with_ws_defaults()
        .workers(workers)
        .bind(&addr)?;
    println!("echo server on ws://{addr}/");
    server.run().await
}
