//! An MNIST digit classifier: a small conv net declared with `#[module]`, trained by the
//! `Trainer` with `losses::cross_entropy` on the bundled subset (8,000 training digits), and
//! evaluated with `losses::accuracy` on its 2,000 test digits. Writes into `--out` (default
//! `out/mnist_classifier`): `model.safetensors` (with its config, so
//! `MnistClassifier::from_checkpoint` rebuilds it) and `metrics.jsonl` (training loss and
//! accuracy per step, test loss and accuracy every `--eval-every` steps).
//!
//! `MnistClassifier` (in artifex-models) exposes the penultimate layer with `features`, the
//! feature space of `artifex_models::MnistFid`.
//!
//! ```text
//! cargo run --release --example mnist_classifier -- [--steps 1500] [--batch-size 64]
//!     [--lr 2e-3] [--seed 0] [--data data/mnist10k] [--out out/mnist_classifier]
//!     [--eval-every 500] [--quick] [--verify data/mnist_features/model.safetensors]
//! ```
//!
//! The defaults produce the MNIST-FID feature network shipped in `data/mnist_features/`
//! (see its README); `--verify` retrains and checks the result is that file, byte for byte.

use std::path::PathBuf;
use std::time::Instant;

use artifex_core::data::{DataLoader, Mnist};
use artifex_core::losses;
use artifex_core::optim::{Adam, Schedule};
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, Trainer, TrainerConfig};
use clap::Parser;

pub use artifex_models::MnistClassifier;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// Cross-entropy of the model's logits against the labels, with accuracy as a metric.
pub fn classification_loss(model: &MnistClassifier, batch: &[Tensor]) -> Result<(Tensor, Metrics)> {
    let (images, labels) = (&batch[0], &batch[1]);
    let logits = model.forward(images)?;
    let loss = losses::cross_entropy(&logits, labels)?;
    let accuracy = losses::accuracy(&logits, labels)?;
    Ok((loss, Metrics::from([("accuracy".to_string(), accuracy)])))
}

/// Command-line settings.
#[derive(Clone, Debug, Parser)]
#[command(about = "Train a small conv net on the bundled MNIST subset and report test accuracy")]
pub struct Args {
    /// Optimizer steps.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Training examples per step.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Peak learning rate of Adam (linear warmup, then cosine decay to 1% of it).
    #[arg(long, default_value_t = 2e-3, value_parser = positive)]
    pub lr: f64,
    /// Seed of the parameters, dropout masks and data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory with the MNIST IDX files.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist10k"))]
    pub data: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "out/mnist_classifier")]
    pub out: PathBuf,
    /// Evaluate on the test split every N steps.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_every: u64,
    /// Reduced run (60 steps) for smoke tests.
    #[arg(long)]
    pub quick: bool,
    /// After training, compare the written model.safetensors byte for byte with this file
    /// (e.g. the shipped `data/mnist_features/model.safetensors`); a difference is an error.
    #[arg(long)]
    pub verify: Option<PathBuf>,
}

/// Parses a finite number greater than zero.
fn positive(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(v) => Err(format!("must be a finite number > 0, got {v}")),
        Err(e) => Err(e.to_string()),
    }
}

impl Default for Args {
    fn default() -> Self {
        Args::parse_from(["mnist_classifier"])
    }
}

/// What a run measured.
pub struct Report {
    /// Test-split metrics of the final model (`loss`, `accuracy`).
    pub test_metrics: std::collections::BTreeMap<String, f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Wall-clock seconds of the whole run (loading, training, evaluation, saving).
    pub seconds: f64,
    /// The saved model.
    pub checkpoint: PathBuf,
    /// The trained model, in eval mode.
    pub model: MnistClassifier,
}

/// Trains, evaluates and writes the model; returns the test metrics.
pub fn run(args: &Args) -> Result<Report> {
    let started = Instant::now();
    let steps = if args.quick { 60 } else { args.steps };
    if steps == 0 || args.lr <= 0.0 || !args.lr.is_finite() {
        return Err(Error::config(
            "mnist_classifier",
            format!(
                "--steps and --lr must be positive, got {steps} and {}",
                args.lr
            ),
        ));
    }
    let mnist = Mnist::load_dir(&args.data)?;
    let mut rngs = Rngs::new(args.seed);
    let model = MnistClassifier::new(&mut rngs)?;
    println!("{}", model.summary());
    let config_json = serde_json::to_string(&model.config())
        .map_err(|e| Error::config("MnistClassifier", e.to_string()))?;
    let schedule = Schedule::WarmupCosine {
        peak: args.lr,
        warmup_steps: (steps / 20).max(1),
        decay_steps: steps + 1,
        end: args.lr * 0.01,
    };
    let optimizer = Adam::new(model.named_params(), schedule)?;

    let mut train = DataLoader::new(mnist.train.dataset()?, args.batch_size as usize)?
        .with_shuffle(rngs.fork("data")?)
        .with_drop_last(true);
    let mut test = DataLoader::new(mnist.test.dataset()?, 500)?;
    // No --resume here: a new run replaces an earlier one in --out.
    let config = TrainerConfig::new(steps, &args.out)
        .eval_every(args.eval_every)
        .print_every(100)
        .model_config_json(config_json)
        .overwrite(true);
    let mut trainer = Trainer::new(model, optimizer, config, classification_loss);
    // `fit` evaluates at its last step too: those are the final model's test metrics.
    let history = trainer.fit(&mut train, Some(&mut test))?;
    let test_metrics = match history.last_eval() {
        Some(metrics) if !history.interrupted() => metrics.clone(),
        _ => trainer.evaluate(&mut test)?, // stopped early (Ctrl-C): the model as it is
    };

    let mut model = trainer.into_model();
    model.eval();
    let checkpoint = args.out.join("model.safetensors");
    model.save_checkpoint(&checkpoint)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "test ({} digits): accuracy {:.2}%  loss {:.4}  ({} steps in {seconds:.1} s)",
        mnist.test.len(),
        100.0 * test_metrics["accuracy"],
        test_metrics["loss"],
        history.steps
    );
    println!("wrote {}", checkpoint.display());
    if let Some(expected) = &args.verify {
        verify_same_bytes(&checkpoint, expected)?;
        println!(
            "verified: {} is byte-identical to {}",
            checkpoint.display(),
            expected.display()
        );
    }
    Ok(Report {
        test_metrics,
        steps: history.steps,
        seconds,
        checkpoint,
        model,
    })
}

/// An error unless the files `written` and `expected` hold the same bytes.
fn verify_same_bytes(written: &std::path::Path, expected: &std::path::Path) -> Result<()> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Error::config(
                "mnist_classifier --verify",
                format!("cannot read {}: {e}", path.display()),
            )
        })
    };
    let (ours, theirs) = (read(written)?, read(expected)?);
    if ours == theirs {
        return Ok(());
    }
    let first = ours
        .iter()
        .zip(&theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    Err(Error::config(
        "mnist_classifier --verify",
        format!(
            "{} ({} bytes) differs from {} ({} bytes), first at byte {first}",
            written.display(),
            ours.len(),
            expected.display(),
            theirs.len()
        ),
    ))
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    cli::main_with(|args: Args| run(&args).map(drop))
}
