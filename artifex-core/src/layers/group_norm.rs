use candle_core::{DType, Tensor};

use crate::init::Init;
use crate::{module, ModulePath, Param, Result};

/// Group normalization over channels-last inputs (NNX `nnx.GroupNorm`, 32 groups, epsilon
/// 1e-6).
///
/// For an input `(batch, ..., num_features)` the channels are split into `num_groups`
/// consecutive groups; each (example, group) is normalized with the mean and variance over
/// all its non-batch positions (every axis but the first, as NNX does without
/// `reduction_axes`). Then the per-channel `scale` and `bias` apply.
///
/// Exactness: the variance is `E[x^2] - E[x]^2` clipped at 0, like NNX's default
/// `use_fast_variance=True`; inputs with a mean much larger than their spread lose precision
/// in both. Statistics are computed in the input's dtype, while NNX promotes half-precision
/// inputs to f32 for them: cast f16/bf16 inputs to f32 where that matters.
#[module(serde)]
#[derive(Debug)]
#[check(num_features > 0, "num_features must be positive, got {num_features}")]
#[check(num_groups > 0 && num_features % num_groups == 0, "num_groups {num_groups} must divide num_features {num_features}")]
#[check(epsilon >= 0.0, "epsilon must be non-negative, got {epsilon}")]
pub struct GroupNorm {
    /// Per-channel scale (ones).
    #[param(init = scale_init, shape = [num_features], dtype = dtype, when = use_scale)]
    pub scale: Option<Param>,
    /// Per-channel bias (zeros).
    #[param(init = bias_init, shape = [num_features], dtype = dtype, when = use_bias)]
    pub bias: Option<Param>,
    /// Channels (the last axis).
    #[config]
    pub num_features: usize,
    /// Number of channel groups; must divide `num_features` (NNX default 32).
    #[config(default = 32)]
    pub num_groups: usize,
    /// Added to the variance.
    #[config(default = 1e-6)]
    pub epsilon: f64,
    /// Learn a scale.
    #[config(default = true)]
    pub use_scale: bool,
    /// Learn a bias.
    #[config(default = true)]
    pub use_bias: bool,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
    /// Scale initializer.
    #[config(default = crate::init::ones())]
    pub scale_init: Init,
    /// Bias initializer.
    #[config(default = crate::init::zeros())]
    pub bias_init: Init,
    path: ModulePath,
}

#[crate::layer]
impl GroupNorm {
    /// Normalizes `x (batch, ..., num_features)` (rank >= 2).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.path
            .expect_features("GroupNorm", x, 2, self.num_features)?;
        let dims = x.dims();
        let batch = dims[0];
        let positions: usize = dims[1..dims.len() - 1].iter().product();
        let groups = self.num_groups;
        let grouped = x.reshape((batch, positions, groups, self.num_features / groups))?;
        let mean = grouped.mean_keepdim((1, 3))?;
        let var = (grouped.sqr()?.mean_keepdim((1, 3))? - mean.sqr()?)?.relu()?;
        let inv = (var + self.epsilon)?.sqrt()?.recip()?;
        let y = grouped.broadcast_sub(&mean)?.broadcast_mul(&inv)?;
        let mut y = y.reshape((batch, positions, self.num_features))?;
        if let Some(scale) = &self.scale {
            y = y.broadcast_mul(scale)?;
        }
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        Ok(y.reshape(dims)?)
    }
}
