//! Uploads of up to 4 GiB, taken as a stream: `ws://127.0.0.1:8080/upload` takes one binary
//! message (in one frame or many, compressed or not), computes its length and SHA-256 while it
//! arrives, and replies with the text `{"bytes": N, "sha256": "<hex>"}`.
//!
//! ```text
//! cargo run --example upload                    # ws://127.0.0.1:8080/upload
//! cargo run --example upload -- 127.0.0.1:9000  # another address
//! ```
//!
//! The message is never held in memory: the handler reads a [`BinaryStream`] chunk by chunk
//! and the socket is read only as fast as the handler hashes (backpressure), so the server's
//! memory stays flat whatever the size (BENCHMARKS.md measures it during a 1 GiB upload).

use sha2::{Digest, Sha256};
use ws_endpoint::{prelude::*, BinaryStream};

/// The upload endpoint: one message per upload, as many uploads per connection as wanted.
#[derive(Default)]
pub struct Upload;

#[server_endpoint("/upload", max_binary_message_size = "4GiB", idle_timeout = "5m")]
impl Upload {
    #[on_message]
    async fn upload(&mut self, mut data: BinaryStream) -> Result<String, EndpointError> {
        let mut hasher = Sha256::new();
        let mut bytes: u64 = 0;
        while let Some(chunk) = data.next_chunk().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(format!(r#"{{"bytes": {bytes}, "sha256": "{hex}"}}"#))
    }

    #[on_message]
    fn text(&mut self, _msg: String) -> &'static str {
        r#"{"error": "send the file as one binary message"}"#
    }
}

/// Registers the endpoint (also used by the example's test).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Upload::endpoint());
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
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    println!("upload endpoint on ws://{addr}/upload");
    HttpServer::new(|| App::new().configure(configure))
        .with_ws_defaults()
        .bind(addr)?
        .run()
        .await
}
