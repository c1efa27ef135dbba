//! The documentation side of `#[module]` constructors: the rustdoc of `new` / `builder`
//! (arguments in order, with types, docs and defaults) and `NameArgs` / `from_args`, which
//! name the arguments at the call site.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Attribute, Expr, Ident};

use crate::module_attr::Config;

/// The rustdoc of `builder` and `new`: the arguments in order, with their types and docs.
pub struct ConstructorDocs {
    pub new: Vec<String>,
    pub builder: Vec<String>,
}

impl ConstructorDocs {
    pub fn new(
        name: &Ident,
        builder: &Ident,
        required: &[&Config],
        defaulted: &[&Config],
        generic: bool,
    ) -> Self {
        let mut args = Vec::new();
        for (n, c) in required.iter().enumerate() {
            let ty = pretty(c.ty.to_string());
            let what = if c.sub {
                " (the config this submodule is built from)"
            } else {
                ""
            };
            let doc = if c.doc.is_empty() {
                String::new()
            } else {
                format!(": {}", c.doc)
            };
            args.push(format!("{}. `{}: {ty}`{what}{doc}", n + 1, c.ident));
        }
        let names: Vec<String> = required.iter().map(|c| c.ident.to_string()).collect();
        let list = names.join(", ");
        let mut optional = Vec::new();
        for c in defaulted {
            optional.push(format!(
                "`{}` = `{}`",
                c.ident,
                tokens_text(c.default.as_ref())
            ));
        }
        let mut new = vec![format!(
            "Builds a [`{name}`] from its required configs, drawing parameters from `rngs`."
        )];
        let mut builder_doc = vec![format!(
            "Starts a [`{builder}`] from the required configs; set optional ones, then `build(rngs)`."
        )];
        if !args.is_empty() {
            for lines in [&mut new, &mut builder_doc] {
                lines.push(String::new());
                lines.push("Arguments, in order:".into());
                lines.extend(args.iter().cloned());
            }
        }
        new.push(String::new());
        new.push(format!(
            "`new({list}{}rngs)` is `builder({list}).build(rngs)`.",
            if list.is_empty() { "" } else { ", " }
        ));
        if !optional.is_empty() {
            new.push(format!(
                "Optional configs (builder setters), with their defaults: {}.",
                optional.join(", ")
            ));
        }
        if !generic && !required.is_empty() {
            let args_name = format!("{name}Args");
            new.push(format!(
                "To name the arguments at the call site: `{name}::from_args({args_name} {{ {} }}).build(rngs)`.",
                names.iter().map(|n| format!("{n}: ..")).collect::<Vec<_>>().join(", ")
            ));
        }
        Self {
            new,
            builder: builder_doc,
        }
    }
}

/// `NameArgs`, the required configs as a struct literal with named fields, and
/// `Name::from_args` (non-generic structs with at least one required config).
pub fn args_struct(
    name: &Ident,
    vis: &syn::Visibility,
    builder: &Ident,
    required: &[&Config],
    generic: bool,
) -> TokenStream {
    if generic || required.is_empty() {
        return quote!();
    }
    let args = format_ident!("{}Args", name);
    let fields = required.iter().map(|c| {
        let (i, t) = (c.ident, &c.ty);
        let doc = if c.doc.is_empty() {
            format!("`{i}`.")
        } else {
            c.doc.clone()
        };
        quote!(#[doc = #doc] pub #i: #t)
    });
    let names: Vec<&Ident> = required.iter().map(|c| c.ident).collect();
    let doc = format!(
        "The required configs of [`{name}`] by name, for [`{name}::from_args`]: the call site names every argument instead of relying on its position."
    );
    let from_doc = format!("Starts a [`{builder}`] from the required configs, named.");
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        #vis struct #args {
            #(#fields,)*
        }

        impl #name {
            #[doc = #from_doc]
            #vis fn from_args(args: #args) -> #builder {
                let #args { #(#names,)* } = args;
                Self::builder(#(#names),*)
            }
        }
    }
}

/// The `///` text of a field, joined into one line.
pub fn doc_of(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    lines.join(" ").trim().to_string()
}

pub fn tokens_text(expr: Option<&Expr>) -> String {
    expr.map(|e| pretty(quote!(#e).to_string()))
        .unwrap_or_default()
}

/// Token text as a person writes it (`crate::init::zeros()`, not `crate :: init :: zeros ()`).
fn pretty(text: String) -> String {
    [
        (" :: ", "::"),
        (":: ", "::"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" ,", ","),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        ("& ", "&"),
        (" !", "!"),
        ("! [", "!["),
        (" [", "["),
        ("[ ", "["),
        (" ]", "]"),
    ]
    .iter()
    .fold(text, |t, (from, to)| t.replace(from, to))
}
