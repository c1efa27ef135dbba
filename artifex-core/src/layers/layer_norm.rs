use candle_core::{DType, Tensor, D};

use crate::init::Init;
use crate::{module, ModulePath, Param, Result};

/// Layer normalization over the last axis (NNX `nnx.LayerNorm`, epsilon 1e-6).
#[module(serde)]
#[derive(Debug)]
#[check(num_features > 0, "num_features must be positive, got {num_features}")]
#[check(epsilon >= 0.0, "epsilon must be non-negative, got {epsilon}")]
pub struct LayerNorm {
    /// Per-feature scale (ones).
    #[param(init = scale_init, shape = [num_features], dtype = dtype, when = use_scale)]
    pub scale: Option<Param>,
    /// Per-feature bias (zeros).
    #[param(init = bias_init, shape = [num_features], dtype = dtype, when = use_bias)]
    pub bias: Option<Param>,
    /// Features (the last axis).
    #[config]
    pub num_features: usize,
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
impl LayerNorm {
    /// Normalizes each row of `x (..., num_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.path
            .expect_features("LayerNorm", x, 1, self.num_features)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let var = (x.sqr()?.mean_keepdim(D::Minus1)? - mean.sqr()?)?.relu()?;
        let mut mul = (var + self.epsilon)?.sqrt()?.recip()?;
        if let Some(scale) = &self.scale {
            mul = mul.broadcast_mul(scale)?;
        }
        let mut y = x.broadcast_sub(&mean)?.broadcast_mul(&mul)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        Ok(y)
    }
}
