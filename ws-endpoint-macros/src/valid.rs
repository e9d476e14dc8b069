//! Validate: every rule an endpoint must follow that the macro can see, each reported on the
//! offending token with the fix. What only the type checker can tell (is this type an extractor,
//! a payload, sendable?) is checked by the expansion through traits with their own messages.

use syn::{spanned::Spanned, LitStr, ReturnType};

use crate::ast::{self, Endpoint, Handler, Kind, Param, PayloadKind, TypeClass};

type Errors = Vec<syn::Error>;

/// All the errors of the endpoint; empty when it can be expanded.
pub fn endpoint(ep: &Endpoint) -> Errors {
    let mut errors: Errors = ep.parse_errors.clone();
    if ep.client {
        client(ep, &mut errors);
    } else if let Err(e) = path_template(&ep.args.path) {
        errors.push(e);
    }
    for p in &ep.args.args.subprotocols {
        if let Err(e) = subprotocol(p) {
            errors.push(e);
        }
    }
    for h in &ep.args.args.allowed_hosts {
        let v = h.value();
        let ok = v == "*"
            || (!v.is_empty()
                && !v.contains("://")
                && !v.contains('/')
                && !v.chars().any(char::is_whitespace));
        if !ok {
            errors.push(syn::Error::new(
                h.span(),
                format!("`{v}` is not a host: write a name (`app.example`, any port), `app.example:8443`, `[::1]`, or `*`; no scheme or path"),
            ));
        }
    }
    if let Some(rate) = &ep.args.args.max_message_rate {
        if let Err(e) = rate_syntax(&rate.value()) {
            errors.push(syn::Error::new(rate.span(), e));
        }
    }
    if let Some(crate::attr::CompressionArg::On(keys)) = &ep.args.args.compression {
        if let Some(level) = &keys.level {
            if !level.base10_parse::<u32>().is_ok_and(|l| l <= 9) {
                errors.push(syn::Error::new(
                    level.span(),
                    "a compression level is 0 (store) to 9 (smallest); zlib's default is 6",
                ));
            }
        }
        if let Some(bits) = &keys.max_window_bits {
            if !bits
                .base10_parse::<u8>()
                .is_ok_and(|b| (9..=15).contains(&b))
            {
                errors.push(syn::Error::new(
                    bits.span(),
                    "max_window_bits is 9 to 15 (a 2^N-byte window; 15 is zlib's default)",
                ));
            }
        }
    }
    if let Some(policy) = &ep.args.args.slow_consumer {
        if !matches!(policy.value().as_str(), "drop_messages" | "close") {
            errors.push(syn::Error::new(
                policy.span(),
                format!(
                    "unknown slow_consumer policy \"{}\": use \"drop_messages\" or \"close\"",
                    policy.value()
                ),
            ));
        }
    }
    if !ep.item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &ep.item.generics,
            format!("#[{}] types cannot be generic", ep.attr_name()),
        ));
    }
    if let Some((_, path, _)) = &ep.item.trait_ {
        errors.push(syn::Error::new_spanned(
            path,
            format!(
                "#[{}] goes on an inherent impl (`impl MyEndpoint {{ ... }}`), not a trait impl",
                ep.attr_name()
            ),
        ));
    }
    for (dup, first) in &ep.duplicates {
        errors.push(syn::Error::new_spanned(
            &dup.attr.meta,
            format!(
                "a second #[{}] handler: `{first}` already handles it (one per endpoint)",
                dup.kind.attr_name()
            ),
        ));
    }
    message_kinds(ep, &mut errors);
    for h in ep.handlers() {
        handler(ep, h, &mut errors);
    }
    errors
}

/// What a client endpoint cannot have: there is no path template and no HTTP request to hook
/// into or extract from.
fn client(ep: &Endpoint, errors: &mut Errors) {
    if let Some(h) = &ep.handshake {
        errors.push(syn::Error::new_spanned(
            &h.attr,
            "#[on_handshake] shapes a server's 101 response; a client sets its upgrade request with `MyClient::connector(url).header(..)`",
        ));
    }
    for h in ep.handlers() {
        for p in &h.params {
            match p {
                Param::Path { span, .. } => errors.push(syn::Error::new(
                    *span,
                    "a client endpoint has no path template: read the URL's path with `session.path()`",
                )),
                Param::Other { ty, .. } if h.kind == Kind::Open => errors.push(syn::Error::new_spanned(
                    ty,
                    "a client's #[on_open] takes `&Session` only: there is no HTTP request to extract from (request headers are set with `MyClient::connector(url).header(..)`)",
                )),
                _ => {}
            }
        }
    }
}

/// One `on_message` handler per message kind (for the kinds the macro knows by name; the
/// others are checked at compile time by the expansion).
fn message_kinds(ep: &Endpoint, errors: &mut Errors) {
    let messages = &ep.messages;
    for (i, h) in messages.iter().enumerate() {
        let Some(ty) = h.payload() else { continue };
        let kind = ast::payload_kind(ty);
        if kind == PayloadKind::Other {
            continue;
        }
        if let Some(prev) = messages[..i]
            .iter()
            .find(|p| p.payload().map(ast::payload_kind) == Some(kind))
        {
            let what = match kind {
                PayloadKind::Text => "text",
                PayloadKind::Binary => "binary",
                _ => "pong",
            };
            errors.push(syn::Error::new_spanned(
                ty,
                format!(
                    "a second #[on_message] handler for {what} messages: `{}` already takes them (one handler per message kind)",
                    prev.ident
                ),
            ));
        }
    }
}

const ONLY_OPEN_EXTRACTS: &str = "only #[on_open] (and #[on_handshake]) take actix-web extractors: take it in #[on_open] and keep what you need in `self`";

fn handler(ep: &Endpoint, h: &Handler, errors: &mut Errors) {
    if let Some(param) = h
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
    {
        errors.push(syn::Error::new_spanned(
            param,
            "handlers cannot have type or const parameters",
        ));
    }
    match (&h.receiver, h.kind) {
        (Some(r), Kind::Handshake) => errors.push(syn::Error::new_spanned(
            r,
            "#[on_handshake] runs before the endpoint instance exists: remove the receiver (`async fn handshake(req: HttpRequest, hs: &mut Handshake)`)",
        )),
        (Some(r), Kind::Open) if ast::returns_self(&h.output, ep.self_ident()) => {
            errors.push(syn::Error::new_spanned(
                r,
                "a constructor-style #[on_open] (one that returns `Self`) has no receiver: `async fn open(session: &Session, ...) -> Self`",
            ))
        }
        (None, Kind::Open)
            if !ast::returns_self(&h.output, ep.self_ident())
                && ast::mentions_self(&h.output, ep.self_ident()) =>
        {
            if let ReturnType::Type(_, ty) = &h.output {
                errors.push(syn::Error::new_spanned(
                    ty,
                    "a constructor-style #[on_open] returns `Self` or `Result<Self, E>`",
                ))
            }
        }
        (Some(r), _) if !matches!(&*r.ty, syn::Type::Reference(_)) => errors.push(syn::Error::new_spanned(
            r,
            "handlers take `&mut self` or `&self`: the endpoint instance lives as long as its connection",
        )),
        _ => {}
    }

    let template = ep.template.as_deref().unwrap_or(&[]);
    // Payload candidates of an `on_message` handler: not the session, not a path parameter, not
    // a known extractor.
    let candidates: Vec<(&Option<syn::Ident>, &syn::Type, TypeClass)> = h
        .params
        .iter()
        .filter_map(|p| match p {
            Param::Other { name, ty, class }
                if !matches!(
                    class,
                    TypeClass::Extractor
                        | TypeClass::Handshake
                        | TypeClass::RequestRef
                        | TypeClass::CloseReason
                        | TypeClass::EndpointError
                        | TypeClass::Last
                ) =>
            {
                Some((name, ty, *class))
            }
            _ => None,
        })
        .collect();
    let mut seen_payload = false;
    let mut seen_reason = false;
    let mut seen_error = false;
    let mut seen_handshake = false;
    for p in &h.params {
        match p {
            Param::MutSession { ty } => errors.push(syn::Error::new_spanned(
                ty,
                "take the session as `&Session` (or `Session`): it is shared, and every method takes `&self`",
            )),
            Param::Session { ty, .. } if h.kind == Kind::Handshake => {
                errors.push(syn::Error::new_spanned(
                    ty,
                    "#[on_handshake] runs before the session exists: take `&mut Handshake` (headers of the 101, properties for the session) and the request's extractors",
                ))
            }
            Param::Session { .. } => {}
            Param::Path { .. } if ep.client => {} // reported by `client`
            Param::Other { .. } if ep.client && h.kind == Kind::Open => {} // likewise
            Param::Path { name, span, .. } => {
                if let Some(names) = &ep.template {
                    path_param_in_template(name, *span, names, &ep.args.path, errors);
                }
            }
            Param::Other {
                name: pname,
                ty,
                class,
            } => {
                // Named like a template parameter, without #[path_param].
                if let Some(ident) = pname {
                    let n = ident.to_string();
                    let n = n.trim_start_matches("r#");
                    let ambiguous = h.kind == Kind::Message && candidates.len() < 2;
                    if template.iter().any(|t| t == n)
                        && !ambiguous
                        && !generic(ty)
                        && !matches!(
                            class,
                            TypeClass::Handshake
                                | TypeClass::Extractor
                                | TypeClass::RequestRef
                                | TypeClass::CloseReason
                                | TypeClass::EndpointError
                        )
                    {
                        errors.push(syn::Error::new_spanned(
                            ident,
                            format!(
                                "`{n}` is named like the path template's `{{{n}}}` but is not marked: write `#[path_param] {n}: {}` to receive it (or rename the parameter)",
                                show(ty)
                            ),
                        ));
                        continue;
                    }
                }
                other_param(
                    h,
                    ty,
                    *class,
                    &candidates,
                    (&mut seen_payload, &mut seen_reason, &mut seen_error),
                    &mut seen_handshake,
                    errors,
                );
            }
        }
    }
    if h.kind == Kind::Message && candidates.is_empty() {
        errors.push(syn::Error::new_spanned(
            &h.ident,
            "#[on_message] needs a payload parameter: String (text), Bytes or Vec<u8> (binary), Json<T> (text) or Pong",
        ));
    }
}

fn other_param(
    h: &Handler,
    ty: &syn::Type,
    class: TypeClass,
    candidates: &[(&Option<syn::Ident>, &syn::Type, TypeClass)],
    (seen_payload, seen_reason, seen_error): (&mut bool, &mut bool, &mut bool),
    seen_handshake: &mut bool,
    errors: &mut Errors,
) {
    let shown = show(ty);
    let err = |msg: String| syn::Error::new_spanned(ty, msg);
    match h.kind {
        Kind::Open | Kind::Handshake => match class {
            TypeClass::BodyExtractor | TypeClass::Payload(PayloadKind::Text | PayloadKind::Binary) => {
                errors.push(err(format!(
                    "#[{}] cannot take `{shown}`: it would read the upgrade request's body, and that body is the WebSocket stream itself; take messages in an #[on_message] handler",
                    h.kind.attr_name()
                )))
            }
            TypeClass::CloseReason | TypeClass::EndpointError => errors.push(err(format!(
                "#[{}] cannot take `{shown}`: it takes `&Session`, `#[path_param]` parameters and actix-web extractors",
                h.kind.attr_name()
            ))),
            TypeClass::RequestRef if h.kind == Kind::Open => errors.push(err(
                "#[on_open] runs after the handshake: take the request by value, `req: HttpRequest` (a cheap handle), to keep it".into(),
            )),
            TypeClass::RequestRef => {}
            TypeClass::Handshake if h.kind == Kind::Open => errors.push(err(
                "`&mut Handshake` belongs to #[on_handshake], which runs before the 101 is sent; #[on_open] runs after it".into(),
            )),
            TypeClass::Handshake if std::mem::replace(seen_handshake, true) => {
                errors.push(err("a second `&mut Handshake`".into()))
            }
            // An extractor: checked at compile time by the expansion.
            _ => {}
        },
        Kind::Message if class == TypeClass::Last => {
            let payload = candidates.first().map(|(_, t, _)| crate::ast::last_ident(t));
            let partial_payload = matches!(
                payload.flatten().as_deref(),
                Some("String" | "Bytes" | "Vec")
            );
            let first_last = h.params.iter().find_map(|p| match p {
                Param::Other {
                    class: TypeClass::Last,
                    ty,
                    ..
                } => Some(ty),
                _ => None,
            });
            if first_last.is_some_and(|first| !std::ptr::eq(first, ty)) {
                errors.push(err(
                    "a second `bool`: a handler that takes parts has one `last: bool` parameter".into(),
                ));
            } else if !partial_payload && !candidates.is_empty() {
                errors.push(err(
                    "`last: bool` takes a message in parts, and parts are `String` (text) or `Bytes` / `Vec<u8>` (binary); for a stream take `TextStream` / `BinaryStream` without `last`".into(),
                ));
            }
        }
        Kind::Message => match class {
            TypeClass::Extractor => errors.push(err(format!(
                "#[on_message] cannot take `{shown}`: {ONLY_OPEN_EXTRACTS}"
            ))),
            TypeClass::CloseReason
            | TypeClass::EndpointError
            | TypeClass::Handshake
            | TypeClass::RequestRef => errors.push(err(format!(
                "#[on_message] cannot take `{shown}`: it takes one payload, `&Session` and `#[path_param]` parameters"
            ))),
            _ => {
                if !std::mem::replace(seen_payload, true) {
                    // The first candidate is the payload, unless a later one is known by name
                    // and this one is not (then this one is the mistake).
                    let known_later = class == TypeClass::Unknown
                        && candidates
                            .iter()
                            .any(|(_, _, c)| matches!(c, TypeClass::Payload(_)));
                    if known_later {
                        *seen_payload = false;
                        errors.push(not_a_payload(ty, &shown));
                    }
                } else if class == TypeClass::Unknown
                    || class == TypeClass::BodyExtractor
                {
                    errors.push(not_a_payload(ty, &shown));
                } else {
                    errors.push(err(
                        "#[on_message] takes exactly one payload (String, Bytes, Vec<u8>, Json<T> or Pong); this is a second one".into(),
                    ));
                }
            }
        },
        Kind::Close | Kind::Error => {
            let (wanted, seen, takes) = if h.kind == Kind::Close {
                (TypeClass::CloseReason, seen_reason, "CloseReason")
            } else {
                (TypeClass::EndpointError, seen_error, "EndpointError")
            };
            if class == wanted && !*seen {
                *seen = true;
            } else if class == TypeClass::Extractor {
                errors.push(err(format!(
                    "#[{}] cannot take `{shown}`: {ONLY_OPEN_EXTRACTS}",
                    h.kind.attr_name()
                )));
            } else {
                errors.push(err(format!(
                    "#[{}] cannot take `{shown}`: it takes &Session, {takes} and #[path_param] parameters",
                    h.kind.attr_name()
                )));
            }
        }
    }
}

/// The syntax of a `max_message_rate` (the runtime's `Rate` parses it the same way).
fn rate_syntax(s: &str) -> Result<(), String> {
    let err =
        || format!("`{s}` is not a rate: write \"20/s\", \"600/m\", \"1000/h\" or \"5/100ms\"");
    let (n, per) = s.trim().split_once('/').ok_or_else(err)?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    let per = per.trim();
    let digits = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
    let (count, unit) = per.split_at(digits);
    let count_ok = count.is_empty() || count.parse::<u64>().is_ok_and(|c| c > 0);
    if n == 0
        || !count_ok
        || !matches!(unit, "ms" | "s" | "m" | "min" | "h")
        || (unit == "h" && !count.is_empty())
    {
        return Err(err());
    }
    Ok(())
}

/// Whether the type has generic arguments (`Path<String>`: not a path parameter's plain type).
fn generic(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| !matches!(s.arguments, syn::PathArguments::None)),
        syn::Type::Reference(r) => generic(&r.elem),
        _ => false,
    }
}

/// A type as the user wrote it (`web::Data<Db>`, not `web :: Data < Db >`).
pub fn show(ty: &syn::Type) -> String {
    let s = quote::ToTokens::to_token_stream(ty).to_string();
    s.replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
}

fn not_a_payload(ty: &syn::Type, shown: &str) -> syn::Error {
    syn::Error::new(
        ty.span(),
        format!(
            "#[on_message] takes one payload (String, Bytes, Vec<u8>, Json<T>, Pong, …) and `{shown}` is a second parameter: if it is an actix-web extractor, {ONLY_OPEN_EXTRACTS}"
        ),
    )
}

fn path_param_in_template(
    name: &str,
    span: proc_macro2::Span,
    names: &[String],
    path: &LitStr,
    errors: &mut Errors,
) {
    if names.iter().any(|n| n == name) {
        return;
    }
    let hint = names
        .iter()
        .map(|n| (strsim::jaro_winkler(n, name), n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    let known = if names.is_empty() {
        "it has no parameters".to_owned()
    } else {
        format!(
            "its parameters are {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    errors.push(syn::Error::new(
        span,
        format!(
            "no `{{{name}}}` in the path template \"{}\": {known}{hint}",
            path.value()
        ),
    ));
}

/// Parses an actix-web path template and returns its parameter names, or an error on the
/// literal saying what is wrong.
pub fn path_template(lit: &LitStr) -> syn::Result<Vec<String>> {
    let path = lit.value();
    let fail = |msg: String| Err(syn::Error::new(lit.span(), msg));
    if !path.starts_with('/') {
        return fail(format!(
            "malformed path template \"{path}\": it must start with `/`"
        ));
    }
    let mut names: Vec<String> = Vec::new();
    let bytes: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '{' => {
                let start = i;
                let mut depth = 1;
                let mut j = i + 1;
                while j < bytes.len() && depth > 0 {
                    match bytes[j] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if depth != 0 {
                    return fail(format!(
                        "malformed path template \"{path}\": `{{` at position {start} is never closed"
                    ));
                }
                let inner: String = bytes[start + 1..j - 1].iter().collect();
                let name = inner.split(':').next().unwrap_or("");
                if name.is_empty() {
                    return fail(format!(
                        "malformed path template \"{path}\": empty parameter name at position {start}"
                    ));
                }
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return fail(format!(
                        "malformed path template \"{path}\": parameter name `{name}` may only contain letters, digits and `_`"
                    ));
                }
                if inner.contains(':') && inner.split_once(':').is_some_and(|(_, re)| re.is_empty())
                {
                    return fail(format!(
                        "malformed path template \"{path}\": empty pattern after `{name}:`"
                    ));
                }
                if names.iter().any(|n| n == name) {
                    return fail(format!(
                        "malformed path template \"{path}\": parameter `{name}` appears twice"
                    ));
                }
                names.push(name.to_owned());
                i = j;
                if i < bytes.len() && bytes[i] == '*' && i + 1 != bytes.len() {
                    return fail(format!(
                        "malformed path template \"{path}\": a tail match `{{{name}}}*` must end the path"
                    ));
                }
            }
            '}' => {
                return fail(format!(
                    "malformed path template \"{path}\": `}}` at position {i} has no matching `{{`"
                ))
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

/// A subprotocol must be an RFC 7230 token.
pub fn subprotocol(lit: &LitStr) -> syn::Result<()> {
    let v = lit.value();
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new(
            lit.span(),
            format!("`{v}` is not a valid subprotocol name (an HTTP token: letters, digits, `.`, `-`, `_`, …)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    fn names(p: &str) -> Result<Vec<String>, String> {
        path_template(&LitStr::new(p, Span::call_site())).map_err(|e| e.to_string())
    }

    #[test]
    fn templates() {
        assert_eq!(names("/chat/{room}").unwrap(), vec!["room"]);
        assert_eq!(names("/a/{id:\\d{3}}/{tail}*").unwrap(), vec!["id", "tail"]);
        assert!(names("/chat/{room").unwrap_err().contains("never closed"));
        assert!(names("chat").unwrap_err().contains("start with"));
        assert!(names("/{a}/{a}").unwrap_err().contains("twice"));
        assert!(names("/{}").unwrap_err().contains("empty"));
        assert!(names("/x}").unwrap_err().contains("no matching"));
        assert!(names("/{a-b}").unwrap_err().contains("letters"));
    }
}
