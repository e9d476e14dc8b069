//! Procedural macros of [ws-endpoint](https://docs.rs/ws-endpoint). Depend on `ws-endpoint`,
//! which re-exports them and documents them (the attribute reference is on
//! `ws_endpoint::server_endpoint`); the expansion refers to `::ws_endpoint::__private`, whose
//! version this crate is pinned to.
//!
//! Parse (`attr`, `ast`: a typed `ast::Endpoint`) → validate (`valid`: every rule, each error
//! on the offending token) → expand (`expand`, which cannot fail). With errors, a minimal
//! fallback is still emitted so one mistake gives one error.

extern crate proc_macro;

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use quote::quote;

/// Turns an impl into a WebSocket endpoint (JSR 356 `@ServerEndpoint`). Documented in the
/// `ws-endpoint` crate, which re-exports it.
#[proc_macro_attribute]
pub fn server_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    endpoint(args, item, false)
}

/// Turns an impl into a WebSocket client endpoint (JSR 356 `@ClientEndpoint`). Documented in
/// the `ws-endpoint` crate, which re-exports it.
#[proc_macro_attribute]
pub fn client_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    endpoint(args, item, true)
}

fn endpoint(args: TokenStream, item: TokenStream, client: bool) -> TokenStream {
    let item_tokens: proc_macro2::TokenStream = item.clone().into();
    let mut item: syn::ItemImpl = match syn::parse(item.clone()) {
        Ok(item) => item,
        Err(e) => return misplaced_endpoint(item_tokens, e.span(), client),
    };
    let parsed = if client {
        attr::parse_client_endpoint(args.into())
    } else {
        attr::parse_server_endpoint(args.into())
    };
    let args = match parsed {
        Ok(args) => args,
        Err(e) => {
            // Still emit the impl (without our attributes) so only this error shows.
            ast::strip(&mut item);
            let errs = e.write_errors();
            let fallback = expand::fallback(&item, client);
            return quote!(#fallback #errs).into();
        }
    };
    let template = if client {
        Some(Vec::new())
    } else {
        valid::path_template(&args.path).ok()
    };
    let mut endpoint = ast::parse(args, item, template);
    endpoint.client = client;
    let errors = valid::endpoint(&endpoint);
    if errors.is_empty() {
        expand::expand(&endpoint).into()
    } else {
        let fallback = expand::fallback(&endpoint.item, client);
        let errs = errors.iter().map(syn::Error::to_compile_error);
        quote!(#fallback #(#errs)*).into()
    }
}

/// `#[server_endpoint]` on something other than an impl: one error. On a struct or enum, the
/// type is also marked as meant to be an endpoint, so that the handler attributes of its impl
/// (which then expand on their own) do not add an error each.
fn misplaced_endpoint(
    item: proc_macro2::TokenStream,
    span: proc_macro2::Span,
    client: bool,
) -> TokenStream {
    let attr = if client {
        "client_endpoint"
    } else {
        "server_endpoint"
    };
    let example = if client {
        "#[client_endpoint]"
    } else {
        "#[server_endpoint(\"/path\")]"
    };
    let (ident, generics) = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => (Some(s.ident), s.generics),
        Ok(syn::Item::Enum(e)) => (Some(e.ident), e.generics),
        _ => (None, syn::Generics::default()),
    };
    let msg = match &ident {
        Some(name) => format!(
            "#[{attr}] goes on the impl block that holds the handlers, not on the type: move it to `impl {name} {{ ... }}`"
        ),
        None => format!("#[{attr}] goes on an impl block: `{example} impl MyEndpoint {{ ... }}`"),
    };
    let err = syn::Error::new(span, msg).to_compile_error();
    let mark = match ident {
        Some(name) if generics.params.is_empty() => {
            quote!(impl ::ws_endpoint::__private_0_1::ServerEndpointImpl for #name {})
        }
        _ => quote!(),
    };
    quote!(#item #mark #err).into()
}

/// A handler attribute that expanded on its own: its impl has no `#[server_endpoint]`. A method
/// (it has a receiver) asks at compile time whether its type carries a misplaced
/// `#[server_endpoint]` (then that one error is enough); anything else is an error here.
fn misplaced(name: &str, item: TokenStream) -> TokenStream {
    let tokens: proc_macro2::TokenStream = item.clone().into();
    if let Ok(mut method) = syn::parse::<syn::ImplItemFn>(item) {
        // `#[path_param]` cannot stay on a parameter (attribute macros are not allowed there).
        for input in &mut method.sig.inputs {
            if let syn::FnArg::Typed(pt) = input {
                pt.attrs.retain(|a| {
                    a.path()
                        .segments
                        .last()
                        .is_none_or(|s| s.ident != "path_param")
                });
            }
        }
        // A method (a receiver, or `Self` in its signature: a constructor) can ask whether its
        // type carries a misplaced `#[server_endpoint]`; a free function cannot name `Self`.
        if method.sig.receiver().is_some() || ast::mentions_self(&method.sig.output, None) {
            let span = method.sig.ident.span();
            let check = quote::quote_spanned! {span=>
                ::ws_endpoint::__private_0_1::handler_outside_endpoint::<Self>();
            };
            let stmt: syn::Stmt = syn::parse2(check).expect("a statement");
            method.block.stmts.insert(0, stmt);
            return quote!(#method).into();
        }
    }
    let msg = format!(
        "#[{name}] marks a method of an impl that has #[server_endpoint(\"/path\")] on it; put that attribute on the impl"
    );
    quote!(::core::compile_error!(#msg); #tokens).into()
}

/// Marks the handler run once the handshake succeeded (JSR 356 `@OnOpen`): constructor-style
/// (`fn open(session: &Session, ...) -> Self`, no receiver) or on a `Default` instance
/// (`&mut self`). Takes `&Session`, `#[path_param]`s and actix-web extractors. Only valid
/// inside a `#[server_endpoint]` impl; see `server_endpoint` for the handler table.
#[proc_macro_attribute]
pub fn on_open(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_open", item)
}

/// Marks a message handler (JSR 356 `@OnMessage`): one payload (`String`, `Bytes`, `Json<T>`,
/// `Pong`, …) plus `&Session` and `#[path_param]`s; a returned value is sent back.
/// `#[on_message(max_message_size = N)]` sets this kind's limit. Only valid inside a
/// `#[server_endpoint]` impl; see `server_endpoint` for the handler table.
#[proc_macro_attribute]
pub fn on_message(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_message", item)
}

/// Marks the handler run exactly once when the session ends (JSR 356 `@OnClose`), whatever
/// ended it; takes `CloseReason`, `&Session` and `#[path_param]`s. Only valid inside a
/// `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_close(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_close", item)
}

/// Marks the hook run before the 101 response is sent (JSR 356 `Configurator.modifyHandshake`):
/// it takes extractors, may add headers to the 101 and may refuse the upgrade with an HTTP error.
/// Only valid inside a `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_handshake(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_handshake", item)
}

/// Marks the error handler (JSR 356 `@OnError`): takes `EndpointError`, `&Session` and
/// `#[path_param]`s; without one, errors are logged through `tracing`. Only valid inside a
/// `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_error(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_error", item)
}

/// Marks a handler parameter as a path-template parameter (JSR 356 `@PathParam`):
/// `#[path_param] room: String`, or `#[path_param("room")] r: RoomId` for another name. The type
/// is `FromStr + Clone`, parsed once at the handshake (400 if it does not parse). Only valid on
/// a parameter of a handler inside a `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn path_param(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("path_param", item)
}
