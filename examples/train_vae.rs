//! The main job: trains the seed's CustomVAE (784-512-256-128, latent 20, BatchNorm, ReLU)
//! on the bundled MNIST subset and writes into `--out` (default `out/train_vae`):
//! `model.safetensors` (with its config), `samples.png` (8x8 from the prior),
//! `reconstructions.png` (test digits beside their reconstructions), `metrics.jsonl`,
//! `mnist_fid.json` (MNIST-FID, precision/recall and classifier confidence of 2,000 samples
//! against the test split), and resumable `checkpoints/`.
//!
//! ```text
//! cargo run --release --example train_vae -- [--steps 1500] [--batch-size 128] [--lr 1e-3]
//!     [--beta 0.02] [--seed 0] [--eval-every 250] [--device cpu|cuda|metal]
//!     [--data data/mnist10k] [--out out/train_vae] [--resume]
//! mpirun -np 2 target/release/examples/train_vae --distributed   # built with --features mpi
//! ```
//! (`--help` lists them with their meaning.)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use artifex_core::data::{DataLoader, Mnist, TensorDataset};
use artifex_core::distributed::Communicator;
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, StopReason, Trainer, TrainerConfig};
use artifex_core::{device_from_name, image_grid, losses};
use artifex_models::CustomVAE;
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;
#[path = "common/distributed.rs"]
mod distributed;
#[path = "common/sample_quality.rs"]
mod sample_quality;

/// Trains the seed's CustomVAE (784-512-256-128, latent 20) on the bundled MNIST subset and
/// writes model.safetensors, samples.png, reconstructions.png, metrics.jsonl and
/// checkpoints/ into --out.
#[derive(Parser, Clone, Debug)]
#[command(name = "train_vae")]
pub struct Args {
    /// Training steps (with --resume: the total, counting the steps already done)
    #[arg(long, value_name = "N", default_value_t = 1500)]
    pub steps: u64,
    /// Examples per training batch
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = cli::at_least_one())]
    pub batch_size: usize,
    /// Adam learning rate
    #[arg(long, value_name = "RATE", default_value_t = 1e-3)]
    pub lr: f64,
    /// Weight of the KL term
    ///
    /// The seed's loss averages both terms (MSE over 784 pixels, KL over 20 latents), which
    /// weighs the KL ~40x more than the ELBO does; a small beta keeps digits sharp.
    #[arg(long, value_name = "BETA", default_value_t = 0.02)]
    pub beta: f64,
    /// Seed of the parameters, the data order and the samples
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Device to train on: cpu, cuda, cuda:N, metal or metal:N (cuda and metal need the
    /// matching cargo feature)
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = device_name)]
    pub device: String,
    /// Directory of the MNIST IDX files (gzip or raw)
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist10k"))]
    pub data: PathBuf,
    /// Output directory
    #[arg(long, value_name = "DIR", default_value = "out/train_vae")]
    pub out: PathBuf,
    /// Continue from the last checkpoint in --out/checkpoints
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds another run (its log and checkpoints are deleted);
    /// without it such a directory is refused, so a finished run is never lost by accident
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Steps between evaluations on the test split (and checkpoints)
    #[arg(long, value_name = "N", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_every: u64,
    /// Data-parallel over the ranks of `mpirun` (build with `--features mpi`): each rank trains
    /// on its shard of every batch, BatchNorm statistics synchronized; rank 0 writes the outputs.
    #[arg(long)]
    pub distributed: bool,
}

/// Accepts the device names `device_from_name` knows (whether the device exists is checked
/// when the run starts).
fn device_name(name: &str) -> std::result::Result<String, String> {
    let (kind, ordinal) = match name.split_once(':') {
        Some((kind, n)) => (kind, Some(n)),
        None => (name, None),
    };
    let ordinal_ok = ordinal.is_none_or(|n| n.parse::<usize>().is_ok());
    if matches!(kind, "cpu" | "cuda" | "metal") && ordinal_ok {
        Ok(name.to_string())
    } else {
        Err("expected cpu, cuda, cuda:N, metal or metal:N".into())
    }
}

impl Default for Args {
    /// The defaults of the command line (no flags given).
    fn default() -> Self {
        Self::parse_from(["train_vae"])
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
    /// MNIST-FID, precision/recall and confidence of 2,000 samples (none when stopped early).
    pub quality: Option<artifex_models::MnistFidReport>,
    pub seconds: f64,
    pub steps: u64,
    /// Why training stopped (`Completed`, or a signal: then only the checkpoint was written).
    pub stop: StopReason,
}

/// Trains and writes every output; returns the test metrics.
pub fn run(args: &Args) -> Result<Report> {
    let comm = distributed::communicator(args.distributed, "train_vae")?;
    let result = run_on(args, &comm);
    distributed::on_every_rank(&comm, result)
}

fn run_on(args: &Args, comm: &Arc<dyn Communicator>) -> Result<Report> {
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
    if comm.rank() == 0 {
        println!("{}", model.summary());
    }
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
        .overwrite(args.overwrite)
        .communicator(Arc::clone(comm))
        .sync_batch_stats(args.distributed);
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
    // Without test metrics: a rank other than 0 (rank 0 evaluates, samples and writes), or a
    // run stopped early (only its checkpoint was written).
    let early = || Report {
        test_metrics: Default::default(),
        quality: None,
        seconds: started.elapsed().as_secs_f64(),
        steps: history.steps,
        stop: history.stop,
    };
    if comm.rank() != 0 {
        return Ok(early());
    }
    if history.interrupted() {
        let at = history.checkpoint.as_deref().unwrap_or(Path::new("(none)"));
        println!(
            "stopped at step {} ({:?}); checkpoint {}; continue with --resume",
            trainer.step(),
            history.stop,
            at.display()
        );
        return Ok(early());
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
    // MNIST-FID, precision/recall and classifier confidence of 2,000 samples (mnist_fid.json).
    let mut quality_rngs = Rngs::new(args.seed).with_stream("sample", args.seed + 2);
    let quality = sample_quality::report(
        &test_images,
        |n| model.sample(n, &mut quality_rngs),
        &args.out,
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
        quality: Some(quality),
        seconds,
        steps: history.steps,
        stop: history.stop,
    })
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let mut stopped_by = None;
    let code = cli::main_with(|args: Args| {
        run(&args).map(|report| {
            if let StopReason::Signal(signal) = report.stop {
                stopped_by = Some(signal);
            }
        })
    });
    // Stopped by a signal after writing its checkpoint: the shell's convention, 128 + N.
    stopped_by.map_or(code, |signal| ExitCode::from((128 + signal) as u8))
}
