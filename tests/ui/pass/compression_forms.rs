//! Every form of the `compression` attribute.
use ws_endpoint::prelude::*;

#[derive(Default)]
struct Off;

#[server_endpoint("/off", compression = false)]
impl Off {}

#[derive(Default)]
struct On;

#[server_endpoint("/on", compression = true)]
impl On {}

#[derive(Default)]
struct Tuned;

#[server_endpoint(
    "/tuned",
    compression(level = 1, min_size = "1KiB", context_takeover = true, max_window_bits = 10)
)]
impl Tuned {}

fn main() {
    assert!(Off::endpoint().config().compression.is_none());
    let on = On::endpoint().config().compression.unwrap();
    assert_eq!(on, ws_endpoint::Compression::default());
    let tuned = Tuned::endpoint().config().compression.unwrap();
    assert_eq!(
        (tuned.level, tuned.min_size, tuned.context_takeover, tuned.max_window_bits),
        (1, 1024, true, 10)
    );
}
