//! Benchmark of a convolutional training step (issue 12): the seed's ResidualBlock(64,
//! stride 2, downsample), or with `--workload dense` its DenseBlock(in 64, growth 32,
//! 4 layers), on NHWC `(batch, 32, 32, 64)`, or with `--workload unet` its UNetEncoder +
//! UNetDecoder (channels [3, 32, 64, 128], the decoder with `skip_channels`) on
//! `(batch, 32, 32, 3)`; BatchNorm in train mode, loss `mean(out²)`, Adam 1e-3, f32; and its
//! eval-mode forward. Three variants in one process,
//! in interleaved blocks of steps so machine noise hits all alike: ours (GEMM conv kernels),
//! ours on plain candle ops (`fast_paths` off), and the block written by hand with candle-nn
//! on NCHW. Flax NNX (`python/bench_flax.py`, `nnx.jit`) runs as a child process on the same
//! workload, and is skipped with a note when Python or Flax is missing. The peak memory of
//! each variant is the `VmHWM` of a child process (this binary with `--only`) running it.
//!
//! ```text
//! cargo run --release --example bench_conv [-- --workload residual|dense|unet] [--batch 16] [--steps 60] [--block 10] [--no-flax]
//!     [--only ours|plain|candle-nn] [--no-memory]
//! ```

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use artifex_core::candle_core::{DType, Device, Module as _, Tensor};
use artifex_core::candle_nn::{self, ModuleT, Optimizer as _, VarBuilder, VarMap};
use artifex_core::optim::{Adam, Optimizer};
use artifex_core::prelude::*;
use artifex_models::{DenseBlock, ResidualBlock, UNetDecoder, UNetEncoder};
use clap::{Parser, ValueEnum};

#[path = "common/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "common/python.rs"]
mod python;

const CHANNELS: usize = 64;
const SIZE: usize = 32;
const LR: f64 = 1e-3;
/// DenseBlock: channels added per layer, and layers.
const GROWTH: usize = 32;
const DENSE_LAYERS: usize = 4;
/// U-Net: the encoder's channels (the decoder's are the reverse).
const UNET_CHANNELS: [usize; 4] = [3, 32, 64, 128];

/// Times a ResidualBlock training step: ours, ours on plain ops, candle-nn by hand, Flax NNX.
#[derive(Parser, Debug)]
struct Args {
    /// The seed model timed.
    #[arg(long, value_enum, default_value_t = Workload::Residual)]
    workload: Workload,
    /// Batch size.
    #[arg(long, default_value_t = 16, value_parser = cli::at_least_one())]
    batch: usize,
    /// Timed steps per variant.
    #[arg(long, default_value_t = 60, value_parser = cli::at_least_one())]
    steps: usize,
    /// Steps per interleaved block.
    #[arg(long, default_value_t = 10, value_parser = cli::at_least_one())]
    block: usize,
    /// Warm-up steps per variant.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Do not run python/bench_flax.py.
    #[arg(long)]
    no_flax: bool,
    /// Do not measure each variant's peak memory (VmHWM of a child process per variant).
    #[arg(long)]
    no_memory: bool,
    /// Build and time one variant alone, no Flax, and print its peak memory (for `perf` and
    /// for comparing the variants' peak RSS: run once per variant).
    #[arg(long, value_enum)]
    only: Option<Only>,
}

/// The workloads of `--workload`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// ResidualBlock(64, stride 2, downsample) on (batch, 32, 32, 64).
    Residual,
    /// DenseBlock(in 64, growth 32, 4 layers) on (batch, 32, 32, 64).
    Dense,
    /// UNetEncoder + UNetDecoder, channels [3, 32, 64, 128], on (batch, 32, 32, 3).
    Unet,
}

impl Workload {
    /// The name `python/bench_flax.py` takes and prints.
    fn flax_name(self) -> &'static str {
        match self {
            Workload::Residual => "residual_block",
            Workload::Dense => "dense_block",
            Workload::Unet => "unet",
        }
    }

    /// Channels of the NHWC input.
    fn input_channels(self) -> usize {
        match self {
            Workload::Unet => UNET_CHANNELS[0],
            _ => CHANNELS,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Workload::Residual => "ResidualBlock(64, stride 2, downsample)",
            Workload::Dense => "DenseBlock(in 64, growth 32, 4 layers)",
            Workload::Unet => "UNetEncoder + UNetDecoder, channels [3, 32, 64, 128]",
        }
    }
}

/// The variants `--only` can pick.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Only {
    Ours,
    Plain,
    CandleNn,
}

/// The block written by hand with candle-nn 0.11 on NCHW (`conv2d` with symmetric padding 1,
/// which gives SAME's output sizes here; `batch_norm` + `forward_t`).
struct HandwrittenResidual {
    conv1: candle_nn::Conv2d,
    bn1: candle_nn::BatchNorm,
    conv2: candle_nn::Conv2d,
    bn2: candle_nn::BatchNorm,
    shortcut: candle_nn::Conv2d,
    shortcut_bn: candle_nn::BatchNorm,
}

impl HandwrittenResidual {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        let conv = |k, stride, padding, name: &str| {
            let config = candle_nn::Conv2dConfig {
                padding,
                stride,
                ..Default::default()
            };
            candle_nn::conv2d(CHANNELS, CHANNELS, k, config, vb.pp(name))
        };
        let bn_config = nnx_batch_norm_config();
        let bn = |name: &str| candle_nn::batch_norm(CHANNELS, bn_config, vb.pp(name));
        Ok(Self {
            conv1: conv(3, 2, 1, "conv1")?,
            bn1: bn("bn1")?,
            conv2: conv(3, 1, 1, "conv2")?,
            bn2: bn("bn2")?,
            shortcut: conv(1, 2, 0, "shortcut")?,
            shortcut_bn: bn("shortcut_bn")?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let out = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let out = self.bn2.forward_t(&self.conv2.forward(&out)?, train)?;
        let identity = self
            .shortcut_bn
            .forward_t(&self.shortcut.forward(x)?, train)?;
        (out + identity)?.relu()
    }
}

/// candle-nn's BatchNorm with NNX's defaults: eps 1e-5, momentum 0.01 in candle's convention
/// (NNX's 0.99).
fn nnx_batch_norm_config() -> candle_nn::BatchNormConfig {
    candle_nn::BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.01,
    }
}

/// The seed's DenseBlock by hand with candle-nn on NCHW: per layer BatchNorm, ReLU, 3x3 conv
/// (padding 1), concatenated on the channel axis.
struct HandwrittenDense {
    layers: Vec<(candle_nn::BatchNorm, candle_nn::Conv2d)>,
}

impl HandwrittenDense {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        let bn_config = nnx_batch_norm_config();
        let conv_config = candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let layers = (0..DENSE_LAYERS)
            .map(|i| {
                let channels = CHANNELS + i * GROWTH;
                let vb = vb.pp(format!("layers.{i}"));
                Ok((
                    candle_nn::batch_norm(channels, bn_config, vb.pp("0"))?,
                    candle_nn::conv2d(channels, GROWTH, 3, conv_config, vb.pp("1"))?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { layers })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (mut x, mut features) = (x.clone(), vec![x.clone()]);
        for (bn, conv) in &self.layers {
            features.push(conv.forward(&bn.forward_t(&x, train)?.relu()?)?);
            x = Tensor::cat(&features, 1)?;
        }
        Ok(x)
    }
}

/// The seed's U-Net pair by hand with candle-nn on NCHW: stride-2 3x3 convs (padding 1) down,
/// stride-2 3x3 transposed convs (padding 1, output padding 1) up, BatchNorm and ReLU after
/// each, the skips concatenated on the channel axis after each up block.
struct HandwrittenUNet {
    down: Vec<(candle_nn::Conv2d, candle_nn::BatchNorm)>,
    up: Vec<(candle_nn::ConvTranspose2d, candle_nn::BatchNorm)>,
}

impl HandwrittenUNet {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        let bn_config = nnx_batch_norm_config();
        let down_config = candle_nn::Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let up_config = candle_nn::ConvTranspose2dConfig {
            padding: 1,
            output_padding: 1,
            stride: 2,
            dilation: 1,
        };
        let c = UNET_CHANNELS;
        let down = (0..c.len() - 1)
            .map(|i| {
                let vb = vb.pp(format!("down.{i}"));
                Ok((
                    candle_nn::conv2d(c[i], c[i + 1], 3, down_config, vb.pp("0"))?,
                    candle_nn::batch_norm(c[i + 1], bn_config, vb.pp("1"))?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        let rev: Vec<usize> = c.iter().rev().copied().collect();
        let up = (0..rev.len() - 1)
            .map(|i| {
                // After the first up block, the concatenated skip's channels come in too.
                let skip = if i == 0 { 0 } else { rev[i] };
                let vb = vb.pp(format!("up.{i}"));
                Ok((
                    candle_nn::conv_transpose2d(
                        rev[i] + skip,
                        rev[i + 1],
                        3,
                        up_config,
                        vb.pp("0"),
                    )?,
                    candle_nn::batch_norm(rev[i + 1], bn_config, vb.pp("1"))?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { down, up })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (mut x, mut skips) = (x.clone(), Vec::new());
        for (conv, bn) in &self.down {
            skips.push(x.clone());
            x = bn.forward_t(&conv.forward(&x)?, train)?.relu()?;
        }
        for (conv, bn) in &self.up {
            x = bn.forward_t(&conv.forward(&x)?, train)?.relu()?;
            if let Some(skip) = skips.pop() {
                x = Tensor::cat(&[&x, &skip], 1)?;
            }
        }
        Ok(x)
    }
}

/// The hand-written model of a workload.
enum HandwrittenModel {
    Residual(Box<HandwrittenResidual>),
    Dense(HandwrittenDense),
    Unet(HandwrittenUNet),
}

impl HandwrittenModel {
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            HandwrittenModel::Residual(m) => m.forward(x, train),
            HandwrittenModel::Dense(m) => m.forward(x, train),
            HandwrittenModel::Unet(m) => m.forward(x, train),
        }
    }
}

/// Our model of a workload.
enum Model {
    Residual(Box<ResidualBlock>),
    Dense(DenseBlock),
    Unet(Box<(UNetEncoder, UNetDecoder)>),
}

impl Model {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Model::Residual(m) => m.forward(x),
            Model::Dense(m) => m.forward(x),
            Model::Unet(m) => {
                let (h, skips) = m.0.forward(x)?;
                m.1.forward(&h, &skips)
            }
        }
    }

    fn set_training(&mut self, train: bool) {
        match (self, train) {
            (Model::Residual(m), true) => m.train(),
            (Model::Residual(m), false) => m.eval(),
            (Model::Dense(m), true) => m.train(),
            (Model::Dense(m), false) => m.eval(),
            (Model::Unet(m), true) => {
                m.0.train();
                m.1.train();
            }
            (Model::Unet(m), false) => {
                m.0.eval();
                m.1.eval();
            }
        }
    }
}

/// One variant: a training step and an eval-mode forward.
trait Variant {
    fn step(&mut self) -> Result<()>;
    fn eval(&mut self) -> Result<()>;
}

struct Ours {
    model: Model,
    opt: Adam,
    x: Tensor,
}

impl Variant for Ours {
    fn step(&mut self) -> Result<()> {
        self.model.set_training(true);
        let loss = self.model.forward(&self.x)?.sqr()?.mean_all()?;
        self.opt.backward_step(&loss)
    }

    fn eval(&mut self) -> Result<()> {
        self.model.set_training(false);
        self.model.forward(&self.x)?;
        Ok(())
    }
}

struct CandleNn {
    model: HandwrittenModel,
    opt: candle_nn::AdamW,
    x: Tensor,
    _vars: VarMap,
}

impl Variant for CandleNn {
    fn step(&mut self) -> Result<()> {
        let loss = self.model.forward(&self.x, true)?.sqr()?.mean_all()?;
        self.opt.backward_step(&loss)?;
        Ok(())
    }

    fn eval(&mut self) -> Result<()> {
        self.model.forward(&self.x, false)?;
        Ok(())
    }
}

fn ours(workload: Workload, x: &Tensor) -> Result<Ours> {
    let rngs = &mut Rngs::new(0);
    let (model, params) = match workload {
        Workload::Residual => {
            let m = ResidualBlock::builder(CHANNELS)
                .stride(2)
                .downsample(true)
                .build(rngs)?;
            let params = m.named_params();
            (Model::Residual(Box::new(m)), params)
        }
        Workload::Dense => {
            let m = DenseBlock::new(CHANNELS, GROWTH, DENSE_LAYERS, rngs)?;
            let params = m.named_params();
            (Model::Dense(m), params)
        }
        Workload::Unet => {
            let encoder = UNetEncoder::new(UNET_CHANNELS.to_vec(), rngs)?;
            let reversed: Vec<usize> = UNET_CHANNELS.iter().rev().copied().collect();
            let skips = UNET_CHANNELS[..UNET_CHANNELS.len() - 1].to_vec();
            let decoder = UNetDecoder::new(reversed, skips, rngs)?;
            let named = |prefix: &str, params: Vec<(String, Param)>| {
                params
                    .into_iter()
                    .map(move |(n, p)| (format!("{prefix}.{n}"), p))
                    .collect::<Vec<_>>()
            };
            let mut params = named("encoder", encoder.named_params());
            params.extend(named("decoder", decoder.named_params()));
            (Model::Unet(Box::new((encoder, decoder))), params)
        }
    };
    let opt = Adam::new(params, LR)?;
    Ok(Ours {
        model,
        opt,
        x: x.clone(),
    })
}

fn candle_nn_variant(workload: Workload, x: &Tensor) -> Result<CandleNn> {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, x.device());
    let model = match workload {
        Workload::Residual => HandwrittenModel::Residual(Box::new(HandwrittenResidual::new(&vb)?)),
        Workload::Dense => HandwrittenModel::Dense(HandwrittenDense::new(&vb)?),
        Workload::Unet => HandwrittenModel::Unet(HandwrittenUNet::new(&vb)?),
    };
    let params = candle_nn::ParamsAdamW {
        lr: LR,
        weight_decay: 0.0,
        ..Default::default()
    };
    let opt = candle_nn::AdamW::new(vars.all_vars(), params)?;
    Ok(CandleNn {
        model,
        opt,
        x: x.permute((0, 3, 1, 2))?.contiguous()?,
        _vars: vars,
    })
}

/// Calls per second of each variant for `f`, in interleaved blocks after a warm-up.
fn interleaved(
    variants: &mut [(bool, Box<dyn Variant>)],
    args: &Args,
    f: impl Fn(&mut dyn Variant) -> Result<()>,
) -> Result<Vec<f64>> {
    let mut times = vec![Duration::ZERO; variants.len()];
    let mut run = |n: usize, record: bool, times: &mut [Duration]| -> Result<()> {
        for (i, (fast, v)) in variants.iter_mut().enumerate() {
            artifex_core::fast_paths::set_enabled(*fast);
            let t = Instant::now();
            for _ in 0..n {
                f(v.as_mut())?;
            }
            if record {
                times[i] += t.elapsed();
            }
        }
        artifex_core::fast_paths::set_enabled(true);
        Ok(())
    };
    run(args.warmup, false, &mut times)?;
    let mut done = 0;
    while done < args.steps {
        let n = args.block.min(args.steps - done);
        run(n, true, &mut times)?;
        done += n;
    }
    Ok(times
        .iter()
        .map(|t| args.steps as f64 / t.as_secs_f64().max(1e-12))
        .collect())
}

/// CPU model and SIMD flags from /proc/cpuinfo (Linux).
fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| matches!(*f, "avx2" | "fma" | "avx512f" | "avx512bw" | "avx512vl"))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{}; {cpus} CPUs; {}", field("model name"), simd.join(" "))
}

/// This process's peak resident set (`VmHWM` of /proc/self/status, Linux), as printed there.
fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map_or_else(|| "unknown".to_string(), |v| v.trim().to_string())
}

/// Peak resident set in kB of a child process (this binary with `--only`) that builds one
/// variant and runs its steps: all children carry the same binary and input, so the ratios
/// compare the variants' own allocations plus that baseline. `None` when it cannot run.
fn child_peak_kb(args: &Args, only: Only) -> Option<u64> {
    let name = |v: &dyn Fn() -> Option<clap::builder::PossibleValue>| {
        v().map(|p| p.get_name().to_string())
    };
    let workload = name(&|| args.workload.to_possible_value())?;
    let variant = name(&|| only.to_possible_value())?;
    let steps = args.steps.min(10).to_string();
    let out = Command::new(std::env::current_exe().ok()?)
        .args(["--workload", &workload, "--batch", &args.batch.to_string()])
        .args(["--steps", &steps, "--block", &steps, "--warmup", "1"])
        .args(["--only", &variant])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("peak RSS "))?;
    line.rsplit("peak RSS ")
        .next()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Threads of candle's CPU pool (`RAYON_NUM_THREADS`, else all CPUs); Flax gets as many.
fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// Flax's (train steps/s, eval forwards/s) from python/bench_flax.py, or why not.
fn flax(args: &Args) -> std::result::Result<(f64, f64, String), String> {
    let name = args.workload.flax_name();
    let script_args = [
        "--workload",
        name,
        "--batch",
        &args.batch.to_string(),
        "--steps",
        &args.steps.to_string(),
        "--threads",
        &threads().to_string(),
    ]
    .map(String::from);
    let out = python::run(
        "bench_flax.py",
        &script_args,
        &format!("flax {name} "),
        "python",
    )?;
    Ok((
        out.value("train_steps_per_s")?,
        out.value("eval_per_s")?,
        out.header,
    ))
}

fn run(args: Args) -> Result<()> {
    let device = Device::Cpu;
    let channels = args.workload.input_channels();
    let x = Tensor::rand(0f32, 1f32, (args.batch, SIZE, SIZE, channels), &device)?;
    println!("cpu: {}", cpu_line());
    println!(
        "bench_conv: {}, NHWC ({}, {SIZE}, {SIZE}, {channels}), BatchNorm train, loss mean(out²), Adam {LR}, f32, {} threads (Flax too), {} timed steps each in blocks of {}",
        args.workload.describe(),
        args.batch,
        threads(),
        args.steps,
        args.block
    );
    if let Some(only) = args.only {
        let mut variants: Vec<(bool, Box<dyn Variant>)> = match only {
            Only::Ours => vec![(true, Box::new(ours(args.workload, &x)?))],
            Only::Plain => vec![(false, Box::new(ours(args.workload, &x)?))],
            Only::CandleNn => vec![(true, Box::new(candle_nn_variant(args.workload, &x)?))],
        };
        let train = interleaved(&mut variants, &args, |v| v.step())?;
        let eval = interleaved(&mut variants, &args, |v| v.eval())?;
        println!(
            "{only:?}: {:.2} train steps/s, {:.2} eval forwards/s, peak RSS {}",
            train[0],
            eval[0],
            peak_rss()
        );
        return Ok(());
    }
    let mut variants: Vec<(bool, Box<dyn Variant>)> = vec![
        (true, Box::new(ours(args.workload, &x)?)),
        (false, Box::new(ours(args.workload, &x)?)),
        (true, Box::new(candle_nn_variant(args.workload, &x)?)),
    ];
    let train = interleaved(&mut variants, &args, |v| v.step())?;
    let eval = interleaved(&mut variants, &args, |v| v.eval())?;
    let flax = if args.no_flax {
        Err("skipped (--no-flax)".to_string())
    } else {
        flax(&args)
    };
    let flax_cell = |i: usize| match &flax {
        Ok(f) => format!("{:>10.2}", if i == 0 { f.0 } else { f.1 }),
        Err(_) => format!("{:>10}", "-"),
    };
    let ratio = |ours: f64, i: usize| match &flax {
        Ok(f) => format!("{:>9.2}x", ours / if i == 0 { f.0 } else { f.1 }),
        Err(_) => format!("{:>10}", "-"),
    };
    println!(
        "{:<24}{:>10}{:>12}{:>11}{:>10}{:>11}",
        "per second", "ours", "plain ops", "candle-nn", "Flax NNX", "ours/Flax"
    );
    for (i, (name, v)) in [("train steps", &train), ("eval forwards", &eval)]
        .into_iter()
        .enumerate()
    {
        println!(
            "{name:<24}{:>10.2}{:>12.2}{:>11.2}{}{}",
            v[0],
            v[1],
            v[2],
            flax_cell(i),
            ratio(v[0], i)
        );
    }
    if !args.no_memory {
        let peaks = [Only::Ours, Only::Plain, Only::CandleNn].map(|v| child_peak_kb(&args, v));
        match peaks {
            [Some(a), Some(b), Some(c)] if b > 0 => println!(
                "{:<24}{:>10.1}{:>12.1}{:>11.1}{:>10}{:>11}   ours/plain ops {:.2}x",
                "peak RSS (VmHWM, MB)",
                a as f64 / 1024.0,
                b as f64 / 1024.0,
                c as f64 / 1024.0,
                "-",
                "-",
                a as f64 / b as f64
            ),
            _ => println!("peak RSS not measured: a child process did not report it"),
        }
    }
    match &flax {
        Ok((_, _, versions)) => println!("Flax: python/bench_flax.py ({versions})"),
        Err(why) => println!("Flax NNX not measured: {why}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main_with(run)
}
