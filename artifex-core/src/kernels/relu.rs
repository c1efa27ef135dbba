//! ReLU as one custom op: forward one pass, backward one pass (`grad` where `x > 0`, else 0:
//! JAX's convention at 0, as the plain `where_cond` path of [`crate::activation::relu`]),
//! each in fixed chunks over the worker pool.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::{cpu_f32, pool, with_f32};

/// Elements per task (fixed, so the split depends on the length only).
const CHUNK: usize = 1 << 14;

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "artifex-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(x) = cpu_f32(s, l) else {
            candle_core::bail!("artifex-relu: expected contiguous f32 data");
        };
        let y = pool::collect_chunks(x.len(), CHUNK, |start, n| {
            let x = &x[start..start + n];
            x.iter().map(|&v| if v > 0.0 { v } else { 0.0 })
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        crate::autodiff::refuse_fused_backward("artifex-relu", "relu")?;
        let dx = with_f32(x, |x| {
            with_f32(grad, |g| {
                if g.len() != x.len() {
                    candle_core::bail!(
                        "artifex-relu: gradient of {} values for {} inputs",
                        g.len(),
                        x.len()
                    );
                }
                Ok(pool::collect_chunks(x.len(), CHUNK, |start, n| {
                    let (x, g) = (&x[start..start + n], &g[start..start + n]);
                    x.iter()
                        .zip(g)
                        .map(|(&x, &g)| if x > 0.0 { g } else { 0.0 })
                }))
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// `max(v, 0)` in place on the calling thread (the same expression as the op): the epilogue
/// of a block of a fused Linear + ReLU product.
pub(crate) fn relu_serial(v: &mut [f32]) {
    for v in v {
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
}

/// The gradient of a fused layer + ReLU op at its pre-activation: with `relu`, `grad` where
/// the op's output `y > 0` (where the input is), else 0, in chunks over the pool; without,
/// `grad` itself (a shared handle, no copy).
pub(crate) fn grad_through_if(
    relu: bool,
    y: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<Tensor> {
    if !relu {
        return Ok(grad.clone());
    }
    let g = with_f32(y, |y| {
        with_f32(grad, |g| {
            if g.len() != y.len() {
                candle_core::bail!(
                    "artifex-relu: gradient of {} values for {} outputs",
                    g.len(),
                    y.len()
                );
            }
            Ok(pool::collect_chunks(y.len(), CHUNK, |start, n| {
                let (y, g) = (&y[start..start + n], &g[start..start + n]);
                y.iter()
                    .zip(g)
                    .map(|(&y, &g)| if y > 0.0 { g } else { 0.0 })
            }))
        })
    })?;
    Tensor::from_vec(g, grad.shape(), grad.device())
}

/// `max(x, 0)` as the fused op; only for tensors where [`super::applies`] holds.
pub(crate) fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op1(Relu)
}
