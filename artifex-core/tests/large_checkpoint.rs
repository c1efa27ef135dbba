//! A 1 GiB checkpoint saves and loads without a second copy of the model in memory: the save
//! streams each tensor in chunks, the load maps the file, copies each entry into its variable
//! in chunks and releases the mapped pages as it goes. Reports peak RSS (VmHWM) beyond the
//! model. Ignored by default (it writes 1 GiB); run it with
//!
//! ```sh
//! cargo test --release -p artifex-core --test large_checkpoint -- --ignored --nocapture
//! ```

use artifex_core::prelude::*;

const PARAMS: usize = 16;
const ELEMS: usize = 16 << 20; // 64 MiB of f32 per param, 1 GiB in all

#[derive(Module)]
struct Big {
    layers: Vec<Param>,
}

fn layer(i: usize, fill: bool) -> Result<Param> {
    let t = if fill {
        (Tensor::arange(0u32, ELEMS as u32, &Device::Cpu)?.to_dtype(DType::F32)? * 1e-7)?
            .affine(1.0, i as f64)?
    } else {
        // Ones, not zeros: zeroed pages from calloc are not resident until written.
        Tensor::ones(ELEMS, DType::F32, &Device::Cpu)?
    };
    Param::new(&t.reshape((ELEMS / 1024, 1024))?)
}

fn big(fill: bool) -> Result<Big> {
    Ok(Big {
        layers: (0..PARAMS).map(|i| layer(i, fill)).collect::<Result<_>>()?,
    })
}

/// A `/proc/self/status` field in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux >= 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f`; returns how far the peak RSS rose above the RSS before it, in MiB.
fn peak_above<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let ok = reset_peak();
    let before = status_mib("VmRSS:");
    let out = f();
    let rise = if ok {
        status_mib("VmHWM:") - before
    } else {
        f64::NAN
    };
    (out, rise)
}

#[test]
#[ignore = "writes and reads a 1 GiB checkpoint; run explicitly (see the file's docs)"]
fn one_gib_checkpoint_loads_without_a_second_copy() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("artifex-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::config("test", e.to_string()))?;
    let path = dir.join("big.safetensors");

    let model = big(true)?;
    let model_mib = (PARAMS * ELEMS * 4) as f64 / (1 << 20) as f64;
    let (saved, save_rise) = peak_above(|| model.save_safetensors(&path));
    saved?;
    drop(model);
    let file_mib = std::fs::metadata(&path).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64;

    let mut target = big(false)?;
    let rss_with_model = status_mib("VmRSS:");
    let (loaded, load_rise) = peak_above(|| target.load_safetensors(&path));
    let report = loaded?;
    assert_eq!(report.loaded.len(), PARAMS);
    for (i, p) in target.layers.iter().enumerate() {
        let want = layer(i, true)?;
        let diff = (p.value() - want.value())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "layer {i} loads bitwise-equal");
    }
    eprintln!(
        "model {model_mib:.0} MiB, file {file_mib:.0} MiB; RSS with the model {rss_with_model:.0} MiB; \
         peak RSS above it: save +{save_rise:.0} MiB, load +{load_rise:.0} MiB"
    );

    // For comparison: candle's whole-file load holds every tensor at once.
    drop(target);
    let (all, naive_rise) = peak_above(|| candle_core::safetensors::load(&path, &Device::Cpu));
    drop(all?);
    eprintln!("candle_core::safetensors::load of the same file: +{naive_rise:.0} MiB");
    let _ = std::fs::remove_dir_all(&dir);
    if !load_rise.is_nan() {
        assert!(
            load_rise < 256.0,
            "load needed {load_rise:.0} MiB beyond the model"
        );
        assert!(
            save_rise < 256.0,
            "save needed {save_rise:.0} MiB beyond the model"
        );
    }
    Ok(())
}
