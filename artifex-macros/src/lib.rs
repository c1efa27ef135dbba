//! Procedural macros of artifex-rs; use them through `artifex_core` (which re-exports them).
//!
//! - `#[derive(Module)]`: the state tree (paths, params, batch stats, rng streams), train/eval
//!   switching and path binding, for a struct whose non-`#[config]` fields implement `Module`.
//! - `#[module]`: also writes the constructor: a builder with one setter per defaulted config,
//!   `new(required configs..., rngs)`, params drawn from the `params` stream in field order.

mod attrs;
mod derive_module;
mod module_attr;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput, ItemStruct};

/// Derives `artifex_core::Module` for a struct (see the `artifex_core` docs).
#[proc_macro_derive(Module, attributes(config, param, batch_stat, rng, init, regularizer))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive_module::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a layer: derives `Module` and generates its builder and `new` constructor from
/// field attributes (see the `artifex_core` docs). A `#[rng(stream = "name")]` field is the
/// module's own `RngStream`; draw call-time noise from it with
/// `self.rngs.next_key().normal(shape, dtype, device)` (example in the `artifex_core` crate
/// docs, "Noise from a module's own stream").
#[proc_macro_attribute]
pub fn module(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = parse_macro_input!(item as ItemStruct);
    module_attr::expand(args, item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
