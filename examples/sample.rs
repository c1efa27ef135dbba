//! Loads a CustomVAE checkpoint (written by `train_vae`; the model is rebuilt from the config
//! stored in it) and writes an 8x8 grid of samples from the prior.
//!
//! `cargo run --release --example sample -- [checkpoint] [out.png] [seed]`
//! (defaults: `out/train_vae/model.safetensors`, `out/train_vae/samples_again.png`, 0)

use std::path::Path;

use artifex_core::prelude::*;
use artifex_core::{image_grid, Configurable};
use artifex_models::CustomVAE;

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let checkpoint = args
        .first()
        .map(String::as_str)
        .unwrap_or("out/train_vae/model.safetensors");
    let out = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("out/train_vae/samples_again.png");
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    run(Path::new(checkpoint), Path::new(out), seed)?;
    println!("wrote {out}");
    Ok(())
}
