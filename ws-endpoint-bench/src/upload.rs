//! The `upload` scenario's client: one binary message of `--upload-mib` MiB (default 1 GiB)
//! streamed to the macro server's `/upload` endpoint (a [`ws_endpoint::BinaryStream`] handler,
//! as `examples/upload.rs`), while the server's RSS is sampled from `/proc` by a thread of its
//! own; then the reply `{"bytes": N, "sha256": "<hex>"}` is read and checked against the
//! length and the SHA-256 the client computed of the same bytes beforehand.
//!
//! The connection is the plain (uncompressed) one of [`crate::deflate_client`]: handshake by
//! hand, reply decoded with ws-endpoint's `wire::Decoder`. Frames are written by hand: masked
//! with the all-zero key (valid, RFC 6455 §5.3, and the payload then goes out as it is: no
//! masking pass on the client), in [`Framing::Frames`] of 1 MiB (a `Binary` frame, then
//! `Continuation`s, the last with FIN) or as [`Framing::OneFrame`] (one header with the whole
//! length, then the payload). Both send the same payload: [`BLOCK`]-sized blocks of the same
//! pseudo-random bytes, block `k` beginning with `k` (8 bytes, little endian), so that a lost,
//! repeated or reordered block changes the hash.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use tokio::time::timeout;
use ws_endpoint::wire::{encode_header, Event, OpCode};

use crate::{
    client::{heap, CpuSnapshot, CpuUse},
    deflate_client::{self, ConnectOptions},
    sys,
};

/// The block the payload is made of, and the size of a frame of [`Framing::Frames`].
pub const BLOCK: usize = 1 << 20;

/// The endpoint's path on the macro server.
pub const PATH: &str = "/upload";

/// The zero masking key: the frames' payload is written as it is.
const MASK: [u8; 4] = [0; 4];

/// How the message is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Frames of [`BLOCK`] bytes.
    Frames,
    /// One frame for the whole message.
    OneFrame,
}

impl Framing {
    /// Both, in the order the rounds alternate them.
    pub const ALL: [Framing; 2] = [Framing::Frames, Framing::OneFrame];

    /// The short name (table columns).
    pub fn name(self) -> &'static str {
        match self {
            Framing::Frames => "1 MiB frames",
            Framing::OneFrame => "one frame",
        }
    }
}

/// The payload: one block of pseudo-random bytes (a fixed seed), stamped with each block's
/// index in turn.
#[derive(Debug, Clone)]
pub struct Payload {
    block: Vec<u8>,
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl Payload {
    /// The block, from a fixed seed (the same every run).
    pub fn new() -> Self {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut block = Vec::with_capacity(BLOCK);
        while block.len() < BLOCK {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            block.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        Self { block }
    }

    /// Block `k` of the payload.
    fn stamped(&mut self, k: u64) -> &[u8] {
        stamp(&mut self.block, k);
        &self.block
    }

    /// The SHA-256 (lowercase hex) of a payload of `blocks` blocks.
    pub fn sha256(&mut self, blocks: u64) -> String {
        let mut hasher = Sha256::new();
        for k in 0..blocks {
            hasher.update(self.stamped(k));
        }
        hex(&hasher.finalize())
    }
}

fn stamp(block: &mut [u8], k: u64) {
    block[..8].copy_from_slice(&k.to_le_bytes());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadSpec {
    /// The message's size, in [`BLOCK`]s (MiB).
    pub blocks: u64,
    /// How it is cut into frames.
    pub framing: Framing,
    /// How often the server's RSS is sampled.
    pub sample_every: Duration,
}

/// What [`upload`] measured.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    /// Server RSS before the client connected, KiB.
    pub rss_idle_kib: u64,
    /// Most server RSS seen from the first byte written to the reply, KiB.
    pub rss_peak_kib: u64,
    /// Server RSS right after the reply, KiB.
    pub rss_after_kib: u64,
    /// RSS samples taken during the upload.
    pub samples: usize,
    /// The longest time between two samples.
    pub max_gap: Duration,
    /// Server heap in use before the client connected, bytes (`GET /heap`).
    pub heap_idle: Option<usize>,
    /// Most server heap in use from then to the reply, bytes.
    pub heap_peak: Option<usize>,
    /// Seconds from the first byte written to the reply.
    pub secs: f64,
    /// Seconds from the first byte written to the last.
    pub write_secs: f64,
    /// CPU use from the first byte written to the reply.
    pub cpu: CpuUse,
    /// Bytes written to the socket (frame headers included).
    pub wire_bytes: u64,
    /// Frames the message was sent in.
    pub frames: u64,
}

impl UploadOutcome {
    /// Payload MiB per second, first byte written to reply.
    pub fn mib_per_s(&self, blocks: u64) -> f64 {
        blocks as f64 / self.secs
    }
}

/// Samples a process's RSS every `every` on a thread of its own until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, usize, Duration)>,
}

impl Sampler {
    fn start(pid: u32, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut peak, mut samples, mut max_gap) = (0, 0, Duration::ZERO);
                let mut last = Instant::now();
                while let Ok(rss) = sys::rss_kib(pid) {
                    let now = Instant::now();
                    if samples > 0 {
                        max_gap = max_gap.max(now - last);
                    }
                    last = now;
                    peak = peak.max(rss);
                    samples += 1;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(every);
                }
                (peak, samples, max_gap)
            })
        };
        Sampler { stop, thread }
    }

    /// Stops the thread after one last sample: (peak RSS KiB, samples, longest gap).
    fn finish(self) -> (u64, usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0, Duration::ZERO))
    }
}

/// Streams one message of `spec.blocks` MiB of `payload` to `ws://addr/upload` (the server is
/// process `pid`), sampling the server's RSS meanwhile, and checks the reply's length and
/// SHA-256 (`expected_sha256`, from [`Payload::sha256`]). A wrong or missing reply is an error.
pub async fn upload(
    addr: SocketAddr,
    pid: u32,
    spec: UploadSpec,
    payload: &mut Payload,
    expected_sha256: &str,
) -> Result<UploadOutcome, String> {
    let err = |e: std::io::Error| e.to_string();
    let heap_idle = heap(addr, true).await.map(|(now, _)| now);
    let rss_idle_kib = sys::rss_kib(pid).map_err(err)?;
    let mut conn = deflate_client::connect(addr, PATH, ConnectOptions::new(false)).await?;
    let total = spec.blocks * BLOCK as u64;

    // The frames of 1 MiB: header and payload in one buffer, one write each.
    let mut frame = Vec::with_capacity(BLOCK + 14);
    let sampler = Sampler::start(pid, spec.sample_every);
    let cpu0 = CpuSnapshot::take(pid)?;
    let t0 = Instant::now();
    let mut frames = 0;
    match spec.framing {
        Framing::Frames => {
            for k in 0..spec.blocks {
                frame.clear();
                let opcode = if k == 0 {
                    OpCode::Binary
                } else {
                    OpCode::Continuation
                };
                encode_header(
                    &mut frame,
                    opcode,
                    k + 1 == spec.blocks,
                    false,
                    Some(MASK),
                    BLOCK,
                );
                frame.extend_from_slice(payload.stamped(k));
                conn.write(&frame).await?;
                frames += 1;
            }
        }
        Framing::OneFrame => {
            let len = usize::try_from(total).map_err(|_| "message too large".to_owned())?;
            encode_header(&mut frame, OpCode::Binary, true, false, Some(MASK), len);
            conn.write(&frame).await?;
            for k in 0..spec.blocks {
                conn.write(payload.stamped(k)).await?;
            }
            frames = 1;
        }
    }
    let write_secs = t0.elapsed().as_secs_f64();

    let mut events = Vec::new();
    let reply = timeout(Duration::from_secs(60), async {
        loop {
            conn.read_events(&mut events).await?;
            for event in events.drain(..) {
                match event {
                    Event::Ping(_) | Event::Pong(_) => {}
                    Event::Text(text) => return Ok(text),
                    Event::Close(reason) => return Err(format!("server closed: {reason:?}")),
                    other => return Err(format!("unexpected reply {other:?}")),
                }
            }
        }
    })
    .await
    .map_err(|_| "no reply within 60 s of the last byte".to_owned())??;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu0.until(&CpuSnapshot::take(pid)?);
    let (rss_peak_kib, samples, max_gap) = sampler.finish();
    let rss_after_kib = sys::rss_kib(pid).map_err(err)?;
    let heap_peak = heap(addr, false).await.map(|(_, peak)| peak);

    let json: serde_json::Value =
        serde_json::from_str(&reply).map_err(|e| format!("reply `{reply}`: {e}"))?;
    let bytes = json.get("bytes").and_then(serde_json::Value::as_u64);
    if bytes != Some(total) {
        return Err(format!("reply `{reply}`: expected {total} bytes"));
    }
    let sha = json.get("sha256").and_then(serde_json::Value::as_str);
    if sha != Some(expected_sha256) {
        return Err(format!(
            "reply `{reply}`: expected sha256 {expected_sha256}"
        ));
    }
    Ok(UploadOutcome {
        rss_idle_kib,
        rss_peak_kib,
        rss_after_kib,
        samples,
        max_gap,
        heap_idle,
        heap_peak,
        secs,
        write_secs,
        cpu,
        wire_bytes: conn.bytes_written,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_stamped_and_the_hash_follows() {
        let mut p = Payload::new();
        assert_eq!(p.block.len(), BLOCK);
        assert_eq!(&p.stamped(7)[..8], &7u64.to_le_bytes());
        let (two, three) = (p.sha256(2), p.sha256(3));
        assert_eq!(two.len(), 64);
        assert_ne!(two, three);
        assert_eq!(two, Payload::new().sha256(2));
    }

    /// Both framings of a 3 MiB message against the bench's own `macro` server, in this
    /// process: the endpoint's reply matches.
    #[test]
    fn uploads_are_counted_and_hashed() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        std::thread::spawn(move || crate::servers::macro_echo(&addr.to_string()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut payload = Payload::new();
        let sha = payload.sha256(3);
        for framing in Framing::ALL {
            let spec = UploadSpec {
                blocks: 3,
                framing,
                sample_every: Duration::from_millis(5),
            };
            let o = runtime
                .block_on(upload(addr, std::process::id(), spec, &mut payload, &sha))
                .unwrap();
            assert_eq!(o.frames, if framing == Framing::Frames { 3 } else { 1 });
            assert!(o.samples >= 1 && o.rss_peak_kib > 0);
            assert_eq!(o.wire_bytes, 3 * BLOCK as u64 + 14 * o.frames);
        }
    }
}
