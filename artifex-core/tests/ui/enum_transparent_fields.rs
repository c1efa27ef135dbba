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

// No error of their own at the uses: the failed derives leave stand-in impls.
fn uses(items: Vec<Item>, s: NotAnEnum) -> usize {
    items.num_params() + s.num_params()
}

fn main() {
    let _ = uses;
}
