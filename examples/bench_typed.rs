//! Typed vs dynamic: forward + backward time of the seed's VAE encoder (784 -> 512 -> 256 ->
//! 128 with BatchNorm and ReLU, mean/logvar heads to 20), both models in one process from
//! the same seed, steps interleaved (alternating which goes first) so that machine noise
//! hits both alike.
//!
//! `cargo run --release --example bench_typed -- [STEPS] [BATCH]` (defaults 200, 128; `--help`)

use std::process::ExitCode;
use std::time::Instant;

use artifex_core::prelude::*;
use artifex_core::typed;
use artifex_models::{CustomVAE, TypedVae};
use clap::Parser;

#[path = "common/cli.rs"]
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
mod cli;

/// Typed vs dynamic: median forward+backward time of the seed's VAE encoder, both models
/// from the same seed, steps interleaved (after 20 warm-up steps each).
#[derive(Parser, Debug)]
#[command(name = "bench_typed")]
struct Args {
    /// Timed steps per model
    #[arg(value_name = "STEPS", default_value_t = 200, value_parser = cli::at_least_one())]
    steps: usize,
    /// Batch size
    #[arg(value_name = "BATCH", default_value_t = 128, value_parser = cli::at_least_one())]
    batch: usize,
}

/// Timings of one benchmark run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Timed steps per model.
    pub steps: usize,
    /// Median milliseconds per typed step.
    pub typed_ms: f64,
    /// Median milliseconds per dynamic step.
    pub dynamic_ms: f64,
    /// Median of the per-step ratios typed / dynamic.
    pub ratio: f64,
    /// 10th and 90th percentiles of the per-step ratios.
    pub ratio_p10_p90: (f64, f64),
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Runs `warmup` untimed and `steps` timed forward+backward steps of each encoder.
pub fn run(steps: usize, warmup: usize, batch: usize) -> Result<BenchReport> {
    let mut typed_vae = TypedVae::new(&mut Rngs::new(0))?;
    let mut dynamic_vae = CustomVAE::new(
        vec![28, 28, 1],
        20,
        vec![512, 256, 128],
        vec![128, 256, 512],
        &mut Rngs::new(0),
    )?;
    typed_vae.train();
    dynamic_vae.train();
    let x = Rngs::new(1)
        .params()?
        .uniform(&[batch, 784], 0.0, 1.0, DType::F32, &Device::Cpu)?;
    let typed_x = typed::Tensor::new(x.clone())?;

    let typed_step = || -> Result<f64> {
        let start = Instant::now();
        let (mean, logvar) = typed_vae.encode(&typed_x)?;
        let loss = (mean.sqr()?.mean_all()? + logvar.sqr()?.mean_all()?)?;
        std::hint::black_box(loss.backward()?);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    let dynamic_step = || -> Result<f64> {
        let start = Instant::now();
        let (mean, logvar) = dynamic_vae.encode(&x)?;
        let loss = (mean.sqr()?.mean_all()? + logvar.sqr()?.mean_all()?)?;
        std::hint::black_box(loss.backward()?);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };

    for _ in 0..warmup {
        typed_step()?;
        dynamic_step()?;
    }
    let (mut typed_ms, mut dynamic_ms) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for i in 0..steps {
        if i % 2 == 0 {
            typed_ms.push(typed_step()?);
            dynamic_ms.push(dynamic_step()?);
        } else {
            dynamic_ms.push(dynamic_step()?);
            typed_ms.push(typed_step()?);
        }
    }
    let ratios = sorted(
        typed_ms
            .iter()
            .zip(&dynamic_ms)
            .map(|(t, d)| t / d)
            .collect(),
    );
    Ok(BenchReport {
        steps,
        typed_ms: percentile(&sorted(typed_ms), 0.5),
        dynamic_ms: percentile(&sorted(dynamic_ms), 0.5),
        ratio: percentile(&ratios, 0.5),
        ratio_p10_p90: (percentile(&ratios, 0.1), percentile(&ratios, 0.9)),
    })
}

#[allow(dead_code)]
fn main() -> ExitCode {
    cli::main_with(|Args { steps, batch }| print_report(steps, batch))
}

/// Runs the benchmark and prints its figures.
#[allow(dead_code)] // only `main` uses it; tests/examples.rs includes this file too
fn print_report(steps: usize, batch: usize) -> Result<()> {
    let report = run(steps, 20, batch)?;
    println!("encoder forward+backward, batch {batch}, {} timed steps each (after 20 warm-up), interleaved", report.steps);
    println!("typed   median {:.3} ms", report.typed_ms);
    println!("dynamic median {:.3} ms", report.dynamic_ms);
    println!(
        "typed / dynamic: median {:.3}, p10 {:.3}, p90 {:.3}",
        report.ratio, report.ratio_p10_p90.0, report.ratio_p10_p90.1
    );
    Ok(())
}
