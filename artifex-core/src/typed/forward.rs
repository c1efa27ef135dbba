//! [`Forward`]: a typed layer's forward pass, from one typed shape to another; [`Build`]: a
//! typed layer built from its type alone.

use super::shape::Shape;
use super::tensor::Tensor;
use crate::{Result, Rngs};

/// A typed layer's forward pass: `Tensor<S> -> Tensor<Self::Out>`.
///
/// Implemented only for the input shapes the layer accepts, so a mismatched chain is a
/// compile error; the message names the sizes (see [`SameFeatures`](super::SameFeatures)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot take a tensor of shape `{S}`",
    label = "this typed layer does not accept `{S}`",
    note = "typed layers read the last axis; the input's last dimension must be the layer's input size (`Const<N>`) or `Dyn`"
)]
pub trait Forward<S: Shape> {
    /// The output shape.
    type Out: Shape;

    /// Applies the layer; `train` overrides the mode set by `train()` / `eval()` for this call
    /// (layers without a mode ignore it).
    fn forward_t(&self, x: &Tensor<S>, train: Option<bool>) -> Result<Tensor<Self::Out>>;

    /// Applies the layer in its current mode.
    #[inline]
    fn forward(&self, x: &Tensor<S>) -> Result<Tensor<Self::Out>> {
        self.forward_t(x, None)
    }
}

/// A typed layer whose type says everything needed to build it (sizes in const generics,
/// default options): `Linear::<784, 512>::build(rngs)`, and whole stacks such as
/// `Seq<(Linear<784, 512>, Relu)>::build(rngs)`, drawing parameters in declaration order.
pub trait Build: Sized {
    /// Builds the layer, drawing its parameters from the `params` stream of `rngs`.
    fn build(rngs: &mut Rngs) -> Result<Self>;
}
