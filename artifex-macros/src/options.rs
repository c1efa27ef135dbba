//! Struct-level options: `#[module(serde, crate = path, bound = "..")]` and, on a
//! `#[derive(Module)]` struct, `#[artifex(crate = path, bound = "..")]`.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{LitStr, Path, Token, WherePredicate};

use crate::ctxt::Ctxt;

/// What the options say.
#[derive(Default)]
pub struct Options {
    /// `crate = path`: where `artifex_core` is reachable (a re-exporting crate).
    pub krate: Option<Path>,
    /// `bound = "T: Trait, .."`: replaces the inferred where-clauses.
    pub bound: Option<Vec<WherePredicate>>,
    /// `serde` (`#[module]` only): the builder is a serializable config.
    pub serde: bool,
    /// `transparent` (`#[derive(Module)]` on an enum only): each variant holds one module
    /// whose state is the enum's, with no path segment of its own.
    pub transparent: bool,
}

impl Options {
    /// The path of artifex-core in generated code.
    pub fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => path.to_token_stream(),
            None => quote!(::artifex_core),
        }
    }

    /// The tokens of `#[artifex(..)]` that pass `crate` and `bound` on to the derive.
    pub fn derive_attr(&self) -> TokenStream {
        let mut parts = Vec::new();
        if let Some(path) = &self.krate {
            parts.push(quote!(crate = #path));
        }
        if let Some(bound) = &self.bound {
            let text = bound
                .iter()
                .map(|p| p.to_token_stream().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            parts.push(quote!(bound = #text));
        }
        if parts.is_empty() {
            quote!()
        } else {
            quote!(#[artifex(#(#parts),*)])
        }
    }

    /// Reads one `key = value` or flag; `serde_allowed` for `#[module]`, `transparent` for
    /// `#[derive(Module)]` (the other case).
    fn read(&mut self, meta: ParseNestedMeta, serde_allowed: bool) -> syn::Result<()> {
        if meta.path.is_ident("crate") {
            let value = meta.value()?;
            self.krate = Some(if value.peek(LitStr) {
                value.parse::<LitStr>()?.parse()?
            } else {
                value.parse()?
            });
        } else if meta.path.is_ident("bound") {
            let text: LitStr = meta.value()?.parse()?;
            let parsed =
                text.parse_with(Punctuated::<WherePredicate, Token![,]>::parse_terminated)?;
            self.bound = Some(parsed.into_iter().collect());
        } else if serde_allowed && meta.path.is_ident("serde") {
            self.serde = true;
        } else if !serde_allowed && meta.path.is_ident("transparent") {
            self.transparent = true;
        } else {
            let known = if serde_allowed {
                "`serde`, `crate = path` or `bound = \"T: Trait\"`"
            } else {
                "`crate = path`, `bound = \"T: Trait\"` or (on an enum) `transparent`"
            };
            return Err(meta.error(format!("unknown option; expected {known}")));
        }
        Ok(())
    }
}

/// Parses the arguments of `#[module(..)]`.
pub fn module_args(args: TokenStream, cx: &mut Ctxt) -> Options {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| options.read(meta, true));
    cx.ok(syn::parse::Parser::parse2(parser, args));
    options
}

/// Parses the arguments of `#[layer(..)]` (`crate = path` only).
pub fn layer_args(args: TokenStream, cx: &mut Ctxt) -> Options {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            options.read(meta, false)
        } else {
            Err(meta.error("unknown option; #[layer] takes only `crate = path`"))
        }
    });
    cx.ok(syn::parse::Parser::parse2(parser, args));
    options
}

/// Parses every `#[artifex(..)]` of a `#[derive(Module)]` struct.
pub fn derive_attrs(attrs: &[syn::Attribute], cx: &mut Ctxt) -> Options {
    let mut options = Options::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("artifex")) {
        cx.ok(attr.parse_nested_meta(|meta| options.read(meta, false)));
    }
    options
}

/// True if `ty` mentions one of `params` (such fields get an inferred where-clause).
pub fn mentions_any(ty: &impl ToTokens, params: &[syn::Ident]) -> bool {
    fn walk(tt: proc_macro2::TokenTree, params: &[syn::Ident]) -> bool {
        match tt {
            proc_macro2::TokenTree::Ident(id) => params.contains(&id),
            proc_macro2::TokenTree::Group(g) => g.stream().into_iter().any(|t| walk(t, params)),
            _ => false,
        }
    }
    !params.is_empty() && ty.to_token_stream().into_iter().any(|tt| walk(tt, params))
}
