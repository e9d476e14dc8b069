//! Messages sent in parts (JSR 356 `sendText(part, isLast)`, `getSendWriter()`,
//! `getSendStream()`): [`Session::send_partial`], [`TextWriter`] and [`BinaryWriter`].
//!
//! Each part goes out as one frame: the message's opcode first, continuation frames after, FIN
//! on the last. While a message is open, no other data message is written between its frames:
//! other sends and broadcasts queue behind it (within `max_buffered`; beyond it a send waits
//! for the message to end, without counting that wait against `send_timeout`, and a broadcast
//! applies `slow_consumer`). Pings, pongs and the close frame are not held back.
//!
//! With permessage-deflate agreed (without context takeover), a message sent in parts is
//! compressed as it goes: each part is deflated and flushed as it is sent, with a compressor
//! of the message's own. With context takeover the parts go uncompressed (the session's own
//! compressor belongs to its whole messages).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;

use super::{lock, OutFrame, Refused, Session};
use crate::{
    close::{CloseCode, CloseReason},
    error::SendError,
    message::{Message, Sendable},
    wire::{deflate::Deflater, OpCode, Utf8Validator},
};

use super::outbound::Deflate;

/// A writer's parts are buffered up to this many bytes, then sent as one frame.
const WRITER_FRAME: usize = 32 * 1024;

/// The session's message in parts, while one is open.
#[derive(Default)]
pub(crate) struct PartialOut {
    /// The open message's kind.
    kind: Option<OpCode>,
    /// A writer holds the message (`send_partial` may not add to it).
    writer: bool,
    /// The message's compressor, when its parts are compressed.
    deflater: Option<Box<Deflater>>,
}

impl Session {
    /// Sends one part of a message (JSR 356 `sendText(part, isLast)` / `sendBinary(part,
    /// isLast)`): the first part opens a text or binary message (by the part's kind), `last`
    /// ends it. Until then no other data message goes out between its frames (see the module
    /// docs); a part of the other kind is refused with [`SendError::MessageInProgress`], as is
    /// a part while a [`TextWriter`] / [`BinaryWriter`] holds the message.
    ///
    /// Send the parts of one message from one task at a time (in order). A message left open
    /// holds the session's other data messages back until it ends or the session closes.
    ///
    /// ```
    /// # async fn f(session: &ws_endpoint::Session) -> Result<(), ws_endpoint::SendError> {
    /// session.send_partial("Hello, ", false).await?;
    /// session.send_partial("world", true).await?; // the peer gets "Hello, world"
    /// # Ok(()) }
    /// ```
    pub async fn send_partial<T: Sendable>(&self, part: T, last: bool) -> Result<(), SendError> {
        let (kind, payload) = match part.into_message()? {
            Message::Text(text) => (OpCode::Text, Bytes::from(text.into_bytes())),
            Message::Binary(data) => (OpCode::Binary, data),
            Message::Pong(_) => {
                return Err(SendError::Encode(
                    "a pong is a control frame: it cannot be a message part".into(),
                ))
            }
        };
        self.send_part(kind, payload, last, false).await
    }

    /// A writer of one text message, sent in parts (JSR 356 `getSendWriter()`): a
    /// `tokio::io::AsyncWrite` (bytes that must form UTF-8 as a whole) and a
    /// `futures::Sink<String>`, plus [`TextWriter::send`] and [`TextWriter::finish`]. Waits
    /// while another message in parts is open. See [`BinaryWriter`] for what a dropped,
    /// unfinished writer does.
    pub async fn text_writer(&self) -> Result<TextWriter, SendError> {
        self.claim_writer().await?;
        Ok(TextWriter {
            inner: Writer::new(self.clone(), OpCode::Text),
            utf8: Utf8Validator::default(),
        })
    }

    /// A writer of one binary message, sent in parts (JSR 356 `getSendStream()`): a
    /// `tokio::io::AsyncWrite` and a `futures::Sink<Bytes>`, plus [`BinaryWriter::send`] and
    /// [`BinaryWriter::finish`]. Waits while another message in parts is open.
    ///
    /// Finish it with [`finish`](BinaryWriter::finish) (or `AsyncWriteExt::shutdown`,
    /// `SinkExt::close`). A writer dropped before its message is finished closes the session
    /// with **1011** "message left unfinished": a WebSocket message cannot be withdrawn once
    /// its first frame is out, and ending it early would hand the peer a truncated message as
    /// if it were whole.
    ///
    /// ```
    /// # async fn f(session: &ws_endpoint::Session) -> Result<(), ws_endpoint::SendError> {
    /// use tokio::io::AsyncWriteExt;
    /// let mut w = session.binary_writer().await?;
    /// w.write_all(&[1, 2, 3]).await.map_err(|_| ws_endpoint::SendError::Closed)?;
    /// w.finish().await?;
    /// # Ok(()) }
    /// ```
    pub async fn binary_writer(&self) -> Result<BinaryWriter, SendError> {
        self.claim_writer().await?;
        Ok(BinaryWriter {
            inner: Writer::new(self.clone(), OpCode::Binary),
        })
    }

    /// Waits until no message in parts is open, then holds the session's message for a writer.
    async fn claim_writer(&self) -> Result<(), SendError> {
        loop {
            // Every release of the message (its last part, or the session closing) notifies.
            let released = self.inner.out.ended_notified();
            let mut released = std::pin::pin!(released);
            released.as_mut().enable();
            if !self.is_open() {
                return Err(SendError::Closed);
            }
            {
                let mut st = lock(&self.inner.partial);
                if st.kind.is_none() && !st.writer {
                    st.writer = true;
                    return Ok(());
                }
            }
            released.await;
        }
    }

    /// Sends one part: compressed (as the message's first part decided), then queued, waiting
    /// for room at most `send_timeout` as any send.
    pub(crate) async fn send_part(
        &self,
        kind: OpCode,
        payload: Bytes,
        last: bool,
        from_writer: bool,
    ) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let mut first = false;
        let frame = {
            let mut st = lock(&self.inner.partial);
            if st.writer != from_writer {
                return Err(SendError::MessageInProgress);
            }
            match st.kind {
                Some(open) if open != kind => return Err(SendError::MessageInProgress),
                Some(_) => {}
                None => {
                    first = true;
                    st.kind = Some(kind);
                    st.deflater = self
                        .inner
                        .out
                        .shared_deflate()
                        .map(|(level, bits)| Box::new(Deflater::new(level, bits)));
                }
            }
            let (deflate, payload) = match st.deflater.as_mut() {
                Some(d) => {
                    let mut out = Vec::with_capacity(payload.len() / 2 + 16);
                    d.compress_part(&payload, &mut out, last);
                    (Deflate::Done, Bytes::from(out))
                }
                None => (Deflate::Plain, payload),
            };
            if last {
                st.kind = None;
                st.deflater = None;
                if from_writer {
                    st.writer = false;
                }
            }
            OutFrame {
                opcode: kind,
                deflate,
                payload,
                fin: last,
            }
        };
        let len = frame.payload.len();
        // From here the message's state has moved on: if this future is dropped before the
        // part is queued, the message can never be completed, and the session closes (1011).
        let mut guard = AbandonOnDrop(Some(self));
        let out = &self.inner.out;
        let queued = match out.push_part(frame, kind, first) {
            Ok(()) => Ok(()),
            Err(Refused::Closed) => Err(SendError::Closed),
            Err(Refused::Behind(frame)) => {
                // Another message in parts has not ended yet: wait for it, untimed (it is no
                // fault of the socket), then for room as usual.
                out.message_ended().await;
                self.wait_part(frame, kind, first).await
            }
            Err(Refused::Full(frame)) => self.wait_part(frame, kind, first).await,
        };
        guard.0 = None;
        queued?;
        self.inner.metrics.sent(kind, len);
        self.touch();
        Ok(())
    }

    /// Waits for room for a part, at most `send_timeout` (then the peer is dead: 1006).
    async fn wait_part(&self, frame: OutFrame, kind: OpCode, first: bool) -> Result<(), SendError> {
        let out = &self.inner.out;
        match tokio::time::timeout(
            self.inner.send_timeout,
            out.push_part_wait(frame, kind, first),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(SendError::Closed),
            Err(_) => {
                self.inner
                    .abort(CloseReason::abnormal("peer stopped reading"));
                Err(SendError::Closed)
            }
        }
    }

    /// A message in parts cannot be completed (its writer was dropped unfinished, or a part's
    /// send was cancelled after the message moved on): the session closes with 1011.
    fn abandon_message(&self) {
        {
            let mut st = lock(&self.inner.partial);
            st.writer = false;
            st.kind = None;
            st.deflater = None;
        }
        let reason = CloseReason::new(CloseCode::Error, "message left unfinished");
        let frame = super::close_payload(&reason);
        let _ = self.inner.begin_close(reason, Some(frame));
    }
}

/// Abandons the session's message in parts if dropped armed (see `send_part`).
struct AbandonOnDrop<'a>(Option<&'a Session>);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            session.abandon_message();
        }
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send>>;

/// What the two writers share: the session, the buffer of the part being written, the part in
/// flight.
struct Writer {
    session: Session,
    kind: OpCode,
    buf: Vec<u8>,
    in_flight: Option<Pending>,
    finished: bool,
}

impl Writer {
    fn new(session: Session, kind: OpCode) -> Self {
        Self {
            session,
            kind,
            buf: Vec::new(),
            in_flight: None,
            finished: false,
        }
    }

    async fn send(&mut self, part: Bytes) -> Result<(), SendError> {
        if self.finished {
            return Err(SendError::Closed);
        }
        self.flush_buf().await?;
        self.session.send_part(self.kind, part, false, true).await
    }

    async fn flush_buf(&mut self) -> Result<(), SendError> {
        if let Some(pending) = self.in_flight.take() {
            pending.await?;
        }
        if !self.buf.is_empty() {
            let part = Bytes::from(std::mem::take(&mut self.buf));
            self.session.send_part(self.kind, part, false, true).await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), SendError> {
        if self.finished {
            return Ok(());
        }
        if let Some(pending) = self.in_flight.take() {
            pending.await?;
        }
        let part = Bytes::from(std::mem::take(&mut self.buf));
        self.finished = true;
        self.session.send_part(self.kind, part, true, true).await
    }

    /// Drives the part in flight, if any.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        match self.in_flight.as_mut() {
            None => Poll::Ready(Ok(())),
            Some(pending) => {
                let result = std::task::ready!(pending.as_mut().poll(cx));
                self.in_flight = None;
                Poll::Ready(result)
            }
        }
    }

    /// Starts sending the buffer as a part (`last`: the message's end).
    fn start(&mut self, last: bool) {
        let part = Bytes::from(std::mem::take(&mut self.buf));
        let session = self.session.clone();
        let kind = self.kind;
        if last {
            self.finished = true;
        }
        self.in_flight = Some(Box::pin(async move {
            session.send_part(kind, part, last, true).await
        }));
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.finished {
            return Poll::Ready(Err(io_error(SendError::Closed)));
        }
        if self.buf.len() >= WRITER_FRAME {
            std::task::ready!(self.poll_in_flight(cx)).map_err(io_error)?;
            self.start(false);
        }
        let n = data
            .len()
            .min(WRITER_FRAME.saturating_sub(self.buf.len()).max(1));
        self.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        std::task::ready!(self.poll_in_flight(cx))?;
        if !self.buf.is_empty() && !self.finished {
            self.start(false);
            std::task::ready!(self.poll_in_flight(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        std::task::ready!(self.poll_in_flight(cx))?;
        if !self.finished {
            self.start(true);
            std::task::ready!(self.poll_in_flight(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            self.session.abandon_message();
        }
    }
}

fn io_error(err: SendError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, err)
}

/// One binary message sent in parts; see [`Session::binary_writer`].
pub struct BinaryWriter {
    inner: Writer,
}

impl BinaryWriter {
    /// Sends `part` as the message's next frame (after what was written and not yet sent).
    pub async fn send(&mut self, part: impl Into<Bytes>) -> Result<(), SendError> {
        self.inner.send(part.into()).await
    }

    /// Sends what is buffered and ends the message (FIN).
    pub async fn finish(mut self) -> Result<(), SendError> {
        self.inner.finish().await
    }
}

impl AsyncWrite for BinaryWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner.poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner.poll_finish(cx).map_err(io_error)
    }
}

impl futures_util::Sink<Bytes> for BinaryWriter {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().inner.poll_flush(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), SendError> {
        let inner = &mut self.get_mut().inner;
        if inner.finished {
            return Err(SendError::Closed);
        }
        inner.buf.extend_from_slice(&item);
        inner.start(false);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().inner.poll_finish(cx)
    }
}

/// One text message sent in parts; see [`Session::text_writer`]. What is written must be
/// UTF-8 as a whole (a character may be split between two writes); bytes that cannot be are
/// refused (`InvalidData`) before they are sent.
pub struct TextWriter {
    inner: Writer,
    utf8: Utf8Validator,
}

impl TextWriter {
    /// Sends `part` as the message's next frame.
    pub async fn send(&mut self, part: impl Into<String>) -> Result<(), SendError> {
        let part = part.into();
        self.utf8
            .feed(part.as_bytes())
            .map_err(|e| SendError::Encode(e.to_string()))?;
        self.inner.send(Bytes::from(part.into_bytes())).await
    }

    /// Sends what is buffered and ends the message (FIN).
    pub async fn finish(mut self) -> Result<(), SendError> {
        self.utf8
            .finish()
            .map_err(|e| SendError::Encode(e.to_string()))?;
        self.inner.finish().await
    }
}

impl AsyncWrite for TextWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(this.inner.poll_write(cx, buf))?;
        // What was taken is validated (a character may continue in the next write).
        if this.utf8.feed(&buf[..n]).is_err() {
            let taken = this.inner.buf.len() - n;
            this.inner.buf.truncate(taken);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a text message must be UTF-8",
            )));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner.poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.inner.finished && this.utf8.finish().is_err() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a text message must be UTF-8: it ends inside a character",
            )));
        }
        this.inner.poll_finish(cx).map_err(io_error)
    }
}

impl futures_util::Sink<String> for TextWriter {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().inner.poll_flush(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: String) -> Result<(), SendError> {
        let this = self.get_mut();
        if this.inner.finished {
            return Err(SendError::Closed);
        }
        this.utf8
            .feed(item.as_bytes())
            .map_err(|e| SendError::Encode(e.to_string()))?;
        this.inner.buf.extend_from_slice(item.as_bytes());
        this.inner.start(false);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().inner.poll_finish(cx)
    }
}
