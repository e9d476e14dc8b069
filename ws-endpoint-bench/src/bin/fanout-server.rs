//! The fan-out server (issue 4): `/fan` sessions join the room "all"; `/control` takes
//! `members` and `fire SEQ` (a `Hub::to_room` of a 64 B text message). 1 worker, no close
//! linger, `TCP_NODELAY`. With a Redis URL it calls `ws_endpoint::cluster::connect_redis` first,
//! so that a fire reaches the room's members on every server sharing that Redis.
//!
//! ```text
//! fanout-server 127.0.0.1:9001 [redis://127.0.0.1:6379/]
//! ```

fn main() -> std::io::Result<()> {
    let addr = ws_endpoint_bench::servers::addr_from_args("127.0.0.1:9001");
    let redis = std::env::args().nth(2);
    ws_endpoint_bench::fanout::serve(&addr, redis.as_deref())
}
