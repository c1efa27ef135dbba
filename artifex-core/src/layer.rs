//! [`Layer`]: a module with a one-tensor forward, so heterogeneous lists (`[Linear, BatchNorm,
//! ...]`, the seed's `encoder` lists) can be `Vec<Box<dyn Layer>>` with NNX paths
//! (`encoder.0.kernel`, `encoder.1.mean`).

use candle_core::Tensor;

use crate::layers::{
    BatchNorm, Conv, ConvTranspose, Dropout, Embed, GroupNorm, LayerNorm, Linear,
    MultiHeadAttention, RMSNorm, RegularizedLinear,
};
use crate::{Module, Result};

/// A module that maps one tensor to one tensor.
///
/// `train` overrides the module's mode for this call (`None`: use the mode set by
/// `train()` / `eval()`); layers without a mode ignore it.
pub trait Layer: Module + Send + Sync {
    /// Applies the layer.
    fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor>;

    /// Applies the layer in its current mode.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }
}

/// A boxed layer, for heterogeneous lists.
pub type BoxedLayer = Box<dyn Layer>;

/// Boxes a layer (shorthand for building `Vec<BoxedLayer>`).
pub fn boxed<L: Layer + 'static>(layer: L) -> BoxedLayer {
    Box::new(layer)
}

/// Layers without a mode: `train` has nothing to switch.
macro_rules! stateless_layer {
    ($($ty:ty),+) => {$(
        impl Layer for $ty {
            fn forward_t(&self, x: &Tensor, _train: Option<bool>) -> Result<Tensor> {
                <$ty>::forward(self, x)
            }
        }
    )+};
}

stateless_layer!(
    Linear,
    LayerNorm,
    Conv,
    ConvTranspose,
    GroupNorm,
    RMSNorm,
    Embed
);

impl Layer for RegularizedLinear {
    fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        RegularizedLinear::forward_t(self, x, train)
    }
}

/// Self-attention without a mask.
impl Layer for MultiHeadAttention {
    fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        MultiHeadAttention::forward_t(self, x, None, train)
    }
}

impl Layer for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        BatchNorm::forward_t(self, x, train)
    }
}

impl Layer for Dropout {
    fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        Dropout::forward_t(self, x, train)
    }
}

/// An artifex error as a candle error (candle errors unwrapped), for candle's `Module` /
/// `ModuleT` impls that `#[layer]` writes.
pub fn into_candle_error(e: crate::Error) -> candle_core::Error {
    crate::layers::to_candle(e)
}
