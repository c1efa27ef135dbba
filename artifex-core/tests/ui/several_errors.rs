use artifex_core::prelude::*;

// Every attribute error of the struct is reported in one compile.
#[module]
#[check(width > 0)]
struct Block {
    #[param(init = zeros, shape = [width], bogus = 1)]
    weight: Param,
    #[param(dtype = DType::F32)]
    bias: Param,
    #[rng]
    rngs: RngStream,
    #[config]
    width: usize,
}

fn main() {}
