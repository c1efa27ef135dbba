//! Same seed => bitwise-identical parameters, dropout masks and outputs, on any thread count.

mod common;

use artifex_core::prelude::*;
use common::{batch, bits, state_bytes, Mlp};

#[test]
fn same_seed_builds_bitwise_equal_models() -> Result<()> {
    let a = Mlp::new(16, 32, 4, &mut Rngs::new(42))?;
    let b = Mlp::new(16, 32, 4, &mut Rngs::new(42))?;
    assert_eq!(state_bytes(&a), state_bytes(&b));
    Ok(())
}

#[test]
fn different_seeds_and_streams_differ() -> Result<()> {
    let a = Mlp::new(16, 32, 4, &mut Rngs::new(1))?;
    let b = Mlp::new(16, 32, 4, &mut Rngs::new(2))?;
    assert_ne!(bits(&a.fc1.kernel), bits(&b.fc1.kernel));

    // A dedicated `params` stream changes the draws; a `dropout` stream changes only the masks.
    let c = Mlp::new(16, 32, 4, &mut Rngs::new(1).with_stream("params", 1))?;
    assert_ne!(bits(&a.fc1.kernel), bits(&c.fc1.kernel));
    let d = Mlp::new(16, 32, 4, &mut Rngs::new(1).with_stream("dropout", 9))?;
    let e = Mlp::new(16, 32, 4, &mut Rngs::new(1).with_stream("dropout", 10))?;
    assert_ne!(d.dropout.rngs.key(), e.dropout.rngs.key());

    // Streams of one Rngs with the same seed are still independent.
    let rngs = Rngs::new(5)
        .with_stream("params", 5)
        .with_stream("sample", 5);
    assert_ne!(
        rngs.stream("params")?.next_key(),
        rngs.stream("sample")?.next_key()
    );
    Ok(())
}

#[test]
fn dropout_masks_repeat_from_the_same_seed_and_advance_the_counter() -> Result<()> {
    let x = Tensor::ones((64, 32), DType::F32, &Device::Cpu)?;
    let a = Dropout::new(0.5, &mut Rngs::new(3))?;
    let b = Dropout::new(0.5, &mut Rngs::new(3))?;
    let (a1, a2) = (a.forward(&x)?, a.forward(&x)?);
    assert_eq!(bits(&a1), bits(&b.forward(&x)?));
    assert_ne!(bits(&a1), bits(&a2), "each call draws a new mask");
    assert_eq!(a.rngs.count(), 2);
    // Kept entries are scaled by 1 / keep; the rate is respected.
    let v: Vec<f32> = a1.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|&e| e == 0.0 || e == 2.0));
    let kept = v.iter().filter(|&&e| e != 0.0).count() as f64 / v.len() as f64;
    assert!((kept - 0.5).abs() < 0.05, "kept fraction {kept}");
    Ok(())
}

#[test]
fn missing_stream_falls_back_to_default_or_errors() {
    let mut rngs = Rngs::empty().with_stream("params", 0);
    assert!(rngs.params().is_ok());
    let err = rngs.sample().unwrap_err().to_string();
    assert!(
        err.contains("no rng stream named `sample` and no `default` stream"),
        "{err}"
    );
    assert!(Dropout::new(0.1, &mut rngs).is_err());
    assert!(Dropout::new(0.1, &mut Rngs::new(0)).is_ok());
}

/// Runs one training-mode forward/backward and prints a fingerprint; used as a child process.
#[test]
#[ignore = "run by `thread_count_does_not_change_results` in a child process"]
fn fingerprint_child() -> Result<()> {
    let Ok(out) = std::env::var("ARTIFEX_FINGERPRINT_OUT") else {
        return Ok(());
    };
    let model = Mlp::new(64, 256, 8, &mut Rngs::new(7))?;
    let y = model.forward(&batch(128, 64))?;
    let loss = y.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let mut fp: Vec<u32> = bits(&y);
    for (_, p) in model.named_params() {
        if let Some(g) = grads.get(&p) {
            fp.extend(bits(g));
        }
    }
    for (_, bytes) in state_bytes(&model) {
        fp.extend(bytes.iter().map(|b| u32::from(*b)));
    }
    let text: Vec<String> = fp.iter().map(u32::to_string).collect();
    std::fs::write(out, text.join(",")).map_err(|e| Error::config("test", e.to_string()))?;
    Ok(())
}

#[test]
fn thread_count_does_not_change_results() {
    let prints =
        common::fingerprints_at_1_and_2_threads("fingerprint_child", "ARTIFEX_FINGERPRINT_OUT");
    assert!(prints[0].len() > 1000);
    assert_eq!(prints[0], prints[1], "RAYON_NUM_THREADS=1 and 2 differ");
}
