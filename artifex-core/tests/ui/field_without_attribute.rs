use artifex_core::prelude::*;

#[module]
struct Block {
    dense: Linear,
    #[config]
    width: usize,
}

fn main() {}
