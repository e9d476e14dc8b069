//! Incremental UTF-8 validation: each byte is looked at once, a sequence cut between two pieces
//! is completed when the next piece arrives, and an invalid sequence fails as soon as it is seen.

use simdutf8::compat::from_utf8;

use super::WireError;

/// Validates a text message that arrives in pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Validates the next piece. `Err` as soon as the bytes so far cannot start valid UTF-8.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let mut bytes = bytes;
        // Complete the pending sequence (at most 3 bytes) first.
        while self.pending_len > 0 && !bytes.is_empty() {
            self.pending[self.pending_len as usize] = bytes[0];
            self.pending_len += 1;
            bytes = &bytes[1..];
            match from_utf8(&self.pending[..self.pending_len as usize]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(WireError::InvalidUtf8),
                Err(_) => {}
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        match from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(WireError::InvalidUtf8),
            Err(e) => {
                let rest = &bytes[e.valid_up_to()..];
                self.pending[..rest.len()].copy_from_slice(rest);
                self.pending_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// The message is complete: nothing may be pending. Resets the state.
    pub fn finish(&mut self) -> Result<(), WireError> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(WireError::InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_anywhere_is_accepted() {
        let s = "héllo € 😀 done".as_bytes();
        for cut1 in 0..s.len() {
            for cut2 in cut1..s.len() {
                let mut v = Utf8Validator::default();
                v.feed(&s[..cut1]).unwrap();
                v.feed(&s[cut1..cut2]).unwrap();
                v.feed(&s[cut2..]).unwrap();
                v.finish().unwrap();
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_as_soon_as_it_is_seen() {
        let mut v = Utf8Validator::default();
        v.feed(b"ok \xce").unwrap(); // incomplete so far: fine
        assert_eq!(v.feed(b"\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), Ok(()));
        assert_eq!(v.feed(b"\xed\xa0\x80"), Err(WireError::InvalidUtf8)); // surrogate
        let mut v = Utf8Validator::default();
        v.feed(b"\xf4").unwrap();
        assert_eq!(v.feed(b"\x90"), Err(WireError::InvalidUtf8)); // above U+10FFFF
        let mut v = Utf8Validator::default();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(WireError::InvalidUtf8)); // truncated at the end
    }
}
