//! Procedural macros of [ws-endpoint](https://docs.rs/ws-endpoint). Depend on `ws-endpoint`,
//! which re-exports them and documents them; the expansion refers to `::ws_endpoint`.
//!
//! Parse (`attr`, `ast`) → validate (`valid`, and the checks in `expand`) → expand (`expand`).
//! Every mistake is a `syn::Error` on the offending token; with errors, a minimal fallback is
//! still emitted so one mistake gives one error.

extern crate proc_macro;

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use quote::quote;

/// Turns an impl into a WebSocket endpoint (JSR 356 `@ServerEndpoint`). See the `ws-endpoint`
/// crate documentation.
#[proc_macro_attribute]
pub fn server_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_tokens: proc_macro2::TokenStream = item.clone().into();
    let item: syn::ItemImpl = match syn::parse(item) {
        Ok(item) => item,
        Err(e) => {
            let err = syn::Error::new(
                e.span(),
                "#[server_endpoint] goes on an impl block: `impl MyEndpoint { ... }`",
            )
            .to_compile_error();
            return quote!(#item_tokens #err).into();
        }
    };
    let args = match attr::parse_server_endpoint(args.into()) {
        Ok(args) => args,
        Err(e) => {
            // Still expand the impl (without our attributes) so only this error shows.
            let mut item = item;
            let mut ignored = darling::Error::accumulator();
            let _ = ast::handlers(&mut item, &mut ignored);
            let _ = ignored.finish();
            let errs = e.write_errors();
            let fallback = expand::fallback(&item);
            return quote!(#fallback #errs).into();
        }
    };
    match expand::endpoint(args, item) {
        Ok(tokens) | Err(tokens) => tokens.into(),
    }
}

fn misplaced(name: &str, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    let msg = format!(
        "#[{name}] marks a method of an impl that has #[server_endpoint(\"/path\")] on it; put that attribute on the impl"
    );
    quote!(::core::compile_error!(#msg); #item).into()
}

/// Marks the handler run once the handshake succeeded (JSR 356 `@OnOpen`). Only valid inside a
/// `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_open(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_open", item)
}

/// Marks a message handler (JSR 356 `@OnMessage`); `#[on_message(max_message_size = N)]` sets
/// this kind's limit. Only valid inside a `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_message(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_message", item)
}

/// Marks the handler run exactly once when the session ends (JSR 356 `@OnClose`). Only valid
/// inside a `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_close(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_close", item)
}

/// Marks the error handler (JSR 356 `@OnError`). Only valid inside a `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn on_error(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("on_error", item)
}

/// Marks a handler parameter as a path-template parameter (JSR 356 `@PathParam`). Only valid on
/// a parameter of a handler inside a `#[server_endpoint]` impl.
#[proc_macro_attribute]
pub fn path_param(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("path_param", item)
}
