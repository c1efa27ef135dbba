//! Scalar metrics: the loss closure's tensors brought to the host once, at their own precision.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// Named scalar metrics of one step, as tensors (the loss closure's second return value).
pub type Metrics = BTreeMap<String, Tensor>;

/// What a loss closure returns: the scalar to minimize and metrics to log.
pub type LossOutput = (Tensor, Metrics);

/// Named metrics on the host, as logged and returned in a [`History`](super::History).
pub type Scalars = BTreeMap<String, f64>;

/// A scalar tensor as `f64`. Values computed in f32 (or f16/bf16) come back as the shortest
/// decimal that names the same f32 (`0.02`, not `0.019999999552965164`), so logs and JSON
/// show the precision the model computed with.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(match t.dtype() {
        DType::F64 => t.to_scalar::<f64>()?,
        DType::F32 | DType::F16 | DType::BF16 => {
            let x = t.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            // `Display` of an f32 is the shortest decimal that reads back as the same f32.
            x.to_string().parse().unwrap_or(f64::from(x))
        }
        _ => t.to_dtype(DType::F64)?.to_scalar::<f64>()?,
    })
}

/// `loss` under `loss_name` plus every metric, on the host.
pub(crate) fn host_scalars(loss_name: &str, loss: &Tensor, metrics: &Metrics) -> Result<Scalars> {
    let mut host = metrics
        .iter()
        .map(|(k, v)| Ok((k.clone(), scalar(v)?)))
        .collect::<Result<Scalars>>()?;
    host.insert(loss_name.to_string(), scalar(loss)?);
    Ok(host)
}

/// The NaN/inf guard: an error naming the metric that is not finite, a loss before anything
/// derived from it (a NaN loss makes the gradient norm NaN too).
pub(crate) fn ensure_finite(step: u64, metrics: &Scalars) -> Result<()> {
    let bad = |(_, v): &(&String, &f64)| !v.is_finite();
    let losses = metrics.iter().filter(|(k, _)| k.ends_with("loss"));
    match losses
        .clone()
        .find(bad)
        .or_else(|| metrics.iter().find(bad))
    {
        Some((metric, value)) => Err(Error::NonFinite {
            step,
            metric: metric.clone(),
            value: *value,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn f32_metrics_keep_f32_precision_and_f64_stay_exact() -> Result<()> {
        let t = Tensor::new(0.02f32, &Device::Cpu)?;
        assert_eq!(scalar(&t)?.to_string(), "0.02");
        let t = Tensor::new(0.1f64 + 0.2, &Device::Cpu)?;
        assert_eq!(scalar(&t)?, 0.1 + 0.2);
        let t = Tensor::new(f32::NAN, &Device::Cpu)?;
        assert!(scalar(&t)?.is_nan());
        let t = Tensor::new(f32::NEG_INFINITY, &Device::Cpu)?;
        assert_eq!(scalar(&t)?, f64::NEG_INFINITY);
        let t = Tensor::new(7u32, &Device::Cpu)?;
        assert_eq!(scalar(&t)?, 7.0);
        Ok(())
    }

    #[test]
    fn the_guard_names_the_first_non_finite_metric() {
        let ok = Scalars::from([("loss".into(), 1.0)]);
        assert!(ensure_finite(3, &ok).is_ok());
        let bad = Scalars::from([("kl".into(), f64::NAN), ("loss".into(), 1.0)]);
        let err = ensure_finite(3, &bad).expect_err("NaN").to_string();
        assert!(err.contains("step 3") && err.contains("`kl`"), "{err}");
        let both = Scalars::from([("grad_norm".into(), f64::NAN), ("loss".into(), f64::NAN)]);
        let err = ensure_finite(3, &both).expect_err("NaN").to_string();
        assert!(
            err.contains("`loss`"),
            "the cause, not its consequence: {err}"
        );
    }
}
