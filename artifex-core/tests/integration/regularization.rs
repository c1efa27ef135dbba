//! Regularization penalties are collected through the state tree, not by hand.

use artifex_core::layers::RegularizedLinear;
use artifex_core::losses::{l1_penalty, l2_penalty};
use artifex_core::prelude::*;

#[derive(Module)]
struct Model {
    first: RegularizedLinear,
    nested: Vec<Option<Box<RegularizedLinear>>>,
    plain: Linear,
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().expect("scalar")
}

#[test]
fn regularization_loss_sums_every_regularizer_in_the_tree() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let model = Model {
        first: RegularizedLinear::builder(4, 3)
            .weight_decay(0.1)
            .build(rngs)?,
        nested: vec![
            None,
            Some(Box::new(
                RegularizedLinear::builder(3, 2)
                    .weight_decay(0.5)
                    .build(rngs)?,
            )),
        ],
        plain: Linear::new(2, 1, rngs)?,
    };
    let expected = scalar(&model.first.regularization_loss()?)
        + scalar(
            &model.nested[1]
                .as_ref()
                .expect("layer")
                .regularization_loss()?,
        );
    let total = model
        .collect_regularization_loss()?
        .expect("two regularizers");
    assert!((scalar(&total) - expected).abs() < 1e-6);
    assert!(expected > 0.0);
    // Gradients flow into the weights.
    let grads = total.backward()?;
    assert!(grads.get(&model.first.weight).is_some());
    // A tree without regularizers has none.
    assert!(model.plain.collect_regularization_loss()?.is_none());
    Ok(())
}

#[test]
fn l1_and_l2_penalties_over_named_params() -> Result<()> {
    let layer = Linear::new(3, 2, &mut Rngs::new(0))?;
    let params = layer.named_params();
    let w: Vec<f32> = layer.kernel.flatten_all()?.to_vec1()?;
    let l2: f32 = w.iter().map(|v| v * v).sum::<f32>() * 0.1;
    let l1: f32 = w.iter().map(|v| v.abs()).sum::<f32>() * 0.1;
    assert!((scalar(&l2_penalty(&params, 0.1)?) - l2).abs() < 1e-6);
    assert!((scalar(&l1_penalty(&params, 0.1)?) - l1).abs() < 1e-6);
    assert!(l2_penalty(&[], 0.1).is_err());
    Ok(())
}
