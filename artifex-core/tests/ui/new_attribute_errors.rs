use artifex_core::prelude::*;

#[module]
struct Bad {
    #[new]
    a: Linear,
    #[new(din, din, din)]
    b: Linear,
    #[config]
    din: usize,
}

fn main() {
    let _ = Bad::new(2, &mut Rngs::new(0));
}
