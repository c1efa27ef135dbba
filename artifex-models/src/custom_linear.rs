use artifex_core::prelude::*;

/// The seed's `CustomLinear`: `x @ weight + bias`, with configurable initializers.
#[module]
pub struct CustomLinear {
    /// `(in_features, out_features)`.
    #[param(init = weight_init, shape = [in_features, out_features], dtype = dtype)]
    pub weight: Param,
    /// `(out_features,)` when `use_bias`.
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
    /// Weight initializer.
    #[config(default = init::lecun_normal())]
    pub weight_init: Init,
    /// Bias initializer.
    #[config(default = init::zeros())]
    pub bias_init: Init,
    /// Parameter dtype.
    #[config(default = DType::F32)]
    pub dtype: DType,
}

impl CustomLinear {
    /// `x (..., in_features) -> (..., out_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let output = x.broadcast_matmul(&self.weight)?;
        Ok(match &self.bias {
            Some(bias) => output.broadcast_add(bias)?,
            None => output,
        })
    }
}
