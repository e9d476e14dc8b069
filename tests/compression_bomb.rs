//! A decompression bomb: a 64 KiB compressed frame that would inflate to 64 MiB, against a
//! 16 MiB limit. The server stops inflating at the limit: `on_error(MessageTooBig)` once, close
//! 1009, and the process's peak memory grows by less than the limit plus a few MiB.
//!
//! Its own test binary, so that the peak RSS it reads belongs to this test alone.

mod common;

use std::process::Command;

use common::*;
use ws_endpoint::prelude::*;

struct Target {
    log: web::Data<Log>,
}

#[server_endpoint("/bomb", heartbeat = false, max_message_size = "16MiB")]
impl Target {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Target { log }
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) {
        self.log.push(format!("message {}", data.len()));
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        let kind = match err {
            EndpointError::MessageTooBig { limit, .. } => format!("too big, limit {limit}"),
            other => other.to_string(),
        };
        self.log.push(format!("error {kind}"));
    }
}

/// This process's resident set and its peak since the last reset, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 64 MiB of zeros, deflated by an independent implementation (Python's zlib): about 64 KiB.
fn bomb() -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zlib\n\
             c = zlib.compressobj(9, zlib.DEFLATED, -15)\n\
             data = c.compress(bytes(64 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)\n\
             assert data.endswith(b'\\x00\\x00\\xff\\xff')\n\
             sys.stdout.buffer.write(data[:-4])",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[actix_web::test]
async fn a_bomb_gets_1009_without_inflating_past_the_limit() {
    let payload = bomb();
    assert!(
        payload.len() < 80 * 1024,
        "the bomb is {} bytes",
        payload.len()
    );
    let s = start(|cfg| {
        cfg.service(Target::endpoint());
    });
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    let mut raw = Raw::connect_with(s.addr, "/bomb", offer).await;
    assert!(raw.head.contains("permessage-deflate"));
    let frame = Raw::frame(0xC2, &payload);
    // A first, harmless compressed message: the shared inflater and buffers exist before the
    // baseline is taken.
    let mut small = Vec::new();
    ws_endpoint::wire::deflate::Deflater::new(6, 15).compress(&[1u8; 1000], &mut small);
    raw.send_frame(0xC2, &small).await;
    s.log.wait_for("message 1000").await;

    // Reset the peak ("5" to clear_refs resets VmHWM to the current RSS).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = rss_kib();
    raw.send_raw(&frame).await;
    assert_eq!(raw.expect_close().await.0, 1009);
    s.log.wait_for("error too big").await;
    let (_, peak) = rss_kib();

    assert_eq!(s.log.count("error"), 1, "{:?}", s.log.events());
    assert_eq!(
        s.log.count("message"),
        1,
        "the bomb never reached a handler"
    );
    assert!(s
        .log
        .events()
        .contains(&format!("error too big, limit {}", 16 << 20)));
    let grown_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!("peak RSS grew by {grown_mib:.1} MiB while refusing the bomb (limit 16 MiB)");
    assert!(
        grown_mib < 16.0 + 6.0,
        "peak RSS grew by {grown_mib:.1} MiB (more than the 16 MiB limit + 6 MiB)"
    );
    s.stop().await;
}
