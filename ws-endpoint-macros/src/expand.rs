//! Expand: the typed, validated [`Endpoint`] into the `Endpoint` impl and the `endpoint()` /
//! `hub()` constructors. Cannot fail: every rule was checked by `valid`, and what only the type
//! checker can tell is asked of it through traits spanned at the user's tokens.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{spanned::Spanned, ItemImpl, ReturnType, Type};

use crate::{
    ast::{Assembly, Endpoint, Handler, Kind, Param, TypeClass},
    attr::CompressionArg,
};

/// What is emitted when the endpoint has errors: the impl without our attributes and an
/// `endpoint()` that type-checks, so one mistake gives one error.
pub(crate) fn fallback(item: &ItemImpl, client: bool) -> TokenStream {
    let self_ty = &item.self_ty;
    if client {
        return quote! {
            #item
            impl #self_ty {
                #[allow(dead_code)]
                pub async fn connect(_url: impl ::core::convert::Into<::std::string::String>) -> ::core::result::Result<::ws_endpoint::client::Client, ::ws_endpoint::client::ConnectError> {
                    ::core::unreachable!()
                }
                #[allow(dead_code)]
                pub fn connector(_url: impl ::core::convert::Into<::std::string::String>) -> ::ws_endpoint::client::Connector<::ws_endpoint::__private_0_1::FallbackEndpoint> {
                    ::core::unreachable!()
                }
            }
        };
    }
    quote! {
        #item
        impl #self_ty {
            #[allow(dead_code)]
            pub fn endpoint() -> ::ws_endpoint::EndpointService<::ws_endpoint::__private_0_1::FallbackEndpoint> {
                ::core::unreachable!()
            }
            #[allow(dead_code)]
            pub fn hub() -> ::ws_endpoint::Hub {
                ::core::unreachable!()
            }
        }
    }
}

/// The distinct `(name, type)` path parameters of all handlers: parsed once at the handshake
/// into a tuple, of which each handler gets a clone of its fields.
struct PathParams {
    entries: Vec<(String, String, Type)>,
}

impl PathParams {
    fn of(ep: &Endpoint) -> Self {
        let mut entries: Vec<(String, String, Type)> = Vec::new();
        for h in ep.handlers() {
            for p in &h.params {
                if let Param::Path { name, ty, .. } = p {
                    let key = quote!(#ty).to_string();
                    if !entries.iter().any(|(n, k, _)| n == name && *k == key) {
                        entries.push((name.clone(), key, ty.clone()));
                    }
                }
            }
        }
        PathParams { entries }
    }

    fn index(&self, name: &str, ty: &Type) -> usize {
        let key = quote!(#ty).to_string();
        self.entries
            .iter()
            .position(|(n, k, _)| n == name && *k == key)
            .expect("every path parameter is listed")
    }

    fn tuple_type(&self) -> TokenStream {
        let tys = self.entries.iter().map(|(_, _, ty)| ty);
        quote!((#(#tys,)*))
    }
}

/// How one handler is called.
struct Call {
    /// `let` statements that prepare the arguments (the path parameters' tuple).
    prelude: TokenStream,
    /// The handler call, awaited if async, bound to `__ret`; spanned at the return type so
    /// that a return type that cannot be used is reported there.
    call: TokenStream,
    ret_span: proc_macro2::Span,
}

/// `target` is the receiver expression (`self`, `__ep`) for handlers with a receiver.
fn call(h: &Handler, pp: &PathParams, extractor_vars: &[syn::Ident], target: TokenStream) -> Call {
    let mut args = Vec::new();
    let mut ext = extractor_vars.iter();
    let mut uses_params = false;
    for p in &h.params {
        match p {
            Param::Session { by_ref: true, .. } => args.push(quote!(__session)),
            Param::Session { by_ref: false, .. } => {
                args.push(quote!(::core::clone::Clone::clone(__session)))
            }
            Param::MutSession { .. } => args.push(quote!(__session)),
            Param::Path { name, ty, .. } => {
                uses_params = true;
                let idx = syn::Index::from(pp.index(name, ty));
                args.push(quote_spanned! {ty.span()=>
                    (&&::ws_endpoint::__private_0_1::Probe::<#ty>::new()).param(&__pp.#idx)
                });
            }
            Param::Other { class, .. } => match h.kind {
                Kind::Message if *class == TypeClass::Last => args.push(quote!(__last)),
                Kind::Message => args.push(quote!(__payload)),
                Kind::Close => args.push(quote!(__reason)),
                Kind::Error => args.push(quote!(__error)),
                Kind::Open | Kind::Handshake if *class == TypeClass::Handshake => {
                    args.push(quote!(__hs))
                }
                Kind::Open | Kind::Handshake if *class == TypeClass::RequestRef => {
                    args.push(quote!(__req))
                }
                Kind::Open | Kind::Handshake => {
                    let var = ext.next().expect("one variable per extractor");
                    args.push(quote!(#var));
                }
            },
        }
    }
    let prelude = if uses_params {
        let tuple = pp.tuple_type();
        quote! {
            let __pp = ::ws_endpoint::__private_0_1::params::<#tuple>(__params);
        }
    } else {
        quote!(let _ = __params;)
    };
    let ident = &h.ident;
    let target = if h.receiver.is_some() {
        quote!(#target.#ident)
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
    Call {
        prelude,
        call,
        ret_span,
    }
}

/// `let __ext_N = <extract T>.await?;` for each extractor, spanned at its type: a type that is
/// not an extractor gets one error there, in public terms.
fn extract(tys: &[&Type], prefix: &str) -> (Vec<syn::Ident>, TokenStream) {
    let vars: Vec<syn::Ident> = (0..tys.len())
        .map(|i| format_ident!("__{}_{}", prefix, i))
        .collect();
    let mut out = TokenStream::new();
    for (var, ty) in vars.iter().zip(tys) {
        out.extend(quote_spanned! {ty.span()=>
            let #var = (&&::ws_endpoint::__private_0_1::Probe::<#ty>::new()).extract(__req).await?;
        });
    }
    (vars, out)
}

pub fn expand(ep: &Endpoint) -> TokenStream {
    let item = &ep.item;
    let self_ty = &item.self_ty;
    let path = &ep.args.path;
    let a = &ep.args.args;
    let pp = PathParams::of(ep);

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
    if !a.allowed_hosts.is_empty() {
        let h = &a.allowed_hosts;
        config.extend(quote! { __c = __c.allowed_hosts([#(#h),*]); });
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
    if let Some(n) = a.max_sessions {
        config.extend(quote! { __c.max_sessions = ::core::option::Option::Some(#n); });
    }
    if let Some(n) = a.max_sessions_per_ip {
        config.extend(quote! { __c.max_sessions_per_ip = ::core::option::Option::Some(#n); });
    }
    if let Some(rate) = &a.max_message_rate {
        config.extend(quote! {
            __c.max_message_rate = ::core::option::Option::Some(
                ::ws_endpoint::__private_0_1::rate(#rate),
            );
        });
    }
    if let Some(d) = a.max_lifetime {
        let ms = d.0.as_millis() as u64;
        config.extend(quote! {
            __c.max_lifetime = ::core::option::Option::Some(::core::time::Duration::from_millis(#ms));
        });
    }
    match &a.compression {
        None => {}
        Some(CompressionArg::Off) => {
            config.extend(quote! { __c.compression = ::core::option::Option::None; });
        }
        Some(CompressionArg::On(keys)) => {
            let mut set = quote! { let mut __z = ::ws_endpoint::Compression::default(); };
            if let Some(level) = &keys.level {
                set.extend(quote! { __z = __z.level(#level); });
            }
            if let Some(size) = keys.min_size {
                let n = size.0;
                set.extend(quote! { __z = __z.min_size(#n); });
            }
            if let Some(keep) = keys.context_takeover {
                set.extend(quote! { __z = __z.context_takeover(#keep); });
            }
            if let Some(bits) = &keys.max_window_bits {
                set.extend(quote! { __z = __z.max_window_bits(#bits); });
            }
            config.extend(quote! {
                {
                    #set
                    __c.compression = ::core::option::Option::Some(__z);
                }
            });
        }
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

    for h in &ep.messages {
        if let (Some(size), Some(ty)) = (h.max_message_size, h.payload()) {
            let n = size.0;
            config.extend(quote! {
                ::ws_endpoint::__private_0_1::set_limit(&mut __c, ::ws_endpoint::__private_0_1::kind_of::<#ty>(), #n);
            });
        }
    }

    // Two handlers for the same kind through types the macro does not know by name.
    let mut kind_asserts = TokenStream::new();
    for (i, h) in ep.messages.iter().enumerate() {
        for prev in &ep.messages[..i] {
            if let (Some(a_ty), Some(b_ty)) = (prev.payload(), h.payload()) {
                let msg = format!(
                    "a second #[on_message] handler for the same message kind as `{}` (one handler per message kind)",
                    prev.ident
                );
                kind_asserts.extend(quote_spanned! {b_ty.span()=>
                    const _: () = ::core::assert!(
                        !::ws_endpoint::__private_0_1::same_kind(
                            ::ws_endpoint::__private_0_1::kind_of::<#a_ty>(),
                            ::ws_endpoint::__private_0_1::kind_of::<#b_ty>(),
                        ),
                        #msg
                    );
                });
            }
        }
    }

    let kind_flag = |k: TokenStream| {
        let tys: Vec<&Type> = ep.messages.iter().filter_map(|h| h.payload()).collect();
        quote! {
            false #(|| ::ws_endpoint::__private_0_1::same_kind(::ws_endpoint::__private_0_1::kind_of::<#tys>(), ::ws_endpoint::MessageKind::#k))*
        }
    };
    let text_flag = kind_flag(quote!(Text));
    let binary_flag = kind_flag(quote!(Binary));
    let pong_flag = kind_flag(quote!(Pong));
    let has_error = ep.error.is_some();

    // ---- path parameters, parsed once at the handshake ----
    let mut parse_params = TokenStream::new();
    let mut param_vars = Vec::new();
    for (i, (name, _, ty)) in pp.entries.iter().enumerate() {
        let var = format_ident!("__p_{}", i);
        let parse = quote_spanned! {ty.span()=>
            (&&::ws_endpoint::__private_0_1::Probe::<#ty>::new()).parse_path(
                ::ws_endpoint::__private_0_1::request_path_param(__req, #name), #name,
            )
        };
        parse_params.extend(quote! {
            let #var: #ty = match #parse {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(__e) => {
                    return ::core::result::Result::Err(::ws_endpoint::__private_0_1::path_error(__e));
                }
            };
        });
        param_vars.push(var);
    }

    // ---- on_handshake, then on_open's extractors ----
    let hook = match &ep.handshake {
        Some(h) => {
            let tys = h.extractors();
            let (vars, extract_hook) = extract(&tys, "hs");
            let Call {
                prelude,
                call,
                ret_span,
            } = call(h, &pp, &vars, quote!(self));
            let check = quote_spanned! {ret_span=>
                ::ws_endpoint::__private_0_1::handshake_result(__ret)?;
            };
            quote! {
                {
                    #extract_hook
                    #prelude
                    #call
                    #check
                }
            }
        }
        None => quote!(let _ = (__params, &__hs);),
    };
    let open_tys: Vec<&Type> = ep.open.as_ref().map(|h| h.extractors()).unwrap_or_default();
    let (open_vars, extract_open) = extract(&open_tys, "ext");

    // ---- open: create the instance and run on_open ----
    let unpack = quote! {
        let (#(#open_vars,)*) = *::ws_endpoint::__private_0_1::args::<(#(#open_tys,)*)>(__args);
    };
    // `Default::default`, through a probe whose fallback names both fixes when the type has no
    // `Default` (spanned at the impl's type).
    let create = quote_spanned! {self_ty.span()=>
        (&&::ws_endpoint::__private_0_1::Probe::<#self_ty>::new()).default_fn()
    };
    let open = match &ep.open {
        Some(h) if h.is_constructor(ep.self_ident()) => {
            let Call {
                prelude,
                call,
                ret_span,
            } = call(h, &pp, &open_vars, quote!(__ep));
            let is_result = matches!(&h.output, ReturnType::Type(_, ty) if crate::ast::last_ident(ty).as_deref() == Some("Result"));
            let into_result = if is_result {
                quote_spanned! {ret_span=> __ret.map_err(::ws_endpoint::__private_0_1::handler_error) }
            } else {
                quote_spanned! {ret_span=> ::core::result::Result::Ok(__ret) }
            };
            quote! {
                #unpack
                let __r = ::ws_endpoint::__private_0_1::guarded(async {
                    #prelude
                    #call
                    #into_result
                }).await;
                ::ws_endpoint::__private_0_1::constructed(__r)
            }
        }
        Some(h) => {
            let Call {
                prelude,
                call,
                ret_span,
            } = call(h, &pp, &open_vars, quote!(__ep));
            let reply = quote_spanned! {ret_span=>
                ::ws_endpoint::__private_0_1::reply(__session, __ret).await
            };
            quote! {
                let mut __ep: Self = match ::ws_endpoint::__private_0_1::create(#create) {
                    ::core::result::Result::Ok(__ep) => __ep,
                    ::core::result::Result::Err(__e) => return ::ws_endpoint::__private_0_1::Opened::Refused(__e),
                };
                #unpack
                let __r = ::ws_endpoint::__private_0_1::guarded(async {
                    #prelude
                    #call
                    #reply
                }).await;
                ::ws_endpoint::__private_0_1::opened(__ep, __r)
            }
        }
        None => quote! {
            let _ = (__session, __params, __args);
            match ::ws_endpoint::__private_0_1::create(#create) {
                ::core::result::Result::Ok(__ep) => ::ws_endpoint::__private_0_1::Opened::Open(__ep),
                ::core::result::Result::Err(__e) => ::ws_endpoint::__private_0_1::Opened::Refused(__e),
            }
        },
    };

    // ---- on_message: whole messages; on_part, on_stream ----
    let mut on_message = TokenStream::new();
    let mut on_part = TokenStream::new();
    let mut on_stream = TokenStream::new();
    let mut assemblies = Vec::new();
    for h in &ep.messages {
        let Some(ty) = h.payload() else { continue };
        let assembly = h.assembly();
        if assembly != Assembly::Whole {
            let a = if assembly == Assembly::Parts {
                quote!(Frames)
            } else {
                quote!(Stream)
            };
            assemblies.push(quote! {
                (::ws_endpoint::__private_0_1::kind_of::<#ty>(), ::ws_endpoint::__private_0_1::Assembly::#a)
            });
        }
        // `if the message is this handler's kind { build the payload; call; send the reply }`
        let dispatch = |payload: TokenStream| {
            let Call {
                prelude,
                call,
                ret_span,
            } = call(h, &pp, &[], quote!(self));
            let reply = quote_spanned! {ret_span=>
                ::ws_endpoint::__private_0_1::reply(__session, __ret).await
            };
            quote! {
                if ::ws_endpoint::__private_0_1::same_kind(__kind, ::ws_endpoint::__private_0_1::kind_of::<#ty>()) {
                    let __payload = #payload;
                    #prelude
                    #call
                    return #reply;
                }
            }
        };
        let from_message = quote! {
            <#ty as ::ws_endpoint::__private_0_1::MessagePayload>::from_message(__msg)?
        };
        match assembly {
            // `last` exists only in on_part: such a handler gets no whole messages.
            Assembly::Parts => on_part.extend(dispatch(from_message)),
            Assembly::Stream => {
                on_stream.extend(dispatch(quote! {
                    <#ty as ::ws_endpoint::__private_0_1::StreamPayload>::from_stream(__stream)
                }));
                // A whole message (never handed over for this kind) would still reach it.
                on_message.extend(dispatch(from_message));
            }
            Assembly::Whole => on_message.extend(dispatch(from_message)),
        }
    }

    // ---- on_close / on_error ----
    let on_close = match &ep.close {
        Some(h) => {
            let Call {
                prelude,
                call,
                ret_span,
            } = call(h, &pp, &[], quote!(self));
            let finish = quote_spanned! {ret_span=>
                ::ws_endpoint::__private_0_1::finish(__session, __ret)
            };
            quote! {
                #prelude
                #call
                #finish;
            }
        }
        None => quote!(let _ = (__params, __reason);),
    };
    let on_error = match &ep.error {
        Some(h) => {
            let Call {
                prelude,
                call,
                ret_span,
            } = call(h, &pp, &[], quote!(self));
            let reply = quote_spanned! {ret_span=>
                ::ws_endpoint::__private_0_1::reply(__session, __ret).await
            };
            quote! {
                #prelude
                #call
                if let ::core::result::Result::Err(__e) = #reply {
                    ::ws_endpoint::__private_0_1::log_error(__session, &__e);
                }
            }
        }
        None => quote! {
            let _ = __params;
            ::ws_endpoint::__private_0_1::log_error(__session, &__error);
        },
    };

    let constructors = if ep.client {
        quote! {
            impl #self_ty {
                /// Connects this client endpoint to `url` (`ws://…` or `wss://…`) with the
                /// `#[client_endpoint]` settings; returns once `on_open` has run. See
                /// [`client_endpoint`](::ws_endpoint::client_endpoint).
                pub async fn connect(
                    url: impl ::core::convert::Into<::std::string::String>,
                ) -> ::core::result::Result<::ws_endpoint::client::Client, ::ws_endpoint::client::ConnectError> {
                    ::ws_endpoint::client::Connector::<Self>::new(url).connect().await
                }

                /// A connector to `url`: headers, subprotocols, timeouts, limits, reconnect and
                /// TLS settings, then `.connect()`.
                pub fn connector(
                    url: impl ::core::convert::Into<::std::string::String>,
                ) -> ::ws_endpoint::client::Connector<Self> {
                    ::ws_endpoint::client::Connector::new(url)
                }
            }
        }
    } else {
        quote! {
            impl #self_ty {
                /// The actix-web service of this WebSocket endpoint: register it with
                /// `App::new().service(Self::endpoint())`; its builder methods override the
                /// `#[server_endpoint]` attributes at runtime. See
                /// [`server_endpoint`](::ws_endpoint::server_endpoint) for the attributes and handlers.
                pub fn endpoint() -> ::ws_endpoint::EndpointService<Self> {
                    ::ws_endpoint::EndpointService::new()
                }

                /// The sessions, broadcasts and rooms of this endpoint in this process.
                pub fn hub() -> ::ws_endpoint::Hub {
                    ::ws_endpoint::Hub::of::<Self>()
                }
            }
        }
    };

    quote! {
        #item

        #constructors

        const _: () = {
            #kind_asserts

            #[allow(unused_imports)]
            use ::ws_endpoint::__private_0_1::{
                CloneFallback as _, CloneProbe as _, DefaultFallback as _, DefaultProbe as _,
                ExtractorFallback as _, ExtractorProbe as _, PathParamFallback as _,
                PathParamProbe as _,
            };

            #[allow(clippy::all, unused_variables, unreachable_code, unused_mut)]
            impl ::ws_endpoint::__private_0_1::Endpoint for #self_ty {
                const TEXT: bool = #text_flag;
                const BINARY: bool = #binary_flag;
                const PONG: bool = #pong_flag;
                const ON_ERROR: bool = #has_error;
                const TEXT_ASSEMBLY: ::ws_endpoint::__private_0_1::Assembly =
                    ::ws_endpoint::__private_0_1::assembly_of(::ws_endpoint::MessageKind::Text, &[#(#assemblies),*]);
                const BINARY_ASSEMBLY: ::ws_endpoint::__private_0_1::Assembly =
                    ::ws_endpoint::__private_0_1::assembly_of(::ws_endpoint::MessageKind::Binary, &[#(#assemblies),*]);

                fn config() -> ::ws_endpoint::EndpointConfig {
                    #config
                    __c
                }

                fn path_params(
                    __req: &::ws_endpoint::__private_0_1::HttpRequest,
                ) -> ::core::result::Result<::ws_endpoint::__private_0_1::Params, ::std::string::String> {
                    #parse_params
                    ::core::result::Result::Ok(::ws_endpoint::__private_0_1::boxed((#(#param_vars,)*)))
                }

                async fn handshake(
                    __req: &::ws_endpoint::__private_0_1::HttpRequest,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __hs: &mut ::ws_endpoint::Handshake,
                ) -> ::core::result::Result<::ws_endpoint::__private_0_1::OpenArgs, ::ws_endpoint::__private_0_1::ActixError> {
                    #hook
                    #extract_open
                    ::core::result::Result::Ok(::ws_endpoint::__private_0_1::boxed((#(#open_vars,)*)))
                }

                async fn open(
                    __session: &::ws_endpoint::Session,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __args: ::ws_endpoint::__private_0_1::OpenArgs,
                ) -> ::ws_endpoint::__private_0_1::Opened<Self> {
                    #open
                }

                async fn on_message(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __msg: ::ws_endpoint::__private_0_1::Message,
                ) -> ::core::result::Result<(), ::ws_endpoint::EndpointError> {
                    let __kind = __msg.kind();
                    #on_message
                    ::core::result::Result::Err(::ws_endpoint::EndpointError::Unsupported(__kind))
                }

                async fn on_part(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __msg: ::ws_endpoint::__private_0_1::Message,
                    __last: bool,
                ) -> ::core::result::Result<(), ::ws_endpoint::EndpointError> {
                    let __kind = __msg.kind();
                    #on_part
                    ::core::result::Result::Err(::ws_endpoint::EndpointError::Unsupported(__kind))
                }

                async fn on_stream(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __kind: ::ws_endpoint::MessageKind,
                    __stream: ::ws_endpoint::__private_0_1::Incoming,
                ) -> ::core::result::Result<(), ::ws_endpoint::EndpointError> {
                    #on_stream
                    ::core::result::Result::Err(::ws_endpoint::EndpointError::Unsupported(__kind))
                }

                async fn on_close(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __reason: ::ws_endpoint::CloseReason,
                ) {
                    #on_close
                }

                async fn on_error(
                    &mut self,
                    __session: &::ws_endpoint::Session,
                    __params: &::ws_endpoint::__private_0_1::Params,
                    __error: ::ws_endpoint::EndpointError,
                ) {
                    #on_error
                }
            }
        };
    }
}
