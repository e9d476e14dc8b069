//! Procedural macros of [ws-endpoint](https://docs.rs/ws-endpoint). Depend on `ws-endpoint`,
//! which re-exports them; this crate's output refers to `::ws_endpoint`.
extern crate proc_macro;
use proc_macro::TokenStream;

#[proc_macro_attribute]
pub fn server_endpoint(_a: TokenStream, item: TokenStream) -> TokenStream { item }
#[proc_macro_attribute]
pub fn on_open(_a: TokenStream, item: TokenStream) -> TokenStream { item }
#[proc_macro_attribute]
pub fn on_message(_a: TokenStream, item: TokenStream) -> TokenStream { item }
#[proc_macro_attribute]
pub fn on_close(_a: TokenStream, item: TokenStream) -> TokenStream { item }
#[proc_macro_attribute]
pub fn on_error(_a: TokenStream, item: TokenStream) -> TokenStream { item }
#[proc_macro_attribute]
pub fn path_param(_a: TokenStream, item: TokenStream) -> TokenStream { item }
