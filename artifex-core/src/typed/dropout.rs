//! Typed [`Dropout`]: any shape to the same shape, wrapping [`layers::Dropout`].

use super::forward::Forward;
use super::shape::Shape;
use super::tensor::Tensor;
use super::transparent::transparent_module;
use crate::{layers, Result, Rngs};

/// Dropout on a typed tensor: a [`layers::Dropout`] (same `rngs.key` / `rngs.count` state,
/// same masks) whose output has the input's type.
#[derive(Debug)]
pub struct Dropout {
    inner: layers::Dropout,
}

impl Dropout {
    /// Builds `layers::Dropout::new(rate, rngs)`, forking the `dropout` (or `default`) stream.
    pub fn new(rate: f64, rngs: &mut Rngs) -> Result<Self> {
        Ok(Self::from_dynamic(layers::Dropout::new(rate, rngs)?))
    }

    /// Wraps a dynamic dropout layer (it fits any shape).
    #[inline]
    pub fn from_dynamic(inner: layers::Dropout) -> Self {
        Self { inner }
    }

    /// The dynamic layer.
    #[inline]
    pub fn as_dynamic(&self) -> &layers::Dropout {
        &self.inner
    }

    /// The dynamic layer, by value.
    #[inline]
    pub fn into_dynamic(self) -> layers::Dropout {
        self.inner
    }
}

transparent_module!(Dropout);

impl<S: Shape> Forward<S> for Dropout {
    type Out = S;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, train: Option<bool>) -> Result<Tensor<S>> {
        Ok(Tensor::assume(self.inner.forward_t(x.inner(), train)?))
    }
}
