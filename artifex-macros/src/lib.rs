//! Procedural macros of artifex-rs; use them through `artifex_core` (which re-exports them).
//!
//! - `#[derive(Module)]`: the tree walk (shared and mutable) every operation is built on
//!   (state paths, train/eval, path binding, regularizers, freezing), for a struct whose
//!   non-`#[config]` fields implement `Module`.
//! - `#[module]`: also writes the constructor: a builder with one setter per defaulted config,
//!   `new(required configs..., rngs)`, params drawn from the `params` stream in field order.

mod attrs;
mod constructor_docs;
mod ctxt;
mod derive_module;
mod layer_attr;
mod module_attr;
mod options;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput, ItemImpl, ItemStruct};

/// Derives `artifex_core::Module` for a struct (see the `artifex_core` docs).
///
/// The generated `walk` / `walk_mut` name each field; a struct whose type implements
/// `Regularizer` reports itself (the impl alone suffices). `#[regularizer]` on the struct
/// turns that into a requirement the compiler checks (for generic structs, whose impl may
/// need bounds the derive does not infer).
///
/// On an enum, `#[artifex(transparent)]` walks the one module each variant holds in the
/// enum's place, with no path segment of its own (a `Vec<Enum>` of mixed layers keeps list
/// paths `layers.0.kernel`, `layers.1.mean`); without it an enum is refused, since which
/// state it holds depends on the variant.
///
/// `#[artifex(crate = path)]` names a re-export of `artifex_core` for the generated code;
/// `#[artifex(bound = "T: Trait")]` replaces the inferred where-clauses (`FieldType: Module`
/// for each field that mentions a type parameter).
#[proc_macro_derive(
    Module,
    attributes(
        config,
        param,
        batch_stat,
        rng,
        init,
        new,
        from_config,
        regularizer,
        artifex
    )
)]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive_module::expand(&input).into()
}

/// Declares a layer: derives `Module` and generates its builder and `new` constructor from
/// field attributes (see the `artifex_core` docs). A `#[rng(stream = "name")]` field is the
/// module's own `RngStream`; draw call-time noise from it with
/// `self.rngs.next_key().normal(shape, dtype, device)` (example in the `artifex_core` crate
/// docs, "Noise from a module's own stream").
///
/// Options: `#[module(serde)]` (the builder is a serializable config and the struct
/// implements `Configurable`), `#[module(crate = path)]` (a re-export of `artifex_core`),
/// `#[module(bound = "T: Trait")]` (replaces the inferred where-clauses of a generic struct).
#[proc_macro_attribute]
pub fn module(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = parse_macro_input!(item as ItemStruct);
    module_attr::expand(args, item).into()
}

/// On an inherent impl: its forward method (marked `#[forward]`, else the one named
/// `forward_t`, else `forward`) also implements `artifex_core::Layer` and candle's
/// `Module` (`fn forward(&self, x: &Tensor)`) or `ModuleT` (with `train: Option<bool>`), so
/// the forward is written once and the layer fits in a `Vec<BoxedLayer>`. Other arguments
/// get their value for those impls from the marker: `#[forward(mask = None)]`.
/// `#[layer(crate = path)]` names a re-export of `artifex_core`.
#[proc_macro_attribute]
pub fn layer(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = parse_macro_input!(item as ItemImpl);
    layer_attr::expand(args, item).into()
}
