//! train()/eval() reach every nested layer; per-call overrides still work.

use crate::common;

use artifex_core::prelude::*;
use common::{batch, bits};

#[derive(Module)]
struct Deep {
    blocks: Vec<Option<Box<Dropout>>>,
    bn: BatchNorm,
}

#[test]
fn eval_makes_nested_dropout_identity() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let mut deep = Deep {
        blocks: vec![None, Some(Box::new(Dropout::new(0.9, rngs)?))],
        bn: BatchNorm::new(4, rngs)?,
    };
    let x = Tensor::ones((8, 4), DType::F32, &Device::Cpu)?;
    let inner = deep.blocks[1].as_ref().expect("dropout");
    assert!(inner.is_training(), "fresh modules train, as in NNX");
    assert_ne!(bits(&inner.forward(&x)?), bits(&x));

    deep.eval();
    let inner = deep.blocks[1].as_ref().expect("dropout");
    assert!(!inner.is_training());
    assert_eq!(bits(&inner.forward(&x)?), bits(&x));
    // Per-call override: training behaviour on an eval-mode module.
    assert_ne!(bits(&inner.forward_t(&x, Some(true))?), bits(&x));

    deep.train();
    assert!(deep.blocks[1].as_ref().expect("dropout").is_training());
    Ok(())
}

#[test]
fn batch_norm_uses_batch_stats_in_train_and_running_averages_in_eval() -> Result<()> {
    let mut bn = BatchNorm::new(3, &mut Rngs::new(0))?;
    let x = (batch(16, 3) * 3.0)? + 1.0;
    let x = x?;
    // Train: output normalized per feature; running stats move by (1 - momentum).
    let y = bn.forward(&x)?;
    let mean: Vec<f32> = y.mean(0)?.to_vec1()?;
    assert!(mean.iter().all(|m| m.abs() < 1e-5), "{mean:?}");
    let batch_mean: Vec<f32> = x.mean(0)?.to_vec1()?;
    let running: Vec<f32> = bn.mean.value().to_vec1()?;
    for (r, b) in running.iter().zip(&batch_mean) {
        assert!((r - 0.01 * b).abs() < 1e-6);
    }
    // Eval: running averages, no update.
    bn.eval();
    let before = bits(&bn.mean.value());
    let y_eval = bn.forward(&x)?;
    assert_eq!(before, bits(&bn.mean.value()));
    let expect = x
        .broadcast_sub(&bn.mean.value())?
        .broadcast_div(&(bn.var.value() + 1e-5)?.sqrt()?)?;
    let diff = (y_eval - expect)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5);
    // Override: a train-mode call on an eval module updates the stats.
    bn.forward_t(&x, Some(true))?;
    assert_ne!(before, bits(&bn.mean.value()));
    Ok(())
}
