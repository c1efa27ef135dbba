//! ReLU as one custom op: forward one pass, backward one pass (`grad` where `x > 0`, else 0:
//! JAX's convention at 0, as the plain `where_cond` path of [`crate::activation::relu`]),
//! each in fixed chunks over the worker pool.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::{cpu_f32, pool};

use super::ELEMENTWISE_CHUNK as CHUNK;

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
        super::zip_with_grad("artifex-relu", x, grad, masked).map(Some)
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
    super::zip_with_grad("artifex-relu", y, grad, masked)
}

/// The gradient `g` where the ReLU's input (or output) `v` is positive, else 0.
fn masked(v: f32, g: f32) -> f32 {
    if v > 0.0 {
        g
    } else {
        0.0
    }
}

/// `max(x, 0)` as the fused op; only for tensors where [`super::applies`] holds.
pub(crate) fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op1(Relu)
}
