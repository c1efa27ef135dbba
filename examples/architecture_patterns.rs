//! The seed's "Architecture Patterns" section: ResidualNetwork, a U-Net encoder/decoder pair
//! with skip connections, and a DenseBlock; forward passes with the shapes printed.
//!
//! `cargo run --release --example architecture_patterns`

use std::process::ExitCode;

use artifex_core::prelude::*;
use artifex_models::{DenseBlock, ResidualNetwork, UNetDecoder, UNetEncoder};
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// The seed's "Architecture Patterns" section: ResidualNetwork, a U-Net pair and a
/// DenseBlock, one forward pass each, shapes printed. Takes no arguments.
#[derive(Parser, Debug)]
#[command(name = "architecture_patterns")]
struct Args {}

/// Runs each pattern once and returns the output shapes.
pub fn run() -> Result<Vec<Vec<usize>>> {
    let rngs = &mut Rngs::new(0);
    let mut shapes = Vec::new();

    let net = ResidualNetwork::new(64, 128, 3, rngs)?;
    let x = Tensor::ones((8, 64), DType::F32, &Device::Cpu)?;
    shapes.push(net.forward(&x)?.dims().to_vec());
    println!("ResidualNetwork: {:?} -> {:?}", x.dims(), shapes[0]);

    let encoder = UNetEncoder::new(vec![1, 16, 32, 64], rngs)?;
    let decoder = UNetDecoder::new(vec![64, 32, 16, 8], vec![1, 16, 32], rngs)?;
    let image = Tensor::ones((2, 32, 32, 1), DType::F32, &Device::Cpu)?;
    let (encoded, skips) = encoder.forward(&image)?;
    let skip_shapes: Vec<_> = skips.iter().map(|s| s.dims().to_vec()).collect();
    println!(
        "UNetEncoder: {:?} -> {:?}, skips {skip_shapes:?}",
        image.dims(),
        encoded.dims()
    );
    shapes.push(decoder.forward(&encoded, &skips)?.dims().to_vec());
    println!("UNetDecoder: {:?} -> {:?}", encoded.dims(), shapes[1]);

    let block = DenseBlock::new(16, 12, 4, rngs)?;
    let x = Tensor::ones((2, 8, 8, 16), DType::F32, &Device::Cpu)?;
    shapes.push(block.forward(&x)?.dims().to_vec());
    println!("DenseBlock: {:?} -> {:?}", x.dims(), shapes[2]);
    Ok(shapes)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|Args {}| run().map(|_| ()))
}
