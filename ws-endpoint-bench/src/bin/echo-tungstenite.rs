//! Echo server (3) the tokio-tungstenite echo server on a current-thread runtime.
//!
//! ```text
//! echo-tungstenite 127.0.0.1:9001      # the address is the first argument (default 127.0.0.1:9001)
//! ```

fn main() -> std::io::Result<()> {
    let addr = ws_endpoint_bench::servers::addr_from_args("127.0.0.1:9001");
    ws_endpoint_bench::servers::tungstenite_echo(&addr)
}
