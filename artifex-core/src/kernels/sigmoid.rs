//! The logistic sigmoid as one custom op: the forward is candle-nn's formula element by
//! element (`1 / (exp(-x) + 1)`, so the same bits), in chunks over the worker pool; the
//! backward is one pass, `g * ((1 - s) * s)`, where candle-nn's runs four tensor ops (a ones
//! tensor, a subtraction and two products) with the same f32 operations.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::{cpu_f32, pool};

use super::ELEMENTWISE_CHUNK as CHUNK;

struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "artifex-sigmoid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(x) = cpu_f32(s, l) else {
            candle_core::bail!("artifex-sigmoid: expected contiguous f32 data");
        };
        let y = pool::collect_chunks(x.len(), CHUNK, |start, n| {
            x[start..start + n].iter().map(|&v| logistic(v))
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        crate::autodiff::refuse_fused_backward("artifex-sigmoid", "sigmoid")?;
        grad_through(res, grad).map(Some)
    }
}

/// candle-nn's sigmoid of one value.
#[inline]
fn logistic(v: f32) -> f32 {
    ((-v).exp() + 1.0).recip()
}

/// The sigmoid of `v` in place, on the calling thread (the epilogue of a fused Linear +
/// sigmoid block), with the op's formula.
pub(crate) fn sigmoid_serial(v: &mut [f32]) {
    for v in v {
        *v = logistic(*v);
    }
}

/// The gradient at the input of a sigmoid from its output `s` and the gradient `grad` at
/// it: `grad * ((1 - s) * s)`, one pass in chunks over the pool.
pub(crate) fn grad_through(s: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    super::zip_with_grad("artifex-sigmoid", s, grad, |s, g| g * ((1.0 - s) * s))
}

/// `1 / (1 + exp(-x))` as the fused op; only for tensors where [`super::applies`] holds.
pub(crate) fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op1(Sigmoid)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    /// Same bits as candle-nn's sigmoid, forward and backward, over more than one chunk.
    #[test]
    fn same_bits_as_candle_nn() -> candle_core::Result<()> {
        let n = 3 * super::CHUNK + 77;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 60.0)
            .collect();
        let weights: Vec<f32> = (0..n).map(|i| ((i * 31 % 17) as f32 - 8.0) / 4.0).collect();
        let w = Tensor::from_vec(weights, n, &Device::Cpu)?;
        let run = |fused: bool| -> candle_core::Result<(Vec<u32>, Vec<u32>)> {
            let x = Var::from_vec(data.clone(), n, &Device::Cpu)?;
            let y = match fused {
                true => super::sigmoid(x.as_tensor())?,
                false => candle_nn::ops::sigmoid(x.as_tensor())?,
            };
            let grads = (&y * &w)?.sum_all()?.backward()?;
            let dx = grads.get(x.as_tensor()).expect("x has a gradient");
            let bits = |t: &Tensor| -> candle_core::Result<Vec<u32>> {
                Ok(t.to_vec1::<f32>()?.iter().map(|v| v.to_bits()).collect())
            };
            Ok((bits(&y)?, bits(dx)?))
        };
        let (fused, plain) = (run(true)?, run(false)?);
        assert!(fused.0 == plain.0, "forward differs");
        assert!(fused.1 == plain.1, "backward differs");
        Ok(())
    }
}
