//! Tensor operations with a fused CPU kernel behind them where one applies, for layers
//! written by hand as much as for the core's.
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

/// `x` and `other` concatenated along their last axis (channels-last features), after
/// checking that every other axis agrees: the skip connection of a U-Net decoder, DenseNet's
/// growing input. The error ([`Error::Shape`](crate::Error::Shape) with `other`'s shape,
/// naming `cat_features`) is one a layer renames to itself with
/// [`Error::in_module`](crate::Error::in_module).
///
/// ```
/// use artifex_core::candle_core::{DType, Device, Tensor};
/// let x = Tensor::ones((2, 4, 4, 8), DType::F32, &Device::Cpu)?;
/// let skip = Tensor::zeros((2, 4, 4, 3), DType::F32, &Device::Cpu)?;
/// assert_eq!(artifex_core::ops::cat_features(&x, &skip)?.dims(), &[2, 4, 4, 11]);
/// let wrong = Tensor::zeros((2, 8, 8, 3), DType::F32, &Device::Cpu)?;
/// let err = artifex_core::ops::cat_features(&x, &wrong).unwrap_err();
/// assert_eq!(err.to_string(), "cat_features: expected input of shape [2, 4, 4] + [*], got [2, 8, 8, 3]");
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn cat_features(x: &Tensor, other: &Tensor) -> Result<Tensor> {
    let lead = &x.dims()[..x.rank().saturating_sub(1)];
    if x.rank() == 0 || other.rank() != x.rank() || &other.dims()[..lead.len()] != lead {
        return Err(crate::Error::Shape {
            module: "cat_features".to_string(),
            expected: format!("{lead:?} + [*]"),
            got: other.dims().to_vec(),
        });
    }
    cat(&[x, other], lead.len())
}

/// `x` with axis `dim` split into `sizes` (their product must be that axis's length), as
/// PyTorch's `Tensor.unflatten(dim, sizes)`: the inverse of `flatten_from(dim)` for the last
/// axis, e.g. a generator's `(batch, prod(shape)) -> (batch, *shape)`.
///
/// ```
/// use artifex_core::candle_core::{DType, Device, Tensor};
/// let x = Tensor::zeros((32, 784), DType::F32, &Device::Cpu)?;
/// assert_eq!(artifex_core::ops::unflatten(&x, 1, &[28, 28, 1])?.dims(), &[32, 28, 28, 1]);
/// assert!(artifex_core::ops::unflatten(&x, 1, &[28, 27]).is_err());
/// assert!(artifex_core::ops::unflatten(&x, 2, &[1]).is_err());
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn unflatten(x: &Tensor, dim: usize, sizes: &[usize]) -> Result<Tensor> {
    let dims = x.dims();
    let product = sizes.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if dims.get(dim).copied() != product {
        return Err(crate::Error::Shape {
            module: "unflatten".to_string(),
            expected: format!(
                "axis {dim} of length {}",
                sizes
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" * ")
            ),
            got: dims.to_vec(),
        });
    }
    let mut shape = dims[..dim].to_vec();
    shape.extend(sizes);
    shape.extend(&dims[dim + 1..]);
    Ok(x.reshape(shape)?)
}

/// `x @ kernel + bias` over the last axis of `x (..., in)` for any leading dimensions, with
/// `kernel (in, out)` and `bias (out,)`: what [`Linear`](crate::layers::Linear) computes, for
/// layers that transform their weight first (spectral normalization, masks, low-rank
/// updates). Contiguous `f32` CPU operands with a bias go through one fused op (bias and
/// product in one buffer).
///
/// ```
/// use artifex_core::candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[1f32, 2.0]]], &Device::Cpu)?; // (1, 1, 2)
/// let kernel = Tensor::new(&[[1f32, 0.0, 1.0], [0.0, 1.0, 1.0]], &Device::Cpu)?;
/// let bias = Tensor::new(&[0f32, 0.0, 0.5], &Device::Cpu)?;
/// let y = artifex_core::ops::linear(&x, &kernel, Some(&bias))?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [1.0, 2.0, 3.5]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn linear(x: &Tensor, kernel: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear_activated(x, kernel, bias, &crate::activation::Activation::Identity)
}

/// [`linear`], followed by `activation`: one fused op (no pre-activation tensor or gradient)
/// where the Linear kernel applies and has the activation (identity, ReLU, sigmoid).
pub(crate) fn linear_activated(
    x: &Tensor,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    activation: &crate::activation::Activation,
) -> Result<Tensor> {
    over_rows(x, kernel.dim(1)?, |x2| {
        use crate::kernels::{applies, linear, Epilogue};
        if let Some(b) = bias.filter(|b| applies(x2) && applies(kernel) && applies(b)) {
            return match epilogue_of(activation) {
                Some(epilogue) => Ok(linear::linear_bias(x2, kernel, b, epilogue)?),
                None => activation.apply(&linear::linear_bias(x2, kernel, b, Epilogue::None)?),
            };
        }
        let y = x2.matmul(kernel)?;
        let y = match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        activation.apply(&y)
    })
}

/// The activation as the epilogue of a fused layer op, where the kernels have it.
fn epilogue_of(activation: &crate::activation::Activation) -> Option<crate::kernels::Epilogue> {
    use crate::activation::Activation;
    use crate::kernels::Epilogue;
    match activation {
        Activation::Identity => Some(Epilogue::None),
        Activation::Relu => Some(Epilogue::Relu),
        Activation::Sigmoid => Some(Epilogue::Sigmoid),
        _ => None,
    }
}

/// Applies `f` to `x` flattened to `(rows, features)` and restores the leading dimensions,
/// with `out_features` as the new last dimension.
pub(crate) fn over_rows(
    x: &Tensor,
    out_features: usize,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() == 2 {
        return f(x);
    }
    let features = dims[dims.len() - 1];
    let rows = x.elem_count() / features.max(1);
    let y = f(&x.reshape((rows, features))?)?;
    let mut out = dims[..dims.len() - 1].to_vec();
    out.push(out_features);
    Ok(y.reshape(out)?)
}
