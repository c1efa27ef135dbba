//! Benchmark of the seed's CustomVAE training step (issue 8): our model (built with the
//! macros, trained with our Adam) against the same model written by hand with candle-nn 0.11
//! (`linear`, `batch_norm` + `forward_t(x, true)`, `AdamW` with weight decay 0), in one
//! process, with blocks of steps of the two interleaved so machine noise hits both alike.
//! Also: sampling 1,024 images, and checkpoint save/load of a ~100 MB model against raw
//! `safetensors` (serialize / mmap deserialize + tensor creation).
//!
//! ```text
//! cargo run --release --example bench_vae [-- --quick] [--train-only] [--steps 120] [--block 10] [--no-python]
//! ```
//! The training rows also compare our step with Flax NNX's (`python/bench_flax.py --workload
//! vae`) and with the numpy GEMM floor (`python/gemm_floor.py`: the step's matrix products
//! alone), both run as child processes when `python3` has jax / numpy (not in `--quick` mode,
//! nor with `--no-python`; a note replaces a missing figure).
//! (`--help` lists the flags.)
//!
//! Peak memory is the `VmHWM` (peak resident set) of a child process (this binary re-run with
//! `--child ours|ref`) that builds one variant and trains it: both children carry the same
//! binary and data, so the ratio compares the variants' own allocations plus that baseline.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use artifex_core::candle_core::{DType, Device, Tensor};
use artifex_core::candle_nn::{self, ModuleT, Optimizer as _, VarBuilder, VarMap};
use artifex_core::optim::{Adam, Optimizer};
use artifex_core::prelude::*;
use artifex_models::CustomVAE;
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/bench_vae.rs includes this file too
mod cli;
#[path = "common/python.rs"]
mod python;

const INPUT: usize = 784;
const LATENT: usize = 20;
const ENCODER: [usize; 3] = [512, 256, 128];
const DECODER: [usize; 3] = [128, 256, 512];
const LR: f64 = 1e-3;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Batch size (128 is the benchmark's).
    pub batch: usize,
    /// Images decoded per sampling call (1,024 is the benchmark's).
    pub samples: usize,
    /// Timed training steps per variant (after the warm-up).
    pub steps: usize,
    /// Steps per interleaved block.
    pub block: usize,
    /// Warm-up steps per variant.
    pub warmup: usize,
    /// Repetitions of the sampling and checkpoint measurements.
    pub reps: usize,
    /// Hidden width of the checkpoint model (2048-2560-2048 gives ~97 MB).
    pub ckpt_widths: Vec<usize>,
    /// Measure peak memory in child processes (needs this binary as `current_exe`).
    pub memory: bool,
    /// Only the training rows (`--train-only`).
    pub train_only: bool,
    /// Also run the Python references (Flax NNX's step, the numpy GEMM floor) when python3
    /// is there; off in quick mode, so the suite never needs Python.
    pub references: bool,
}

impl Options {
    /// The full benchmark.
    pub fn full() -> Self {
        Self {
            batch: 128,
            samples: 1024,
            steps: 120,
            block: 10,
            warmup: 10,
            reps: 5,
            ckpt_widths: vec![2048, 2560, 2048],
            memory: true,
            train_only: false,
            references: true,
        }
    }

    /// A few steps at a small batch and a small checkpoint: checks that everything runs (fast
    /// enough for a debug build).
    pub fn quick() -> Self {
        Self {
            batch: 8,
            samples: 16,
            steps: 4,
            block: 2,
            warmup: 1,
            reps: 1,
            ckpt_widths: vec![64, 64, 64],
            memory: false,
            train_only: false,
            references: false,
        }
    }
}

/// The measured figures (rates are per second; ratios are ours / reference).
#[derive(Clone, Debug)]
pub struct Report {
    /// Our training steps per second.
    pub ours_steps_per_s: f64,
    /// The candle-nn reference's training steps per second.
    pub ref_steps_per_s: f64,
    /// Training speed ratio.
    pub train_ratio: f64,
    /// Training speed ratio of our model on plain candle ops (fused kernels off).
    pub plain_ratio: f64,
    /// Sampling (1,024 images) ratio.
    pub sample_ratio: f64,
    /// Checkpoint save ratio against raw `serialize_to_file`.
    pub save_ratio: f64,
    /// Checkpoint save ratio against raw `serialize_to_file` followed by `fsync`.
    pub save_sync_ratio: f64,
    /// Ratio of a save with `SaveOptions::durable(false)` against raw `serialize_to_file`.
    pub save_no_sync_ratio: f64,
    /// Checkpoint load ratio against raw mmap + deserialize + tensor creation.
    pub load_ratio: f64,
    /// Peak memory ratio (None when not measured).
    pub memory_ratio: Option<f64>,
}

/// The seed VAE written by hand with candle-nn.
struct Reference {
    encoder: Vec<(candle_nn::Linear, candle_nn::BatchNorm)>,
    mean: candle_nn::Linear,
    logvar: candle_nn::Linear,
    decoder: Vec<(candle_nn::Linear, candle_nn::BatchNorm)>,
    output: candle_nn::Linear,
}

fn dense_bn(
    input: usize,
    widths: &[usize],
    vb: &VarBuilder,
) -> candle_core::Result<Vec<(candle_nn::Linear, candle_nn::BatchNorm)>> {
    // candle's momentum weighs the batch statistic: 0.01 here is NNX's 0.99. (candle updates
    // the running variance with the unbiased batch variance; NNX uses the biased one.)
    let config = candle_nn::BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.01,
    };
    let mut features = input;
    let mut layers = Vec::new();
    for (i, &w) in widths.iter().enumerate() {
        let linear = candle_nn::linear(features, w, vb.pp(format!("{}", 2 * i)))?;
        let bn = candle_nn::batch_norm(w, config, vb.pp(format!("{}", 2 * i + 1)))?;
        layers.push((linear, bn));
        features = w;
    }
    Ok(layers)
}

impl Reference {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        let last = ENCODER[ENCODER.len() - 1];
        Ok(Self {
            encoder: dense_bn(INPUT, &ENCODER, &vb.pp("encoder"))?,
            mean: candle_nn::linear(last, LATENT, vb.pp("mean_layer"))?,
            logvar: candle_nn::linear(last, LATENT, vb.pp("logvar_layer"))?,
            decoder: dense_bn(LATENT, &DECODER, &vb.pp("decoder"))?,
            output: candle_nn::linear(DECODER[DECODER.len() - 1], INPUT, vb.pp("output_layer"))?,
        })
    }

    fn stack(
        layers: &[(candle_nn::Linear, candle_nn::BatchNorm)],
        x: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (linear, bn) in layers {
            // As our CustomVAE (and the seed): ReLU after the Linear and after the BatchNorm.
            h = h.apply(linear)?.relu()?;
            h = bn.forward_t(&h, train)?.relu()?;
        }
        Ok(h)
    }

    fn decode(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = Self::stack(&self.decoder, z, train)?;
        candle_nn::ops::sigmoid(&h.apply(&self.output)?)
    }

    /// MSE + KL (beta 1) with the given reparameterization noise.
    fn loss(&self, x: &Tensor, eps: &Tensor) -> candle_core::Result<Tensor> {
        let h = Self::stack(&self.encoder, x, true)?;
        let mean = h.apply(&self.mean)?;
        let logvar = h.apply(&self.logvar)?;
        let z = (&mean + (eps * (&logvar * 0.5)?.exp()?)?)?;
        let recon = self.decode(&z, true)?;
        let mse = (recon - x)?.sqr()?.mean_all()?;
        let inner = (((&logvar + 1.0)? - mean.sqr()?)? - logvar.exp()?)?;
        mse + (inner.mean_all()? * -0.5)?
    }
}

/// One variant's training loop state.
trait Trainee {
    fn step(&mut self) -> Result<()>;
}

struct Ours {
    model: CustomVAE,
    opt: Adam,
    x: Tensor,
}

impl Ours {
    fn new(x: &Tensor) -> Result<Self> {
        let model = seed_vae(&ENCODER, &DECODER, 0)?;
        let opt = Adam::new(model.named_params(), LR)?;
        Ok(Self {
            model,
            opt,
            x: x.clone(),
        })
    }
}

impl Trainee for Ours {
    fn step(&mut self) -> Result<()> {
        let out = GenerativeModel::forward(&self.model, &self.x)?;
        self.opt.backward_step(&out.loss)
    }
}

struct Handwritten {
    model: Reference,
    opt: candle_nn::AdamW,
    x: Tensor,
    eps: Tensor,
    _vars: VarMap,
}

impl Handwritten {
    fn new(x: &Tensor, eps: &Tensor) -> Result<Self> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, x.device());
        let model = Reference::new(&vb)?;
        let params = candle_nn::ParamsAdamW {
            lr: LR,
            weight_decay: 0.0,
            ..Default::default()
        };
        let opt = candle_nn::AdamW::new(vars.all_vars(), params)?;
        Ok(Self {
            model,
            opt,
            x: x.flatten_from(1)?,
            eps: eps.clone(),
            _vars: vars,
        })
    }
}

impl Trainee for Handwritten {
    fn step(&mut self) -> Result<()> {
        let loss = self.model.loss(&self.x, &self.eps)?;
        self.opt.backward_step(&loss)?;
        Ok(())
    }
}

/// The seed's CustomVAE on 28x28x1 inputs with the given widths.
fn seed_vae(encoder: &[usize], decoder: &[usize], seed: u64) -> Result<CustomVAE> {
    let mut rngs = Rngs::new(seed);
    CustomVAE::new(
        vec![28, 28, 1],
        LATENT,
        encoder.to_vec(),
        decoder.to_vec(),
        &mut rngs,
    )
}

/// Uniform `[0, 1)` inputs and standard normal noise, pre-generated.
fn inputs(batch: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let x = Tensor::rand(0f32, 1f32, (batch, 28, 28, 1), device)?;
    let eps = Tensor::randn(0f32, 1f32, (batch, LATENT), device)?;
    Ok((x, eps))
}

/// FLOPs of one training step: 6 x batch x sum of in x out over the Linear layers.
pub fn flops_per_step(batch: usize) -> f64 {
    let mut macs = 0;
    let mut features = INPUT;
    for &w in &ENCODER {
        macs += features * w;
        features = w;
    }
    macs += 2 * features * LATENT;
    features = LATENT;
    for &w in &DECODER {
        macs += features * w;
        features = w;
    }
    macs += features * INPUT;
    6.0 * batch as f64 * macs as f64
}

/// Runs `a` and `b` in interleaved blocks; returns their total times.
fn interleaved(
    steps: usize,
    block: usize,
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
) -> Result<(Duration, Duration)> {
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < steps {
        let n = block.min(steps - done);
        let t = Instant::now();
        for _ in 0..n {
            a()?;
        }
        ta += t.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            b()?;
        }
        tb += t.elapsed();
        done += n;
    }
    Ok((ta, tb))
}

fn per_s(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64().max(1e-12)
}

/// Steps/s of (ours, ours on plain candle ops, the candle-nn reference), interleaved.
fn train(opts: &Options, device: &Device) -> Result<[f64; 3]> {
    let (x, eps) = inputs(opts.batch, device)?;
    // (fused kernels on, trainee)
    let mut variants: [(bool, Box<dyn Trainee>); 3] = [
        (true, Box::new(Ours::new(&x)?)),
        (false, Box::new(Ours::new(&x)?)),
        (true, Box::new(Handwritten::new(&x, &eps)?)),
    ];
    let mut times = [Duration::ZERO; 3];
    let mut run_block = |n: usize, times: &mut [Duration; 3]| -> Result<()> {
        for (i, (fast, trainee)) in variants.iter_mut().enumerate() {
            artifex_core::fast_paths::set_enabled(*fast);
            let t = Instant::now();
            for _ in 0..n {
                trainee.step()?;
            }
            times[i] += t.elapsed();
        }
        artifex_core::fast_paths::set_enabled(true);
        Ok(())
    };
    run_block(opts.warmup, &mut [Duration::ZERO; 3])?;
    let mut done = 0;
    while done < opts.steps {
        let n = opts.block.min(opts.steps - done);
        run_block(n, &mut times)?;
        done += n;
    }
    Ok(times.map(|t| per_s(opts.steps, t)))
}

fn sampling(opts: &Options, device: &Device) -> Result<(f64, f64)> {
    let (x, eps) = inputs(opts.batch, device)?;
    let mut ours = Ours::new(&x)?;
    let reference = Handwritten::new(&x, &eps)?;
    ours.model.eval();
    let z = Tensor::randn(0f32, 1f32, (opts.samples, LATENT), device)?;
    let (ta, tb) = interleaved(
        opts.reps + 1,
        1,
        || ours.model.decode(&z).map(drop),
        || Ok(reference.model.decode(&z, false).map(drop)?),
    )?;
    Ok((per_s(opts.reps + 1, ta), per_s(opts.reps + 1, tb)))
}

fn io_err(e: impl std::fmt::Display) -> Error {
    Error::config("bench_vae", e.to_string())
}

/// Raw `serialize_to_file` of the same tensors; with `sync`, then `fsync` as our atomic save
/// does (temp file, fsync, rename, fsync of the directory).
fn raw_save(model: &CustomVAE, path: &std::path::Path, sync: bool) -> Result<()> {
    let mut entries = Vec::new();
    for (key, var) in model.state() {
        entries.push((key, var.to_tensor()?));
    }
    safetensors::serialize_to_file(entries, None, path).map_err(io_err)?;
    if sync {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
    }
    Ok(())
}

fn raw_load(path: &std::path::Path) -> Result<Vec<Tensor>> {
    use artifex_core::candle_core::safetensors::Load;
    let file = std::fs::File::open(path).map_err(io_err)?;
    // SAFETY: the file is written by this benchmark and not modified while mapped.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    let st = safetensors::SafeTensors::deserialize(&mmap).map_err(io_err)?;
    let mut out = Vec::new();
    for (_, view) in st.tensors() {
        out.push(view.load(&Device::Cpu)?);
    }
    Ok(out)
}

/// Save/load ratios (ours / raw) of [`checkpoint`].
struct CheckpointRatios {
    megabytes: f64,
    /// Our default (durable) save against raw `serialize_to_file`.
    save: f64,
    /// Our default save against raw `serialize_to_file` + `fsync`.
    save_sync: f64,
    /// Our save with `durable(false)` against raw `serialize_to_file`.
    save_no_sync: f64,
    load: f64,
}

fn checkpoint(opts: &Options) -> Result<CheckpointRatios> {
    let dir = std::env::temp_dir().join(format!("artifex-bench-vae-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io_err)?;
    let ours_path = dir.join("ours.safetensors");
    let raw_path = dir.join("raw.safetensors");
    let mut model = seed_vae(&opts.ckpt_widths, &opts.ckpt_widths, 1)?;
    let (save_ours, save_raw) = interleaved(
        opts.reps,
        1,
        || model.save_safetensors(&ours_path),
        || raw_save(&model, &raw_path, false),
    )?;
    let (save_ours_2, save_raw_sync) = interleaved(
        opts.reps,
        1,
        || model.save_safetensors(&ours_path),
        || raw_save(&model, &raw_path, true),
    )?;
    let no_sync = SaveOptions::default().durable(false);
    let (save_ours_fast, save_raw_3) = interleaved(
        opts.reps,
        1,
        || model.save_safetensors_with(&ours_path, &no_sync),
        || raw_save(&model, &raw_path, false),
    )?;
    let bytes = std::fs::metadata(&ours_path).map_err(io_err)?.len();
    let (load_ours, load_raw) = interleaved(
        opts.reps,
        1,
        || model.load_safetensors(&ours_path).map(drop),
        || raw_load(&raw_path).map(drop),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    let ratio = |raw: Duration, ours: Duration| raw.as_secs_f64() / ours.as_secs_f64().max(1e-12);
    Ok(CheckpointRatios {
        megabytes: bytes as f64 / 1e6,
        save: ratio(save_raw, save_ours),
        save_sync: ratio(save_raw_sync, save_ours_2),
        save_no_sync: ratio(save_raw_3, save_ours_fast),
        load: ratio(load_raw, load_ours),
    })
}

/// Peak resident set (`VmHWM`) of this process in kB (Linux; 0 elsewhere).
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Trains one variant (`ours`, `plain`: ours with the fused kernels off, `ref`) for `steps`
/// steps and prints its `VmHWM` (the `--child` mode; also handy under `perf stat`).
fn child(variant: &str, steps: usize) -> Result<u64> {
    let device = Device::Cpu;
    let (x, eps) = inputs(Options::full().batch, &device)?;
    let mut trainee: Box<dyn Trainee> = match variant {
        "ours" => Box::new(Ours::new(&x)?),
        "plain" => {
            artifex_core::fast_paths::set_enabled(false);
            Box::new(Ours::new(&x)?)
        }
        _ => Box::new(Handwritten::new(&x, &eps)?),
    };
    for _ in 0..steps {
        trainee.step()?;
    }
    Ok(peak_rss_kb())
}

fn child_peak(variant: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["--child", variant])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM_kB ")?.trim().parse().ok())
}

/// The training rows of the table: `(ours, plain ops, reference)` steps/s and the ratios.
fn train_table(opts: &Options, device: &Device) -> Result<([f64; 3], f64, f64)> {
    println!(
        "bench_vae: CustomVAE 784-512-256-128 (BatchNorm train, ReLU), latent 20, batch {}, f32, \
         {} threads, {} timed steps each in blocks of {}",
        opts.batch,
        candle_core::utils::get_num_threads(),
        opts.steps,
        opts.block
    );
    let sps = train(opts, device)?;
    let [ours_sps, plain_sps, ref_sps] = sps;
    let gflop = flops_per_step(opts.batch) / 1e9;
    println!("{:<34}{:>12}{:>12}{:>9}", "", "ours", "candle-nn", "ratio");
    let train_ratio = row("train steps/s", ours_sps, ref_sps);
    let plain_ratio = row("train steps/s, plain ops (no fused)", plain_sps, ref_sps);
    row("train GFLOP/s", ours_sps * gflop, ref_sps * gflop);
    if opts.references {
        references(opts, device)?;
    }
    Ok((sps, train_ratio, plain_ratio))
}

/// Rounds of (ours, reference) per reference in [`references`]: the median of their paired
/// ratios is reported. Flax NNX compiles its step in each round (seconds), the GEMM floor
/// starts in about one.
const FLAX_ROUNDS: usize = 3;
const FLOOR_ROUNDS: usize = 5;

/// Prints our training steps/s against Flax NNX's (`python/bench_flax.py --workload vae`) and
/// against the numpy GEMM floor (`python/gemm_floor.py`), each run as a child process with
/// the same batch and thread count; a note instead where Python, jax or numpy is missing.
///
/// Rates on these shared vCPUs move by 2x between minutes, so each reference is measured in
/// rounds: our rate timed right before the child (`opts.steps` steps of a warmed-up model),
/// then the child's; the row gives the medians and the median of the paired ratios, and a
/// note lists the rounds.
fn references(opts: &Options, device: &Device) -> Result<()> {
    let threads = candle_core::utils::get_num_threads().to_string();
    let batch = opts.batch.to_string();
    let (x, _) = inputs(opts.batch, device)?;
    let mut ours = Ours::new(&x)?;
    for _ in 0..opts.warmup {
        ours.step()?;
    }
    let mut ours_now = || -> Result<f64> {
        let t = Instant::now();
        for _ in 0..opts.steps {
            ours.step()?;
        }
        Ok(per_s(opts.steps, t.elapsed()))
    };
    let common = ["--batch", &batch, "--threads", &threads].map(String::from);
    let flax_args: Vec<String> = ["--workload", "vae", "--steps", &opts.steps.to_string()]
        .map(String::from)
        .into_iter()
        .chain(common.clone())
        .collect();
    println!(
        "{:<34}{:>12}{:>12}{:>9}",
        "references (python3)", "ours", "reference", "ratio"
    );
    let references = [
        (
            "Flax NNX",
            "bench_flax.py",
            flax_args,
            "flax vae ",
            "python",
            "train_steps_per_s",
            FLAX_ROUNDS,
        ),
        (
            "GEMM floor",
            "gemm_floor.py",
            common.to_vec(),
            "gemm_floor vae ",
            "numpy",
            "steps_per_s",
            FLOOR_ROUNDS,
        ),
    ];
    for (name, script, args, prefix, header_prefix, key, n) in references {
        let mut rounds = Vec::new();
        let mut header = String::new();
        for _ in 0..n {
            let before = ours_now()?;
            let theirs = python::run(script, &args, prefix, header_prefix).and_then(|out| {
                header = out.header.clone();
                out.value(key)
            });
            match theirs {
                Ok(theirs) => rounds.push((before, theirs)),
                Err(why) => {
                    println!("{name} not measured: {why}");
                    break;
                }
            }
        }
        if rounds.len() < n {
            continue;
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratio = median(rounds.iter().map(|(o, t)| o / t).collect());
        println!(
            "{:<34}{:>12.2}{:>12.2}{:>8.2}x",
            format!("train steps/s vs {name}"),
            median(rounds.iter().map(|r| r.0).collect()),
            median(rounds.iter().map(|r| r.1).collect()),
            ratio
        );
        let pairs: Vec<String> = rounds
            .iter()
            .map(|(o, t)| format!("{o:.0}/{t:.0}"))
            .collect();
        println!(
            "  (python/{script}; {header}; ours/{name} in {n} rounds, ours timed right before: {}; ours = {:.0}% of it)",
            pairs.join(", "),
            100.0 * ratio
        );
    }
    Ok(())
}

/// Prints one row of the table and returns its ratio.
fn row(name: &str, a: f64, b: f64) -> f64 {
    println!("{name:<34}{a:>12.2}{b:>12.2}{:>8.2}x", a / b);
    a / b
}

/// Runs everything and prints the table.
pub fn run(opts: &Options) -> Result<Report> {
    let device = Device::Cpu;
    let ([ours_sps, _, ref_sps], train_ratio, plain_ratio) = train_table(opts, &device)?;
    let (sa, sb) = sampling(opts, &device)?;
    let sample_ratio = row(&format!("sample {} images /s", opts.samples), sa, sb);
    let c = checkpoint(opts)?;
    let mb = c.megabytes;
    let ratio_row = |what: &str, ours: &str, raw: &str, r: f64| {
        println!(
            "{:<34}{ours:>12}{raw:>12}{r:>8.2}x",
            format!("{what} ({mb:.0} MB)")
        );
    };
    ratio_row("checkpoint save", "durable", "raw+fsync", c.save_sync);
    ratio_row("checkpoint save", "durable", "raw st", c.save);
    ratio_row("checkpoint save", "no fsync", "raw st", c.save_no_sync);
    ratio_row("checkpoint load", "ours", "raw st", c.load);
    let (save_ratio, save_sync_ratio, load_ratio) = (c.save, c.save_sync, c.load);
    let memory_ratio = if opts.memory {
        match (child_peak("ours"), child_peak("ref")) {
            (Some(a), Some(b)) if b > 0 => {
                println!(
                    "{:<34}{:>12}{:>12}{:>8.2}x",
                    "peak RSS (VmHWM, MB; lower=better)",
                    format!("{:.1}", a as f64 / 1024.0),
                    format!("{:.1}", b as f64 / 1024.0),
                    a as f64 / b as f64
                );
                Some(a as f64 / b as f64)
            }
            _ => None,
        }
    } else {
        None
    };
    println!("(ratios: ours / candle-nn for rates, so > 1 is faster; peak RSS: ours / candle-nn)");
    Ok(Report {
        ours_steps_per_s: ours_sps,
        ref_steps_per_s: ref_sps,
        train_ratio,
        plain_ratio,
        sample_ratio,
        save_ratio,
        save_sync_ratio,
        save_no_sync_ratio: c.save_no_sync,
        load_ratio,
        memory_ratio,
    })
}

/// Benchmark of the seed's CustomVAE training step, sampling, checkpoint save/load and peak
/// memory: our model against the same model written by hand with candle-nn.
#[derive(Parser, Debug)]
#[command(name = "bench_vae")]
struct Args {
    /// Smoke run: a few steps at batch 8, a small checkpoint, no memory measurement
    #[arg(long)]
    quick: bool,
    /// Only the training rows of the table
    #[arg(long)]
    train_only: bool,
    /// Timed training steps per variant [default: 120; 4 with --quick]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one())]
    steps: Option<usize>,
    /// Steps per interleaved block [default: 10; 2 with --quick]
    #[arg(long, value_name = "N", value_parser = cli::at_least_one())]
    block: Option<usize>,
    /// Do not run the Python references (Flax NNX, the numpy GEMM floor)
    #[arg(long)]
    no_python: bool,
    /// Internal: build and train one variant, print its peak RSS (the memory rows' children)
    #[arg(long, value_name = "VARIANT", hide = true, value_parser = ["ours", "plain", "ref"])]
    child: Option<String>,
}

#[allow(dead_code)] // only `main` uses it; tests/bench_vae.rs includes this file too
impl Args {
    /// The benchmark options the flags select.
    fn options(&self) -> Options {
        let mut opts = if self.quick {
            Options::quick()
        } else {
            Options::full()
        };
        opts.train_only = self.train_only;
        opts.references &= !self.no_python;
        opts.steps = self.steps.unwrap_or(opts.steps);
        opts.block = self.block.unwrap_or(opts.block);
        opts
    }
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|args: Args| {
        let opts = args.options();
        match &args.child {
            Some(v) => child(v, opts.warmup + 20).map(|kb| println!("VmHWM_kB {kb}")),
            None if opts.train_only => train_table(&opts, &Device::Cpu).map(drop),
            None => run(&opts).map(drop),
        }
    })
}
