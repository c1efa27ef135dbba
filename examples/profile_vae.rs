//! Runs a number of seed CustomVAE training steps (batch 128, Adam) and nothing else, for
//! profilers (`valgrind --tool=callgrind`, `perf`): instruction counts of N steps minus those
//! of M steps give the cost of one step, free of set-up.
//!
//! ```text
//! RAYON_NUM_THREADS=1 valgrind --tool=callgrind cargo run --release --example profile_vae -- 5
//! ```

use artifex_core::candle_core::{Device, Tensor};
use artifex_core::optim::{Adam, Optimizer};
use artifex_core::prelude::*;
use artifex_models::CustomVAE;

fn main() -> Result<()> {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let device = Device::Cpu;
    let mut rngs = Rngs::new(0);
    let model = CustomVAE::new(
        vec![28, 28, 1],
        20,
        vec![512, 256, 128],
        vec![128, 256, 512],
        &mut rngs,
    )?;
    let mut opt = Adam::new(model.named_params(), 1e-3)?;
    // Fixed inputs in [0, 1), so runs with other thread counts can be compared bit for bit.
    let pixels: Vec<f32> = (0..128 * 784)
        .map(|i| (i * 7919 % 1009) as f32 / 1009.0)
        .collect();
    let x = Tensor::from_vec(pixels, (128, 28, 28, 1), &device)?;
    let start = std::time::Instant::now();
    let mut loss = 0f32;
    for _ in 0..steps {
        let out = GenerativeModel::forward(&model, &x)?;
        loss = out.loss.to_scalar::<f32>()?;
        opt.backward_step(&out.loss)?;
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "{steps} steps, {:.3} ms/step, last loss {loss}",
        1e3 * t / steps.max(1) as f64
    );
    Ok(())
}
