//! Benchmark harness for ws-endpoint (issue 5): the `#[server_endpoint]` echo against a
//! hand-written actix-ws loop and a tokio-tungstenite server, with a tokio-tungstenite load
//! generator. Run it with `cargo run --release -p ws-endpoint-bench -- all`; see `BENCHMARKS.md`
//! at the repository root.

#![warn(missing_docs)]

pub mod client;
pub mod report;
pub mod servers;
pub mod sys;
