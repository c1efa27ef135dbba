use candle_core::{DType, Tensor, D};

use crate::init::Init;
use crate::{module, ModulePath, Param, Result};

/// Root-mean-square normalization over the last axis (NNX `nnx.RMSNorm`, epsilon 1e-6):
/// `y = x / sqrt(mean(x^2) + epsilon) * scale`. No mean subtraction and no bias.
///
/// Exactness: the mean square involves no cancellation (NNX's `use_fast_variance` does not
/// apply with `use_mean=False`); it is computed in the input's dtype, while NNX promotes
/// half-precision inputs to f32 for it.
#[module(serde)]
#[derive(Debug)]
#[check(num_features > 0, "num_features must be positive, got {num_features}")]
#[check(epsilon >= 0.0, "epsilon must be non-negative, got {epsilon}")]
pub struct RMSNorm {
    /// Per-feature scale (ones).
    #[param(init = scale_init, shape = [num_features], dtype = dtype, when = use_scale)]
    pub scale: Option<Param>,
    /// Features (the last axis).
    #[config]
    pub num_features: usize,
    /// Added to the mean square.
    #[config(default = 1e-6)]
    pub epsilon: f64,
    /// Learn a scale.
    #[config(default = true)]
    pub use_scale: bool,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
    /// Scale initializer.
    #[config(default = crate::init::ones())]
    pub scale_init: Init,
    path: ModulePath,
}

#[crate::layer]
impl RMSNorm {
    /// Normalizes each row of `x (..., num_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.path
            .expect_features("RMSNorm", x, 1, self.num_features)?;
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        let mut mul = (ms + self.epsilon)?.sqrt()?.recip()?;
        if let Some(scale) = &self.scale {
            mul = mul.broadcast_mul(scale)?;
        }
        Ok(x.broadcast_mul(&mul)?)
    }
}
