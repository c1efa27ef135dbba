//! The seed's "Custom GAN" section: CustomGenerator (with self-attention) and a spectrally
//! normalized CustomDiscriminator, trained on MNIST with alternating updates; writes
//! `samples.png` (8x8), `metrics.jsonl` and `mnist_fid.json` (MNIST-FID, precision/recall
//! and classifier confidence of 2,000 samples against the test split) into `--out` (default
//! `out/custom_gan`).
//!
//! `cargo run --release --example custom_gan -- [STEPS]` (default 2000; `--help` for the usage);
//! `-- --loss wgan-gp` trains a Wasserstein critic with a gradient penalty instead.
//!
//! ```text
//! cargo build --release --features mpi --example custom_gan
//! mpirun -np 2 target/release/examples/custom_gan --distributed   # data-parallel, 2 ranks
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use artifex_core::data::{DataLoader, Mnist, TensorDataset};
use artifex_core::distributed::{Communicator, Single};
use artifex_core::image_grid;
use artifex_core::optim::{Adam, AdamConfig};
use artifex_core::prelude::*;
use artifex_core::train::{AdversarialTrainer, TrainerConfig};
use artifex_core::{autodiff, losses::GanLoss, losses::GradientPenalty};
use artifex_models::Gan;
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;
#[path = "common/distributed.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod distributed;
#[path = "common/sample_quality.rs"]
mod sample_quality;

/// The seed's "Custom GAN" section: trains CustomGenerator (with self-attention) against a
/// spectrally normalized CustomDiscriminator on the bundled MNIST subset and writes
/// out/custom_gan/samples.png (8x8) and metrics.jsonl.
#[derive(Parser, Debug)]
#[command(name = "custom_gan")]
struct Args {
    /// Training steps (each one discriminator update and, for ns, one generator update)
    #[arg(value_name = "STEPS", default_value_t = 2000)]
    steps: u64,
    /// The objective: non-saturating with a spectrally normalized discriminator (the seed's),
    /// or WGAN-GP (Wasserstein critic without spectral norm, gradient penalty 10, Adam 2e-4
    /// with betas (0.5, 0.9), 5 critic updates per generator update); wgan-gp writes into
    /// out/custom_gan_wgan_gp
    #[arg(long, value_enum, default_value_t = Objective::Ns)]
    loss: Objective,
    /// Weight of the gradient penalty with --loss wgan-gp (0: no penalty and no higher-order
    /// mode, a plain Wasserstein critic, for comparing cost)
    #[arg(long, value_name = "W", default_value_t = 10.0)]
    gp_weight: f64,
    /// Data-parallel over the ranks of `mpirun` (build with `--features mpi`): each rank trains
    /// on its shard of every batch of 64 (which must split evenly), draws its rows of the
    /// batch's noise, the generator's BatchNorm statistics synchronized; rank 0 writes the
    /// outputs
    #[arg(long)]
    distributed: bool,
}

/// The training objective of a run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Non-saturating GAN loss, spectral norm (the seed's setup).
    Ns,
    /// WGAN-GP (Gulrajani et al. 2017).
    WganGp,
}

/// Sizes of one run: the seed's (latent 100, 256-512-1024 / 1024-512-256) or smaller.
pub struct GanSizes {
    pub latent_dim: usize,
    pub generator_dims: Vec<usize>,
    pub discriminator_dims: Vec<usize>,
}

impl Default for GanSizes {
    fn default() -> Self {
        Self {
            latent_dim: 100,
            generator_dims: vec![256, 512, 1024],
            discriminator_dims: vec![1024, 512, 256],
        }
    }
}

/// Trains for `steps` and writes the sample grid; returns the last metrics.
pub fn run(
    steps: u64,
    sizes: GanSizes,
    out: &Path,
) -> Result<std::collections::BTreeMap<String, f64>> {
    run_with(steps, sizes, out, Objective::Ns, 0.0)
}

/// [`run`] with the objective `objective` (and, for WGAN-GP, the penalty weight `gp_weight`).
pub fn run_with(
    steps: u64,
    sizes: GanSizes,
    out: &Path,
    objective: Objective,
    gp_weight: f64,
) -> Result<std::collections::BTreeMap<String, f64>> {
    run_on(
        &(Arc::new(Single) as Arc<dyn Communicator>),
        steps,
        sizes,
        out,
        objective,
        gp_weight,
    )
}

/// [`run_with`] on the ranks of `comm` (data-parallel when it has more than one: BatchNorm
/// statistics synchronized, rank 0 alone samples, measures and writes; the others return
/// their last training metrics).
pub fn run_on(
    comm: &Arc<dyn Communicator>,
    steps: u64,
    sizes: GanSizes,
    out: &Path,
    objective: Objective,
    gp_weight: f64,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let wgan_gp = objective == Objective::WganGp;
    let penalty = wgan_gp && gp_weight > 0.0;
    if penalty {
        // The penalty differentiates a gradient: before any backward pass on this thread.
        autodiff::enable_higher_order()?;
    }
    let mut rngs = Rngs::new(0);
    let gan = Gan::builder(
        sizes.latent_dim,
        vec![28, 28, 1],
        sizes.generator_dims,
        sizes.discriminator_dims,
    )
    .spectral_norm(!wgan_gp)
    .loss(if wgan_gp {
        GanLoss::Wasserstein
    } else {
        GanLoss::NonSaturating
    })
    .build(&mut rngs)?;
    let data = Mnist::load_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k"))?;
    let images = data.train.images.affine(2.0, -1.0)?; // tanh range
    let mut loader = DataLoader::new(TensorDataset::new(vec![images])?, 64)?
        .with_shuffle(rngs.fork("data")?)
        .with_drop_last(true);
    let (lr, beta2) = if wgan_gp { (2e-4, 0.9) } else { (2e-4, 0.999) };
    let adam = AdamConfig {
        beta1: 0.5,
        beta2,
        ..AdamConfig::default()
    };
    let d_opt = Adam::with_config(gan.discriminator_params(), lr, adam.clone())?;
    let g_opt = Adam::with_config(gan.generator_params(), lr, adam)?;
    let config = TrainerConfig::new(steps, out)
        .print_every(100)
        .checkpoint_every(steps.max(1))
        .keep_last(1)
        .overwrite(true)
        .communicator(Arc::clone(comm))
        .sync_batch_stats(comm.world_size() > 1);
    let mut trainer = AdversarialTrainer::new(
        gan,
        d_opt,
        g_opt,
        config,
        |m: &Gan, real: &Tensor| m.discriminator_loss(real),
        |m: &Gan, n| m.generator_loss(n),
    );
    if wgan_gp {
        trainer = trainer.generator_every(5);
    }
    if penalty {
        trainer = trainer.gradient_penalty(GradientPenalty::WganGp, gp_weight);
    }
    let history = trainer.fit(&mut loader, None)?;
    let metrics = history.last_train().cloned().unwrap_or_default();
    if comm.rank() != 0 {
        return Ok(metrics);
    }
    let mut gan = trainer.into_model();
    gan.eval();
    let samples = gan
        .sample(64, &mut Rngs::new(1).with_stream("sample", 1))?
        .affine(0.5, 0.5)?;
    image_grid::save_grid(out.join("samples.png"), &samples, 8)?;
    // MNIST-FID, precision/recall and classifier confidence of 2,000 samples (mnist_fid.json).
    let mut quality_rngs = Rngs::new(2).with_stream("sample", 2);
    let sample = |n| {
        gan.sample(n, &mut quality_rngs)?
            .affine(0.5, 0.5)
            .map_err(Error::from)
    };
    sample_quality::report(&data.test.images, sample, out)?;
    Ok(metrics)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        let out = match args.loss {
            Objective::Ns => Path::new("out/custom_gan"),
            Objective::WganGp => Path::new("out/custom_gan_wgan_gp"),
        };
        let comm = distributed::communicator(args.distributed, "custom_gan")?;
        let result = run_on(
            &comm,
            args.steps,
            GanSizes::default(),
            out,
            args.loss,
            args.gp_weight,
        );
        let metrics = distributed::on_every_rank(&comm, result)?;
        if comm.rank() == 0 {
            println!(
                "last step: {metrics:?}\nwrote {}",
                out.join("samples.png").display()
            );
        }
        Ok::<_, Error>(())
    })
}
