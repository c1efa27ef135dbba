//! Loads a CustomVAE checkpoint and writes test digits beside their reconstructions.
//!
//! `cargo run --release --example reconstruct -- [checkpoint] [out.png] [count]`
//! (defaults: `out/train_vae/model.safetensors`, `out/train_vae/reconstructions_again.png`, 32)

use std::path::Path;

use artifex_core::data::Mnist;
use artifex_core::prelude::*;
use artifex_core::{image_grid, losses, Configurable};
use artifex_models::CustomVAE;

#[path = "common/args.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod args;

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
fn main() -> Result<()> {
    let args = args::checkpoint_args("out/train_vae/reconstructions_again.png", 32usize);
    let mse = run(Path::new(&args.checkpoint), Path::new(&args.out), args.n)?;
    println!("wrote {} (reconstruction MSE {mse:.5})", args.out);
    Ok(())
}
