//! Error collection: a macro reports every problem of a struct at once instead of stopping
//! at the first, and still emits code (the struct, stub impls) so uses do not cascade.

use proc_macro2::TokenStream;

/// Collects the `syn::Error`s of one expansion.
#[derive(Default)]
pub struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records one error.
    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// The value of `result`, or `None` with its error recorded.
    pub fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// True when an error was recorded.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Every recorded error as `compile_error!` invocations (empty when none).
    pub fn into_compile_errors(self) -> TokenStream {
        self.errors
            .into_iter()
            .map(syn::Error::into_compile_error)
            .collect()
    }
}
