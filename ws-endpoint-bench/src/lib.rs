//! Benchmark harness for ws-endpoint (issue 5): the `#[server_endpoint]` echo against a
//! hand-written actix-ws loop and a tokio-tungstenite server, with a tokio-tungstenite load
//! generator; and the fan-out of one message to a room of 1,000 or 10,000 sessions, in one
//! process and through Redis (issue 4); and the same with permessage-deflate (a JSON corpus
//! echoed compressed, idle connections after one compressed message, a compressed fan-out),
//! driven by a compressing client of its own ([`deflate_client`]); and the server's memory
//! while one 1 GiB binary message is streamed to a `BinaryStream` endpoint ([`upload`]); and the
//! replay of missed room messages and cluster presence queries ([`history`]). Run it with
//! `cargo run --release -p ws-endpoint-bench -- all`; see `BENCHMARKS.md` at the repository root.

#![warn(missing_docs)]

pub mod client;
pub mod corpus;
pub mod deflate_client;
pub mod fanout;
pub mod heap;
pub mod history;
pub mod report;
pub mod servers;
pub mod sys;
pub mod upload;
