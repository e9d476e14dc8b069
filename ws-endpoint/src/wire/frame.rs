//! The frame header (RFC 6455 §5.2), parsed once into a value that is kept, and masking.

/// Largest header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0: continues a fragmented message.
    Continuation,
    /// 1: a text message (or its first fragment).
    Text,
    /// 2: a binary message (or its first fragment).
    Binary,
    /// 8
    Close,
    /// 9
    Ping,
    /// 10
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, `None` for the reserved ones.
    pub fn from_u8(raw: u8) -> Option<OpCode> {
        Some(match raw {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            10 => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0,
            OpCode::Text => 1,
            OpCode::Binary => 2,
            OpCode::Close => 8,
            OpCode::Ping => 9,
            OpCode::Pong => 10,
        }
    }

    /// Close, ping or pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1: with permessage-deflate, "this message is compressed" (first frame only).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
}

impl Header {
    /// Parses a header from the start of `buf`: `Ok(None)` when more bytes are needed, else the
    /// header and its size in bytes. RSV2/RSV3 and reserved opcodes are errors here; what
    /// depends on the connection (RSV1, masking) is the decoder's to judge.
    pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, &'static str> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x30 != 0 {
            return Err("reserved bits RSV2/RSV3 set without a negotiated extension");
        }
        let Some(opcode) = OpCode::from_u8(b0 & 0x0f) else {
            return Err("reserved opcode");
        };
        let masked = b1 & 0x80 != 0;
        let (len, ext) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 2)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(raw);
                if len >> 63 != 0 {
                    return Err("payload length has its top bit set");
                }
                (len, 8)
            }
            n => (u64::from(n), 0),
        };
        let size = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < size {
            return Ok(None);
        }
        let mask = masked.then(|| {
            let mut m = [0u8; 4];
            m.copy_from_slice(&buf[2 + ext..size]);
            m
        });
        Ok(Some((
            Header {
                fin: b0 & 0x80 != 0,
                rsv1: b0 & 0x40 != 0,
                opcode,
                mask,
                len,
            },
            size,
        )))
    }

    /// Encodes the header into `out`; returns its size.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | (u8::from(self.rsv1) << 6) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = if self.len < 126 {
            out[1] = mask_bit | self.len as u8;
            2
        } else if self.len <= u64::from(u16::MAX) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.len.to_be_bytes());
            10
        };
        if let Some(mask) = self.mask {
            out[n..n + 4].copy_from_slice(&mask);
            n += 4;
        }
        n
    }
}

/// Appends the header of an unfragmented (or final) frame to `out`.
pub fn encode_header(
    out: &mut Vec<u8>,
    opcode: OpCode,
    fin: bool,
    rsv1: bool,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let mut raw = [0u8; MAX_HEADER];
    let n = Header {
        fin,
        rsv1,
        opcode,
        mask,
        len: len as u64,
    }
    .encode(&mut raw);
    out.extend_from_slice(&raw[..n]);
}

/// XORs `data` with `mask`, where `data` starts `offset` bytes into the frame's payload. Eight
/// bytes at a time, not byte by byte.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset % 4);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(raw) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// A growable byte buffer the decoder writes payloads into.
///
/// # Safety
/// `spare` returns the buffer's spare capacity, at least `n` long after `reserve_more(n)`, and
/// `grow(n)` makes the first `n` bytes of it part of the buffer: `extend_unmasked` relies on both.
pub(crate) unsafe trait Sink {
    fn reserve_more(&mut self, n: usize);
    fn extend(&mut self, src: &[u8]);
    /// The spare capacity, at least as long as the last `reserve_more`.
    fn spare(&mut self) -> &mut [std::mem::MaybeUninit<u8>];
    /// # Safety
    /// The `n` bytes after the current length are initialised.
    unsafe fn grow(&mut self, n: usize);
}

// SAFETY: `Vec`'s own spare capacity and `set_len`.
unsafe impl Sink for Vec<u8> {
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
    fn extend(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }
    fn spare(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        self.spare_capacity_mut()
    }
    unsafe fn grow(&mut self, n: usize) {
        // SAFETY: the caller initialised the `n` bytes, within the capacity.
        unsafe { self.set_len(self.len() + n) }
    }
}

// SAFETY: `BytesMut`'s own spare capacity and `set_len`.
unsafe impl Sink for bytes::BytesMut {
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
    fn extend(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }
    fn spare(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        self.spare_capacity_mut()
    }
    unsafe fn grow(&mut self, n: usize) {
        // SAFETY: the caller initialised the `n` bytes, within the capacity.
        unsafe { self.set_len(self.len() + n) }
    }
}

/// Appends `src` unmasked to `out`: copy and unmask in one pass over the bytes, eight at a time.
pub(crate) fn extend_unmasked(
    out: &mut impl Sink,
    src: &[u8],
    mask: Option<[u8; 4]>,
    offset: usize,
) {
    let Some(mask) = mask else {
        out.extend(src);
        return;
    };
    let mut m = mask;
    m.rotate_left(offset % 4);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    out.reserve_more(src.len());
    let spare = &mut out.spare()[..src.len()];
    let mut dst = spare.chunks_exact_mut(8);
    let mut from = src.chunks_exact(8);
    for (d, s) in (&mut dst).zip(&mut from) {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(s);
        for (slot, b) in d
            .iter_mut()
            .zip((u64::from_ne_bytes(raw) ^ word).to_ne_bytes())
        {
            slot.write(b);
        }
    }
    for (i, (slot, b)) in dst
        .into_remainder()
        .iter_mut()
        .zip(from.remainder())
        .enumerate()
    {
        slot.write(b ^ m[i % 4]);
    }
    // SAFETY: the `src.len()` bytes after the length were all written just above (the word
    // loop and the remainder cover the spare slice exactly), and `reserve_more` made room.
    unsafe { out.grow(src.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = Header {
                    fin: len % 2 == 0,
                    rsv1: len > 200,
                    opcode: OpCode::Binary,
                    mask,
                    len,
                };
                let mut raw = [0u8; MAX_HEADER];
                let n = h.encode(&mut raw);
                assert_eq!(Header::parse(&raw[..n]), Ok(Some((h, n))));
                assert_eq!(Header::parse(&raw[..n - 1]), Ok(None));
            }
        }
    }

    #[test]
    fn mask_word_at_a_time_equals_byte_at_a_time() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for offset in 0..8 {
            for len in [0, 1, 7, 8, 9, 31, 1000 - offset] {
                let mut fast = data[..len].to_vec();
                apply_mask(&mut fast, mask, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn extend_unmasked_equals_copy_then_mask() {
        let mask = [9, 8, 7, 6];
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for offset in 0..5 {
            for len in [0, 3, 8, 17, 300] {
                let mut fused = vec![1, 2];
                extend_unmasked(&mut fused, &data[..len], Some(mask), offset);
                let mut slow = data[..len].to_vec();
                apply_mask(&mut slow, mask, offset);
                assert_eq!(&fused[2..], &slow[..]);
                assert_eq!(&fused[..2], &[1, 2]);
            }
        }
    }

    #[test]
    fn reserved_bits_and_opcodes_are_refused() {
        assert!(Header::parse(&[0x91, 0x80, 0, 0, 0, 0]).is_err()); // RSV3
        assert!(Header::parse(&[0x83, 0x80, 0, 0, 0, 0]).is_err()); // opcode 3
        let mut big = vec![0x82, 0xff];
        big.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(Header::parse(&big).is_err());
    }
}
