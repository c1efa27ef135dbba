//! `#[module]`: derives `Module` and writes the builder and constructor from field attributes.
//!
//! Every attribute error of the struct is reported at once; when there is any, the struct is
//! still emitted (our attributes stripped) with a stand-in `Module` impl and the constructor
//! signatures, so that its uses add no errors of their own.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Fields, GenericParam, Ident, ItemStruct, LitStr, Token, Type};

use crate::attrs::{field_role, is_role_attr, FieldRole, VariableArgs};
use crate::constructor_docs::{args_struct, doc_of, tokens_text, ConstructorDocs};
use crate::ctxt::Ctxt;
use crate::derive_module::{stand_in_module, where_of};
use crate::options::{self, mentions_any};

/// `#[check(condition, "message {config}", args...)]` on the struct.
struct Check {
    condition: Expr,
    message: LitStr,
    args: Vec<Expr>,
}

impl Parse for Check {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let condition = input.parse()?;
        input.parse::<Token![,]>()?;
        let message = input.parse()?;
        let mut args = Vec::new();
        while input.parse::<Option<Token![,]>>()?.is_some() {
            if input.is_empty() {
                break;
            }
            args.push(input.parse()?);
        }
        Ok(Self {
            condition,
            message,
            args,
        })
    }
}

/// One configuration value: a builder field (and, when required, an argument of `new`).
pub(crate) struct Config<'a> {
    pub ident: &'a Ident,
    /// The builder field's type (for `#[from_config]`: the submodule's `Config`).
    pub ty: TokenStream,
    /// The struct field's type.
    pub field_ty: &'a Type,
    pub default: Option<Expr>,
    pub computed: Option<Expr>,
    /// `#[from_config]`: the field is the module built from this config.
    pub sub: bool,
    pub doc: String,
}

impl Config<'_> {
    fn required(&self) -> bool {
        self.default.is_none() && self.computed.is_none()
    }
}

/// The generated code; never fails (errors are part of the output).
pub fn expand(args: TokenStream, mut item: ItemStruct) -> TokenStream {
    let mut cx = Ctxt::default();
    let opts = options::module_args(args, &mut cx);
    let krate = opts.krate();

    let mut checks = Vec::new();
    let mut kept_attrs = Vec::new();
    for attr in item.attrs.drain(..) {
        if attr.path().is_ident("check") {
            let parsed = attr.parse_args::<Check>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("{e}: #[check] takes a condition and a message, e.g. #[check(rate < 1.0, \"rate must be below 1, got {{rate}}\")]"),
                )
            });
            checks.extend(cx.ok(parsed));
        } else {
            kept_attrs.push(attr);
        }
    }
    item.attrs = kept_attrs;
    for param in &item.generics.params {
        if let GenericParam::Lifetime(l) = param {
            cx.push(syn::Error::new_spanned(
                l,
                "#[module] structs own their state: lifetime parameters are not supported",
            ));
        }
    }
    let type_params: Vec<Ident> = item
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();

    let fields = item.fields.clone();
    let named: Vec<&syn::Field> = match &fields {
        Fields::Named(named) => named.named.iter().collect(),
        _ => {
            cx.push(syn::Error::new(
                item.ident.span(),
                "#[module] needs a struct with named fields",
            ));
            Vec::new()
        }
    };
    let roles: Vec<(&syn::Field, FieldRole)> = named
        .iter()
        .filter_map(|f| cx.ok(field_role(&f.attrs)).map(|r| (*f, r)))
        .collect();
    let config_names: Vec<&Ident> = roles
        .iter()
        .filter(|(_, r)| matches!(r, FieldRole::Config(_)))
        .filter_map(|(f, _)| f.ident.as_ref())
        .collect();

    let name = &item.ident;
    let type_name = name.to_string();
    let vis = &item.vis;
    let builder = format_ident!("{}Builder", name);
    let mut configs = Vec::new();
    let mut field_inits = Vec::new();
    let mut field_names = Vec::new();
    let mut inferred = Vec::new();

    for (field, role) in &roles {
        let Some(ident) = field.ident.as_ref() else {
            continue;
        };
        let ty = &field.ty;
        field_names.push(ident);
        let init = match role {
            FieldRole::Config(args) => {
                configs.push(Config {
                    ident,
                    ty: ty.to_token_stream(),
                    field_ty: ty,
                    default: args.default.clone(),
                    computed: args.computed.clone(),
                    sub: false,
                    doc: doc_of(&field.attrs),
                });
                continue;
            }
            FieldRole::FromConfig => {
                let span = ty.span();
                if mentions_any(ty, &type_params) {
                    inferred.push(quote_spanned!(span=> #ty: #krate::Configurable));
                }
                configs.push(Config {
                    ident,
                    ty: quote_spanned!(span=> <#ty as #krate::Configurable>::Config),
                    field_ty: ty,
                    default: None,
                    computed: None,
                    sub: true,
                    doc: doc_of(&field.attrs),
                });
                let value = quote_spanned!(span=> <#ty as #krate::Configurable>::from_config(#ident, rngs)?);
                field_inits.push(named_field(ident, ty, value));
                continue;
            }
            FieldRole::Param(args, attr) | FieldRole::BatchStat(args, attr) => {
                let kind = if attr.path().is_ident("param") {
                    quote!(#krate::Param)
                } else {
                    quote!(#krate::BatchStat)
                };
                let made = variable_init(args, attr, kind, &krate, &config_names, name, ident);
                match cx.ok(made) {
                    Some(value) => value,
                    None => continue,
                }
            }
            FieldRole::Rng(args) => {
                let stream = &args.stream;
                quote!(rngs.fork(#stream)?)
            }
            FieldRole::Init(expr) => {
                field_inits.push(named_field(ident, ty, quote!(#expr)));
                continue;
            }
            FieldRole::New(new) => {
                let args = new.args.iter();
                let value = match &new.when {
                    None => quote_spanned!(ty.span()=> <#ty>::new(#(#args,)* rngs)?),
                    Some(cond) => match cx.ok(option_inner(ty)) {
                        Some(inner) => quote_spanned!(inner.span()=>
                            if #cond { ::core::option::Option::Some(<#inner>::new(#(#args,)* rngs)?) } else { ::core::option::Option::None }
                        ),
                        None => continue,
                    },
                };
                field_inits.push(named_field(ident, ty, value));
                continue;
            }
            FieldRole::Auto => {
                quote_spanned!(ty.span()=> <#ty as #krate::AutoField>::auto())
            }
        };
        field_inits.push(quote! { let #ident: #ty = #init; });
    }

    let failed = cx.failed();
    // Strip the attributes only #[module] understands; `config` stays for the derive
    // (unless the derive is replaced by a stand-in because of errors).
    if let Fields::Named(named) = &mut item.fields {
        for field in named.named.iter_mut() {
            field
                .attrs
                .retain(|a| !is_role_attr(a) || (!failed && a.path().is_ident("config")));
        }
    }
    if failed {
        item.attrs.retain(|a| !a.path().is_ident("regularizer"));
    }

    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(ToTokens::to_token_stream).collect())
        .unwrap_or_default();
    match &opts.bound {
        Some(declared) => predicates.extend(declared.iter().map(ToTokens::to_token_stream)),
        None => predicates.extend(inferred),
    }
    let where_tokens = where_of(&predicates);
    let generic = !type_params.is_empty();

    let required: Vec<&Config> = configs.iter().filter(|c| c.required()).collect();
    let defaulted: Vec<&Config> = configs.iter().filter(|c| c.default.is_some()).collect();
    let computed: Vec<&Config> = configs.iter().filter(|c| c.computed.is_some()).collect();
    let stored: Vec<&Config> = required.iter().chain(&defaulted).copied().collect();

    let marker_ty = quote!(::core::marker::PhantomData<fn() -> (#(#type_params,)*)>);
    let turbofish = ty_generics.as_turbofish().to_token_stream().to_string();
    let builder_fields = stored.iter().map(|c| {
        let (i, t) = (c.ident, &c.ty);
        let mut attrs = Vec::new();
        if opts.serde && c.default.is_some() {
            let default_fn = format!("{builder}{turbofish}::__default_{i}");
            attrs.push(quote!(#[serde(default = #default_fn)]));
        }
        if opts.serde && is_dtype(c.field_ty) && !c.sub {
            let with = format!("{krate}::dtype_serde");
            attrs.push(quote!(#[serde(with = #with)]));
        }
        quote!(#(#attrs)* #i: #t)
    });
    let marker_field = if generic {
        let skip = if opts.serde {
            quote!(#[serde(skip)])
        } else {
            quote!()
        };
        quote!(#skip __marker: #marker_ty,)
    } else {
        quote!()
    };
    let marker_init = if generic {
        quote!(__marker: ::core::marker::PhantomData,)
    } else {
        quote!()
    };
    let default_fns = defaulted.iter().filter(|_| opts.serde).map(|c| {
        let (i, t, d) = (c.ident, &c.ty, c.default.as_ref());
        let name = format_ident!("__default_{}", i);
        quote! {
            #[doc(hidden)]
            pub fn #name() -> #t { #d }
        }
    });
    let builder_names: Vec<&Ident> = stored.iter().map(|c| c.ident).collect();
    let required_params: Vec<TokenStream> = required
        .iter()
        .map(|c| {
            let (i, t) = (c.ident, &c.ty);
            quote!(#i: #t)
        })
        .collect();
    let required_names: Vec<&Ident> = required.iter().map(|c| c.ident).collect();
    let default_inits = defaulted.iter().map(|c| {
        let (i, d) = (c.ident, c.default.as_ref());
        quote!(#i: #d)
    });
    let setters = defaulted.iter().map(|c| {
        let (i, t) = (c.ident, &c.ty);
        let doc = format!(
            "Sets `{i}` (default: `{}`).{}",
            tokens_text(c.default.as_ref()),
            if c.doc.is_empty() {
                String::new()
            } else {
                format!(" {}", c.doc)
            }
        );
        quote! {
            #[doc = #doc]
            #[must_use]
            pub fn #i(mut self, value: #t) -> Self {
                self.#i = value;
                self
            }
        }
    });
    let computed_inits = computed.iter().map(|c| {
        let (i, t, e) = (c.ident, &c.ty, c.computed.as_ref());
        quote!(let #i: #t = #e;)
    });
    let check_stmts = checks.iter().map(|c| {
        let (cond, msg, args) = (&c.condition, &c.message, &c.args);
        quote! {
            if !(#cond) {
                return Err(#krate::Error::config(
                    rngs.build_path().describe(#type_name),
                    format!(#msg #(, #args)*),
                ));
            }
        }
    });
    let builder_doc = format!(
        "Builder of [`{name}`] (its configuration): set optional configs, then `build(rngs)`."
    );
    let serde_attrs = if opts.serde {
        let serde_crate = format!("{krate}::serde");
        let bound = if generic {
            quote!(#[serde(bound = "")])
        } else {
            quote!()
        };
        quote! {
            #[derive(#krate::serde::Serialize, #krate::serde::Deserialize)]
            #[serde(crate = #serde_crate)]
            #bound
        }
    } else {
        quote!()
    };
    let configurable = if opts.serde {
        let clones = stored.iter().map(|c| {
            let i = c.ident;
            if c.sub {
                quote!(#i: #krate::Configurable::config(&self.#i))
            } else {
                quote!(#i: ::core::clone::Clone::clone(&self.#i))
            }
        });
        quote! {
            impl #impl_generics #krate::Configurable for #name #ty_generics #where_tokens {
                type Config = #builder #ty_generics;
                fn config(&self) -> Self::Config {
                    #builder { #(#clones,)* #marker_init }
                }
                fn from_config(config: Self::Config, rngs: &mut #krate::Rngs) -> #krate::Result<Self> {
                    config.build(rngs)
                }
            }
        }
    } else {
        quote!()
    };
    let clone_debug = clone_and_debug(&builder, &stored, &item, &predicates, &type_params);
    let docs = ConstructorDocs::new(name, &builder, &required, &defaulted, generic);
    let (new_doc, builder_fn_doc) = (&docs.new, &docs.builder);
    let args_items = args_struct(name, vis, &builder, &required, generic);

    let (module_impl, build_body) = if failed {
        let errors = cx.into_compile_errors();
        let stand_in = stand_in_module(&krate, name, &item.generics, &where_tokens);
        (
            quote! {
                #errors
                #item
                #stand_in
            },
            quote! {
                let _ = (self, rngs);
                Err(#krate::Error::config(#type_name, "its #[module] attributes did not compile"))
            },
        )
    } else {
        let derive_attr = opts.derive_attr();
        (
            quote! {
                #[derive(#krate::Module)]
                #derive_attr
                #item
            },
            // The body runs in a closure so that the build path is left on every exit.
            quote! {
                rngs.build_path().enter();
                let __result = (|| -> #krate::Result<#name #ty_generics> {
                    let #builder { #(#builder_names,)* .. } = self;
                    #(#computed_inits)*
                    #(#check_stmts)*
                    #(#field_inits)*
                    let mut __module = #name { #(#field_names,)* };
                    #krate::Module::bind_paths(&mut __module, &mut #krate::StatePath::root());
                    Ok(__module)
                })();
                rngs.build_path().leave();
                __result
            },
        )
    };

    quote! {
        #module_impl

        #[doc = #builder_doc]
        #serde_attrs
        #[must_use]
        #vis struct #builder #impl_generics #where_tokens {
            #(#builder_fields,)*
            #marker_field
        }

        #clone_debug
        #configurable

        impl #impl_generics #builder #ty_generics #where_tokens {
            #(#setters)*
            #(#default_fns)*

            /// Checks the configuration, then builds every field in declaration order.
            #[allow(clippy::redundant_locals, clippy::needless_question_mark, unreachable_code)]
            pub fn build(self, rngs: &mut #krate::Rngs) -> #krate::Result<#name #ty_generics> {
                #build_body
            }
        }

        impl #impl_generics #name #ty_generics #where_tokens {
            #(#[doc = #builder_fn_doc])*
            #[allow(clippy::too_many_arguments)]
            #vis fn builder(#(#required_params),*) -> #builder #ty_generics {
                #builder { #(#required_names,)* #(#default_inits,)* #marker_init }
            }

            #(#[doc = #new_doc])*
            #[allow(clippy::too_many_arguments)]
            #vis fn new(#(#required_params,)* rngs: &mut #krate::Rngs) -> #krate::Result<Self> {
                Self::builder(#(#required_names),*).build(rngs)
            }
        }

        #args_items
    }
}

/// `let field: Ty = value;`, telling the build path which field the modules built by `value`
/// belong to (numbered for list fields).
fn named_field(ident: &Ident, ty: &Type, value: TokenStream) -> TokenStream {
    let name = syn::ext::IdentExt::unraw(ident).to_string();
    let indexed = is_list(ty);
    quote! {
        rngs.build_path().field(#name, #indexed);
        let #ident: #ty = #value;
    }
}

/// `T` of an `Option<T>` field (`#[new(.., when = cond)]`).
fn option_inner(ty: &Type) -> syn::Result<&Type> {
    if let Type::Path(p) = ty {
        if let Some(last) = p.path.segments.last() {
            if let (true, syn::PathArguments::AngleBracketed(args)) =
                (last.ident == "Option", &last.arguments)
            {
                if let Some(syn::GenericArgument::Type(inner)) = args.args.first() {
                    return Ok(inner);
                }
            }
        }
    }
    Err(syn::Error::new_spanned(
        ty,
        "#[new(.., when = cond)] builds an `Option<T>` field: `Some(T::new(..))` when `cond`, else `None`",
    ))
}

/// `Vec<_>`, `VecDeque<_>`, arrays and tuples: fields whose items are numbered in the state.
fn is_list(ty: &Type) -> bool {
    match ty {
        Type::Array(_) => true,
        Type::Tuple(t) => !t.elems.is_empty(),
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Vec" || s.ident == "VecDeque"),
        _ => false,
    }
}

/// `Clone` and `Debug` for the builder, bounded only by what its fields need.
fn clone_and_debug(
    builder: &Ident,
    stored: &[&Config],
    item: &ItemStruct,
    predicates: &[TokenStream],
    type_params: &[Ident],
) -> TokenStream {
    let (impl_generics, ty_generics, _) = item.generics.split_for_impl();
    let bounded = |tr: TokenStream| {
        let mut all = predicates.to_vec();
        for c in stored.iter().filter(|c| mentions_any(&c.ty, type_params)) {
            let t = &c.ty;
            all.push(quote!(#t: #tr));
        }
        where_of(&all)
    };
    let clone_where = bounded(quote!(::core::clone::Clone));
    let debug_where = bounded(quote!(::core::fmt::Debug));
    let names: Vec<&Ident> = stored.iter().map(|c| c.ident).collect();
    let marker = if type_params.is_empty() {
        quote!()
    } else {
        quote!(__marker: ::core::marker::PhantomData,)
    };
    let text = builder.to_string();
    quote! {
        impl #impl_generics ::core::clone::Clone for #builder #ty_generics #clone_where {
            fn clone(&self) -> Self {
                Self { #(#names: ::core::clone::Clone::clone(&self.#names),)* #marker }
            }
        }
        impl #impl_generics ::core::fmt::Debug for #builder #ty_generics #debug_where {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#text)
                    #(.field(stringify!(#names), &self.#names))*
                    .finish()
            }
        }
    }
}

/// True for a `DType` field (candle's `DType` has no serde impls; the config uses ours).
fn is_dtype(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "DType" && s.arguments.is_empty()))
}

/// The expression that creates a `#[param]` / `#[batch_stat]` field: the shape is checked for
/// overflow first (a configuration error naming the struct and the field), then the variable
/// is created through `from_init`, which also serves shape-only and checkpoint-filled builds.
fn variable_init(
    args: &VariableArgs,
    attr: &syn::Attribute,
    ty: TokenStream,
    krate: &TokenStream,
    config_names: &[&Ident],
    module: &Ident,
    field: &Ident,
) -> syn::Result<TokenStream> {
    let what = if attr.path().is_ident("param") {
        "param"
    } else {
        "batch_stat"
    };
    let shape = args.shape.as_ref().ok_or_else(|| {
        syn::Error::new_spanned(
            attr,
            format!("#[{what}] needs `shape = [..]`, e.g. #[{what}(init = zeros, shape = [in_features, out_features])]"),
        )
    });
    let init = args.init.as_ref().ok_or_else(|| {
        syn::Error::new_spanned(
            attr,
            format!(
                "#[{what}] needs `init = ..`, e.g. `init = lecun_normal` or `init = normal(0.02)`"
            ),
        )
    });
    let (shape, init) = match (shape, init) {
        (Ok(s), Ok(i)) => (s, i),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let init = resolve_init(init, krate, config_names);
    let dims = shape.elems.iter();
    let rank = shape.elems.len();
    let dtype = match &args.dtype {
        Some(d) => quote!(#d),
        None => quote!(#krate::candle_core::DType::F32),
    };
    let (module, field) = (module.to_string(), field.to_string());
    let make = quote! {{
        let __shape: [usize; #rank] = [#(#dims),*];
        let __dtype = #dtype;
        #krate::check_shape(#module, #field, &__shape, __dtype)?;
        #ty::from_init(&(#init), &__shape, __dtype, rngs)?
    }};
    Ok(match &args.when {
        Some(cond) => quote!(if #cond { Some(#make) } else { None }),
        None => make,
    })
}

/// A bare identifier that is not a config names an `artifex_core::init` function.
fn resolve_init(init: &Expr, krate: &TokenStream, config_names: &[&Ident]) -> TokenStream {
    if let Expr::Path(p) = init {
        if let Some(ident) = p.path.get_ident() {
            if p.qself.is_none() && !config_names.contains(&ident) {
                return quote!(#krate::init::#ident());
            }
        }
    }
    quote!(#init)
}
