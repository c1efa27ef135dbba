//! Loads a CustomVAE checkpoint (written by `train_vae`; the model is rebuilt from the config
//! stored in it) and writes an 8x8 grid of samples from the prior.
//!
//! ```text
//! cargo run --release --example sample -- [--checkpoint FILE] [--out PNG] [--seed N]
//! cargo run --release --example sample -- [CHECKPOINT] [OUT] [SEED]
//! ```
//! (defaults: `out/train_vae/model.safetensors`, `out/train_vae/samples_again.png`, 0)

use std::path::Path;
use std::process::ExitCode;

use artifex_core::prelude::*;
use artifex_core::{image_grid, Configurable};
use artifex_models::CustomVAE;
use clap::Parser;

#[path = "common/checkpoint_args.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod checkpoint_args;
#[path = "common/cli.rs"]
#[allow(dead_code)]
mod cli;

/// Draws 64 images from the prior of a CustomVAE checkpoint written by train_vae and writes
/// them as an 8x8 PNG grid.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "sample",
    mut_arg("out", |a| a.required(false).default_value("out/train_vae/samples_again.png"))
)]
pub struct Args {
    #[command(flatten)]
    pub files: checkpoint_args::CheckpointFiles,
    /// Seed of the draws from the prior
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// The seed, positionally (same as --seed)
    #[arg(value_name = "SEED", conflicts_with = "seed")]
    seed_at: Option<u64>,
}

impl Args {
    /// The seed of the draws.
    pub fn seed(&self) -> u64 {
        self.seed_at.unwrap_or(self.seed)
    }
}

/// Writes 64 samples drawn with `seed` to `out`.
pub fn run(checkpoint: &Path, out: &Path, seed: u64) -> Result<Tensor> {
    let mut model = CustomVAE::from_checkpoint(checkpoint)?;
    model.eval();
    let samples = model.sample(64, &mut Rngs::new(seed).with_stream("sample", seed))?;
    image_grid::save_grid(out, &samples, 8)?;
    Ok(samples)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        run(args.files.checkpoint(), args.files.out(), args.seed())?;
        println!("wrote {}", args.files.out().display());
        Ok::<_, Error>(())
    })
}
