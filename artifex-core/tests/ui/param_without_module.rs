use artifex_core::prelude::*;

#[derive(Module)]
struct Layer {
    #[param(init = zeros, shape = [3])]
    weight: Param,
}

fn main() {}
