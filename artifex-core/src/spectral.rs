//! Spectral normalization by power iteration (SN-GAN, Miyato et al. 2018): a weight matrix
//! divided by an estimate of its largest singular value, kept in a persistent vector `u`
//! that one power iteration per training step refines. Any layer can use it on a 2-D weight
//! (a conv kernel reshaped to `(in, out)` too); [`RegularizedLinear`](crate::layers::RegularizedLinear)
//! is one.
//!
//! ```
//! use artifex_core::{spectral, BatchStat, candle_core::{Device, Tensor}};
//! let w = Tensor::new(&[[3f32, 0.0], [0.0, 1.0]], &Device::Cpu)?; // singular values 3 and 1
//! let u = BatchStat::new(&Tensor::new(&[1f32, 1.0], &Device::Cpu)?)?;
//! for _ in 0..20 {
//!     spectral::normalize(&w, Some(&u), true, 1e-12)?;
//! }
//! let sigma = spectral::sigma(&w, &u.value(), 1e-12)?.reshape(())?.to_scalar::<f32>()?;
//! assert!((sigma - 3.0).abs() < 1e-4);
//! # Ok::<(), artifex_core::Error>(())
//! ```

use candle_core::Tensor;

use crate::{BatchStat, Result};

/// `x / sqrt(sum(x^2) + eps)` (flax's `_l2_normalize`).
fn l2_normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.broadcast_div(&(x.sqr()?.sum_all()? + eps)?.sqrt()?)?)
}

/// `weight / sigma` for a 2-D `weight (in, out)` and its power-iteration vector `u (out,)`;
/// `weight` itself when `u` is `None` (a layer whose spectral normalization is optional keeps
/// an `Option<BatchStat>`).
///
/// With `update` (training), one power iteration on the detached weight first,
/// `v = normalize(W u)`, `u <- normalize(W^T v)` (stored in `u`), then `sigma = v^T W u`;
/// without it (evaluation) the stored `u` is used as it is, `v = normalize(W u)`. `sigma` is
/// differentiable in `weight`, with `u` and `v` held constant.
pub fn normalize(weight: &Tensor, u: Option<&BatchStat>, update: bool, eps: f64) -> Result<Tensor> {
    let Some(u) = u else {
        return Ok(weight.clone());
    };
    let sigma = if update {
        let w = weight.detach();
        let v = l2_normalize(&w.matmul(&u.value().unsqueeze(1)?)?, eps)?;
        let u_new = l2_normalize(&w.t()?.matmul(&v)?, eps)?.squeeze(1)?;
        u.set(&u_new)?;
        sigma_with(weight, &u_new, &v)?
    } else {
        sigma(weight, &u.value(), eps)?
    };
    Ok(weight.broadcast_div(&sigma)?)
}

/// The estimate `sigma = v^T W u`, `v = normalize(W u)`, as a `(1, 1)` tensor (no update of
/// `u`); differentiable in `weight`.
pub fn sigma(weight: &Tensor, u: &Tensor, eps: f64) -> Result<Tensor> {
    let v = l2_normalize(&weight.detach().matmul(&u.unsqueeze(1)?)?, eps)?;
    sigma_with(weight, u, &v)
}

fn sigma_with(weight: &Tensor, u: &Tensor, v: &Tensor) -> Result<Tensor> {
    Ok(v.t()?.matmul(weight)?.matmul(&u.unsqueeze(1)?)?)
}
