//! [`Layer`]: a module with a one-tensor forward, so heterogeneous lists (`[Linear, BatchNorm,
//! ...]`, the seed's `encoder` lists) can be `Vec<Box<dyn Layer>>` with NNX paths
//! (`encoder.0.kernel`, `encoder.1.mean`).
//!
//! Implement it with `#[layer]` on the impl that holds the forward method: one declaration
//! gives the inherent method, this trait and candle's `Module` / `ModuleT`. Every core layer
//! does so beside its definition (`MultiHeadAttention` as self-attention without a mask).

use candle_core::Tensor;

use crate::activation::Activation;
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

    /// Applies the layer in its current mode, then `activation`: the same as
    /// `activation.apply(&layer.forward(x)?)`, which layers with a fused kernel for the pair
    /// (`Linear` and `BatchNorm` with ReLU on CPU `f32` data) run as one op. `#[layer]` impls
    /// override it by defining an inherent `forward_activated` of this signature.
    fn forward_activated(&self, x: &Tensor, activation: &Activation) -> Result<Tensor> {
        activation.apply(&self.forward(x)?)
    }
}

/// A boxed layer, for heterogeneous lists.
pub type BoxedLayer = Box<dyn Layer>;

/// Boxes a layer (shorthand for building `Vec<BoxedLayer>`).
pub fn boxed<L: Layer + 'static>(layer: L) -> BoxedLayer {
    Box::new(layer)
}

/// An artifex error as a candle error (candle errors unwrapped), for candle's `Module` /
/// `ModuleT` impls that `#[layer]` writes.
pub fn into_candle_error(e: crate::Error) -> candle_core::Error {
    crate::error::to_candle(e)
}
