//! Echo server (1) the `#[server_endpoint]` echo (ws-endpoint), 1 worker, `with_ws_defaults()`.
//!
//! ```text
//! echo-macro 127.0.0.1:9001      # the address is the first argument (default 127.0.0.1:9001)
//! ```

fn main() -> std::io::Result<()> {
    let addr = ws_endpoint_bench::servers::addr_from_args("127.0.0.1:9001");
    ws_endpoint_bench::servers::macro_echo(&addr)
}
