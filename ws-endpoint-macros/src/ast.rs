//! Reads the annotated impl: which methods are handlers, and what each parameter is.

use darling::{ast::NestedMeta, FromMeta};
use proc_macro2::Span;
use quote::ToTokens;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, Meta, Pat, ReturnType, Type};

use crate::attr::{MessageArgs, Size};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Open,
    Message,
    Close,
    Error,
}

impl Kind {
    pub fn attr_name(self) -> &'static str {
        match self {
            Kind::Open => "on_open",
            Kind::Message => "on_message",
            Kind::Close => "on_close",
            Kind::Error => "on_error",
        }
    }

    fn from_attr(attr: &Attribute) -> Option<Kind> {
        let last = attr.path().segments.last()?.ident.to_string();
        Some(match last.as_str() {
            "on_open" => Kind::Open,
            "on_message" => Kind::Message,
            "on_close" => Kind::Close,
            "on_error" => Kind::Error,
            _ => return None,
        })
    }
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

pub enum Param {
    Session { by_ref: bool },
    Path { name: String, ty: Type, span: Span },
    Payload { ty: Type },
    Extractor { ty: Type },
    CloseReason,
    Error,
}

pub struct Handler {
    pub kind: Kind,
    pub ident: syn::Ident,
    pub is_async: bool,
    pub has_receiver: bool,
    pub params: Vec<Param>,
    pub output: ReturnType,
    pub attr: Attribute,
    pub max_message_size: Option<Size>,
}

impl Handler {
    pub fn payload(&self) -> Option<&Type> {
        self.params.iter().find_map(|p| match p {
            Param::Payload { ty } => Some(ty),
            _ => None,
        })
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Group(g) => last_ident(&g.elem),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

pub fn payload_kind(ty: &Type) -> PayloadKind {
    match last_ident(ty).as_deref() {
        Some("String") | Some("Json") | Some("Text") => PayloadKind::Text,
        Some("Bytes") | Some("Binary") | Some("MsgPack") | Some("Cbor") => PayloadKind::Binary,
        Some("Vec") => PayloadKind::Binary,
        Some("Pong") => PayloadKind::Pong,
        _ => PayloadKind::Other,
    }
}

fn is_session(ty: &Type) -> Option<bool> {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => {
            (last_ident(&r.elem).as_deref() == Some("Session")).then_some(true)
        }
        _ => (last_ident(ty).as_deref() == Some("Session")).then_some(false),
    }
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

/// Parses every handler of the impl, strips our attributes from it, and collects errors.
pub fn handlers(item: &mut ItemImpl, errors: &mut darling::error::Accumulator) -> Vec<Handler> {
    let mut out = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        if let Some(h) = handler(method, errors) {
            out.push(h);
        }
    }
    out
}

fn handler(method: &mut ImplItemFn, errors: &mut darling::error::Accumulator) -> Option<Handler> {
    let mut found: Option<(Kind, Attribute)> = None;
    let mut keep = Vec::new();
    for attr in method.attrs.drain(..) {
        match Kind::from_attr(&attr) {
            Some(kind) => {
                if let Some((first, _)) = &found {
                    errors.push(
                        syn::Error::new_spanned(
                            &attr,
                            format!(
                                "`{}` is already marked #[{}]; a method handles one event",
                                method.sig.ident,
                                first.attr_name()
                            ),
                        )
                        .into(),
                    );
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
    let (kind, attr) = found?;
    let original = method.clone();
    let sig = &original.sig;

    let mut max_message_size = None;
    match (&attr.meta, kind) {
        (Meta::Path(_), _) => {}
        (Meta::List(list), Kind::Message) => {
            match NestedMeta::parse_meta_list(list.tokens.clone())
                .map_err(darling::Error::from)
                .and_then(|items| MessageArgs::from_list(&items))
            {
                Ok(args) => max_message_size = args.max_message_size,
                Err(e) => errors.push(e),
            }
        }
        (meta, _) => errors.push(
            syn::Error::new_spanned(meta, format!("#[{}] takes no arguments", kind.attr_name()))
                .into(),
        ),
    }

    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
    {
        errors.push(
            syn::Error::new_spanned(param, "handlers cannot have type or const parameters").into(),
        );
    }

    let mut has_receiver = false;
    let mut params = Vec::new();
    let mut seen_payload = false;
    let mut seen_reason = false;
    let mut seen_error = false;
    for (input, path_attr) in raw_inputs {
        let pt = match input {
            FnArg::Receiver(r) => {
                if !matches!(&*r.ty, Type::Reference(_)) {
                    errors.push(
                        syn::Error::new_spanned(
                            &r,
                            "handlers take `&mut self` or `&self`: the endpoint instance lives as long as its connection",
                        )
                        .into(),
                    );
                }
                has_receiver = true;
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        let ty = (*pt.ty).clone();
        if let Some(attr) = path_attr {
            let name = match path_param_name(&attr) {
                Ok(Some(name)) => Some(name),
                Ok(None) => match &*pt.pat {
                    Pat::Ident(pi) => Some((
                        pi.ident.to_string().trim_start_matches("r#").to_owned(),
                        pi.ident.span(),
                    )),
                    other => {
                        errors.push(
                            syn::Error::new_spanned(
                                other,
                                "name the template parameter: #[path_param(\"room\")] (the pattern is not a plain name)",
                            )
                            .into(),
                        );
                        None
                    }
                },
                Err(e) => {
                    errors.push(e.into());
                    None
                }
            };
            if let Some((name, span)) = name {
                params.push(Param::Path { name, ty, span });
            }
            continue;
        }
        if let Type::Reference(r) = &ty {
            if r.mutability.is_some() && last_ident(&r.elem).as_deref() == Some("Session") {
                errors.push(
                    syn::Error::new_spanned(
                        &pt.ty,
                        "take the session as `&Session` (or `Session`): it is shared, and every method takes `&self`",
                    )
                    .into(),
                );
                continue;
            }
        }
        if let Some(by_ref) = is_session(&ty) {
            params.push(Param::Session { by_ref });
            continue;
        }
        match kind {
            Kind::Open => params.push(Param::Extractor { ty }),
            Kind::Message => {
                if seen_payload {
                    errors.push(
                        syn::Error::new_spanned(
                            &pt.ty,
                            "#[on_message] takes exactly one payload (String, Bytes, Vec<u8>, Json<T> or Pong); this is a second one",
                        )
                        .into(),
                    );
                } else {
                    seen_payload = true;
                    params.push(Param::Payload { ty });
                }
            }
            Kind::Close => {
                if last_ident(&ty).as_deref() == Some("CloseReason") && !seen_reason {
                    seen_reason = true;
                    params.push(Param::CloseReason);
                } else {
                    errors.push(
                        syn::Error::new_spanned(
                            &pt.ty,
                            format!(
                                "#[on_close] cannot take `{}`: it takes &Session, CloseReason and #[path_param] parameters",
                                ty.to_token_stream()
                            ),
                        )
                        .into(),
                    );
                }
            }
            Kind::Error => {
                if last_ident(&ty).as_deref() == Some("EndpointError") && !seen_error {
                    seen_error = true;
                    params.push(Param::Error);
                } else {
                    errors.push(
                        syn::Error::new_spanned(
                            &pt.ty,
                            format!(
                                "#[on_error] cannot take `{}`: it takes &Session, EndpointError and #[path_param] parameters",
                                ty.to_token_stream()
                            ),
                        )
                        .into(),
                    );
                }
            }
        }
    }
    if kind == Kind::Message && !seen_payload {
        errors.push(
            syn::Error::new_spanned(
                &sig.ident,
                "#[on_message] needs a payload parameter: String (text), Bytes or Vec<u8> (binary), Json<T> (text) or Pong",
            )
            .into(),
        );
    }

    Some(Handler {
        kind,
        ident: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        has_receiver,
        params,
        output: sig.output.clone(),
        attr: attr.clone(),
        max_message_size,
    })
}
