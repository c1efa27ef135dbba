use artifex_core::prelude::*;

// `#[regularizer]` is an assertion, not a switch: the impl alone is collected, and a marked
// struct without the impl does not compile (it used to drop the penalty silently).
#[derive(Module)]
#[regularizer]
struct Decayed {
    inner: Linear,
}

fn main() {}
