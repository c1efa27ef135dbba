use candle_core::{DType, Tensor};

use crate::activation::Activation;
use crate::init::Init;
use crate::{module, ModulePath, Param, Result};

/// A dense layer `y = x @ kernel + bias` (NNX `nnx.Linear`): kernel `(in, out)`, bias `(out,)`.
///
/// ```
/// use artifex_core::{layers::Linear, Rngs, candle_core::{Tensor, Device}};
/// let layer = Linear::builder(784, 256).use_bias(false).build(&mut Rngs::new(0))?;
/// let y = layer.forward(&Tensor::ones((32, 784), candle_core::DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[32, 256]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[module(serde)]
#[derive(Debug)]
#[check(in_features > 0 && out_features > 0, "in_features and out_features must be positive, got {in_features} and {out_features}")]
pub struct Linear {
    /// `(in_features, out_features)`.
    #[param(init = kernel_init, shape = [in_features, out_features], dtype = dtype)]
    pub kernel: Param,
    /// `(out_features,)`, absent when `use_bias` is false.
    #[param(init = bias_init, shape = [out_features], dtype = dtype, when = use_bias)]
    pub bias: Option<Param>,
    /// Input features.
    #[config]
    pub in_features: usize,
    /// Output features.
    #[config]
    pub out_features: usize,
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
    path: ModulePath,
}

#[crate::layer]
impl Linear {
    /// `x (..., in_features) -> (..., out_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.path
            .expect_features("Linear", x, 1, self.in_features)?;
        crate::ops::linear(x, &self.kernel, self.bias.as_deref())
    }

    /// `activation(forward(x))`; with ReLU or sigmoid on CPU `f32` data, one fused op (the
    /// same values, and gradients to float rounding).
    pub fn forward_activated(&self, x: &Tensor, activation: &Activation) -> Result<Tensor> {
        self.path
            .expect_features("Linear", x, 1, self.in_features)?;
        crate::ops::linear_activated(x, &self.kernel, self.bias.as_deref(), activation)
    }
}
