//! Close codes and reasons (JSR 356 `CloseReason` and `CloseReason.CloseCodes`).

use std::fmt;

/// A WebSocket close status code (RFC 6455 §7.4), the counterpart of JSR 356's
/// `CloseReason.CloseCodes`.
///
/// Re-exported from `actix-ws` so that values pass straight through to the wire; codes without a
/// named variant (1005, 3000–4999, …) are `CloseCode::Other(n)`.
///
/// ```
/// use ws_endpoint::CloseCode;
/// assert_eq!(u16::from(CloseCode::Size), 1009);
/// assert_eq!(CloseCode::from(4001), CloseCode::Other(4001));
/// ```
pub use actix_ws::CloseCode;

/// Why a session closed: a status code and an optional human-readable reason.
///
/// `on_close` receives one: the peer's code when the peer closed, the code the server sent when
/// the server closed, [`CloseReason::abnormal`] (1006) when the connection ended without a close
/// handshake, and 1005 ([`CloseReason::NO_STATUS`]) when the peer's close frame carried no code.
///
/// ```
/// use ws_endpoint::{CloseCode, CloseReason};
/// let reason = CloseReason::new(CloseCode::Away, "bye");
/// assert_eq!(reason.code_u16(), 1001);
/// assert_eq!(reason.reason, "bye");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The status code.
    pub code: CloseCode,
    /// The reason phrase; empty when none was given. At most 123 bytes reach the wire.
    pub reason: String,
}

impl CloseReason {
    /// 1005: the peer's close frame carried no status code (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;

    /// A close reason with the given code and reason phrase.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// 1000, normal closure, with no reason phrase.
    pub fn normal() -> Self {
        Self::new(CloseCode::Normal, "")
    }

    /// 1006, the connection ended without a close handshake (peer vanished, dead peer).
    pub fn abnormal(reason: impl Into<String>) -> Self {
        Self::new(CloseCode::Abnormal, reason)
    }

    /// The status code as a number.
    pub fn code_u16(&self) -> u16 {
        u16::from(self.code)
    }

    /// What `on_close` sees of the peer's close frame (`None`: no code, 1005).
    pub(crate) fn from_wire(close: Option<(u16, String)>) -> Self {
        match close {
            Some((code, reason)) => Self::new(code, reason),
            None => Self::new(CloseCode::Other(Self::NO_STATUS), ""),
        }
    }
}

impl Default for CloseReason {
    fn default() -> Self {
        Self::normal()
    }
}

impl From<CloseCode> for CloseReason {
    fn from(code: CloseCode) -> Self {
        Self::new(code, "")
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code_u16())
        } else {
            write!(f, "{} ({})", self.code_u16(), self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_code_maps_to_1005() {
        assert_eq!(CloseReason::from_wire(None).code_u16(), 1005);
        assert_eq!(
            CloseReason::from_wire(Some((4001, "x".into()))).code,
            CloseCode::Other(4001)
        );
    }
}
