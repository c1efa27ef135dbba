use artifex_core::prelude::*;

#[derive(Module)]
#[artifex(transparent)]
enum Item {
    Pair(Linear, Linear),
    Empty,
    Dense(Linear),
}

#[derive(Module)]
#[artifex(transparent)]
struct NotAnEnum {
    linear: Linear,
}

fn uses(items: &[Item], s: &NotAnEnum) -> usize {
    items.num_params() + s.num_params()
}

fn main() {
    let _ = uses;
}
