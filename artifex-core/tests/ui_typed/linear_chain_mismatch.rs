// Linear<784, 512> followed by Linear<256, 10>: the chain does not type-check.
use artifex_core::prelude::*;
use artifex_core::typed::{self, Forward, Linear, Relu, Rows, Seq};

type Mlp = Seq<(Linear<784, 512>, Relu, Linear<256, 10>)>;

fn logits(mlp: &Mlp, x: &typed::Tensor<Rows<784>>) -> Result<typed::Tensor<Rows<10>>> {
    mlp.forward(x)
}

fn main() {}
