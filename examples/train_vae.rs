//! The main job: trains the seed's CustomVAE (784-512-256-128, latent 20, BatchNorm, ReLU)
//! on the bundled MNIST subset and writes into `--out` (default `out/train_vae`):
//! `model.safetensors` (with its config), `samples.png` (8x8 from the prior),
//! `reconstructions.png` (test digits beside their reconstructions), `metrics.jsonl`, and
//! resumable `checkpoints/`.
//!
//! ```text
//! cargo run --release --example train_vae -- [--steps 1500] [--batch-size 128] [--lr 1e-3]
//!     [--beta 0.02] [--seed 0] [--device cpu|cuda|metal] [--data data/mnist10k]
//!     [--out out/train_vae] [--resume]
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use artifex_core::data::{DataLoader, Mnist, TensorDataset};
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, StopReason, Trainer, TrainerConfig};
use artifex_core::{device_from_name, image_grid, losses};
use artifex_models::CustomVAE;

const USAGE: &str =
    "usage: train_vae [--steps 1500] [--batch-size 128] [--lr 1e-3] [--beta 0.02] [--seed 0]
                 [--eval-every 250] [--device cpu|cuda|metal] [--data data/mnist10k]
                 [--out out/train_vae] [--resume] [--overwrite]";

/// Command-line settings.
#[derive(Clone, Debug)]
pub struct Args {
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub beta: f64,
    pub seed: u64,
    pub device: String,
    pub data: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
    pub overwrite: bool,
    pub eval_every: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            steps: 1500,
            batch_size: 128,
            lr: 1e-3,
            // The seed's loss averages both terms (MSE over 784 pixels, KL over 20 latents),
            // which weighs the KL ~40x more than the ELBO does; a small beta keeps digits sharp.
            beta: 0.02,
            seed: 0,
            device: "cpu".into(),
            data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k"),
            out: PathBuf::from("out/train_vae"),
            resume: false,
            overwrite: false,
            eval_every: 250,
        }
    }
}

impl Args {
    fn parse() -> std::result::Result<Self, String> {
        let mut args = Self::default();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--resume" {
                args.resume = true;
                continue;
            }
            if flag == "--overwrite" {
                args.overwrite = true;
                continue;
            }
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--steps" => args.steps = value.parse().map_err(|e| bad(&e))?,
                "--batch-size" => args.batch_size = value.parse().map_err(|e| bad(&e))?,
                "--lr" => args.lr = value.parse().map_err(|e| bad(&e))?,
                "--beta" => args.beta = value.parse().map_err(|e| bad(&e))?,
                "--seed" => args.seed = value.parse().map_err(|e| bad(&e))?,
                "--eval-every" => args.eval_every = value.parse().map_err(|e| bad(&e))?,
                "--device" => args.device = value,
                "--data" => args.data = value.into(),
                "--out" => args.out = value.into(),
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(args)
    }
}

/// The seed's `custom_vae_loss(model, batch, beta)`, as a Trainer loss closure.
pub fn custom_vae_loss(
    model: &CustomVAE,
    batch: &[Tensor],
    beta: f64,
) -> Result<(Tensor, Metrics)> {
    let data = &batch[0];
    let output = model.forward(data)?;
    losses::custom_vae_loss(
        data,
        &output.reconstruction,
        &output.mean,
        &output.logvar,
        beta,
    )
}

/// What a run measured.
pub struct Report {
    pub test_metrics: std::collections::BTreeMap<String, f64>,
    pub seconds: f64,
    pub steps: u64,
    /// Why training stopped (`Completed`, or a signal: then only the checkpoint was written).
    pub stop: StopReason,
}

/// Trains and writes every output; returns the test metrics.
pub fn run(args: &Args) -> Result<Report> {
    let started = Instant::now();
    let device = device_from_name(&args.device)?;
    let mnist = Mnist::load_dir(&args.data)?;
    let mut rngs = Rngs::new(args.seed).with_device(device.clone());
    let model = CustomVAE::new(
        vec![28, 28, 1],
        20,
        vec![512, 256, 128],
        vec![128, 256, 512],
        &mut rngs,
    )?;
    println!("{}", model.summary());
    let config_json = serde_json::to_string(&model.config())
        .map_err(|e| Error::config("CustomVAE", e.to_string()))?;
    let optimizer = Adam::new(model.named_params(), args.lr)?;

    let train_images = mnist.train.images.to_device(&device)?;
    let test_images = mnist.test.images.to_device(&device)?;
    let mut train = DataLoader::new(TensorDataset::new(vec![train_images])?, args.batch_size)?
        .with_shuffle(rngs.fork("data")?)
        .with_drop_last(true);
    let mut test = DataLoader::new(TensorDataset::new(vec![test_images.clone()])?, 500)?;

    let config = TrainerConfig::new(args.steps, &args.out)
        .eval_every(args.eval_every)
        .checkpoint_every(args.eval_every)
        .print_every(100)
        .model_config_json(config_json)
        .overwrite(args.overwrite);
    let beta = args.beta;
    let mut trainer = Trainer::new(
        model,
        optimizer,
        config,
        move |m: &CustomVAE, b: &[Tensor]| custom_vae_loss(m, b, beta),
    );
    if args.resume {
        if let Some(step) = trainer.resume(&mut train)? {
            println!("resumed from step {step}");
        }
    }
    let history = trainer.fit(&mut train, Some(&mut test))?;
    if history.interrupted() {
        let at = history.checkpoint.as_deref().unwrap_or(Path::new("(none)"));
        println!(
            "stopped at step {} ({:?}); checkpoint {}; continue with --resume",
            trainer.step(),
            history.stop,
            at.display()
        );
        return Ok(Report {
            test_metrics: Default::default(),
            seconds: started.elapsed().as_secs_f64(),
            steps: history.steps,
            stop: history.stop,
        });
    }
    let test_metrics = trainer.evaluate(&mut test)?;

    let mut model = trainer.into_model();
    model.eval();
    model.save_checkpoint(args.out.join("model.safetensors"))?;
    let mut sample_rngs = Rngs::new(args.seed).with_stream("sample", args.seed + 1);
    image_grid::save_grid(
        args.out.join("samples.png"),
        &model.sample(64, &mut sample_rngs)?,
        8,
    )?;
    let originals = test_images.narrow(0, 0, 32)?;
    let (mean, _) = model.encode(&originals)?;
    image_grid::save_pairs(
        args.out.join("reconstructions.png"),
        &originals,
        &model.decode(&mean)?,
        8,
    )?;

    let seconds = started.elapsed().as_secs_f64();
    println!(
        "test: loss {:.5}  reconstruction_loss {:.5}  kl_loss {:.5}  ({} steps in {seconds:.1} s)",
        test_metrics["loss"],
        test_metrics["reconstruction_loss"],
        test_metrics["kl_loss"],
        history.steps
    );
    println!(
        "wrote {}/{{model.safetensors, samples.png, reconstructions.png, loss.png, metrics.jsonl}}",
        args.out.display()
    );
    Ok(Report {
        test_metrics,
        seconds,
        steps: history.steps,
        stop: history.stop,
    })
}

#[allow(dead_code)]
fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        // Stopped by a signal after writing its checkpoint: the shell's convention, 128 + N.
        Ok(Report {
            stop: StopReason::Signal(signal),
            ..
        }) => std::process::exit(128 + signal),
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
