use artifex_core::prelude::*;

#[module]
struct Bad {
    #[new]
    a: Linear,
    #[config]
    din: usize,
}

#[module]
struct NotOptional {
    #[new(din, when = din > 1)]
    c: LayerNorm,
    #[config]
    din: usize,
}

#[module]
struct WrongArity {
    // `Linear::new` takes two sizes and `rngs`: the error points at the field type.
    #[new(din, din, din)]
    b: Linear,
    #[config]
    din: usize,
}

fn main() {
    let _ = Bad::new(2, &mut Rngs::new(0));
    let _ = NotOptional::new(2, &mut Rngs::new(0));
    let _ = WrongArity::new(2, &mut Rngs::new(0));
}
