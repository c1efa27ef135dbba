// A typed layer called with a tensor of the wrong feature size, at the call site.
use artifex_core::prelude::*;
use artifex_core::typed::{self, Forward, Linear, Rows};

#[derive(Module)]
struct Classifier {
    head: Linear<784, 10>,
}

impl Classifier {
    fn forward(&self, x: &typed::Tensor<Rows<783>>) -> Result<typed::Tensor<Rows<10>>> {
        self.head.forward(x)
    }
}

fn main() {}
