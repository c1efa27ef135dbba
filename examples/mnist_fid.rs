//! The reference points of MNIST-FID: the floor (2,000 digits of the train split against
//! the test split: real digits, so what a perfect generator would score at this sample
//! size) and the ceiling (2,000 images of uniform noise against the test split), with
//! precision/recall and the classifier's confidence, in the feature space of the shipped
//! classifier (`data/mnist_features/`).
//!
//! MNIST-FID uses a small MNIST classifier's 64 penultimate features, not Inception-v3:
//! its figures are not comparable to the Inception-FID of papers.
//!
//! ```text
//! cargo run --release --example mnist_fid -- [--samples 2000] [--seed 0]
//!     [--data data/mnist10k] [--weights data/mnist_features/model.safetensors]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use artifex_core::data::Mnist;
use artifex_core::prelude::*;
use artifex_models::{MnistFid, MnistFidReport, SHIPPED_WEIGHTS};
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it
mod cli;

/// Prints MNIST-FID, precision/recall and classifier confidence of the train split (floor)
/// and of uniform noise (ceiling) against the test split.
#[derive(Parser, Debug)]
#[command(name = "mnist_fid")]
struct Args {
    /// Images of each set evaluated against the 2,000 test digits (at most 8,000)
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(65..=8000))]
    samples: u64,
    /// Seed of the noise images
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Directory of the MNIST IDX files
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist10k"))]
    data: PathBuf,
    /// The classifier checkpoint
    #[arg(long, value_name = "FILE", default_value = SHIPPED_WEIGHTS)]
    weights: PathBuf,
}

/// The floor and the ceiling of MNIST-FID at `samples` images.
fn run(args: &Args) -> Result<(MnistFidReport, MnistFidReport)> {
    let mnist = Mnist::load_dir(&args.data)?;
    let fid = MnistFid::load(&args.weights, &mnist.test.images)?;
    let n = args.samples as usize;
    let floor = fid.evaluate(&mnist.train.images.narrow(0, 0, n)?)?;
    println!("floor   (first {n} train digits vs test split): {floor}");
    let noise = Rngs::new(args.seed).next_key("noise")?.uniform(
        &[n, 28, 28, 1],
        0.0,
        1.0,
        DType::F32,
        &Device::Cpu,
    )?;
    let ceiling = fid.evaluate(&noise)?;
    println!("ceiling (uniform noise in [0, 1] vs test split): {ceiling}");
    Ok((floor, ceiling))
}

fn main() -> ExitCode {
    cli::main_with(|args: Args| run(&args).map(drop))
}
