//! Global-norm gradient clipping (optax `clip_by_global_norm`), for any optimizer.

use std::collections::HashSet;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use crate::{Error, Param, Result};

/// The L2 norm of all gradients of `params` taken together (params without one are skipped;
/// a parameter listed twice counts once).
pub fn global_norm(grads: &GradStore, params: &[(String, Param)]) -> Result<f64> {
    let mut seen = HashSet::new();
    let mut sums = Vec::new();
    for (_, p) in params {
        if !seen.insert(p.id()) {
            continue;
        }
        if let Some(g) = grads.get(p.value()) {
            sums.push(g.sqr()?.sum_all()?.to_dtype(DType::F64)?);
        }
    }
    if sums.is_empty() {
        return Ok(0.0);
    }
    // One transfer to the host for all parameters.
    let total: f64 = Tensor::stack(&sums, 0)?.sum_all()?.to_scalar()?;
    Ok(total.sqrt())
}

/// Scales the gradients of `params` so that their global norm is at most `max_norm`, and
/// returns the norm before clipping.
///
/// As optax, gradients are multiplied by `max_norm / norm` when the norm exceeds `max_norm`.
/// A non-finite norm is returned as is and leaves the gradients untouched, so the caller can
/// skip the step.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    params: &[(String, Param)],
    max_norm: f64,
) -> Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(Error::config(
            "clip_grad_norm",
            format!("max_norm must be positive, got {max_norm}"),
        ));
    }
    let norm = global_norm(grads, params)?;
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / norm;
        let mut seen = HashSet::new();
        for (_, p) in params {
            if !seen.insert(p.id()) {
                continue;
            }
            if let Some(g) = grads.remove(p.value()) {
                grads.insert(p.value(), g.affine(scale, 0.0)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn param(v: &[f32]) -> Param {
        Param::new(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap()
    }

    fn grads_of(params: &[(String, Param)], values: &[&[f32]]) -> GradStore {
        let mut g = GradStore::default();
        for ((_, p), v) in params.iter().zip(values) {
            g.insert(p.value(), Tensor::new(*v, &Device::Cpu).unwrap());
        }
        g
    }

    #[test]
    fn clips_to_max_norm_and_returns_the_norm_before() {
        let params = vec![
            ("a".to_string(), param(&[0., 0.])),
            ("b".into(), param(&[0.])),
        ];
        let mut g = grads_of(&params, &[&[3., 0.], &[4.]]);
        let norm = clip_grad_norm(&mut g, &params, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        let a: Vec<f32> = g.get(params[0].1.value()).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = g.get(params[1].1.value()).unwrap().to_vec1().unwrap();
        assert_eq!((a, b), (vec![0.6, 0.0], vec![0.8]));
        assert!((global_norm(&g, &params).unwrap() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn below_max_norm_is_unchanged_and_missing_grads_are_skipped() {
        let params = vec![
            ("a".to_string(), param(&[0., 0.])),
            ("b".into(), param(&[0.])),
        ];
        let mut g = grads_of(&params[..1], &[&[0.3, 0.4]]);
        let norm = clip_grad_norm(&mut g, &params, 1.0).unwrap();
        assert!((norm - 0.5).abs() < 1e-6);
        let a: Vec<f32> = g.get(params[0].1.value()).unwrap().to_vec1().unwrap();
        assert_eq!(a, [0.3, 0.4]);
        assert!(g.get(params[1].1.value()).is_none());
        assert!(clip_grad_norm(&mut g, &params, 0.0).is_err());
        // a shared parameter counts once
        let twice = vec![params[0].clone(), params[0].clone()];
        assert!((global_norm(&g, &twice).unwrap() - 0.5).abs() < 1e-6);
    }
}
