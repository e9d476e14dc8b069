//! Parse: the annotated impl read into a typed AST ([`Endpoint`]). Nothing here judges whether
//! the endpoint is valid beyond what parsing needs (`valid.rs` does); every token a later error
//! may point at is kept.

use darling::{ast::NestedMeta, FromMeta};
use proc_macro2::Span;
use syn::{Attribute, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Meta, Pat, ReturnType, Type};

use crate::attr::{MessageArgs, ServerEndpoint, Size};

/// The endpoint: its attribute arguments, the impl (with our attributes stripped), and its
/// handlers, one slot per event.
pub struct Endpoint {
    pub args: ServerEndpoint,
    /// `#[client_endpoint]`: no path, no handshake hook, no extractors; `connect()` instead of
    /// `endpoint()`.
    pub client: bool,
    pub item: ItemImpl,
    /// The template's parameter names, when the template parsed.
    pub template: Option<Vec<String>>,
    pub handshake: Option<Handler>,
    pub open: Option<Handler>,
    pub messages: Vec<Handler>,
    pub close: Option<Handler>,
    pub error: Option<Handler>,
    /// Handlers beyond the first of a once-per-endpoint kind (reported by `valid`).
    pub duplicates: Vec<(Handler, Ident)>,
    /// Errors met while parsing (bad attribute arguments, `#[path_param]` syntax, …).
    pub parse_errors: Vec<syn::Error>,
}

impl Endpoint {
    /// Every handler, in no particular order.
    pub fn handlers(&self) -> impl Iterator<Item = &Handler> {
        self.handshake
            .iter()
            .chain(&self.open)
            .chain(&self.messages)
            .chain(&self.close)
            .chain(&self.error)
    }

    /// The attribute this endpoint was declared with.
    pub fn attr_name(&self) -> &'static str {
        if self.client {
            "client_endpoint"
        } else {
            "server_endpoint"
        }
    }

    /// The endpoint type's own name (`Chat` in `impl Chat`), if it is a plain path.
    pub fn self_ident(&self) -> Option<&Ident> {
        match &*self.item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Handshake,
    Open,
    Message,
    Close,
    Error,
}

impl Kind {
    pub fn attr_name(self) -> &'static str {
        match self {
            Kind::Handshake => "on_handshake",
            Kind::Open => "on_open",
            Kind::Message => "on_message",
            Kind::Close => "on_close",
            Kind::Error => "on_error",
        }
    }

    fn from_attr(attr: &Attribute) -> Option<Kind> {
        let last = attr.path().segments.last()?.ident.to_string();
        Some(match last.as_str() {
            "on_handshake" => Kind::Handshake,
            "on_open" => Kind::Open,
            "on_message" => Kind::Message,
            "on_close" => Kind::Close,
            "on_error" => Kind::Error,
            _ => return None,
        })
    }
}

/// How an `on_message` handler takes its messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Assembly {
    Whole,
    Parts,
    Stream,
}

/// What a payload type is, as far as its name tells.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PayloadKind {
    Text,
    Binary,
    Pong,
    /// A type the macro does not know by name; the trait decides at compile time.
    Other,
}

/// What a parameter's type is, as far as its name tells.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TypeClass {
    /// `String`, `Bytes`, `Json<T>`, `Pong`, … (`PayloadKind` says which).
    Payload(PayloadKind),
    /// An actix-web extractor known by name (`web::Data<T>`, `HttpRequest`, …).
    Extractor,
    /// An extractor that reads the request body (`web::Json`, `web::Form`, `web::Payload`,
    /// `String`, `Bytes`): in `on_open` the body is the WebSocket stream.
    BodyExtractor,
    CloseReason,
    EndpointError,
    /// `&mut Handshake`, the 101 response being built.
    Handshake,
    /// `&HttpRequest`: the upgrade request itself (`on_handshake` only).
    RequestRef,
    /// `bool`: "this is the message's last part" (an `on_message` that takes parts).
    Last,
    /// Not known by name.
    Unknown,
}

pub enum Param {
    /// `&Session` (`by_ref`) or `Session`.
    Session { by_ref: bool, ty: Type },
    /// `&mut Session`: rejected by `valid`.
    MutSession { ty: Type },
    /// `#[path_param]` (or `#[path_param("name")]`).
    Path { name: String, ty: Type, span: Span },
    /// Anything else, judged by `valid` against the handler kind.
    Other {
        /// The parameter's name, when its pattern is a plain name.
        name: Option<Ident>,
        ty: Type,
        class: TypeClass,
    },
}

pub struct Handler {
    pub kind: Kind,
    pub ident: Ident,
    pub is_async: bool,
    /// `self`, `&self` or `&mut self`, when present.
    pub receiver: Option<syn::Receiver>,
    pub params: Vec<Param>,
    pub output: ReturnType,
    pub attr: Attribute,
    pub generics: syn::Generics,
    pub max_message_size: Option<Size>,
}

impl Handler {
    /// The payload of an `on_message` handler: its first parameter that is neither the session
    /// nor a path parameter nor a known extractor. (`valid` checks there is exactly one.)
    pub fn payload(&self) -> Option<&Type> {
        self.params.iter().find_map(|p| match p {
            Param::Other { ty, class, .. }
                if !matches!(
                    class,
                    TypeClass::Extractor
                        | TypeClass::Handshake
                        | TypeClass::RequestRef
                        | TypeClass::Last
                ) =>
            {
                Some(ty)
            }
            _ => None,
        })
    }

    /// How an `on_message` handler takes its messages: in parts when it has a `bool`
    /// parameter, as a stream when its payload is `TextStream` / `BinaryStream`.
    pub fn assembly(&self) -> Assembly {
        let last = self.params.iter().any(|p| {
            matches!(
                p,
                Param::Other {
                    class: TypeClass::Last,
                    ..
                }
            )
        });
        if last {
            return Assembly::Parts;
        }
        match self.payload().and_then(last_ident).as_deref() {
            Some("TextStream" | "BinaryStream") => Assembly::Stream,
            _ => Assembly::Whole,
        }
    }

    /// The types of the extractor parameters (of `on_open` and `on_handshake`), in order.
    pub fn extractors(&self) -> Vec<&Type> {
        self.params
            .iter()
            .filter_map(|p| match p {
                Param::Other { ty, class, .. }
                    if !matches!(class, TypeClass::Handshake | TypeClass::RequestRef) =>
                {
                    Some(ty)
                }
                _ => None,
            })
            .collect()
    }

    /// A constructor-style `on_open`: no receiver, returns `Self` (or `Result<Self, E>`).
    pub fn is_constructor(&self, self_ident: Option<&Ident>) -> bool {
        self.receiver.is_none() && returns_self(&self.output, self_ident)
    }
}

/// Whether the return type is `Self` / the endpoint type, or a `Result` of it.
pub fn returns_self(output: &ReturnType, self_ident: Option<&Ident>) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    fn is_self(ty: &Type, self_ident: Option<&Ident>) -> bool {
        match ty {
            Type::Group(g) => is_self(&g.elem, self_ident),
            Type::Paren(p) => is_self(&p.elem, self_ident),
            Type::Path(p) if p.qself.is_none() => {
                let Some(last) = p.path.segments.last() else {
                    return false;
                };
                if last.ident == "Self" || self_ident.is_some_and(|s| *s == last.ident) {
                    return true;
                }
                if last.ident == "Result" {
                    if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                        if let Some(syn::GenericArgument::Type(first)) = args.args.first() {
                            return is_self(first, self_ident);
                        }
                    }
                }
                false
            }
            _ => false,
        }
    }
    is_self(ty, self_ident)
}

/// Whether the return type mentions `Self` or the endpoint type anywhere (`Option<Self>`,
/// `Box<Self>`, …).
pub fn mentions_self(output: &ReturnType, self_ident: Option<&Ident>) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    quote::ToTokens::to_token_stream(ty)
        .into_iter()
        .flat_map(flatten)
        .any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "Self" || self_ident.is_some_and(|s| *s == i),
            _ => false,
        })
}

fn flatten(t: proc_macro2::TokenTree) -> Vec<proc_macro2::TokenTree> {
    match t {
        proc_macro2::TokenTree::Group(g) => g.stream().into_iter().flat_map(flatten).collect(),
        other => vec![other],
    }
}

pub fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_ident(&g.elem),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

/// The path segments before the last one (`web` in `web::Data<T>`).
fn prefix(ty: &Type) -> Vec<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let segs: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            segs[..segs.len().saturating_sub(1)].to_vec()
        }
        Type::Group(g) => prefix(&g.elem),
        Type::Paren(p) => prefix(&p.elem),
        _ => Vec::new(),
    }
}

pub fn payload_kind(ty: &Type) -> PayloadKind {
    match last_ident(ty).as_deref() {
        Some("String") | Some("Json") | Some("Text") => PayloadKind::Text,
        Some("Bytes") | Some("Binary") | Some("MsgPack") | Some("Cbor") => PayloadKind::Binary,
        Some("TextStream") => PayloadKind::Text,
        Some("BinaryStream") => PayloadKind::Binary,
        Some("Vec") => PayloadKind::Binary,
        Some("Pong") => PayloadKind::Pong,
        _ => PayloadKind::Other,
    }
}

fn classify(ty: &Type) -> TypeClass {
    if let Type::Reference(r) = ty {
        return match (r.mutability.is_some(), last_ident(&r.elem).as_deref()) {
            (true, Some("Handshake")) => TypeClass::Handshake,
            (false, Some("HttpRequest")) => TypeClass::RequestRef,
            _ => TypeClass::Unknown,
        };
    }
    // Names that other crates use too (`Data`, `Query`, `Path`, …) count as actix-web's only
    // with a `web::` / `actix_web::` path; without one the type checker decides.
    let web = prefix(ty).iter().any(|s| s == "web" || s == "actix_web");
    match last_ident(ty).as_deref() {
        Some("bool") => TypeClass::Last,
        Some("CloseReason") => TypeClass::CloseReason,
        Some("EndpointError") => TypeClass::EndpointError,
        Some("Form" | "Payload" | "Json") if web => TypeClass::BodyExtractor,
        Some("HttpRequest") => TypeClass::Extractor,
        Some(
            "Data" | "Query" | "Header" | "ReqData" | "ConnectionInfo" | "PeerAddr" | "Method"
            | "Uri" | "Version" | "ThinData" | "Path",
        ) if web => TypeClass::Extractor,
        _ => match payload_kind(ty) {
            PayloadKind::Other => TypeClass::Unknown,
            kind => TypeClass::Payload(kind),
        },
    }
}

/// `Session` / `&Session` / `&mut Session` (ours: a path ending in `Session`, unless it goes
/// through another crate such as `actix_session::Session`).
fn session_param(ty: &Type) -> Option<(bool, bool)> {
    let (by_ref, mutable, inner) = match ty {
        Type::Reference(r) => (true, r.mutability.is_some(), &*r.elem),
        other => (false, false, other),
    };
    let ours = last_ident(inner).as_deref() == Some("Session")
        && prefix(inner).first().is_none_or(|first| {
            matches!(first.as_str(), "ws_endpoint" | "crate" | "self" | "super")
        });
    ours.then_some((by_ref, mutable))
}

fn is_path_param_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "path_param")
}

/// `#[path_param]` or `#[path_param("name")]`: the explicit name and its span, if any.
fn path_param_name(attr: &Attribute) -> syn::Result<Option<(String, Span)>> {
    match &attr.meta {
        Meta::Path(_) => Ok(None),
        Meta::List(list) => {
            let lit: syn::LitStr = list.parse_args().map_err(|_| {
                syn::Error::new_spanned(
                    &list.tokens,
                    "expected the template name as a string: #[path_param(\"room\")]",
                )
            })?;
            Ok(Some((lit.value(), lit.span())))
        }
        Meta::NameValue(nv) => Err(syn::Error::new_spanned(
            nv,
            "write #[path_param] or #[path_param(\"name\")]",
        )),
    }
}

/// Reads the impl: strips our attributes (from every method, so one mistake gives one error)
/// and sorts the handlers into their slots.
pub fn parse(args: ServerEndpoint, mut item: ItemImpl, template: Option<Vec<String>>) -> Endpoint {
    let mut parse_errors = Vec::new();
    let mut found = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        if let Some(h) = handler(method, &mut parse_errors) {
            found.push(h);
        }
    }
    let mut ep = Endpoint {
        args,
        client: false,
        item,
        template,
        handshake: None,
        open: None,
        messages: Vec::new(),
        close: None,
        error: None,
        duplicates: Vec::new(),
        parse_errors,
    };
    for h in found {
        let slot = match h.kind {
            Kind::Message => {
                ep.messages.push(h);
                continue;
            }
            Kind::Handshake => &mut ep.handshake,
            Kind::Open => &mut ep.open,
            Kind::Close => &mut ep.close,
            Kind::Error => &mut ep.error,
        };
        match slot {
            Some(first) => {
                let first = first.ident.clone();
                ep.duplicates.push((h, first));
            }
            None => *slot = Some(h),
        }
    }
    ep
}

/// Strips our attributes from an impl that will not be expanded (its `#[server_endpoint]`
/// arguments did not parse), so that only the real mistake is reported.
pub fn strip(item: &mut ItemImpl) {
    let mut ignored = Vec::new();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            let _ = handler(method, &mut ignored);
        }
    }
}

fn handler(method: &mut ImplItemFn, errors: &mut Vec<syn::Error>) -> Option<Handler> {
    let mut found: Option<(Kind, Attribute)> = None;
    let mut keep = Vec::new();
    for attr in method.attrs.drain(..) {
        match Kind::from_attr(&attr) {
            Some(kind) => {
                if let Some((first, _)) = &found {
                    errors.push(syn::Error::new_spanned(
                        &attr,
                        format!(
                            "`{}` is already marked #[{}]; a method handles one event",
                            method.sig.ident,
                            first.attr_name()
                        ),
                    ));
                } else {
                    found = Some((kind, attr));
                }
            }
            None => keep.push(attr),
        }
    }
    method.attrs = keep;
    // Remember each input with its #[path_param], then strip those attributes (even from
    // non-handlers, so one mistake gives one error).
    let raw_inputs: Vec<(FnArg, Option<Attribute>)> = method
        .sig
        .inputs
        .iter()
        .map(|input| {
            let attr = match input {
                FnArg::Typed(pt) => pt.attrs.iter().find(|a| is_path_param_attr(a)).cloned(),
                FnArg::Receiver(_) => None,
            };
            (input.clone(), attr)
        })
        .collect();
    for input in &mut method.sig.inputs {
        if let FnArg::Typed(pt) = input {
            pt.attrs.retain(|a| !is_path_param_attr(a));
        }
    }
    let Some((kind, attr)) = found else {
        if let Some((_, Some(attr))) = raw_inputs.iter().find(|(_, a)| a.is_some()) {
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "#[path_param] on a method that is not a handler: mark `{}` #[on_open], #[on_message], #[on_close], #[on_error] or #[on_handshake]",
                    method.sig.ident
                ),
            ));
        }
        return None;
    };
    let sig = &method.sig;

    let mut max_message_size = None;
    match (&attr.meta, kind) {
        (Meta::Path(_), _) => {}
        (Meta::List(list), Kind::Message) => {
            match NestedMeta::parse_meta_list(list.tokens.clone())
                .map_err(darling::Error::from)
                .and_then(|items| MessageArgs::from_list(&items))
            {
                Ok(args) => max_message_size = args.max_message_size,
                Err(e) => errors.push(e.into()),
            }
        }
        (meta, _) => errors.push(syn::Error::new_spanned(
            meta,
            format!("#[{}] takes no arguments", kind.attr_name()),
        )),
    }

    let mut receiver = None;
    let mut params = Vec::new();
    for (input, path_attr) in raw_inputs {
        let pt = match input {
            FnArg::Receiver(r) => {
                receiver = Some(r);
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        let ty = (*pt.ty).clone();
        let plain_name = match &*pt.pat {
            Pat::Ident(pi) => Some(pi.ident.clone()),
            _ => None,
        };
        if let Some(attr) = path_attr {
            let name = match path_param_name(&attr) {
                Ok(Some(name)) => Some(name),
                Ok(None) => match &plain_name {
                    Some(ident) => Some((
                        ident.to_string().trim_start_matches("r#").to_owned(),
                        ident.span(),
                    )),
                    None => {
                        errors.push(syn::Error::new_spanned(
                            &pt.pat,
                            "name the template parameter: #[path_param(\"room\")] (the pattern is not a plain name)",
                        ));
                        None
                    }
                },
                Err(e) => {
                    errors.push(e);
                    None
                }
            };
            if let Some((name, span)) = name {
                params.push(Param::Path { name, ty, span });
            }
            continue;
        }
        // In `on_handshake` there is no session yet: a `Session` taken by value there is another
        // crate's (actix-session's), an extractor like any other; `&Session` is ours (and
        // refused by `valid`).
        let session = match (kind, session_param(&ty)) {
            (Kind::Handshake, Some((false, false))) => None,
            (_, found) => found,
        };
        match session {
            Some((_, true)) => params.push(Param::MutSession { ty }),
            Some((by_ref, false)) => params.push(Param::Session { by_ref, ty }),
            None => {
                let class = classify(&ty);
                params.push(Param::Other {
                    name: plain_name,
                    ty,
                    class,
                })
            }
        }
    }

    Some(Handler {
        kind,
        ident: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        receiver,
        params,
        output: sig.output.clone(),
        attr,
        generics: sig.generics.clone(),
        max_message_size,
    })
}
