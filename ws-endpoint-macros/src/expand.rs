//! Emits the `Endpoint` impl and the `endpoint()` constructor.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{spanned::Spanned, ItemImpl, ReturnType, Type};

use crate::{
    ast::{self, Handler, Kind, Param, PayloadKind},
    attr::ServerEndpoint,
    valid,
};

/// Validates the parsed endpoint and expands it; all errors found are returned together.
pub fn endpoint(args: ServerEndpoint, mut item: ItemImpl) -> Result<TokenStream, TokenStream> {
    let mut errors = darling::Error::accumulator();

    let template = match valid::path_template(&args.path) {
        Ok(names) => Some(names),
        Err(e) => {
            errors.push(e.into());
            None
        }
    };
    for p in &args.args.subprotocols {
        if let Err(e) = valid::subprotocol(p) {
            errors.push(e.into());
        }
    }
    if let Some(policy) = &args.args.slow_consumer {
        if !matches!(policy.value().as_str(), "drop_messages" | "close") {
            errors.push(
                syn::Error::new(
                    policy.span(),
                    format!(
                        "unknown slow_consumer policy \"{}\": use \"drop_messages\" or \"close\"",
                        policy.value()
                    ),
                )
                .into(),
            );
        }
    }
    if !item.generics.params.is_empty() {
        errors.push(
            syn::Error::new_spanned(&item.generics, "#[server_endpoint] types cannot be generic")
                .into(),
        );
    }
    if let Some((_, path, _)) = &item.trait_ {
        errors.push(
            syn::Error::new_spanned(
                path,
                "#[server_endpoint] goes on an inherent impl (`impl MyEndpoint { ... }`), not a trait impl",
            )
            .into(),
        );
    }

    let handlers = ast::handlers(&mut item, &mut errors);
    check_duplicates(&handlers, &mut errors);
    if let Some(names) = &template {
        check_path_params(&handlers, names, &args.path, &mut errors);
    }

    let fallback = fallback(&item);
    if let Err(e) = errors.finish() {
        let errs = e.write_errors();
        return Err(quote! { #fallback #errs });
    }
    Ok(expand(&args, &item, &handlers, fallback))
}

fn check_duplicates(handlers: &[Handler], errors: &mut darling::error::Accumulator) {
    for kind in [Kind::Open, Kind::Close, Kind::Error] {
        let mut of_kind = handlers.iter().filter(|h| h.kind == kind);
        if let Some(first) = of_kind.next() {
            for dup in of_kind {
                errors.push(
                    syn::Error::new_spanned(
                        &dup.attr.meta,
                        format!(
                            "a second #[{}] handler: `{}` already handles it (one per endpoint)",
                            kind.attr_name(),
                            first.ident
                        ),
                    )
                    .into(),
                );
            }
        }
    }
    let messages: Vec<&Handler> = handlers
        .iter()
        .filter(|h| h.kind == Kind::Message)
        .collect();
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
            errors.push(
                syn::Error::new_spanned(
                    ty,
                    format!(
                        "a second #[on_message] handler for {what} messages: `{}` already takes them (one handler per message kind)",
                        prev.ident
                    ),
                )
                .into(),
            );
        }
    }
}

fn check_path_params(
    handlers: &[Handler],
    names: &[String],
    path: &syn::LitStr,
    errors: &mut darling::error::Accumulator,
) {
    for h in handlers {
        for p in &h.params {
            let Param::Path { name, span, .. } = p else {
                continue;
            };
            if names.iter().any(|n| n == name) {
                continue;
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
            errors.push(
                syn::Error::new(
                    *span,
                    format!(
                        "no `{{{name}}}` in the path template \"{}\": {known}{hint}",
                        path.value()
                    ),
                )
                .into(),
            );
        }
    }
}

/// What is emitted when the endpoint has errors: the impl without our attributes and an
/// `endpoint()` that type-checks, so one mistake gives one error.
pub(crate) fn fallback(item: &ItemImpl) -> TokenStream {
    let self_ty = &item.self_ty;
    quote! {
        #item
        impl #self_ty {
            #[allow(dead_code)]
            pub fn endpoint() -> ::ws_endpoint::EndpointService<::ws_endpoint::__private::FallbackEndpoint> {
                ::core::unreachable!()
            }
            #[allow(dead_code)]
            pub fn hub() -> ::ws_endpoint::Hub {
                ::core::unreachable!()
            }
        }
    }
}

struct Call {
    /// `let` statements that prepare the arguments.
    prelude: TokenStream,
    /// The handler call, awaited if async, bound to `__ret`.
    call: TokenStream,
    /// `reply(__session, __ret).await`, spanned at the return type so that a return type that
    /// cannot be sent is reported there.
    reply: TokenStream,
    /// `finish(__session, __ret)`, likewise.
    finish: TokenStream,
}

/// Builds the call of one handler. `on_bad_param` is what to do when a path parameter fails to
/// re-parse (it was validated at the handshake).
fn call(h: &Handler, extractor_vars: &[syn::Ident], on_bad_param: &TokenStream) -> Call {
    let mut prelude = TokenStream::new();
    let mut args = Vec::new();
    let mut ext = extractor_vars.iter();
    for (i, p) in h.params.iter().enumerate() {
        match p {
            Param::Session { by_ref: true } => args.push(quote!(__session)),
            Param::Session { by_ref: false } => {
                args.push(quote!(::core::clone::Clone::clone(__session)))
            }
            Param::Path { name, ty, .. } => {
                let var = format_ident!("__path_{}", i);
                prelude.extend(quote! {
                    let #var: #ty = match ::ws_endpoint::__private::parse_path::<#ty>(__session.path_param(#name), #name) {
                        ::core::result::Result::Ok(v) => v,
                        ::core::result::Result::Err(__e) => { #on_bad_param }
                    };
                });
                args.push(quote!(#var));
            }
            Param::Payload { .. } => args.push(quote!(__payload)),
            Param::Extractor { .. } => {
                let var = ext.next().expect("one variable per extractor");
                args.push(quote!(#var));
            }
            Param::CloseReason => args.push(quote!(__reason)),
            Param::Error => args.push(quote!(__error)),
        }
    }
    let ident = &h.ident;
    let target = if h.has_receiver {
        quote!(self.#ident)
    } else {
        quote!(Self::#ident)
    };
    let await_ = if h.is_async { quote!(.await) } else { quote!() };
    let ret_span = match &h.output {
        ReturnType::Default => ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let call = quote_spanned! {ret_span=>
        let __ret = #target(#(#args),*) #await_;
    };
    let reply = quote_spanned! {ret_span=>
        ::ws_endpoint::__private::reply(__session, __ret).await
    };
    let finish = quote_spanned! {ret_span=>
        ::ws_endpoint::__private::finish(__session, __ret)
    };
    Call {
        prelude,
        call,
        reply,
        finish,
    }
}

fn expand(
    args: &ServerEndpoint,
    item: &ItemImpl,
    handlers: &[Handler],
    _fb: TokenStream,
) -> TokenStream {
    let self_ty = &item.self_ty;
    let path = &args.path;
    let a = &args.args;

    // ---- config ----
    let mut config = quote! {
        let mut __c = ::ws_endpoint::EndpointConfig::new(#path);
    };
    if let Some(s) = a.max_message_size {
        let n = s.0;
        config.extend(quote! { __c = __c.max_message_size(#n); });
    }
    if let Some(s) = a.max_text_message_size {
        let n = s.0;
        config.extend(quote! { __c = __c.max_text_message_size(#n); });
    }
    if let Some(s) = a.max_binary_message_size {
        let n = s.0;
        config.extend(quote! { __c = __c.max_binary_message_size(#n); });
    }
    if !a.subprotocols.is_empty() {
        let p = &a.subprotocols;
        config.extend(quote! { __c = __c.subprotocols([#(#p),*]); });
    }
    if !a.allowed_origins.is_empty() {
        let o = &a.allowed_origins;
        config.extend(quote! { __c = __c.allowed_origins([#(#o),*]); });
    }
    if let Some(d) = a.idle_timeout {
        let ms = d.0.as_millis() as u64;
        config.extend(quote! { __c = __c.idle_timeout(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))); });
    }
    if let Some(policy) = &a.slow_consumer {
        let variant = match policy.value().as_str() {
            "close" => quote!(Close),
            _ => quote!(DropMessages),
        };
        config.extend(quote! { __c = __c.slow_consumer(::ws_endpoint::SlowConsumer::#variant); });
    }
    if let Some(s) = a.max_buffered {
        let n = s.0;
        config.extend(quote! { __c = __c.max_buffered(#n); });
    }
    if let Some(d) = a.send_timeout {
        let ms = d.0.as_millis() as u64;
        config.extend(quote! { __c = __c.send_timeout(::core::time::Duration::from_millis(#ms)); });
    }
    if a.ping_interval.is_some() || a.pong_timeout.is_some() || a.heartbeat.is_some() {
        let interval = match (a.heartbeat, a.ping_interval) {
            (Some(false), _) => quote!(::core::option::Option::None),
            (_, Some(d)) => {
                let ms = d.0.as_millis() as u64;
                quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms)))
            }
            _ => quote!(__c.ping_interval),
        };
        let pong = match a.pong_timeout {
            Some(d) => {
                let ms = d.0.as_millis() as u64;
                quote!(::core::time::Duration::from_millis(#ms))
            }
            None => quote!(__c.pong_timeout),
        };
        config.extend(quote! {
            let __interval = #interval;
            let __pong = #pong;
            __c = __c.heartbeat(__interval, __pong);
        });
    }

    let messages: Vec<&Handler> = handlers
        .iter()
        .filter(|h| h.kind == Kind::Message)
        .collect();
    for h in &messages {
        if let (Some(size), Some(ty)) = (h.max_message_size, h.payload()) {
            let n = size.0;
            config.extend(quote! {
                ::ws_endpoint::__private::set_limit(&mut __c, ::ws_endpoint::__private::kind_of::<#ty>(), #n);
            });
        }
    }

    // ---- compile-time checks, spanned at the user's tokens ----
    let mut checks = TokenStream::new();
    // (Payload, path-parameter and return types are checked where they are used, with the
    // user's spans; extractors are also checked by the `OpenArgs` bound, whose error points at
    // the attribute, so this one points at the parameter.)
    for h in handlers {
        for p in &h.params {
            if let Param::Extractor { ty } = p {
                checks.extend(quote_spanned! {ty.span()=>
                    ::ws_endpoint::__private::assert_extractor::<#ty>();
                });
            }
        }
    }
    // Two handlers for the same kind through types the macro does not know by name.
    let mut kind_asserts = TokenStream::new();
    for (i, h) in messages.iter().enumerate() {
        for prev in &messages[..i] {
            if let (Some(a_ty), Some(b_ty)) = (prev.payload(), h.payload()) {
                let msg = format!(
                    "a second #[on_message] handler for the same message kind as `{}` (one handler per message kind)",
                    prev.ident
                );
                kind_asserts.extend(quote_spanned! {b_ty.span()=>
                    const _: () = ::core::assert!(
                        !::ws_endpoint::__private::same_kind(
                            ::ws_endpoint::__private::kind_of::<#a_ty>(),
                            ::ws_endpoint::__private::kind_of::<#b_ty>(),
                        ),
                        #msg
                    );
                });
            }
        }
    }

    let kind_flag = |k: TokenStream| {
        let tys: Vec<&Type> = messages.iter().filter_map(|h| h.payload()).collect();
        quote! {
            false #(|| ::ws_endpoint::__private::same_kind(::ws_endpoint::__private::kind_of::<#tys>(), ::ws_endpoint::MessageKind::#k))*
        }
    };
    let text_flag = kind_flag(quote!(Text));
    let binary_flag = kind_flag(quote!(Binary));
    let pong_flag = kind_flag(quote!(Pong));
    let has_error = handlers.iter().any(|h| h.kind == Kind::Error);

    // ---- path parameters checked at the handshake ----
    let mut path_checks = TokenStream::new();
    let mut seen = Vec::new();
    for h in handlers {
        for p in &h.params {
            if let Param::Path { name, ty, .. } = p {
                let key = (name.clone(), quote!(#ty).to_string());
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                path_checks.extend(quote! {
                    if let ::core::result::Result::Err(__e) = ::ws_endpoint::__private::parse_path::<#ty>(
                        ::ws_endpoint::__private::request_path_param(__req, #name), #name,
                    ) {
                        return ::core::result::Result::Err(::ws_endpoint::__private::path_error(__e));
                    }
                });
            }
        }
    }

    // ---- on_open ----
    let open = handlers.iter().find(|h| h.kind == Kind::Open);
    let (open_args_ty, on_open) = match open {
        Some(h) => {
            let tys: Vec<&Type> = h
                .params
                .iter()
                .filter_map(|p| match p {
                    Param::Extractor { ty } => Some(ty),
                    _ => None,
                })
                .collect();
            let vars: Vec<syn::Ident> = (0..tys.len())
                .map(|i| format_ident!("__ext_{}", i))
                .collect();
            let bad = quote!(return ::core::result::Result::Err(__e););
            let Call {
                prelude,
                call,
                reply,
                ..
            } = call(h, &vars, &bad);
            let open_span = h.ident.span();
            (
                quote_spanned!(open_span=> (#(#tys,)*)),
                quote! {
                    let (#(#vars,)*) = __args;
                    #prelude
                    #call
                    #reply
                },
            )
        }
        None => (
            quote!(()),
            quote! {
                let () = __args;
                ::core::result::Result::Ok(())
            },
        ),
    };

    // ---- on_message ----
    let mut on_message = TokenStream::new();
    for h in &messages {
        let Some(ty) = h.payload() else { continue };
        let bad = quote!(return ::core::result::Result::Err(__e););
        let Call {
            prelude,
            call,
            reply,
            ..
        } = call(h, &[], &bad);
        on_message.extend(quote! {
            if ::ws_endpoint::__private::same_kind(__kind, ::ws_endpoint::__private::kind_of::<#ty>()) {
                let __payload = <#ty as ::ws_endpoint::__private::MessagePayload>::from_message(__msg)?;
                #prelude
                #call
                return #reply;
            }
        });
    }

    // ---- on_close / on_error ----
    let log_bad = quote! {
        ::ws_endpoint::__private::log_error(__session, &__e);
        return;
    };
    let on_close = match handlers.iter().find(|h| h.kind == Kind::Close) {
        Some(h) => {
            let Call {
                prelude,
                call,
                finish,
                ..
            } = call(h, &[], &log_bad);
            quote! {
                #prelude
                #call
                #finish;
            }
        }
        None => quote!(let _ = __reason;),
    };
    let on_error = match handlers.iter().find(|h| h.kind == Kind::Error) {
        Some(h) => {
            let Call {
                prelude,
                call,
                reply,
                ..
            } = call(h, &[], &log_bad);
            quote! {
                #prelude
                #call
                if let ::core::result::Result::Err(__e) = #reply {
                    ::ws_endpoint::__private::log_error(__session, &__e);
                }
            }
        }
        None => quote!(::ws_endpoint::__private::log_error(__session, &__error);),
    };

    let create = quote_spanned! {self_ty.span()=>
        <#self_ty as ::core::default::Default>::default()
    };

    quote! {
        #item

        impl #self_ty {
            /// The actix-web service of this WebSocket endpoint: register it with
            /// `App::new().service(Self::endpoint())`; its builder methods override the
            /// `#[server_endpoint]` attributes at runtime.
            pub fn endpoint() -> ::ws_endpoint::EndpointService<Self> {
                ::ws_endpoint::EndpointService::new()
            }

            /// The sessions, broadcasts and rooms of this endpoint in this process.
            pub fn hub() -> ::ws_endpoint::Hub {
                ::ws_endpoint::Hub::of::<Self>()
            }
        }

        const _: () = {
            #kind_asserts

            #[allow(dead_code, clippy::all)]
            fn __ws_endpoint_checks() {
                #checks
            }

            #[allow(clippy::all, unused_variables, unreachable_code)]
            impl ::ws_endpoint::__private::Endpoint for #self_ty {
                type OpenArgs = #open_args_ty;
                const TEXT: bool = #text_flag;
                const BINARY: bool = #binary_flag;
                const PONG: bool = #pong_flag;
                const ON_ERROR: bool = #has_error;

                fn config() -> ::ws_endpoint::EndpointConfig {
                    #config
                    __c
                }

                fn create() -> Self {
                    #create
                }

                fn check_path_params(
                    __req: &::ws_endpoint::__private::HttpRequest,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    #path_checks
                    ::core::result::Result::Ok(())
                }

                async fn on_open(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __args: Self::OpenArgs,
                ) -> ::core::result::Result<(), ::ws_endpoint::EndpointError> {
                    #on_open
                }

                async fn on_message(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __msg: ::ws_endpoint::__private::Message,
                ) -> ::core::result::Result<(), ::ws_endpoint::EndpointError> {
                    let __kind = __msg.kind();
                    #on_message
                    ::core::result::Result::Err(::ws_endpoint::EndpointError::Unsupported(__kind))
                }

                async fn on_close(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __reason: ::ws_endpoint::CloseReason,
                ) {
                    #on_close
                }

                async fn on_error(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __error: ::ws_endpoint::EndpointError,
                ) {
                    #on_error
                }
            }
        };
    }
}
