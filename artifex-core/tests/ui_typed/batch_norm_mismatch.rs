// A BatchNorm sized for another layer than the one before it.
use artifex_core::typed::{self, BatchNorm, Forward, Linear, Rows, Seq, Then, Relu};

type Block = Seq<(Then<Linear<784, 512>, Relu>, BatchNorm<256>)>;

fn hidden(block: &Block, x: &typed::Tensor<Rows<784>>) {
    let _ = block.forward(x);
}

fn main() {}
