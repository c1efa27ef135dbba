//! Tensor operations with a fused CPU kernel behind them where one applies.
//!
//! ```
//! use artifex_core::candle_core::{Device, Tensor};
//! let a = Tensor::zeros((2, 4, 4, 3), artifex_core::candle_core::DType::F32, &Device::Cpu)?;
//! let b = Tensor::ones((2, 4, 4, 5), artifex_core::candle_core::DType::F32, &Device::Cpu)?;
//! let y = artifex_core::ops::cat(&[&a, &b], 3)?;
//! assert_eq!(y.dims(), &[2, 4, 4, 8]);
//! # Ok::<(), artifex_core::Error>(())
//! ```

use candle_core::Tensor;

use crate::Result;

/// `Tensor::cat(tensors, dim)`, the same values and gradients; two contiguous `f32` CPU
/// tensors joined on their last axis (channels of NHWC feature maps, as in a DenseBlock or a
/// U-Net's skip connections) go through one fused op whose backward hands each input a
/// contiguous gradient.
pub fn cat(tensors: &[&Tensor], dim: usize) -> Result<Tensor> {
    if let [a, b] = tensors {
        let last = a.rank().checked_sub(1) == Some(dim);
        let lead_agrees = a.rank() == b.rank() && a.dims()[..dim] == b.dims()[..dim.min(b.rank())];
        if last && lead_agrees && crate::kernels::applies(a) && crate::kernels::applies(b) {
            return Ok(crate::kernels::concat::concat_last(a, b)?);
        }
    }
    Ok(Tensor::cat(tensors, dim)?)
}
