use candle_core::{DType, Tensor};

use super::spatial::{
    axis_names, conv_nd, dilated_kernel, insert_zeros, kernel_to_oi, per_axis, to_channels_first,
    to_channels_last,
};
use super::Padding;
use crate::init::Init;
use crate::kernels::conv::{conv_channels_last, Axis};
use crate::{module, ModulePath, Param, Result};

fn transpose_kernel_shape(kernel_size: &[usize], cin: usize, cout: usize) -> Vec<usize> {
    let mut shape = kernel_size.to_vec();
    shape.push(cin);
    shape.push(cout);
    shape
}

/// A 1-D or 2-D transposed convolution over channels-last inputs (NNX `nnx.ConvTranspose`,
/// i.e. `jax.lax.conv_transpose` with `transpose_kernel=False`).
///
/// `kernel` is `kernel_size + (in, out)`, used as it is. The output is the cross-correlation
/// of the kernel (with `kernel_dilation`) over the input dilated by `strides` (`stride - 1`
/// zeros between neighbours) and zero-padded by `jax.lax._conv_transpose_padding`, so an input
/// pixel spreads as the kernel *reversed*: a PyTorch `ConvTranspose2d` weight `(in, out, kh,
/// kw)` ports as its permutation to `(kh, kw, in, out)` flipped along both spatial axes.
/// - `Same`: `pad_len = k + s - 2`, `lo = k - 1` if `s > k - 1` else `ceil(pad_len / 2)`,
///   `hi = pad_len - lo`; output `in * s`.
/// - `Valid`: `pad_len = k + s - 2 + max(k - s, 0)`, `lo = k - 1`; output
///   `in * s + max(k - s, 0)`.
/// - `Explicit((lo, hi))`: pads of that dilated input, used directly (jax's convention).
///
/// (`k` is the dilated kernel size.) On contiguous `f32` CPU data (and [`crate::fast_paths`]
/// on) it runs as one channels-last im2col + GEMM op over the implicitly dilated input;
/// elsewhere on candle's `conv2d`. `Causal` is refused. Not supported: `CIRCULAR` padding,
/// `transpose_kernel=True`, `mask`, groups (NNX has no groups here either).
///
/// ```
/// use artifex_core::{layers::ConvTranspose, Rngs, candle_core::{DType, Device, Tensor}};
/// let up = ConvTranspose::builder(8, 4, vec![3, 3]).strides(vec![2]).build(&mut Rngs::new(0))?;
/// let y = up.forward(&Tensor::zeros((2, 5, 7, 8), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[2, 10, 14, 4]);
/// assert_eq!(up.kernel.dims(), &[3, 3, 8, 4]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[module(serde)]
#[derive(Debug)]
#[check(in_features > 0 && out_features > 0, "in_features and out_features must be positive, got {in_features} and {out_features}")]
#[check(matches!(kernel_size.len(), 1 | 2), "kernel_size must have 1 (1-D) or 2 (2-D) entries, got {kernel_size:?}")]
#[check(kernel_size.iter().all(|&k| k > 0), "kernel sizes must be positive, got {kernel_size:?}")]
#[check((strides.len() == 1 || strides.len() == kernel_size.len()) && strides.iter().all(|&s| s > 0), "strides must be positive, one value or one per spatial axis, got {strides:?}")]
#[check((kernel_dilation.len() == 1 || kernel_dilation.len() == kernel_size.len()) && kernel_dilation.iter().all(|&d| d > 0), "kernel_dilation must be positive, one value or one per spatial axis, got {kernel_dilation:?}")]
#[check(padding != Padding::Causal, "causal padding is not defined for a transposed convolution")]
#[check(padding.fits(kernel_size.len()), "padding {padding:?} does not fit a {}-D transposed convolution (explicit: one (lo, hi) pair or one per axis)", kernel_size.len())]
pub struct ConvTranspose {
    /// `kernel_size + (in_features, out_features)`.
    #[init(Param::from_init(&kernel_init, &kernel_shape, dtype, rngs)?)]
    pub kernel: Param,
    /// `(out_features,)`, absent when `use_bias` is false.
    #[param(init = bias_init, shape = [out_features], dtype = dtype, when = use_bias)]
    pub bias: Option<Param>,
    /// Input channels (the last axis).
    #[config]
    pub in_features: usize,
    /// Output channels.
    #[config]
    pub out_features: usize,
    /// Window size: one entry (1-D) or two (2-D).
    #[config]
    pub kernel_size: Vec<usize>,
    /// Strides (the upsampling factors): one value for every axis or one per axis.
    #[config(default = vec![1])]
    pub strides: Vec<usize>,
    /// Padding rule (jax's transposed-convolution rules, see the type's docs).
    #[config(default = Padding::Same)]
    pub padding: Padding,
    /// Kernel dilation: one value for every axis or one per axis.
    #[config(default = vec![1])]
    pub kernel_dilation: Vec<usize>,
    /// Whether to add a bias.
    #[config(default = true)]
    pub use_bias: bool,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
    /// Kernel initializer (NNX default: lecun_normal).
    #[config(default = crate::init::lecun_normal())]
    pub kernel_init: Init,
    /// Bias initializer (zeros).
    #[config(default = crate::init::zeros())]
    pub bias_init: Init,
    /// The kernel's shape.
    #[config(computed = transpose_kernel_shape(&kernel_size, in_features, out_features))]
    pub kernel_shape: Vec<usize>,
    path: ModulePath,
}

#[crate::layer]
impl ConvTranspose {
    /// `(*batch, spatial..., in_features) -> (*batch, spatial'..., out_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.kernel_size.len();
        let names = axis_names(n);
        self.path
            .expect_channels_last("ConvTranspose", x, names, self.in_features)?;
        let strides = per_axis(&self.strides, n);
        let dilation = per_axis(&self.kernel_dilation, n);
        let k_eff = dilated_kernel(&self.kernel_size, &dilation);
        let pads = self.padding.transpose_pads(&k_eff, &strides);
        let dims = x.dims();
        let input = &dims[dims.len() - 1 - n..dims.len() - 1];

        for i in 0..n {
            let (lo, hi) = pads[i];
            // Checked: an empty axis or huge strides/pads from a config must not wrap around.
            let len = input[i]
                .checked_sub(1)
                .and_then(|d| d.checked_mul(strides[i]))
                .and_then(|d| d.checked_add(1 + lo))
                .and_then(|d| d.checked_add(hi));
            if len.is_none_or(|len| len < k_eff[i]) {
                return Err(self.path.shape_error(
                    "ConvTranspose",
                    format!(
                        "[*, {}, {}] large enough for the kernel and padding on {}",
                        names.join(", "),
                        self.in_features,
                        names[i]
                    ),
                    dims,
                ));
            }
        }
        // The stride-1 convolution over the stride-dilated input, on the GEMM kernel where it
        // applies.
        let axes = (0..n).map(|i| {
            let k = self.kernel_size[i];
            Axis::new(input[i], k, 1, dilation[i], strides[i], pads[i])
        });
        if let Some(axes) = axes.collect::<Option<Vec<Axis>>>() {
            let bias = self.bias.as_deref();
            let fused = conv_channels_last(x, &self.kernel, bias, axes, self.out_features)?;
            if let Some(y) = fused {
                return Ok(y);
            }
        }

        let (mut xc, batch) = to_channels_first(x, n)?;
        for (i, &(lo, hi)) in pads.iter().enumerate() {
            xc = insert_zeros(&xc, 2 + i, strides[i])?.pad_with_zeros(2 + i, lo, hi)?;
        }
        let kernel = kernel_to_oi(&self.kernel, n)?;
        let y = conv_nd(&xc, &kernel, &vec![1; n], &dilation, 1)?;
        let y = to_channels_last(&y, n, batch.as_deref())?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}
