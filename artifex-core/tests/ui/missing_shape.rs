use artifex_core::prelude::*;

#[module]
struct Layer {
    #[param(init = lecun_normal)]
    weight: Param,
    #[config]
    width: usize,
}

fn main() {}
