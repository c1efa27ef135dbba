use artifex_core::prelude::*;

#[module]
struct Layer {
    #[param(init = zeros, shape = [width], bogus = 1)]
    weight: Param,
    #[config]
    width: usize,
}

fn main() {}
