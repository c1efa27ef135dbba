//! MNIST-FID of an example's samples: 2,000 samples against the test split, in the feature
//! space of the shipped classifier (`data/mnist_features/`), printed and written to
//! `OUT/mnist_fid.json`.

use std::path::Path;
use std::time::Instant;

use artifex_core::prelude::*;
use artifex_models::{MnistFid, MnistFidReport};

/// Samples evaluated (the size of the test split).
pub const SAMPLES: usize = 2000;

/// Samples drawn per call of `sample` (bounds the memory of the generator's activations).
const CHUNK: usize = 500;

/// Draws [`SAMPLES`] images `(n, 28, 28, 1)` in `[0, 1]` with `sample(n)`, evaluates them
/// against `test_images` with the shipped classifier, prints the report and its time, and
/// writes it to `out/mnist_fid.json`.
pub fn report(
    test_images: &Tensor,
    mut sample: impl FnMut(usize) -> Result<Tensor>,
    out: &Path,
) -> Result<MnistFidReport> {
    let started = Instant::now();
    let evaluator = MnistFid::shipped(&test_images.to_device(&Device::Cpu)?)?;
    let mut parts = Vec::new();
    for start in (0..SAMPLES).step_by(CHUNK) {
        parts.push(sample(CHUNK.min(SAMPLES - start))?.to_device(&Device::Cpu)?);
    }
    let samples = Tensor::cat(&parts, 0)?;
    let report = evaluator.evaluate(&samples)?;
    let path = out.join("mnist_fid.json");
    let json = serde_json::to_string_pretty(&report.to_json())
        .map_err(|e| Error::config("mnist_fid.json", e.to_string()))?;
    std::fs::write(&path, json + "\n").map_err(|e| {
        Error::config(
            "mnist_fid.json",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    println!(
        "{report}  [{:.1} s]\nwrote {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(report)
}
