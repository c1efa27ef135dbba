//! `#[module]`: derives `Module` and writes the builder and constructor from field attributes.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Fields, Ident, ItemStruct, LitStr, Token, Type};

use crate::attrs::{field_role, is_role_attr, FieldRole, VariableArgs};

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

struct Config<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    default: Option<Expr>,
    computed: Option<Expr>,
}

pub fn expand(args: TokenStream, mut item: ItemStruct) -> syn::Result<TokenStream> {
    let serde = if args.is_empty() {
        false
    } else {
        let ident: Ident = syn::parse2(args.clone()).map_err(|_| bad_args(&args))?;
        if ident != "serde" {
            return Err(bad_args(&args));
        }
        true
    };
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "#[module] does not support generic structs; use #[derive(Module)] and write the constructor",
        ));
    }
    let fields = item.fields.clone();
    let Fields::Named(named) = &fields else {
        return Err(syn::Error::new(
            item.ident.span(),
            "#[module] needs a struct with named fields",
        ));
    };

    let mut checks = Vec::new();
    let mut kept_attrs = Vec::new();
    for attr in item.attrs.drain(..) {
        if attr.path().is_ident("check") {
            checks.push(attr.parse_args::<Check>()?);
        } else {
            kept_attrs.push(attr);
        }
    }
    item.attrs = kept_attrs;

    let roles: Vec<(&syn::Field, FieldRole)> = named
        .named
        .iter()
        .map(|f| field_role(&f.attrs).map(|r| (f, r)))
        .collect::<syn::Result<_>>()?;
    let config_names: Vec<&Ident> = roles
        .iter()
        .filter(|(_, r)| matches!(r, FieldRole::Config(_)))
        .filter_map(|(f, _)| f.ident.as_ref())
        .collect();

    let krate = quote!(::artifex_core);
    let name = &item.ident;
    let vis = &item.vis;
    let builder = format_ident!("{}Builder", name);
    let mut configs = Vec::new();
    let mut field_inits = Vec::new();
    let mut field_names = Vec::new();

    for (field, role) in &roles {
        let Some(ident) = field.ident.as_ref() else {
            return Err(syn::Error::new_spanned(
                field,
                "#[module] needs named fields",
            ));
        };
        let ty = &field.ty;
        field_names.push(ident);
        match role {
            FieldRole::Config(args) => configs.push(Config {
                ident,
                ty,
                default: args.default.clone(),
                computed: args.computed.clone(),
            }),
            FieldRole::Param(args, attr) => {
                let value = variable_init(
                    args,
                    attr,
                    quote!(#krate::Param),
                    &config_names,
                    name,
                    ident,
                )?;
                field_inits.push(quote! { let #ident: #ty = #value; });
            }
            FieldRole::BatchStat(args, attr) => {
                let value = variable_init(
                    args,
                    attr,
                    quote!(#krate::BatchStat),
                    &config_names,
                    name,
                    ident,
                )?;
                field_inits.push(quote! { let #ident: #ty = #value; });
            }
            FieldRole::Rng(args) => {
                let stream = &args.stream;
                field_inits.push(quote! { let #ident: #ty = rngs.fork(#stream)?; });
            }
            FieldRole::Init(expr) => field_inits.push(quote! { let #ident: #ty = #expr; }),
            FieldRole::Auto => {
                let auto = quote::quote_spanned!(ty.span()=> <#ty as #krate::AutoField>::auto());
                field_inits.push(quote! { let #ident: #ty = #auto; });
            }
        }
    }

    // Strip the attributes only #[module] understands; `config` stays for the derive.
    if let Fields::Named(named) = &mut item.fields {
        for field in named.named.iter_mut() {
            field
                .attrs
                .retain(|a| !is_role_attr(a) || a.path().is_ident("config"));
        }
    }

    let required: Vec<&Config> = configs
        .iter()
        .filter(|c| c.default.is_none() && c.computed.is_none())
        .collect();
    let defaulted: Vec<&Config> = configs.iter().filter(|c| c.default.is_some()).collect();
    let computed: Vec<&Config> = configs.iter().filter(|c| c.computed.is_some()).collect();

    let builder_fields = required.iter().chain(&defaulted).map(|c| {
        let (i, t) = (c.ident, c.ty);
        if serde && c.default.is_some() {
            let default_fn = format!("{builder}::__default_{i}");
            quote!(#[serde(default = #default_fn)] #i: #t)
        } else {
            quote!(#i: #t)
        }
    });
    let default_fns = defaulted.iter().filter(|_| serde).map(|c| {
        let (i, t, d) = (c.ident, c.ty, c.default.as_ref());
        let name = format_ident!("__default_{}", i);
        quote! {
            #[doc(hidden)]
            pub fn #name() -> #t { #d }
        }
    });
    let builder_names: Vec<&Ident> = required.iter().chain(&defaulted).map(|c| c.ident).collect();
    let required_params: Vec<TokenStream> = required
        .iter()
        .map(|c| {
            let (i, t) = (c.ident, c.ty);
            quote!(#i: #t)
        })
        .collect();
    let required_names: Vec<&Ident> = required.iter().map(|c| c.ident).collect();
    let default_inits = defaulted.iter().map(|c| {
        let (i, d) = (c.ident, c.default.as_ref());
        quote!(#i: #d)
    });
    let setters = defaulted.iter().map(|c| {
        let (i, t) = (c.ident, c.ty);
        let doc = format!(
            "Sets `{i}` (default: `{}`).",
            tokens_text(c.default.as_ref())
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
        let (i, t, e) = (c.ident, c.ty, c.computed.as_ref());
        quote!(let #i: #t = #e;)
    });
    let type_name = name.to_string();
    let check_stmts = checks.iter().map(|c| {
        let (cond, msg, args) = (&c.condition, &c.message, &c.args);
        quote! {
            if !(#cond) {
                return Err(#krate::Error::config(#type_name, format!(#msg #(, #args)*)));
            }
        }
    });
    let builder_doc = format!("Builder of [`{name}`]: set optional configs, then `build(rngs)`.");
    let serde_attrs = if serde {
        quote! {
            #[derive(#krate::serde::Serialize, #krate::serde::Deserialize)]
            #[serde(crate = "::artifex_core::serde")]
        }
    } else {
        quote!()
    };
    let configurable = if serde {
        let clones = required.iter().chain(&defaulted).map(|c| {
            let i = c.ident;
            quote!(#i: ::std::clone::Clone::clone(&self.#i))
        });
        quote! {
            impl #krate::Configurable for #name {
                type Config = #builder;
                fn config(&self) -> #builder {
                    #builder { #(#clones,)* }
                }
                fn from_config(config: #builder, rngs: &mut #krate::Rngs) -> #krate::Result<Self> {
                    config.build(rngs)
                }
            }
        }
    } else {
        quote!()
    };
    let new_doc = format!(
        "Builds a [`{name}`] from its required configs with defaults for the rest, drawing parameters from `rngs`."
    );
    let builder_fn_doc = format!("Starts a [`{builder}`] from the required configs.");

    Ok(quote! {
        #[derive(#krate::Module)]
        #item

        #[doc = #builder_doc]
        #[derive(Clone, Debug)]
        #serde_attrs
        #[must_use]
        #vis struct #builder {
            #(#builder_fields,)*
        }

        #configurable

        impl #builder {
            #(#setters)*
            #(#default_fns)*

            /// Checks the configuration, then builds every field in declaration order.
            #[allow(clippy::redundant_locals, clippy::needless_question_mark)]
            pub fn build(self, rngs: &mut #krate::Rngs) -> #krate::Result<#name> {
                let _ = &rngs;
                let #builder { #(#builder_names,)* } = self;
                #(#computed_inits)*
                #(#check_stmts)*
                #(#field_inits)*
                let mut __module = #name { #(#field_names,)* };
                #krate::Module::bind_paths(&mut __module, &mut #krate::StatePath::root());
                Ok(__module)
            }
        }

        impl #name {
            #[doc = #builder_fn_doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn builder(#(#required_params),*) -> #builder {
                #builder { #(#required_names,)* #(#default_inits,)* }
            }

            #[doc = #new_doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn new(#(#required_params,)* rngs: &mut #krate::Rngs) -> #krate::Result<Self> {
                Self::builder(#(#required_names),*).build(rngs)
            }
        }
    })
}

fn bad_args(args: &TokenStream) -> syn::Error {
    syn::Error::new(
        args.span(),
        "#[module] takes no arguments, or `serde` to make its config (the builder) serializable; \
         describe fields with #[param], #[batch_stat], #[rng], #[init] and #[config]",
    )
}

/// The expression that creates a `#[param]` / `#[batch_stat]` field: the shape is checked for
/// overflow first (a configuration error naming the struct and the field), then the variable
/// is created through `from_init`, which also serves shape-only and checkpoint-filled builds.
fn variable_init(
    args: &VariableArgs,
    attr: &syn::Attribute,
    ty: TokenStream,
    config_names: &[&Ident],
    module: &Ident,
    field: &Ident,
) -> syn::Result<TokenStream> {
    let what = if attr.path().is_ident("param") {
        "param"
    } else {
        "batch_stat"
    };
    let Some(shape) = &args.shape else {
        return Err(syn::Error::new_spanned(
            attr,
            format!("#[{what}] needs `shape = [..]`, e.g. #[{what}(init = zeros, shape = [in_features, out_features])]"),
        ));
    };
    let Some(init) = &args.init else {
        return Err(syn::Error::new_spanned(
            attr,
            format!(
                "#[{what}] needs `init = ..`, e.g. `init = lecun_normal` or `init = normal(0.02)`"
            ),
        ));
    };
    let init = resolve_init(init, config_names);
    let dims = shape.elems.iter();
    let rank = shape.elems.len();
    let dtype = match &args.dtype {
        Some(d) => quote!(#d),
        None => quote!(::artifex_core::candle_core::DType::F32),
    };
    let (module, field) = (module.to_string(), field.to_string());
    let make = quote! {{
        let __shape: [usize; #rank] = [#(#dims),*];
        let __dtype = #dtype;
        ::artifex_core::check_shape(#module, #field, &__shape, __dtype)?;
        #ty::from_init(&(#init), &__shape, __dtype, rngs)?
    }};
    Ok(match &args.when {
        Some(cond) => quote!(if #cond { Some(#make) } else { None }),
        None => make,
    })
}

/// A bare identifier that is not a config names an `artifex_core::init` function.
fn resolve_init(init: &Expr, config_names: &[&Ident]) -> TokenStream {
    if let Expr::Path(p) = init {
        if let Some(ident) = p.path.get_ident() {
            if p.qself.is_none() && !config_names.contains(&ident) {
                return quote!(::artifex_core::init::#ident());
            }
        }
    }
    quote!(#init)
}

fn tokens_text(expr: Option<&Expr>) -> String {
    expr.map(|e| quote!(#e).to_string()).unwrap_or_default()
}
