//! The seed's "Custom VAE Architecture" section: build CustomVAE for MNIST-shaped input, run a
//! forward pass, print the output shapes and the state tree.
//!
//! `cargo run --release --example custom_vae`

use std::process::ExitCode;

use artifex_core::prelude::*;
use artifex_models::CustomVAE;
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// The seed's "Custom VAE Architecture" section: builds CustomVAE for MNIST-shaped input,
/// runs one forward pass and prints the output shapes and the state tree. Takes no arguments.
#[derive(Parser, Debug)]
#[command(name = "custom_vae")]
struct Args {}

/// Builds the seed's VAE and runs one forward pass on a batch of ones.
pub fn run(batch: usize) -> Result<artifex_models::VaeOutput> {
    let model = CustomVAE::builder(
        vec![28, 28, 1],
        20,
        vec![512, 256, 128],
        vec![128, 256, 512],
    )
    .use_batch_norm(true)
    .build(&mut Rngs::new(0))?;
    let x = Tensor::ones((batch, 28, 28, 1), DType::F32, &Device::Cpu)?;
    let output = model.forward(&x)?;
    println!("Reconstruction shape: {:?}", output.reconstruction.dims()); // [32, 28, 28, 1]
    println!("Latent shape: {:?}", output.latent.dims()); // [32, 20]
    println!("{} parameters", model.num_params());
    Ok(output)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|Args {}| run(32).map(|_| ()))
}
