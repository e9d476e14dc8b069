//! Echo server (2) the hand-written actix-ws 0.4 echo loop, 1 worker, no close linger,
//! `TCP_NODELAY`.
//!
//! ```text
//! echo-actix-ws 127.0.0.1:9001      # the address is the first argument (default 127.0.0.1:9001)
//! ```

fn main() -> std::io::Result<()> {
    let addr = ws_endpoint_bench::servers::addr_from_args("127.0.0.1:9001");
    ws_endpoint_bench::servers::actix_ws_echo(&addr)
}
