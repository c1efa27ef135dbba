use artifex_core::prelude::*;

#[derive(Module)]
enum Either {
    A(Linear),
    B(LayerNorm),
}

fn main() {}
