//! Loads a CustomVAE checkpoint (written by `train_vae`; the model is rebuilt from the config
//! stored in it) and writes an 8x8 grid of samples from the prior.
//!
//! `cargo run --release --example sample -- [checkpoint] [out.png] [seed]`
//! (defaults: `out/train_vae/model.safetensors`, `out/train_vae/samples_again.png`, 0)

use std::path::Path;

use artifex_core::prelude::*;
use artifex_core::{image_grid, Configurable};
use artifex_models::CustomVAE;

#[path = "common/args.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod args;

/// Writes 64 samples drawn with `seed` to `out`.
pub fn run(checkpoint: &Path, out: &Path, seed: u64) -> Result<Tensor> {
    let mut model = CustomVAE::from_checkpoint(checkpoint)?;
    model.eval();
    let samples = model.sample(64, &mut Rngs::new(seed).with_stream("sample", seed))?;
    image_grid::save_grid(out, &samples, 8)?;
    Ok(samples)
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let args = args::checkpoint_args("out/train_vae/samples_again.png", 0u64);
    run(Path::new(&args.checkpoint), Path::new(&args.out), args.n)?;
    println!("wrote {}", args.out);
    Ok(())
}
