//! The data-parallel acceptance harness (feature `mpi`), run by `tests/distributed.rs` under
//! `mpirun`: trains the seed's CustomVAE (BatchNorm synchronized or per replica), a
//! BatchNorm-free MLP or a small version of the seed's GAN (`AdversarialTrainer`, its
//! generator's BatchNorm synchronized or per replica) on the first examples of the bundled
//! MNIST subset and writes, per rank, `rank-R.json` (the loss, for the GAN `d_loss` and
//! `g_loss`, and a hash of every parameter after every step) and `final-rank-R.safetensors`
//! (parameters and batch statistics) into `--out`.
//!
//! ```text
//! cargo build --release --features mpi --example dist_check
//! mpirun -np 2 target/release/examples/dist_check --model vae --sync-bn --steps 50 --out DIR
//! target/release/examples/dist_check --single --model vae --sync-bn --steps 50 --out DIR
//! ```
//!
//! `--fit` trains with `Trainer::fit` into `--out/run` (checkpoints every
//! `--checkpoint-every`, `--resume` continues the newest one) instead of step by step;
//! `--corrupt-rank R` makes rank R read a corrupt copy of the data (the fault test);
//! `--step-check` makes rank 0 also take, before every step, the single-process step on the
//! whole global batch from the same state, and record how far apart the two results are.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use artifex_core::data::{DataLoader, Mnist, TensorDataset};
use artifex_core::distributed::{exit_on_error, Communicator, Mpi, Single};
use artifex_core::optim::{Adam, Optimizer, Sgd};
use artifex_core::prelude::*;
use artifex_core::train::{
    AdversarialTrainer, History, LossOutput, Metrics, Scalars, Trainer, TrainerConfig,
};
use artifex_core::Param;
use artifex_core::{losses, Module};
use artifex_models::{CustomVAE, Gan};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "dist_check")]
struct Args {
    /// `vae` (the seed's CustomVAE), `mlp` (784-64-784, no BatchNorm) or `gan` (the seed's GAN
    /// with latent 8, generator 16-32-64 with self-attention, spectrally normalized
    /// discriminator 32-16; two optimizers of the same kind).
    #[arg(long, default_value = "vae")]
    model: String,
    /// Synchronized BatchNorm (the trainer's `sync_batch_stats`); per replica without it.
    #[arg(long)]
    sync_bn: bool,
    /// Optimizer steps (in total, with `--fit`).
    #[arg(long, default_value_t = 50)]
    steps: u64,
    /// The global batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Training examples (the first ones of the subset).
    #[arg(long, default_value_t = 512)]
    examples: usize,
    /// Where the outputs go.
    #[arg(long)]
    out: PathBuf,
    /// One process without MPI (the reference run).
    #[arg(long)]
    single: bool,
    /// Train with `Trainer::fit` (checkpoints, resume) instead of step by step.
    #[arg(long)]
    fit: bool,
    /// With `--fit`: write a checkpoint every N steps.
    #[arg(long, default_value_t = 10)]
    checkpoint_every: u64,
    /// With `--fit`: continue from the newest checkpoint in `--out/run`.
    #[arg(long)]
    resume: bool,
    /// Adam (lr 1e-3) instead of plain SGD (`--lr`). Adam divides each gradient by its own
    /// magnitude, so gradients that are zero up to rounding (and round differently when the
    /// batch is summed in shards) move by up to the learning rate: fine for the bitwise
    /// comparisons between runs of one world size, not for comparing world sizes.
    #[arg(long)]
    adam: bool,
    /// Learning rate of plain SGD.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Plain candle ops instead of the fused CPU kernels (`fast_paths::set_enabled(false)`):
    /// the same arithmetic summed in another order, a yardstick for how far rounding alone
    /// moves a run.
    #[arg(long)]
    no_fast_paths: bool,
    /// Instead of training: time `N` all-reduces of a buffer the size of the model's
    /// gradients and print the mean time per call (rank 0).
    #[arg(long, value_name = "N")]
    bench_all_reduce: Option<u32>,
    /// This rank reads a corrupt copy of the data.
    #[arg(long)]
    corrupt_rank: Option<usize>,
    /// Rank 0 also runs a one-process copy of the model: before every step it loads the
    /// distributed model's state (parameters, statistics, rng counters), takes the
    /// single-process step on the whole global batch, and records the largest parameter
    /// difference to the distributed step's result (`step_gaps` in `rank-0.json`).
    #[arg(long, conflicts_with = "fit")]
    step_check: bool,
}

/// A BatchNorm-free MLP autoencoder: `784 -> 64 -> 784`.
#[derive(Module)]
struct Mlp {
    hidden: Linear,
    output: Linear,
}

impl Mlp {
    fn loss(&self, batch: &[Tensor]) -> Result<LossOutput> {
        let x = batch[0].flatten_from(1)?;
        let h = self.hidden.forward(&x)?.relu()?;
        let loss = losses::mse(&self.output.forward(&h)?, &x)?;
        Ok((loss, Metrics::new()))
    }
}

fn vae_loss(model: &CustomVAE, batch: &[Tensor]) -> Result<LossOutput> {
    let out = model.forward(&batch[0])?;
    losses::custom_vae_loss(&batch[0], &out.reconstruction, &out.mean, &out.logvar, 0.02)
}

/// FNV-1a over the bits of every parameter, in state-tree order.
fn param_hash(params: &[(String, Param)]) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (_, p) in params {
        for v in p.value().flatten_all()?.to_vec1::<f32>()? {
            for b in v.to_bits().to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    Ok(format!("{h:016x}"))
}

/// The largest absolute difference between two parameter lists of one model.
fn max_param_gap(a: &[(String, Param)], b: &[(String, Param)]) -> Result<f32> {
    let mut worst = 0f32;
    for ((_, p), (_, q)) in a.iter().zip(b) {
        let d = (p.value() - q.value())?.abs()?.flatten_all()?.max(0)?;
        worst = worst.max(d.to_scalar::<f32>()?);
    }
    Ok(worst)
}

/// The training examples, or for the corrupt rank a copy of the data whose image file is
/// garbage.
fn load_images(args: &Args, rank: usize) -> Result<Tensor> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k");
    let dir = if args.corrupt_rank == Some(rank) {
        let dir = args.out.join(format!("corrupt-rank-{rank}"));
        let io = |e: std::io::Error| Error::config("dist_check", format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        for f in [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
        ] {
            std::fs::copy(data.join(f), dir.join(f)).map_err(io)?;
        }
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), b"not a gzip file").map_err(io)?;
        dir
    } else {
        data
    };
    let mnist = Mnist::load_dir(&dir)?;
    Ok(mnist.train.images.narrow(0, 0, args.examples)?)
}

/// What a run records per rank: the logged metrics of every step, the parameter hashes and,
/// with `--step-check`, the per-step gaps to the single-process step.
struct Record {
    metrics: Vec<Scalars>,
    hashes: Vec<String>,
    step_gaps: Vec<f32>,
}

/// What the harness needs of a trainer and its model, whichever trainer and optimizer.
trait Session {
    fn step(&self) -> u64;
    fn train_step(&mut self, batch: &[Tensor]) -> Result<Scalars>;
    fn fit(&mut self, loader: &mut DataLoader) -> Result<History>;
    fn resume(&mut self, loader: &mut DataLoader) -> Result<Option<u64>>;
    fn params(&self) -> Vec<(String, Param)>;
    fn save(&self, path: &Path) -> Result<()>;
    fn load(&mut self, path: &Path) -> Result<()>;
}

impl<M, O, F> Session for Trainer<M, O, F>
where
    M: Module,
    O: Optimizer,
    F: Fn(&M, &[Tensor]) -> Result<LossOutput>,
{
    fn step(&self) -> u64 {
        Trainer::step(self)
    }
    fn train_step(&mut self, batch: &[Tensor]) -> Result<Scalars> {
        Trainer::train_step(self, batch)
    }
    fn fit(&mut self, loader: &mut DataLoader) -> Result<History> {
        Trainer::fit(self, loader, None)
    }
    fn resume(&mut self, loader: &mut DataLoader) -> Result<Option<u64>> {
        Trainer::resume(self, loader)
    }
    fn params(&self) -> Vec<(String, Param)> {
        self.model().named_params()
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.model().save_safetensors(path)
    }
    fn load(&mut self, path: &Path) -> Result<()> {
        self.model_mut().load_safetensors(path).map(drop)
    }
}

impl<M, D, G, DL, GL> Session for AdversarialTrainer<M, D, G, DL, GL>
where
    M: Module,
    D: Optimizer,
    G: Optimizer,
    DL: Fn(&M, &Tensor) -> Result<LossOutput>,
    GL: Fn(&M, usize) -> Result<LossOutput>,
{
    fn step(&self) -> u64 {
        AdversarialTrainer::step(self)
    }
    fn train_step(&mut self, batch: &[Tensor]) -> Result<Scalars> {
        AdversarialTrainer::train_step(self, batch)
    }
    fn fit(&mut self, loader: &mut DataLoader) -> Result<History> {
        AdversarialTrainer::fit(self, loader, None)
    }
    fn resume(&mut self, loader: &mut DataLoader) -> Result<Option<u64>> {
        AdversarialTrainer::resume(self, loader)
    }
    fn params(&self) -> Vec<(String, Param)> {
        self.model().named_params()
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.model().save_safetensors(path)
    }
    fn load(&mut self, path: &Path) -> Result<()> {
        self.model_mut().load_safetensors(path).map(drop)
    }
}

/// The model of `--model` (from seed 0), its trainer on `comm` and the loader of its global
/// batches: built the same way for every rank and for the `--step-check` reference.
fn session(
    args: &Args,
    comm: &Arc<dyn Communicator>,
    images: &Tensor,
) -> Result<(Box<dyn Session>, DataLoader)> {
    let rngs = &mut Rngs::new(0);
    Ok(match args.model.as_str() {
        "vae" => {
            let model = CustomVAE::new(
                vec![28, 28, 1],
                20,
                vec![512, 256, 128],
                vec![128, 256, 512],
                rngs,
            )?;
            (
                trainer(args, comm, model, vae_loss)?,
                loader(args, images, rngs)?,
            )
        }
        "mlp" => {
            let model = Mlp {
                hidden: Linear::new(784, 64, rngs)?,
                output: Linear::new(64, 784, rngs)?,
            };
            (
                trainer(args, comm, model, Mlp::loss)?,
                loader(args, images, rngs)?,
            )
        }
        "gan" => {
            let gan =
                Gan::builder(8, vec![28, 28, 1], vec![16, 32, 64], vec![32, 16]).build(rngs)?;
            let real = images.affine(2.0, -1.0)?; // tanh range
            (gan_trainer(args, comm, gan)?, loader(args, &real, rngs)?)
        }
        other => {
            return Err(Error::config(
                "dist_check",
                format!("unknown --model {other}"),
            ))
        }
    })
}

/// A `Trainer` with plain SGD (`--lr`) or Adam (`--adam`, lr 1e-3).
fn trainer<M: Module + 'static>(
    args: &Args,
    comm: &Arc<dyn Communicator>,
    model: M,
    loss: fn(&M, &[Tensor]) -> Result<LossOutput>,
) -> Result<Box<dyn Session>> {
    let config = config(args, comm);
    Ok(if args.adam {
        let optimizer = Adam::new(model.named_params(), 1e-3)?;
        Box::new(Trainer::new(model, optimizer, config, loss))
    } else {
        let optimizer = Sgd::new(model.named_params(), args.lr)?;
        Box::new(Trainer::new(model, optimizer, config, loss))
    })
}

/// The GAN's `AdversarialTrainer`: one discriminator and one generator update per step, two
/// optimizers of the same kind.
fn gan_trainer(args: &Args, comm: &Arc<dyn Communicator>, gan: Gan) -> Result<Box<dyn Session>> {
    fn boxed<D: Optimizer + 'static, G: Optimizer + 'static>(
        gan: Gan,
        d_opt: D,
        g_opt: G,
        config: TrainerConfig,
    ) -> Box<dyn Session> {
        Box::new(AdversarialTrainer::new(
            gan,
            d_opt,
            g_opt,
            config,
            |m: &Gan, real: &Tensor| m.discriminator_loss(real),
            |m: &Gan, n| m.generator_loss(n),
        ))
    }
    let config = config(args, comm);
    Ok(if args.adam {
        let d_opt = Adam::new(gan.discriminator_params(), 1e-3)?;
        let g_opt = Adam::new(gan.generator_params(), 1e-3)?;
        boxed(gan, d_opt, g_opt, config)
    } else {
        let d_opt = Sgd::new(gan.discriminator_params(), args.lr)?;
        let g_opt = Sgd::new(gan.generator_params(), args.lr)?;
        boxed(gan, d_opt, g_opt, config)
    })
}

/// The shuffled loader of the training images (global batches of `--batch`).
fn loader(args: &Args, images: &Tensor, rngs: &mut Rngs) -> Result<DataLoader> {
    Ok(
        DataLoader::new(TensorDataset::new(vec![images.clone()])?, args.batch)?
            .with_shuffle(rngs.fork("data")?)
            .with_drop_last(true),
    )
}

/// The trainers' configuration: checkpoints in `--out/run`, the communicator, BatchNorm mode.
fn config(args: &Args, comm: &Arc<dyn Communicator>) -> TrainerConfig {
    TrainerConfig::new(args.steps, args.out.join("run"))
        .checkpoint_every(args.checkpoint_every)
        .keep_last(10)
        .loss_plot(false)
        .handle_signals(false)
        .communicator(Arc::clone(comm))
        .sync_batch_stats(args.sync_bn)
}

/// Trains with `fit` (`--fit`, `--resume`) or step by step on this rank's shards (with
/// `--step-check`, rank 0 beside a one-process copy), then writes the rank's outputs.
fn run(args: &Args, comm: &Arc<dyn Communicator>, images: &Tensor) -> Result<()> {
    let (mut trainer, mut loader) = session(args, comm, images)?;
    if let Some(calls) = args.bench_all_reduce {
        let n = trainer.params().iter().map(|(_, p)| p.elem_count()).sum();
        return bench_all_reduce(comm, n, calls);
    }
    let mut reference = if args.step_check && comm.rank() == 0 {
        Some(session(
            args,
            &(Arc::new(Single) as Arc<dyn Communicator>),
            images,
        )?)
    } else {
        None
    };
    let mut record = Record {
        metrics: Vec::new(),
        hashes: Vec::new(),
        step_gaps: Vec::new(),
    };
    if args.fit {
        if args.resume {
            trainer.resume(&mut loader)?;
        }
        let history = trainer.fit(&mut loader)?;
        record.metrics = history.train.iter().map(|r| r.metrics.clone()).collect();
        record.hashes.push(param_hash(&trainer.params())?);
    } else {
        loader.set_shard(comm.rank(), comm.world_size())?;
        let state = args.out.join("step-check.safetensors");
        while trainer.step() < args.steps {
            // The reference loader is not sharded: the same global batches, whole.
            let global = match &mut reference {
                Some((_, whole)) => whole.next_batch()?,
                None => None,
            };
            let Some(batch) = loader.next_batch()? else {
                continue;
            };
            if let (Some((one, _)), Some(global)) = (&mut reference, &global) {
                trainer.save(&state)?;
                one.load(&state)?;
                one.train_step(global)?;
            }
            record.metrics.push(trainer.train_step(&batch)?);
            let params = trainer.params();
            record.hashes.push(param_hash(&params)?);
            if let Some((one, _)) = &reference {
                record
                    .step_gaps
                    .push(max_param_gap(&params, &one.params())?);
            }
        }
    }
    finish(args, comm, &*trainer, record)
}

/// Writes this rank's final state and `rank-R.json`: `losses` (`loss`, for the GAN
/// `d_loss`, of every step), `g_losses` (the GAN's), the parameter hashes and `step_gaps`.
fn finish(
    args: &Args,
    comm: &Arc<dyn Communicator>,
    trainer: &dyn Session,
    record: Record,
) -> Result<()> {
    let rank = comm.rank();
    trainer.save(&args.out.join(format!("final-rank-{rank}.safetensors")))?;
    let series = |key: &str| -> Vec<f64> {
        record
            .metrics
            .iter()
            .filter_map(|m| m.get(key).copied())
            .collect()
    };
    let loss_key = if args.model == "gan" {
        "d_loss"
    } else {
        "loss"
    };
    let json = serde_json::json!({
        "rank": rank,
        "world": comm.world_size(),
        "losses": series(loss_key),
        "g_losses": series("g_loss"),
        "hashes": record.hashes,
        "step_gaps": record.step_gaps,
    });
    let path = args.out.join(format!("rank-{rank}.json"));
    std::fs::write(&path, json.to_string())
        .map_err(|e| Error::config("dist_check", format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Times `calls` all-reduces of `n` floats (after one warm-up call).
fn bench_all_reduce(comm: &Arc<dyn Communicator>, n: usize, calls: u32) -> Result<()> {
    let mut buf = vec![1f32; n];
    comm.all_reduce_sum_f32(&mut buf)?;
    comm.barrier()?;
    let started = std::time::Instant::now();
    for _ in 0..calls {
        comm.all_reduce_sum_f32(&mut buf)?;
    }
    let ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(calls.max(1));
    if comm.rank() == 0 {
        println!(
            "all-reduce of {n} f32 ({:.2} MB) over {} ranks: {ms:.2} ms per call",
            n as f64 * 4e-6,
            comm.world_size()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    artifex_core::fast_paths::set_enabled(!args.no_fast_paths);
    let comm: Arc<dyn Communicator> = if args.single {
        Arc::new(Single)
    } else {
        match Mpi::init() {
            Ok(mpi) => Arc::new(mpi),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let result = load_images(&args, comm.rank()).and_then(|images| run(&args, &comm, &images));
    exit_on_error(&*comm, result);
    ExitCode::SUCCESS
}
