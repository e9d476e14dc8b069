//! A WebSocket client that speaks permessage-deflate (RFC 7692), for the compression scenarios
//! (tokio-tungstenite, the load generator of the other scenarios, does not implement it).
//!
//! The handshake is written here and its response parsed with `httparse`; frames are encoded
//! and decoded with ws-endpoint's own `wire` pieces (`encode_header`, `apply_mask`, `Decoder`)
//! and compressed with its `wire::deflate` codec (zlib-rs through flate2): no deflate code of
//! our own. The client offers what a browser offers, `permessage-deflate;
//! client_max_window_bits`, and follows what the server answers: with
//! `client_no_context_takeover` it compresses every message on its own (its deflater reset after
//! each one), without it it keeps its context across messages; with
//! `server_no_context_takeover` it inflates each message on its own, without it it keeps an
//! inflater (the server's window) for the connection.
//!
//! The same client without the offer is the uncompressed side of every comparison, so that the
//! only difference between the two runs is the compression.
//!
//! Measurements: [`echo`] (the JSON corpus of [`crate::corpus`] echoed: messages/s, server CPU
//! per message, bytes on the wire each way) and [`idle`] (server RSS per connection after one
//! compressed exchange). The fan-out listeners of [`crate::fanout`] use [`Conn`] too.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    net::SocketAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    task::JoinHandle,
    time::timeout,
};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use ws_endpoint::wire::{
    apply_mask,
    deflate::{compress_shared, inflate_shared, Deflater, Inflater, NAME},
    encode_header, DataKind, Decoder, Event, Limits, OpCode, Role,
};

use crate::{
    client::{new_histogram, CpuSnapshot, CpuUse, IdleOutcome, CONNECT_TIMEOUT},
    corpus, sys,
};

/// The client's zlib level: zlib's default, as browsers use.
pub const CLIENT_LEVEL: u32 = 6;

/// What the client offers: a browser's offer (Chrome, Firefox).
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The largest message the client accepts.
pub const MAX_MESSAGE: usize = 16 << 20;

/// The permessage-deflate parameters the server's response agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The server compresses every message on its own: the client inflates each on its own.
    pub server_no_context_takeover: bool,
    /// The client must compress every message on its own (reset after each).
    pub client_no_context_takeover: bool,
    /// The window the server compresses with (15 unless it said less).
    pub server_max_window_bits: u8,
    /// The window the client may compress with (15 unless the server said less).
    pub client_max_window_bits: u8,
}

/// Reads the `Sec-WebSocket-Extensions` response values. `Ok(None)`: no extension agreed.
/// An extension other than permessage-deflate, permessage-deflate twice, or a parameter the
/// RFC does not define is an error (the client offered none of them).
pub fn parse_agreement<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Agreement>, String> {
    let mut agreed = None;
    for value in values {
        for ext in value.split(',').filter(|e| !e.trim().is_empty()) {
            let mut parts = ext.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            if !name.eq_ignore_ascii_case(NAME) {
                return Err(format!("the server agreed to `{name}`, never offered"));
            }
            if agreed.is_some() {
                return Err("permessage-deflate agreed twice".to_owned());
            }
            let mut a = Agreement {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            };
            for param in parts.filter(|p| !p.is_empty()) {
                let (key, val) = match param.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (param, None),
                };
                let bits = || -> Result<u8, String> {
                    val.and_then(|v| v.parse::<u8>().ok())
                        .filter(|b| (8..=15).contains(b))
                        .ok_or_else(|| format!("bad `{param}` in the response"))
                };
                match key.to_ascii_lowercase().as_str() {
                    "server_no_context_takeover" => a.server_no_context_takeover = true,
                    "client_no_context_takeover" => a.client_no_context_takeover = true,
                    "server_max_window_bits" => a.server_max_window_bits = bits()?,
                    "client_max_window_bits" => a.client_max_window_bits = bits()?,
                    _ => return Err(format!("unknown parameter `{param}` in the response")),
                }
            }
            agreed = Some(a);
        }
    }
    Ok(agreed)
}

/// How a [`Conn`] is opened.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Offer permessage-deflate ([`OFFER`]).
    pub offer: bool,
    /// The socket's receive buffer (`SO_RCVBUF`), if set.
    pub recv_buffer: Option<u32>,
    /// Bytes read from the socket at a time (the read buffer each connection keeps).
    pub read_chunk: usize,
}

impl ConnectOptions {
    /// With (`offer`) or without the offer, a 64 KiB read buffer.
    pub fn new(offer: bool) -> Self {
        Self {
            offer,
            recv_buffer: None,
            read_chunk: 64 << 10,
        }
    }
}

/// One client connection, after the handshake.
pub struct Conn {
    stream: TcpStream,
    agreed: Option<Agreement>,
    /// The `Sec-WebSocket-Extensions` response, as received (empty: none).
    response: String,
    decoder: Decoder,
    /// Made at the first message compressed live (not with a message's precompressed form).
    deflater: Option<Box<Deflater>>,
    /// The server's window, kept when the server takes its context over.
    inflater: Option<Box<Inflater>>,
    chunk: Box<[u8]>,
    /// Bytes that came after the handshake response, decoded before the next read.
    early: Vec<u8>,
    mask_state: u32,
    /// Bytes read from the socket since the handshake.
    pub bytes_read: u64,
    /// Bytes written to the socket since the handshake.
    pub bytes_written: u64,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("agreed", &self.agreed)
            .field("bytes_read", &self.bytes_read)
            .field("bytes_written", &self.bytes_written)
            .finish_non_exhaustive()
    }
}

/// Opens a connection to `ws://addr{path}` (with `TCP_NODELAY`), offering permessage-deflate
/// if `opts.offer`.
pub async fn connect(addr: SocketAddr, path: &str, opts: ConnectOptions) -> Result<Conn, String> {
    timeout(CONNECT_TIMEOUT, connect_inner(addr, path, opts))
        .await
        .unwrap_or_else(|_| Err("connect timed out".to_owned()))
}

async fn connect_inner(addr: SocketAddr, path: &str, opts: ConnectOptions) -> Result<Conn, String> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(size) = opts.recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let mut stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let key = generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if opts.offer {
        request.push_str(&format!("Sec-WebSocket-Extensions: {OFFER}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("handshake write: {e}"))?;

    let mut buf = Vec::with_capacity(1024);
    let mut piece = [0u8; 1024];
    let (head_len, agreed, response) = loop {
        let n = stream
            .read(&mut piece)
            .await
            .map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("connection closed during the handshake".to_owned());
        }
        buf.extend_from_slice(&piece[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Partial) if buf.len() < 16 << 10 => continue,
            Ok(httparse::Status::Partial) => return Err("handshake response too long".into()),
            Err(e) => return Err(format!("handshake response: {e}")),
            Ok(httparse::Status::Complete(len)) => {
                if parsed.code != Some(101) {
                    return Err(format!(
                        "handshake refused: {} {}",
                        parsed.code.unwrap_or(0),
                        parsed.reason.unwrap_or("")
                    ));
                }
                let header = |name: &str| -> Vec<String> {
                    parsed
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                        .collect()
                };
                let accept = header("sec-websocket-accept").pop().unwrap_or_default();
                if accept.trim() != derive_accept_key(key.as_bytes()) {
                    return Err("wrong Sec-WebSocket-Accept".to_owned());
                }
                let extensions = header("sec-websocket-extensions");
                let agreed = parse_agreement(extensions.iter().map(String::as_str))?;
                if agreed.is_some() && !opts.offer {
                    return Err("the server agreed to permessage-deflate, never offered".into());
                }
                break (len, agreed, extensions.join(", "));
            }
        }
    };
    let limits = Limits {
        text: Some(MAX_MESSAGE),
        binary: Some(MAX_MESSAGE),
    };
    let mut decoder = Decoder::new(Role::Client, limits);
    if agreed.is_some() {
        // Compressed messages are handed over as they came ([`Event::Compressed`]): the
        // caller inflates them (or, knowing what they must be, checks them without).
        decoder = decoder.allow_rsv1();
    }
    Ok(Conn {
        stream,
        agreed,
        response,
        decoder,
        deflater: None,
        inflater: None,
        chunk: vec![0u8; opts.read_chunk.max(256)].into_boxed_slice(),
        early: buf.split_off(head_len),
        mask_state: (addr.port() as u32) << 16 | 0x9e37,
        bytes_read: 0,
        bytes_written: 0,
    })
}

/// Opens `n` connections, `batch` at a time. Returns those that opened and the errors.
pub async fn connect_many(
    addr: SocketAddr,
    path: &str,
    n: usize,
    batch: usize,
    opts: ConnectOptions,
) -> (Vec<Conn>, Vec<String>) {
    let mut open = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while open.len() + errors.len() < n {
        let count = batch.min(n - open.len() - errors.len());
        for result in join_all((0..count).map(|_| connect(addr, path, opts))).await {
            match result {
                Ok(conn) => open.push(conn),
                Err(e) => errors.push(e),
            }
        }
    }
    (open, errors)
}

impl Conn {
    /// The agreed parameters, `None` when the connection is not compressed.
    pub fn agreement(&self) -> Option<Agreement> {
        self.agreed
    }

    /// The `Sec-WebSocket-Extensions` response header (empty: none).
    pub fn response(&self) -> &str {
        &self.response
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift32: masks need not be unpredictable here (no proxy between).
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_ne_bytes()
    }

    /// Appends one masked frame to `out`.
    fn frame(&mut self, out: &mut Vec<u8>, opcode: OpCode, rsv1: bool, payload: &[u8]) {
        let mask = self.next_mask();
        encode_header(out, opcode, true, rsv1, Some(mask), payload.len());
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], mask, 0);
    }

    /// Appends a text message to `out` as one masked frame, compressed when the extension was
    /// agreed. `alone`: the message compressed on its own at [`CLIENT_LEVEL`] with a 15-bit
    /// window (what a freshly reset deflater makes of it), used instead of compressing again
    /// when the client takes no context over (the bytes are the same). Returns whether the
    /// frame is compressed.
    pub fn push_text(&mut self, text: &[u8], alone: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
        let Some(a) = self.agreed else {
            self.frame(out, OpCode::Text, false, text);
            return false;
        };
        match alone {
            Some(alone) if a.client_no_context_takeover && a.client_max_window_bits == 15 => {
                self.frame(out, OpCode::Text, true, alone);
            }
            _ => {
                let deflater = self.deflater.get_or_insert_with(|| {
                    Box::new(Deflater::new(CLIENT_LEVEL, a.client_max_window_bits))
                });
                let mut compressed = Vec::with_capacity(text.len() / 2 + 16);
                deflater.compress(text, &mut compressed);
                if a.client_no_context_takeover {
                    deflater.reset();
                }
                self.frame(out, OpCode::Text, true, &compressed);
            }
        }
        true
    }

    /// Writes `bytes` (whole frames) to the socket.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Reads once from the socket (or takes what came with the handshake response) and
    /// appends every event that completed to `events` (possibly none: part of a frame).
    pub async fn read_events(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            self.bytes_read += early.len() as u64;
            let mut input = &early[..];
            while let Some(event) = self.decoder.decode(&mut input).map_err(|e| e.to_string())? {
                events.push(event);
            }
            return Ok(());
        }
        let n = self
            .stream
            .read(&mut self.chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection ended".to_owned());
        }
        self.bytes_read += n as u64;
        let mut input = &self.chunk[..n];
        while let Some(event) = self.decoder.decode(&mut input).map_err(|e| e.to_string())? {
            events.push(event);
        }
        Ok(())
    }

    /// Inflates a compressed message's payload into `out` (appended): on its own when the
    /// server takes no context over, else with the connection's inflater.
    pub fn inflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let shared = self.agreed.is_none_or(|a| a.server_no_context_takeover);
        let result = if shared {
            inflate_shared(payload, MAX_MESSAGE, out, |_| Ok(()))
        } else {
            self.inflater.get_or_insert_with(Box::default).inflate(
                payload,
                MAX_MESSAGE,
                out,
                |_| Ok(()),
            )
        };
        result.map_err(|e| format!("inflate: {e}"))
    }

    /// The socket alone, the codec state and buffers dropped (an idle connection that will
    /// send and read nothing more).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// What the compression scenarios compare, against the `macro` echo server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// No offer (`/`): uncompressed. In [`idle`], connections that send nothing.
    Plain,
    /// No offer (`/`), in [`idle`] only: one uncompressed message echoed, then idle.
    PlainMsg,
    /// The offer, default endpoint (`/`): no context takeover either way.
    Deflate,
    /// The offer, the `/keep` endpoint (`compression(context_takeover = true)`): both sides
    /// keep their context.
    Keep,
}

impl Variant {
    /// Every variant, in the order the rounds alternate them.
    pub const ALL: [Variant; 4] = [
        Variant::Plain,
        Variant::PlainMsg,
        Variant::Deflate,
        Variant::Keep,
    ];

    /// The short name (command line, table columns).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::PlainMsg => "plain-msg",
            Variant::Deflate => "deflate",
            Variant::Keep => "keep",
        }
    }

    /// The echo endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Variant::Keep => "/keep",
            _ => "/",
        }
    }

    /// Whether the client offers permessage-deflate.
    pub fn offers(self) -> bool {
        matches!(self, Variant::Deflate | Variant::Keep)
    }

    /// Checks that the server agreed to what this variant measures.
    fn check(self, conn: &Conn) -> Result<(), String> {
        let ok = match (self, conn.agreement()) {
            (Variant::Plain | Variant::PlainMsg, None) => true,
            (Variant::Deflate, Some(a)) => {
                a.server_no_context_takeover && a.client_no_context_takeover
            }
            (Variant::Keep, Some(a)) => {
                !a.server_no_context_takeover && !a.client_no_context_takeover
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: the server answered `Sec-WebSocket-Extensions: {}`",
                self.name(),
                conn.response()
            ))
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown variant `{s}` (plain, plain-msg, deflate, keep)"))
    }
}

/// The corpus as the client sends it.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The documents.
    pub docs: Vec<Vec<u8>>,
    /// Each one compressed on its own ([`Conn::push_text`]'s `alone`).
    pub alone: Vec<Vec<u8>>,
}

impl Corpus {
    /// [`corpus::documents`], and each compressed on its own.
    pub fn new() -> Self {
        let docs: Vec<Vec<u8>> = corpus::documents()
            .into_iter()
            .map(String::into_bytes)
            .collect();
        let alone = docs
            .iter()
            .map(|d| compress_shared(CLIENT_LEVEL, 15, d))
            .collect();
        Self { docs, alone }
    }

    /// Mean document size, bytes.
    pub fn mean_size(&self) -> f64 {
        self.docs.iter().map(Vec::len).sum::<usize>() as f64 / self.docs.len().max(1) as f64
    }

    /// Sum of the documents compressed on their own / sum of the documents.
    pub fn alone_ratio(&self) -> f64 {
        let alone: usize = self.alone.iter().map(Vec::len).sum();
        let plain: usize = self.docs.iter().map(Vec::len).sum();
        alone as f64 / plain.max(1) as f64
    }

    /// The index of the document closest to `size` bytes.
    pub fn nearest(&self, size: usize) -> usize {
        (0..self.docs.len())
            .min_by_key(|&i| self.docs[i].len().abs_diff(size))
            .unwrap_or(0)
    }
}

impl Default for Corpus {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks that `event` is the echo of document `index`; returns whether it came compressed.
/// A compressed echo equal to the document compressed on its own (what a server without
/// context takeover at the client's level sends) is right without inflating it.
fn check_echo(
    conn: &mut Conn,
    corpus: &Corpus,
    index: usize,
    event: Event,
    scratch: &mut Vec<u8>,
) -> Result<bool, String> {
    let doc = &corpus.docs[index];
    match event {
        Event::Text(text) if text.as_bytes() == doc.as_slice() => Ok(false),
        Event::Text(text) => Err(format!(
            "echo of {} bytes differs from the {} sent",
            text.len(),
            doc.len()
        )),
        Event::Compressed {
            kind: DataKind::Text,
            payload,
        } => {
            let alone = conn
                .agreement()
                .is_some_and(|a| a.server_no_context_takeover);
            if alone && payload == corpus.alone[index] {
                return Ok(true);
            }
            scratch.clear();
            conn.inflate(&payload, scratch)?;
            if scratch == doc {
                Ok(true)
            } else {
                Err(format!(
                    "compressed echo inflates to {} bytes that differ from the {} sent",
                    scratch.len(),
                    doc.len()
                ))
            }
        }
        other => Err(format!("unexpected {other:?}")),
    }
}

/// One compressed echo measurement.
#[derive(Debug, Clone, Copy)]
pub struct EchoSpec {
    /// Connections.
    pub conns: usize,
    /// Messages in flight per connection.
    pub window: usize,
    /// What is compared.
    pub variant: Variant,
    /// Load before the measurement starts.
    pub warmup: Duration,
    /// Measured time.
    pub measure: Duration,
}

/// What [`echo`] measured.
#[derive(Debug, Clone)]
pub struct EchoOutcome {
    /// Echoes received per second.
    pub msgs_per_s: f64,
    /// Server CPU (user + system) per echo, µs.
    pub cpu_us_per_msg: f64,
    /// Server user CPU per echo, µs.
    pub user_us_per_msg: f64,
    /// Server system CPU per echo, µs.
    pub system_us_per_msg: f64,
    /// Bytes the client wrote per message sent (frames: headers and masks included).
    pub bytes_out_per_msg: f64,
    /// Bytes the client read per echo received.
    pub bytes_in_per_msg: f64,
    /// Echoes that came compressed, percent.
    pub compressed_pct: f64,
    /// CPU use during the measurement.
    pub cpu: CpuUse,
    /// Round trips, ns.
    pub latency: Histogram<u64>,
    /// Server RSS at the end, KiB.
    pub rss_kib: u64,
    /// Connections that failed, with the first errors.
    pub errors: Vec<String>,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

#[derive(Default)]
struct Counters {
    sent: Cell<u64>,
    received: Cell<u64>,
    compressed: Cell<u64>,
    bytes_out: Cell<u64>,
    bytes_in: Cell<u64>,
}

struct Shared {
    phase: Cell<u8>,
    counts: Counters,
    latency: RefCell<Histogram<u64>>,
}

fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get() + n);
}

/// One connection of [`echo`]: `window` documents in flight, cycling through the corpus from
/// `first`; each batch of echoes that arrived together is answered with as many new documents
/// in one write.
async fn echo_conn(
    mut conn: Conn,
    corpus: Rc<Corpus>,
    first: usize,
    window: usize,
    shared: Rc<Shared>,
) -> Result<(), String> {
    let n = corpus.docs.len();
    let mut next = first;
    let mut in_flight: VecDeque<(Instant, usize)> = VecDeque::with_capacity(window);
    let (mut out, mut events, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    let mut refill = window;
    loop {
        if refill > 0 {
            out.clear();
            for _ in 0..refill {
                let i = next % n;
                next += 1;
                conn.push_text(&corpus.docs[i], Some(&corpus.alone[i]), &mut out);
                in_flight.push_back((Instant::now(), i));
            }
            conn.write(&out).await?;
            if shared.phase.get() == MEASURE {
                add(&shared.counts.sent, refill as u64);
                add(&shared.counts.bytes_out, out.len() as u64);
            }
            refill = 0;
        }
        let before = conn.bytes_read;
        conn.read_events(&mut events).await?;
        let measuring = shared.phase.get() == MEASURE;
        if measuring {
            add(&shared.counts.bytes_in, conn.bytes_read - before);
        }
        for event in events.drain(..) {
            if matches!(event, Event::Ping(_) | Event::Pong(_)) {
                continue;
            }
            if let Event::Close(reason) = event {
                return Err(format!("server closed: {reason:?}"));
            }
            let (sent, index) = in_flight
                .pop_front()
                .ok_or("echo of a message never sent")?;
            let compressed = check_echo(&mut conn, &corpus, index, event, &mut scratch)?;
            if measuring {
                let elapsed = sent.elapsed().as_nanos().clamp(1, u64::MAX as u128) as u64;
                shared.latency.borrow_mut().saturating_record(elapsed);
                add(&shared.counts.received, 1);
                add(&shared.counts.compressed, u64::from(compressed));
            }
            refill += 1;
        }
        if shared.phase.get() == STOP {
            return Ok(());
        }
    }
}

fn per(total: f64, count: u64) -> f64 {
    if count > 0 {
        total / count as f64
    } else {
        f64::NAN
    }
}

/// Runs `spec` against the echo server at `addr` (process `pid`). Must run inside a `LocalSet`.
pub async fn echo(
    addr: SocketAddr,
    pid: u32,
    spec: EchoSpec,
    corpus: Rc<Corpus>,
) -> Result<EchoOutcome, String> {
    let opts = ConnectOptions::new(spec.variant.offers());
    let (conns, mut errors) = connect_many(addr, spec.variant.path(), spec.conns, 100, opts).await;
    if conns.is_empty() {
        return Err(format!("no connection opened: {errors:?}"));
    }
    for conn in &conns {
        spec.variant.check(conn)?;
    }
    let shared = Rc::new(Shared {
        phase: Cell::new(WARMUP),
        counts: Counters::default(),
        latency: RefCell::new(new_histogram()),
    });
    let n = corpus.docs.len();
    let mut tasks: Vec<JoinHandle<Result<(), String>>> = conns
        .into_iter()
        .enumerate()
        .map(|(k, conn)| {
            let first = (k * 7) % n;
            tokio::task::spawn_local(echo_conn(
                conn,
                corpus.clone(),
                first,
                spec.window,
                shared.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(spec.warmup).await;
    let cpu0 = CpuSnapshot::take(pid)?;
    shared.phase.set(MEASURE);
    tokio::time::sleep(spec.measure).await;
    shared.phase.set(STOP);
    let cpu = cpu0.until(&CpuSnapshot::take(pid)?);
    let rss_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;

    for task in &mut tasks {
        match timeout(Duration::from_secs(2), &mut *task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(e),
            Ok(Err(e)) => errors.push(format!("task: {e}")),
            Err(_) => {
                task.abort();
                errors.push("no reply within 2 s of the end".to_owned());
            }
        }
    }
    let c = &shared.counts;
    let received = c.received.get();
    let latency = shared.latency.borrow().clone();
    Ok(EchoOutcome {
        msgs_per_s: received as f64 / cpu.wall,
        cpu_us_per_msg: per(cpu.server_secs * 1e6, received),
        user_us_per_msg: per(cpu.server_user_secs * 1e6, received),
        system_us_per_msg: per(cpu.server_system_secs * 1e6, received),
        bytes_out_per_msg: per(c.bytes_out.get() as f64, c.sent.get()),
        bytes_in_per_msg: per(c.bytes_in.get() as f64, received),
        compressed_pct: per(c.compressed.get() as f64 * 100.0, received),
        cpu,
        latency,
        rss_kib,
        errors,
    })
}

/// What [`idle`] measured.
#[derive(Debug, Clone)]
pub struct IdleDeflateOutcome {
    /// RSS before and with the connections, and the connections that opened.
    pub idle: IdleOutcome,
    /// Connections whose one echo came compressed.
    pub compressed: usize,
}

/// Opens one idle connection of `variant`: unless [`Variant::Plain`], it sends document `index`
/// and reads its echo first. Returns the socket alone and whether the echo came compressed.
async fn idle_conn(
    addr: SocketAddr,
    variant: Variant,
    corpus: &Corpus,
    index: usize,
) -> Result<(TcpStream, bool), String> {
    let opts = ConnectOptions {
        read_chunk: 4096,
        ..ConnectOptions::new(variant.offers())
    };
    let mut conn = connect(addr, variant.path(), opts).await?;
    variant.check(&conn)?;
    if variant == Variant::Plain {
        return Ok((conn.into_stream(), false));
    }
    let mut out = Vec::new();
    // Without context takeover the precompressed form; with it the connection's own deflater
    // (made for this one message, dropped with the connection's codec state below).
    conn.push_text(&corpus.docs[index], Some(&corpus.alone[index]), &mut out);
    conn.write(&out).await?;
    let mut events = Vec::new();
    let echo = timeout(CONNECT_TIMEOUT, async {
        loop {
            conn.read_events(&mut events).await?;
            if let Some(pos) = events
                .iter()
                .position(|e| !matches!(e, Event::Ping(_) | Event::Pong(_)))
            {
                return Ok::<Event, String>(events.swap_remove(pos));
            }
        }
    })
    .await
    .map_err(|_| "no echo within 10 s".to_owned())??;
    let compressed = check_echo(&mut conn, corpus, index, echo, &mut Vec::new())?;
    Ok((conn.into_stream(), compressed))
}

/// Opens `n` connections of `variant` (`batch` at a time), each of which exchanges one ~1 KiB
/// document of the corpus (unless [`Variant::Plain`]) and then stays idle; reads the server's
/// RSS before and with them (after `settle`). Must run inside a `LocalSet`.
pub async fn idle(
    addr: SocketAddr,
    pid: u32,
    n: usize,
    batch: usize,
    variant: Variant,
    settle: Duration,
) -> Result<IdleDeflateOutcome, String> {
    let corpus = Corpus::new();
    let index = corpus.nearest(1024);
    let rss_before_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut open = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut compressed = 0;
    while open.len() + errors.len() < n {
        let count = batch.min(n - open.len() - errors.len());
        let round = (0..count).map(|_| idle_conn(addr, variant, &corpus, index));
        for result in join_all(round).await {
            match result {
                Ok((stream, c)) => {
                    open.push(stream);
                    compressed += usize::from(c);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let rss_with_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let opened = open.len();
    drop(open);
    Ok(IdleDeflateOutcome {
        idle: IdleOutcome {
            opened,
            errors,
            rss_before_kib,
            rss_with_kib,
            connect_secs,
        },
        compressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreements_are_read() {
        let a = parse_agreement([
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ])
        .unwrap()
        .unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (15, 15)
        );
        let a = parse_agreement(["permessage-deflate; client_max_window_bits=\"10\""])
            .unwrap()
            .unwrap();
        assert!(!a.server_no_context_takeover && !a.client_no_context_takeover);
        assert_eq!(a.client_max_window_bits, 10);
        assert_eq!(parse_agreement([]).unwrap(), None);
        assert!(parse_agreement(["x-webkit-deflate-frame"]).is_err());
        assert!(parse_agreement(["permessage-deflate, permessage-deflate"]).is_err());
        assert!(parse_agreement(["permessage-deflate; client_max_window_bits=16"]).is_err());
    }

    /// Both modes against the bench's own `macro` echo server, in this process.
    #[test]
    fn echoes_compressed_with_and_without_context_takeover() {
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
        let corpus = Corpus::new();
        runtime.block_on(async {
            for variant in [Variant::Plain, Variant::Deflate, Variant::Keep] {
                let mut conn = connect(addr, variant.path(), ConnectOptions::new(variant.offers()))
                    .await
                    .unwrap();
                variant.check(&conn).unwrap();
                let (mut events, mut scratch) = (Vec::new(), Vec::new());
                // Every document, twice (the second time, with context takeover, the server
                // and the client refer back to the first).
                for round in 0..2 {
                    for i in 0..corpus.docs.len() {
                        let mut out = Vec::new();
                        let alone = (round == 0).then(|| corpus.alone[i].as_slice());
                        let sent_compressed = conn.push_text(&corpus.docs[i], alone, &mut out);
                        assert_eq!(sent_compressed, variant.offers());
                        conn.write(&out).await.unwrap();
                        while events.is_empty() {
                            conn.read_events(&mut events).await.unwrap();
                        }
                        let compressed =
                            check_echo(&mut conn, &corpus, i, events.remove(0), &mut scratch)
                                .unwrap();
                        assert_eq!(compressed, variant.offers(), "{variant:?} doc {i}");
                    }
                }
            }
        });
    }
}
