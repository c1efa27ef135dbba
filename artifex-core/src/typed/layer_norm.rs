//! Typed [`LayerNorm<F>`](LayerNorm): `[*, F] -> [*, F]`, wrapping [`layers::LayerNorm`].

use super::check::Features;
use super::forward::{Build, Forward};
use super::shape::HasLast;
use super::tensor::Tensor;
use super::transparent::transparent_module;
use crate::{layers, Error, Result, Rngs};

/// Layer normalization over `F` features known at compile time: a [`layers::LayerNorm`]
/// (same `scale` / `bias` paths) that only accepts `[*, F]` (or a `Dyn` last
/// axis, checked at run time).
#[derive(Debug)]
pub struct LayerNorm<const F: usize> {
    inner: layers::LayerNorm,
}

impl<const F: usize> LayerNorm<F> {
    /// Builds `layers::LayerNorm::new(F, rngs)` (NNX default epsilon 1e-6).
    pub fn new(rngs: &mut Rngs) -> Result<Self> {
        Self::from_dynamic(layers::LayerNorm::new(F, rngs)?)
    }

    /// A builder for the other options (epsilon, scale, bias); type the result with
    /// [`LayerNorm::from_dynamic`].
    pub fn builder() -> layers::LayerNormBuilder {
        layers::LayerNorm::builder(F)
    }

    /// Types a dynamic layer; fails unless it normalizes `F` features.
    pub fn from_dynamic(inner: layers::LayerNorm) -> Result<Self> {
        if inner.num_features != F {
            return Err(Error::config(
                format!("typed LayerNorm<{F}>"),
                format!(
                    "the dynamic layer normalizes {} features",
                    inner.num_features
                ),
            ));
        }
        Ok(Self { inner })
    }

    /// The dynamic layer (its parameters).
    #[inline]
    pub fn as_dynamic(&self) -> &layers::LayerNorm {
        &self.inner
    }

    /// The dynamic layer, by value.
    #[inline]
    pub fn into_dynamic(self) -> layers::LayerNorm {
        self.inner
    }
}

transparent_module!(LayerNorm<const F: usize>);

impl<const F: usize> Build for LayerNorm<F> {
    fn build(rngs: &mut Rngs) -> Result<Self> {
        Self::new(rngs)
    }
}

impl<S, const F: usize> Forward<S> for LayerNorm<F>
where
    S: HasLast,
    S::Last: Features<F>,
{
    type Out = S;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, _train: Option<bool>) -> Result<Tensor<S>> {
        Ok(Tensor::assume(self.inner.forward(x.inner())?))
    }
}
