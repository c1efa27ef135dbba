use artifex_core::prelude::*;

#[derive(Module)]
struct Model {
    layer: Linear,
    scores: Vec<f32>,
}

fn main() {}
