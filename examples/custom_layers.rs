//! The seed's "Custom Layers" section: CustomLinear, RegularizedLinear (dropout, L2 penalty,
//! spectral norm), the seed's MultiHeadAttention and ResidualBlock, with their output shapes.
//!
//! `cargo run --release --example custom_layers`

use std::process::ExitCode;

use artifex_core::prelude::*;
use artifex_models::{CustomLinear, MultiHeadAttention, RegularizedLinear, ResidualBlock};
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// The seed's "Custom Layers" section: builds CustomLinear, RegularizedLinear,
/// MultiHeadAttention and ResidualBlock and prints their output shapes. Takes no arguments.
#[derive(Parser, Debug)]
#[command(name = "custom_layers")]
struct Args {}

/// Builds each layer as the seed does and returns the output shapes.
pub fn run() -> Result<Vec<Vec<usize>>> {
    let mut shapes = Vec::new();
    let layer = CustomLinear::new(784, 256, &mut Rngs::new(0))?;
    let x = Tensor::ones((32, 784), DType::F32, &Device::Cpu)?;
    shapes.push(layer.forward(&x)?.dims().to_vec());
    println!("CustomLinear output shape: {:?}", shapes[0]); // [32, 256]

    let layer = RegularizedLinear::builder(784, 256)
        .dropout_rate(0.1)
        .weight_decay(1e-4)
        .spectral_norm(true)
        .build(&mut Rngs::new(0))?;
    shapes.push(layer.forward(&x)?.dims().to_vec());
    println!(
        "RegularizedLinear output {:?}, regularization loss {:.4}",
        shapes[1],
        layer.regularization_loss()?.to_scalar::<f32>()?
    );

    let attention = MultiHeadAttention::builder(512, 8)
        .dropout_rate(0.1)
        .build(&mut Rngs::new(0))?;
    let x = Tensor::ones((2, 10, 512), DType::F32, &Device::Cpu)?;
    shapes.push(attention.forward(&x, None)?.dims().to_vec());
    println!("MultiHeadAttention output shape: {:?}", shapes[2]); // [2, 10, 512]

    let block = ResidualBlock::builder(64)
        .stride(2)
        .downsample(true)
        .build(&mut Rngs::new(0))?;
    let x = Tensor::ones((2, 32, 32, 64), DType::F32, &Device::Cpu)?;
    shapes.push(block.forward(&x)?.dims().to_vec());
    println!("ResidualBlock output shape: {:?}", shapes[3]); // [2, 16, 16, 64]
    Ok(shapes)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|Args {}| run().map(|_| ()))
}
