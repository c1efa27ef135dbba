//! The data-parallel acceptance harness (feature `mpi`), run by `tests/distributed.rs` under
//! `mpirun`: trains the seed's CustomVAE (BatchNorm synchronized or per replica) or a
//! BatchNorm-free MLP on the first examples of the bundled MNIST subset and writes, per rank,
//! `rank-R.json` (the loss and a hash of every parameter after every step) and
//! `final-rank-R.safetensors` (parameters and batch statistics) into `--out`.
//!
//! ```text
//! cargo build --release --features mpi --example dist_check
//! mpirun -np 2 target/release/examples/dist_check --model vae --sync-bn --steps 50 --out DIR
//! target/release/examples/dist_check --single --model vae --sync-bn --steps 50 --out DIR
//! ```
//!
//! `--fit` trains with `Trainer::fit` into `--out/run` (checkpoints every
//! `--checkpoint-every`, `--resume` continues the newest one) instead of step by step;
//! `--corrupt-rank R` makes rank R read a corrupt copy of the data (the fault test).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use artifex_core::data::{DataLoader, Mnist, TensorDataset};
use artifex_core::distributed::{exit_on_error, Communicator, Mpi, Single};
use artifex_core::optim::{Adam, Optimizer, Sgd};
use artifex_core::prelude::*;
use artifex_core::train::{Metrics, Trainer, TrainerConfig};
use artifex_core::{losses, Module};
use artifex_models::CustomVAE;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "dist_check")]
struct Args {
    /// `vae` (the seed's CustomVAE) or `mlp` (784-64-784, no BatchNorm).
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
}

/// A BatchNorm-free MLP autoencoder: `784 -> 64 -> 784`.
#[derive(Module)]
struct Mlp {
    hidden: Linear,
    output: Linear,
}

impl Mlp {
    fn loss(&self, batch: &[Tensor]) -> Result<(Tensor, Metrics)> {
        let x = batch[0].flatten_from(1)?;
        let h = self.hidden.forward(&x)?.relu()?;
        let loss = losses::mse(&self.output.forward(&h)?, &x)?;
        Ok((loss, Metrics::new()))
    }
}

fn vae_loss(model: &CustomVAE, batch: &[Tensor]) -> Result<(Tensor, Metrics)> {
    let out = model.forward(&batch[0])?;
    losses::custom_vae_loss(&batch[0], &out.reconstruction, &out.mean, &out.logvar, 0.02)
}

/// FNV-1a over the bits of every parameter, in state-tree order.
fn param_hash<M: Module>(model: &M) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (_, p) in model.named_params() {
        for v in p.value().flatten_all()?.to_vec1::<f32>()? {
            for b in v.to_bits().to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    Ok(format!("{h:016x}"))
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

/// What a run records per rank.
struct Record {
    losses: Vec<f64>,
    hashes: Vec<String>,
}

fn run<M: Module>(
    args: &Args,
    comm: &Arc<dyn Communicator>,
    model: M,
    images: Tensor,
    rngs: &mut Rngs,
    loss: impl Fn(&M, &[Tensor]) -> Result<(Tensor, Metrics)>,
) -> Result<()> {
    if args.adam {
        let optimizer = Adam::new(model.named_params(), 1e-3)?;
        train(args, comm, model, optimizer, images, rngs, loss)
    } else {
        let optimizer = Sgd::new(model.named_params(), args.lr)?;
        train(args, comm, model, optimizer, images, rngs, loss)
    }
}

fn train<M: Module, O: Optimizer>(
    args: &Args,
    comm: &Arc<dyn Communicator>,
    model: M,
    optimizer: O,
    images: Tensor,
    rngs: &mut Rngs,
    loss: impl Fn(&M, &[Tensor]) -> Result<(Tensor, Metrics)>,
) -> Result<()> {
    let (rank, world) = (comm.rank(), comm.world_size());
    if let Some(calls) = args.bench_all_reduce {
        return bench_all_reduce(comm, model.num_params(), calls);
    }
    let mut loader = DataLoader::new(TensorDataset::new(vec![images])?, args.batch)?
        .with_shuffle(rngs.fork("data")?)
        .with_drop_last(true);
    let config = TrainerConfig::new(args.steps, args.out.join("run"))
        .checkpoint_every(args.checkpoint_every)
        .keep_last(10)
        .loss_plot(false)
        .handle_signals(false)
        .communicator(Arc::clone(comm))
        .sync_batch_stats(args.sync_bn);
    let mut trainer = Trainer::new(model, optimizer, config, loss);
    let mut record = Record {
        losses: Vec::new(),
        hashes: Vec::new(),
    };
    if args.fit {
        if args.resume {
            trainer.resume(&mut loader)?;
        }
        let history = trainer.fit(&mut loader, None)?;
        for r in &history.train {
            record.losses.push(r.metrics["loss"]);
        }
        record.hashes.push(param_hash(trainer.model())?);
    } else {
        loader.set_shard(rank, world)?;
        while trainer.step() < args.steps {
            let Some(batch) = loader.next_batch()? else {
                continue;
            };
            let metrics = trainer.train_step(&batch)?;
            record.losses.push(metrics["loss"]);
            record.hashes.push(param_hash(trainer.model())?);
        }
    }
    let model = trainer.into_model();
    model.save_safetensors(args.out.join(format!("final-rank-{rank}.safetensors")))?;
    let json = serde_json::json!({
        "rank": rank,
        "world": world,
        "losses": record.losses,
        "hashes": record.hashes,
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
    let result = (|| -> Result<()> {
        let images = load_images(&args, comm.rank())?;
        let mut rngs = Rngs::new(0);
        match args.model.as_str() {
            "vae" => {
                let model = CustomVAE::new(
                    vec![28, 28, 1],
                    20,
                    vec![512, 256, 128],
                    vec![128, 256, 512],
                    &mut rngs,
                )?;
                run(&args, &comm, model, images, &mut rngs, vae_loss)
            }
            "mlp" => {
                let model = Mlp {
                    hidden: Linear::new(784, 64, &mut rngs)?,
                    output: Linear::new(64, 784, &mut rngs)?,
                };
                run(&args, &comm, model, images, &mut rngs, Mlp::loss)
            }
            other => Err(Error::config(
                "dist_check",
                format!("unknown --model {other}"),
            )),
        }
    })();
    exit_on_error(&*comm, result);
    ExitCode::SUCCESS
}
