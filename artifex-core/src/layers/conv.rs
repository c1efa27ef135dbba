use candle_core::{DType, Tensor};

use super::spatial::{
    axis_names, conv_nd, dilated_kernel, kernel_to_oi, per_axis, to_channels_first,
    to_channels_last,
};
use super::Padding;
use crate::init::Init;
use crate::kernels::conv::{conv_channels_last, Axis};
use crate::{module, ModulePath, Param, Result};

/// The kernel shape `kernel_size + (in / groups, out)`; 0 for a zero group count (refused by
/// the checks that follow).
fn conv_kernel_shape(kernel_size: &[usize], cin: usize, groups: usize, cout: usize) -> Vec<usize> {
    let mut shape = kernel_size.to_vec();
    shape.push(cin.checked_div(groups).unwrap_or(0));
    shape.push(cout);
    shape
}

/// A 1-D or 2-D convolution over channels-last inputs (NNX `nnx.Conv`).
///
/// Inputs are `(*batch, L, in)` or `(*batch, H, W, in)` (any number of batch axes, also
/// none); `kernel` is `kernel_size + (in / feature_group_count, out)` (HWIO), `bias` is
/// `(out,)`, drawn in that order from the `params` stream. Strides and dilations take one
/// value for every axis or one per axis; see [`Padding`] for the padding rules (NNX default
/// `Same`). On contiguous `f32` CPU data with one channel group (and
/// [`crate::fast_paths`] on) it runs as one channels-last im2col + GEMM op; elsewhere on
/// candle's `conv2d` with explicit (possibly asymmetric) zero padding.
///
/// ```
/// use artifex_core::{layers::{Conv, Padding}, Rngs, candle_core::{DType, Device, Tensor}};
/// let conv = Conv::builder(3, 8, vec![3, 3]).strides(vec![2]).build(&mut Rngs::new(0))?;
/// let y = conv.forward(&Tensor::zeros((4, 9, 9, 3), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[4, 5, 5, 8]); // SAME: ceil(9 / 2)
/// assert_eq!(conv.kernel.dims(), &[3, 3, 3, 8]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
///
/// Not supported (NNX has them): `CIRCULAR` / `REFLECT` padding, `input_dilation`, `mask`,
/// 3-D kernels.
#[module(serde)]
#[derive(Debug)]
#[check(in_features > 0 && out_features > 0, "in_features and out_features must be positive, got {in_features} and {out_features}")]
#[check(matches!(kernel_size.len(), 1 | 2), "kernel_size must have 1 (1-D) or 2 (2-D) entries, got {kernel_size:?}")]
#[check(kernel_size.iter().all(|&k| k > 0), "kernel sizes must be positive, got {kernel_size:?}")]
#[check((strides.len() == 1 || strides.len() == kernel_size.len()) && strides.iter().all(|&s| s > 0), "strides must be positive, one value or one per spatial axis, got {strides:?}")]
#[check((kernel_dilation.len() == 1 || kernel_dilation.len() == kernel_size.len()) && kernel_dilation.iter().all(|&d| d > 0), "kernel_dilation must be positive, one value or one per spatial axis, got {kernel_dilation:?}")]
#[check(padding.fits(kernel_size.len()), "padding {padding:?} does not fit a {}-D convolution (explicit: one (lo, hi) pair or one per axis; causal: 1-D only)", kernel_size.len())]
#[check(feature_group_count > 0, "feature_group_count must be positive, got {feature_group_count}")]
#[check(in_features % feature_group_count == 0 && out_features % feature_group_count == 0, "feature_group_count {feature_group_count} must divide in_features {in_features} and out_features {out_features}")]
pub struct Conv {
    /// `kernel_size + (in_features / feature_group_count, out_features)`.
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
    /// Strides: one value for every axis or one per axis.
    #[config(default = vec![1])]
    pub strides: Vec<usize>,
    /// Padding rule.
    #[config(default = Padding::Same)]
    pub padding: Padding,
    /// Kernel dilation ("atrous"): one value for every axis or one per axis.
    #[config(default = vec![1])]
    pub kernel_dilation: Vec<usize>,
    /// Channel groups; must divide `in_features` and `out_features`.
    #[config(default = 1)]
    pub feature_group_count: usize,
    /// Whether to add a bias.
    #[config(default = true)]
    pub use_bias: bool,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
    /// Kernel initializer (NNX default: lecun_normal, fans over the HWIO kernel).
    #[config(default = crate::init::lecun_normal())]
    pub kernel_init: Init,
    /// Bias initializer (zeros).
    #[config(default = crate::init::zeros())]
    pub bias_init: Init,
    /// The kernel's shape.
    #[config(computed = conv_kernel_shape(&kernel_size, in_features, feature_group_count, out_features))]
    pub kernel_shape: Vec<usize>,
    path: ModulePath,
}

#[crate::layer]
impl Conv {
    /// `(*batch, spatial..., in_features) -> (*batch, spatial'..., out_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.kernel_size.len();
        let names = axis_names(n);
        self.path
            .expect_channels_last("Conv", x, names, self.in_features)?;
        let strides = per_axis(&self.strides, n);
        let dilation = per_axis(&self.kernel_dilation, n);
        let k_eff = dilated_kernel(&self.kernel_size, &dilation);
        let dims = x.dims();
        let input = &dims[dims.len() - 1 - n..dims.len() - 1];
        let pads = self.padding.conv_pads(input, &k_eff, &strides);

        for i in 0..n {
            let (lo, hi) = pads[i];
            if input[i] + lo + hi < k_eff[i] {
                return Err(self.path.shape_error(
                    "Conv",
                    format!(
                        "[*, {}, {}] with {} >= {} after padding",
                        names.join(", "),
                        self.in_features,
                        names[i],
                        k_eff[i]
                    ),
                    dims,
                ));
            }
        }
        if let Some(y) = self.fused(x, &pads, &strides, &dilation)? {
            return Ok(y);
        }

        let (mut xc, batch) = to_channels_first(x, n)?;
        for i in 0..n {
            let (lo, hi) = pads[i];
            let padded = input[i] + lo + hi;
            let out = (padded - k_eff[i]) / strides[i] + 1;
            // Crop what no window reaches, so candle's backward needs no output padding.
            let used = (out - 1) * strides[i] + k_eff[i];
            xc = xc.pad_with_zeros(2 + i, lo, hi)?;
            if used < padded {
                xc = xc.narrow(2 + i, 0, used)?;
            }
        }
        let kernel = kernel_to_oi(&self.kernel, n)?;
        let y = conv_nd(&xc, &kernel, &strides, &dilation, self.feature_group_count)?;
        let y = to_channels_last(&y, n, batch.as_deref())?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

impl Conv {
    /// The channels-last GEMM kernel, where it applies (contiguous f32 CPU operands, one
    /// channel group, fast paths on); `None` otherwise. `pads`, `strides` and `dilation` are
    /// per spatial axis.
    fn fused(
        &self,
        x: &Tensor,
        pads: &[(usize, usize)],
        strides: &[usize],
        dilation: &[usize],
    ) -> Result<Option<Tensor>> {
        if self.feature_group_count != 1 {
            return Ok(None);
        }
        let dims = x.dims();
        let lead = dims.len() - 1 - self.kernel_size.len();
        let axes = (0..self.kernel_size.len()).map(|i| {
            let k = self.kernel_size[i];
            Axis::new(dims[lead + i], k, strides[i], dilation[i], 1, pads[i])
        });
        let Some(axes) = axes.collect::<Option<Vec<Axis>>>() else {
            return Ok(None);
        };
        let bias = self.bias.as_deref();
        Ok(conv_channels_last(
            x,
            &self.kernel,
            bias,
            axes,
            self.out_features,
        )?)
    }
}
