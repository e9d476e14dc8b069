//! Messages that arrive as a stream: [`BinaryStream`] and [`TextStream`], the payloads of an
//! `#[on_message]` handler that takes a message as it arrives (JSR 356 `InputStream` /
//! `Reader`).
//!
//! The connection future hands the handler its stream at the message's first frame and feeds it
//! chunk by chunk from the socket, through a channel of [`DEPTH`] chunks: while the handler
//! does not read, the socket is not read either (backpressure), so a message far larger than
//! memory (`max_message_size = "4GiB"`) costs a few chunks of memory.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use tokio::{
    io::{AsyncRead, ReadBuf},
    sync::mpsc,
};

use crate::{
    error::{EndpointError, MessageKind},
    message::{Message, MessagePayload},
};

/// Chunks that may wait between the socket and a streaming handler: with actix-http's reads of
/// at most 64 KiB (and inflated chunks of at most about 4 MiB), what a stream holds is bounded.
pub(crate) const DEPTH: usize = 2;

/// What a stream's chunks come from.
enum Source {
    /// The connection future, chunk by chunk; the flag says the message's last chunk was sent
    /// (a channel that ends without it is a message cut short: `Truncated`).
    Channel(
        mpsc::Receiver<Result<Bytes, EndpointError>>,
        Arc<AtomicBool>,
        bool,
    ),
    /// A whole message (a stream handler given a message that arrived whole).
    Once(Option<Bytes>),
}

/// The receiving end the connection future feeds (hidden: only the expansion names it).
#[doc(hidden)]
pub struct Incoming {
    source: Source,
}

impl Incoming {
    /// The sending end, the flag to set once the message's last chunk is sent, and the stream.
    pub(crate) fn channel() -> (
        mpsc::Sender<Result<Bytes, EndpointError>>,
        Arc<AtomicBool>,
        Incoming,
    ) {
        let (tx, rx) = mpsc::channel(DEPTH);
        let complete = Arc::new(AtomicBool::new(false));
        (
            tx,
            complete.clone(),
            Incoming {
                source: Source::Channel(rx, complete, false),
            },
        )
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, EndpointError>>> {
        match &mut self.source {
            Source::Channel(rx, complete, reported) => match rx.poll_recv(cx) {
                Poll::Ready(None) if !complete.load(Ordering::Acquire) && !*reported => {
                    *reported = true;
                    Poll::Ready(Some(Err(EndpointError::Truncated)))
                }
                other => other,
            },
            Source::Once(data) => Poll::Ready(data.take().map(Ok)),
        }
    }
}

/// A payload built from a stream (implemented by [`BinaryStream`] and [`TextStream`]).
#[doc(hidden)]
pub trait StreamPayload: MessagePayload {
    /// The payload over the chunks the connection future sends.
    fn from_stream(incoming: Incoming) -> Self;
}

/// A binary message as it arrives: a [`Stream`](futures_util::Stream) of `Bytes` chunks and a
/// [`tokio::io::AsyncRead`].
///
/// Take it in an `#[on_message]` handler to receive a message larger than memory, with
/// `max_message_size` as large as you need (up to `"4GiB"` and beyond): the socket is read only
/// as fast as the handler reads the stream. A handler that returns before the end discards the
/// rest of the message (the next message starts a new handler call). If the peer closes or
/// vanishes mid-message, the stream ends with [`EndpointError::Truncated`]; a frame that breaks
/// the protocol or the limit ends it with that error (and the session closes with its code
/// once the handler returns).
///
/// ```
/// use ws_endpoint::{prelude::*, BinaryStream};
///
/// #[derive(Default)]
/// struct Upload;
///
/// #[server_endpoint("/upload", max_message_size = "4GiB")]
/// impl Upload {
///     #[on_message]
///     async fn upload(&mut self, mut data: BinaryStream) -> Result<String, EndpointError> {
///         let mut bytes = 0;
///         while let Some(chunk) = data.next_chunk().await {
///             bytes += chunk?.len();
///         }
///         Ok(format!("{bytes} bytes"))
///     }
/// }
/// ```
pub struct BinaryStream {
    incoming: Incoming,
    /// What `AsyncRead` has not handed out of the last chunk.
    pending: Bytes,
}

impl BinaryStream {
    /// The next chunk, `None` at the message's end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, EndpointError>> {
        std::future::poll_fn(|cx| self.poll_next_chunk(cx)).await
    }

    fn poll_next_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, EndpointError>>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Some(Ok(std::mem::take(&mut self.pending))));
        }
        self.incoming.poll_chunk(cx)
    }

    /// Reads the whole rest of the message into memory (bounded by `max_message_size`).
    pub async fn to_bytes(mut self) -> Result<Bytes, EndpointError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(all))
    }
}

impl futures_util::Stream for BinaryStream {
    type Item = Result<Bytes, EndpointError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_chunk(cx)
    }
}

impl AsyncRead for BinaryStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match this.incoming.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(chunk))) => this.pending = chunk,
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Err(std::io::Error::other(err)));
                }
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl MessagePayload for BinaryStream {
    const KIND: MessageKind = MessageKind::Binary;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        let data = Bytes::from_message(msg)?;
        Ok(BinaryStream {
            incoming: Incoming {
                source: Source::Once(Some(data)),
            },
            pending: Bytes::new(),
        })
    }
}

impl StreamPayload for BinaryStream {
    fn from_stream(incoming: Incoming) -> Self {
        BinaryStream {
            incoming,
            pending: Bytes::new(),
        }
    }
}

/// A text message as it arrives: a [`Stream`](futures_util::Stream) of `String` chunks, each
/// whole UTF-8 (a character split between two frames or reads is carried over to the next
/// chunk), and a [`tokio::io::AsyncRead`] of its bytes. Validated as it arrives: invalid UTF-8
/// ends the stream with [`EndpointError::InvalidUtf8`] (and the session with 1007). Otherwise
/// as [`BinaryStream`].
pub struct TextStream {
    bytes: BinaryStream,
    /// The start of a character whose other bytes are in the next chunk.
    carry: Vec<u8>,
}

impl TextStream {
    /// The next chunk of text, `None` at the message's end.
    pub async fn next_chunk(&mut self) -> Option<Result<String, EndpointError>> {
        std::future::poll_fn(|cx| self.poll_next_text(cx)).await
    }

    fn poll_next_text(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<String, EndpointError>>> {
        loop {
            let chunk = match self.bytes.poll_next_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) if self.carry.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) => {
                    // The decoder checked the message whole: a dangling start cannot remain.
                    self.carry.clear();
                    return Poll::Ready(Some(Err(EndpointError::InvalidUtf8)));
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(Some(Ok(chunk))) => chunk,
            };
            let mut bytes = std::mem::take(&mut self.carry);
            bytes.extend_from_slice(&chunk);
            let valid = match std::str::from_utf8(&bytes) {
                Ok(_) => bytes.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => return Poll::Ready(Some(Err(EndpointError::InvalidUtf8))),
            };
            self.carry = bytes.split_off(valid);
            if bytes.is_empty() {
                continue;
            }
            // SAFETY: `bytes` is the valid prefix found just above.
            return Poll::Ready(Some(Ok(unsafe { String::from_utf8_unchecked(bytes) })));
        }
    }

    /// Reads the whole rest of the message into memory (bounded by `max_message_size`).
    pub async fn to_text(mut self) -> Result<String, EndpointError> {
        let mut all = String::new();
        while let Some(chunk) = self.next_chunk().await {
            all.push_str(&chunk?);
        }
        Ok(all)
    }
}

impl futures_util::Stream for TextStream {
    type Item = Result<String, EndpointError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_text(cx)
    }
}

impl AsyncRead for TextStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // The bytes are validated by the decoder as they arrive; a reader of bytes needs no
        // character boundaries.
        let this = self.get_mut();
        if !this.carry.is_empty() {
            let n = this.carry.len().min(buf.remaining());
            buf.put_slice(&this.carry[..n]);
            this.carry.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.bytes).poll_read(cx, buf)
    }
}

impl MessagePayload for TextStream {
    const KIND: MessageKind = MessageKind::Text;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        let text = String::from_message(msg)?;
        Ok(TextStream {
            bytes: BinaryStream {
                incoming: Incoming {
                    source: Source::Once(Some(Bytes::from(text.into_bytes()))),
                },
                pending: Bytes::new(),
            },
            carry: Vec::new(),
        })
    }
}

impl StreamPayload for TextStream {
    fn from_stream(incoming: Incoming) -> Self {
        TextStream {
            bytes: BinaryStream::from_stream(incoming),
            carry: Vec::new(),
        }
    }
}
