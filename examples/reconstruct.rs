//! Loads a CustomVAE checkpoint and writes test digits beside their reconstructions.
//!
//! ```text
//! cargo run --release --example reconstruct -- [--checkpoint FILE] [--out PNG] [--count N]
//! cargo run --release --example reconstruct -- [CHECKPOINT] [OUT] [COUNT]
//! ```
//! (defaults: `out/train_vae/model.safetensors`, `out/train_vae/reconstructions_again.png`, 32)

use std::path::Path;
use std::process::ExitCode;

use artifex_core::data::Mnist;
use artifex_core::prelude::*;
use artifex_core::{image_grid, losses, Configurable};
use artifex_models::CustomVAE;
use clap::Parser;

#[path = "common/checkpoint_args.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod checkpoint_args;
#[path = "common/cli.rs"]
#[allow(dead_code)]
mod cli;

/// Encodes the first test digits of the bundled MNIST subset with a CustomVAE checkpoint
/// written by train_vae, decodes their latent means and writes originals beside
/// reconstructions as a PNG; prints the reconstruction MSE.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "reconstruct",
    mut_arg("out", |a| a.required(false).default_value("out/train_vae/reconstructions_again.png"))
)]
pub struct Args {
    #[command(flatten)]
    pub files: checkpoint_args::CheckpointFiles,
    /// Number of test digits to reconstruct
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = cli::at_least_one())]
    count: usize,
    /// The count, positionally (same as --count)
    #[arg(value_name = "COUNT", conflicts_with = "count", value_parser = cli::at_least_one())]
    count_at: Option<usize>,
}

impl Args {
    /// The number of digits.
    pub fn count(&self) -> usize {
        self.count_at.unwrap_or(self.count)
    }
}

/// Reconstructs the first `count` test digits (from the latent mean) and returns their MSE.
pub fn run(checkpoint: &Path, out: &Path, count: usize) -> Result<f32> {
    let mut model = CustomVAE::from_checkpoint(checkpoint)?;
    model.eval();
    let data = Mnist::load_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k"))?;
    let originals = data.test.images.narrow(0, 0, count.min(data.test.len()))?;
    let (mean, _) = model.encode(&originals)?;
    let reconstructions = model.decode(&mean)?;
    image_grid::save_pairs(out, &originals, &reconstructions, 8)?;
    Ok(losses::mse(&reconstructions, &originals)?.to_scalar::<f32>()?)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        let mse = run(args.files.checkpoint(), args.files.out(), args.count())?;
        println!(
            "wrote {} (reconstruction MSE {mse:.5})",
            args.files.out().display()
        );
        Ok::<_, Error>(())
    })
}
