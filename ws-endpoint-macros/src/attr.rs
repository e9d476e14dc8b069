//! Attribute arguments: `#[server_endpoint("/path", key = value, ...)]` and
//! `#[on_message(max_message_size = N)]`, read with darling (unknown keys get "did you mean").

use std::time::Duration;

use darling::{ast::NestedMeta, FromMeta};
use proc_macro2::{Span, TokenStream};
use syn::{Lit, LitStr};

/// A size in bytes: `65536`, `"64KiB"`, `"1MiB"`.
#[derive(Debug, Clone, Copy)]
pub struct Size(pub usize);

impl FromMeta for Size {
    fn from_value(value: &Lit) -> darling::Result<Self> {
        let err = || {
            darling::Error::custom("expected a size in bytes, such as 65536, \"64KiB\" or \"1MiB\"")
                .with_span(value)
        };
        match value {
            Lit::Int(i) => i.base10_parse::<usize>().map(Size).map_err(|_| err()),
            Lit::Str(s) => parse_size(&s.value()).map(Size).ok_or_else(err),
            _ => Err(err()),
        }
    }
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: usize = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A duration: `30` (seconds), `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, Copy)]
pub struct Dur(pub Duration);

impl FromMeta for Dur {
    fn from_value(value: &Lit) -> darling::Result<Self> {
        let err = || {
            darling::Error::custom(
                "expected a duration, such as 30 (seconds), \"500ms\", \"30s\", \"5m\" or \"1h\"",
            )
            .with_span(value)
        };
        match value {
            Lit::Int(i) => i
                .base10_parse::<u64>()
                .map(|s| Dur(Duration::from_secs(s)))
                .map_err(|_| err()),
            Lit::Str(s) => parse_duration(&s.value()).map(Dur).ok_or_else(err),
            _ => Err(err()),
        }
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

/// The keys of `#[server_endpoint(...)]` after the path.
#[derive(Debug, Default, FromMeta)]
pub struct EndpointArgs {
    /// Limit for text and binary messages.
    pub max_message_size: Option<Size>,
    /// Limit for text messages.
    pub max_text_message_size: Option<Size>,
    /// Limit for binary messages.
    pub max_binary_message_size: Option<Size>,
    /// Subprotocols.
    #[darling(default)]
    pub subprotocols: Vec<LitStr>,
    /// Extra allowed origins.
    #[darling(default)]
    pub allowed_origins: Vec<LitStr>,
    /// Allowed Host names.
    #[darling(default)]
    pub allowed_hosts: Vec<LitStr>,
    /// Idle timeout.
    pub idle_timeout: Option<Dur>,
    /// Heartbeat ping interval.
    pub ping_interval: Option<Dur>,
    /// Heartbeat pong deadline.
    pub pong_timeout: Option<Dur>,
    /// `heartbeat = false` disables the heartbeat.
    pub heartbeat: Option<bool>,
    /// Longest wait of a send for a peer that does not read.
    pub send_timeout: Option<Dur>,
    /// Broadcast policy for a full queue: "drop_messages" or "close".
    pub slow_consumer: Option<LitStr>,
    /// The outbound queue's budget in bytes.
    pub max_buffered: Option<Size>,
    /// Sessions per endpoint in this process.
    pub max_sessions: Option<usize>,
    /// Sessions per client address.
    pub max_sessions_per_ip: Option<usize>,
    /// Messages per period: "20/s".
    pub max_message_rate: Option<LitStr>,
    /// Longest session.
    pub max_lifetime: Option<Dur>,
    /// permessage-deflate: `compression = false`, or `compression(level = 1, ...)`.
    pub compression: Option<CompressionArg>,
}

/// The keys of `compression(...)`.
#[derive(Debug, Default, Clone, FromMeta)]
pub struct CompressionKeys {
    /// zlib level, 0 to 9.
    pub level: Option<syn::LitInt>,
    /// Messages shorter than this go uncompressed.
    pub min_size: Option<Size>,
    /// Keep the context across messages.
    pub context_takeover: Option<bool>,
    /// Largest window, 9 to 15 bits.
    pub max_window_bits: Option<syn::LitInt>,
}

/// `compression = true | false`, or `compression(key = value, ...)` (on, with settings).
#[derive(Debug, Clone)]
pub enum CompressionArg {
    /// `compression = false`.
    Off,
    /// On, with these settings (all default for `compression = true`).
    On(CompressionKeys),
}

impl FromMeta for CompressionArg {
    fn from_word() -> darling::Result<Self> {
        Ok(CompressionArg::On(CompressionKeys::default()))
    }

    fn from_bool(value: bool) -> darling::Result<Self> {
        Ok(if value {
            CompressionArg::On(CompressionKeys::default())
        } else {
            CompressionArg::Off
        })
    }

    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        CompressionKeys::from_list(items).map(CompressionArg::On)
    }

    fn from_value(value: &Lit) -> darling::Result<Self> {
        match value {
            Lit::Bool(b) => Self::from_bool(b.value),
            other => Err(darling::Error::custom(
                "expected `compression = true`, `compression = false` or \
                 `compression(level = 6, min_size = 64, context_takeover = false, max_window_bits = 15)`",
            )
            .with_span(other)),
        }
    }
}

/// The keys of `#[on_message(...)]`.
#[derive(Debug, Default, FromMeta)]
pub struct MessageArgs {
    /// Limit for this handler's kind of message.
    pub max_message_size: Option<Size>,
}

/// The parsed `#[server_endpoint]` arguments.
pub struct ServerEndpoint {
    pub path: LitStr,
    pub args: EndpointArgs,
}

pub fn parse_server_endpoint(args: TokenStream) -> darling::Result<ServerEndpoint> {
    let items = NestedMeta::parse_meta_list(args)?;
    let mut iter = items.into_iter();
    let path = match iter.next() {
        Some(NestedMeta::Lit(Lit::Str(path))) => path,
        Some(other) => {
            return Err(darling::Error::custom(
                "expected the path template first, as a string: #[server_endpoint(\"/chat/{room}\", ...)]",
            )
            .with_span(&other))
        }
        None => {
            return Err(darling::Error::custom(
                "missing path template: write #[server_endpoint(\"/path\")]",
            )
            .with_span(&Span::call_site()))
        }
    };
    let rest: Vec<NestedMeta> = iter.collect();
    let mut errors = darling::Error::accumulator();
    for item in &rest {
        if let NestedMeta::Lit(lit) = item {
            errors.push(
                darling::Error::custom(
                    "only the first argument is positional (the path); use `key = value` here",
                )
                .with_span(&lit.span()),
            );
        }
    }
    let metas: Vec<NestedMeta> = rest
        .into_iter()
        .filter(|m| matches!(m, NestedMeta::Meta(_)))
        .collect();
    let args = errors.handle(EndpointArgs::from_list(&metas));
    errors.finish()?;
    Ok(ServerEndpoint {
        path,
        args: args.unwrap_or_default(),
    })
}

/// The keys of `#[server_endpoint]` that mean nothing to a client, with the reason.
const SERVER_ONLY: &[(&str, &str)] = &[
    (
        "allowed_origins",
        "a client sends an Origin; set it with `connector(url).origin(..)`",
    ),
    (
        "allowed_hosts",
        "it checks the Host header a server receives",
    ),
    ("slow_consumer", "it is the policy of a server's broadcasts"),
    ("max_sessions", "it limits the sessions a server admits"),
    (
        "max_sessions_per_ip",
        "it limits the sessions a server admits",
    ),
];

/// `#[client_endpoint(...)]`: the server's keys, less the path and the server-only keys.
pub fn parse_client_endpoint(args: TokenStream) -> darling::Result<ServerEndpoint> {
    let items = NestedMeta::parse_meta_list(args)?;
    let mut errors = darling::Error::accumulator();
    let mut metas = Vec::new();
    for item in items {
        match &item {
            NestedMeta::Lit(lit) => errors.push(
                darling::Error::custom(
                    "a client endpoint has no path: give the URL to `MyClient::connect(\"ws://host/path\")`",
                )
                .with_span(&lit.span()),
            ),
            NestedMeta::Meta(meta) => {
                let key = meta
                    .path()
                    .get_ident()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                if let Some((_, why)) = SERVER_ONLY.iter().find(|(k, _)| *k == key) {
                    errors.push(
                        darling::Error::custom(format!(
                            "`{key}` is a #[server_endpoint] setting, not a client's: {why}"
                        ))
                        .with_span(meta.path()),
                    );
                } else {
                    metas.push(item);
                }
            }
        }
    }
    let args = errors.handle(EndpointArgs::from_list(&metas));
    errors.finish()?;
    Ok(ServerEndpoint {
        path: LitStr::new("", Span::call_site()),
        args: args.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5 parsecs"), None);
    }
}
