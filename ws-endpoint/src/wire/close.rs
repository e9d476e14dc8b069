//! Close frames: the one table of the codes allowed on the wire, and their payload.

/// 1000
pub const NORMAL: u16 = 1000;
/// 1001
pub const GOING_AWAY: u16 = 1001;
/// 1002
pub const PROTOCOL: u16 = 1002;
/// 1003
pub const UNSUPPORTED: u16 = 1003;
/// 1005: "no status code" — reported, never sent.
pub const NO_STATUS: u16 = 1005;
/// 1006: "abnormal closure" — reported, never sent.
pub const ABNORMAL: u16 = 1006;
/// 1007
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1008
pub const POLICY: u16 = 1008;
/// 1009
pub const TOO_BIG: u16 = 1009;
/// 1011
pub const INTERNAL_ERROR: u16 = 1011;

/// Whether `code` may appear in a close frame (RFC 6455 §7.4; IANA registry: 1012–1014
/// assigned). The one table both directions use.
pub fn is_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Most bytes of reason a close frame can carry (125 minus the code).
pub const MAX_REASON: usize = 123;

/// A parsed close payload: `None` for an empty close frame.
pub fn parse(payload: &[u8]) -> Result<Option<(u16, String)>, super::WireError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(super::WireError::Protocol(
            "close frame with a 1-byte payload",
        )),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_allowed(code) {
                return Err(super::WireError::BadCloseCode(code));
            }
            let reason = std::str::from_utf8(&payload[2..])
                .map_err(|_| super::WireError::InvalidCloseReason)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// The payload of a close frame with `code` and `reason` (cut to 123 bytes on a char boundary).
pub fn payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_validated() {
        assert_eq!(parse(&[0x03, 0xe8]).unwrap(), Some((1000, String::new())));
        assert_eq!(
            parse(&[0x03, 0xed]),
            Err(super::super::WireError::BadCloseCode(1005))
        );
        assert_eq!(
            parse(&[0x03, 0xe8, 0xff]),
            Err(super::super::WireError::InvalidCloseReason)
        );
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!is_allowed(code), "{code}");
        }
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let p = payload(1000, &"é".repeat(100));
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}
