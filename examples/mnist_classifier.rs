//! An MNIST digit classifier: a small conv net declared with `#[module]`, trained by the
//! `Trainer` with `losses::cross_entropy` on the bundled subset (8,000 training digits), and
//! evaluated with `losses::accuracy` on its 2,000 test digits. Writes into `--out` (default
//! `out/mnist_classifier`): `model.safetensors` (with its config, so
//! `MnistClassifier::from_checkpoint` rebuilds it) and `metrics.jsonl` (training loss and
//! accuracy per step, test loss and accuracy every `--eval-every` steps).
//!
//! `MnistClassifier::features` exposes the penultimate layer, for feature-space metrics
//! (e.g. FID) computed with this network.
//!
//! ```text
//! cargo run --release --example mnist_classifier -- [--steps 1500] [--batch-size 64]
//!     [--lr 2e-3] [--seed 0] [--data data/mnist10k] [--out out/mnist_classifier]
//!     [--eval-every 500] [--quick]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use artifex_core::data::{DataLoader, Mnist};
use artifex_core::layers::Dropout;
use artifex_core::losses;
use artifex_core::optim::{Adam, Schedule};
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, Trainer, TrainerConfig};
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// Two strided convolutions (28 -> 14 -> 7, SAME, ReLU), then Linear -> ReLU (the features)
/// -> dropout -> Linear to 10 logits. Inputs are `(N, 28, 28, 1)` pixels in `[0, 1]`.
///
/// Strided convolutions instead of convolutions plus pooling: the same receptive fields for a
/// quarter of the convolution work, which matters on CPUs where candle's convolution backward
/// is the slow part of a step.
#[module(serde)]
#[check(conv_features.len() == 2 && conv_features.iter().all(|&c| c > 0), "conv_features must be two positive channel counts, got {conv_features:?}")]
#[check(kernel_size > 0 && hidden > 0, "kernel_size and hidden must be positive, got {kernel_size} and {hidden}")]
pub struct MnistClassifier {
    /// Random shifts of the input images while training (identity in eval mode).
    #[init(RandomShift::builder().max_shift(max_shift).build(rngs)?)]
    pub augment: RandomShift,
    /// `kernel_size`², stride 2, 1 -> `conv_features[0]`: 28x28 -> 14x14.
    #[init(Conv::builder(1, conv_features[0], vec![kernel_size, kernel_size]).strides(vec![2]).build(rngs)?)]
    pub conv1: Conv,
    /// `kernel_size`², stride 2, `conv_features[0]` -> `conv_features[1]`: 14x14 -> 7x7.
    #[init(Conv::builder(conv_features[0], conv_features[1], vec![kernel_size, kernel_size]).strides(vec![2]).build(rngs)?)]
    pub conv2: Conv,
    /// The flattened 7x7 maps -> `hidden` features.
    #[init(Linear::new(7 * 7 * conv_features[1], hidden, rngs)?)]
    pub fc: Linear,
    /// On the features, in training mode only.
    #[init(Dropout::new(dropout, rngs)?)]
    pub dropout_layer: Dropout,
    /// `hidden` -> 10 logits.
    #[init(Linear::new(hidden, 10, rngs)?)]
    pub head: Linear,
    /// Output channels of the two convolutions.
    #[config(default = vec![32, 64])]
    pub conv_features: Vec<usize>,
    /// Height and width of both convolution windows.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Width of the penultimate (feature) layer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Dropout rate on the features while training.
    #[config(default = 0.25)]
    pub dropout: f64,
    /// Largest shift, in pixels, of the training-time augmentation (0: none).
    #[config(default = 2)]
    pub max_shift: usize,
    path: ModulePath,
}

impl MnistClassifier {
    /// The penultimate activations `(N, hidden)` of `images (N, 28, 28, 1)` (after ReLU,
    /// before dropout): the feature space for metrics such as FID.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let dims = images.dims();
        if dims.len() != 4 || dims[1..] != [28, 28, 1] {
            return Err(self
                .path
                .shape_error("MnistClassifier", "[N, 28, 28, 1]", dims));
        }
        let x = self.conv1.forward(images)?.relu()?;
        let x = self.conv2.forward(&x)?.relu()?;
        let x = x.flatten_from(1)?;
        Ok(self.fc.forward(&x)?.relu()?)
    }

    /// Class logits `(N, 10)`; in training mode the images are randomly shifted first and
    /// the features pass through dropout.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let images = self.augment.forward(images)?;
        let features = self.dropout_layer.forward(&self.features(&images)?)?;
        self.head.forward(&features)
    }

    /// The most likely digit of each image, `(N,)` u32 (in whatever mode the model is in).
    pub fn predict(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.forward(images)?.argmax(D::Minus1)?)
    }
}

/// Data augmentation as a layer: in training mode each image `(N, H, W, C)` moves by a random
/// whole number of pixels in `-max_shift..=max_shift` along each axis (zero fill). The offsets
/// come from the layer's own `augment` stream, whose counter is checkpoint state, so runs are
/// reproducible from the seed and resume with the same draws.
#[module]
#[derive(Debug)]
pub struct RandomShift {
    /// The offset stream.
    #[rng(stream = "augment")]
    pub rngs: RngStream,
    /// Largest shift in pixels.
    #[config(default = 2)]
    pub max_shift: usize,
    mode: Mode,
    path: ModulePath,
}

impl RandomShift {
    /// Shifted images in training mode, the images themselves in eval mode.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        if !self.mode.is_training() || self.max_shift == 0 {
            return Ok(images.clone());
        }
        let dims = images.dims();
        let &[n, h, w, _] = dims else {
            return Err(self.path.shape_error("RandomShift", "[N, H, W, C]", dims));
        };
        let m = self.max_shift;
        let padded = images.pad_with_zeros(1, m, m)?.pad_with_zeros(2, m, m)?;
        let offsets = self
            .rngs
            .next_key()
            .uniform_vec(2 * n, 0.0, (2 * m + 1) as f64);
        let shifted = (0..n)
            .map(|i| {
                let (dy, dx) = (offsets[2 * i] as usize, offsets[2 * i + 1] as usize);
                Ok(padded.narrow(0, i, 1)?.narrow(1, dy, h)?.narrow(2, dx, w)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&shifted, 0)?)
    }
}

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
    Ok(Report {
        test_metrics,
        steps: history.steps,
        seconds,
        checkpoint,
        model,
    })
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    cli::main_with(|args: Args| run(&args).map(drop))
}
