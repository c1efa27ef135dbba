use artifex_core::prelude::*;

// A generic #[module] needs `L: Configurable` for the field built from its config. Using the
// module with a type that is not a layer names that bound (rustc points at the struct and the
// use; it cannot point at the field). The call goes through the `Module` trait so that the
// error does not list unrelated traits of the dependency graph that also define the method.
#[module]
struct Wrap<L> {
    #[from_config]
    inner: L,
}

fn count(wrap: &Wrap<f32>) -> usize {
    Module::num_params(wrap)
}

fn main() {
    let _ = count;
}
