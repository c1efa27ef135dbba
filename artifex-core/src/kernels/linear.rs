//! `x @ kernel + bias` as one custom op: candle's CPU matmul with the bias added in the same
//! output buffer, and a backward of two matmuls and one column sum, without the separate
//! broadcast-add node (its forward pass, its gradient and its accumulation).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::cpu_f32;

struct LinearBias;

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "artifex-linear-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        let Some(bias) = cpu_f32(s3, l3) else {
            candle_core::bail!("artifex-linear-bias: expected contiguous f32 bias");
        };
        if k != k2 || bias.len() != n {
            candle_core::bail!(
                "artifex-linear-bias: shapes ({m}, {k}) @ ({k2}, {n}) + ({})",
                bias.len()
            );
        }
        let y = s1.matmul(s2, (1, m, n, k), l1, l2)?;
        let CpuStorage::F32(mut y) = y else {
            candle_core::bail!("artifex-linear-bias: expected f32 output");
        };
        for row in y.chunks_exact_mut(n) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x, kernel, grad) = (x.detach(), kernel.detach(), grad.detach());
        let dx = grad.matmul(&kernel.t()?)?;
        let dkernel = x.t()?.matmul(&grad)?;
        let dbias = grad.sum(0)?;
        Ok((Some(dx), Some(dkernel), Some(dbias)))
    }
}

/// `x (rows, in) @ kernel (in, out) + bias (out,)`; only where [`super::applies`] holds for
/// all three.
pub(crate) fn linear_bias(
    x: &Tensor,
    kernel: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    x.apply_op3(kernel, bias, LinearBias)
}
