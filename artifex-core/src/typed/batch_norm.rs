//! Typed [`BatchNorm<F>`](BatchNorm): `[*, F] -> [*, F]`, wrapping [`layers::BatchNorm`].

use super::check::Features;
use super::forward::{Build, Forward};
use super::shape::HasLast;
use super::tensor::Tensor;
use super::transparent::transparent_module;
use crate::{layers, Error, Result, Rngs};

/// Batch normalization over `F` features known at compile time: a [`layers::BatchNorm`]
/// (same `scale` / `bias` / `mean` / `var` paths) that only accepts `[*, F]` (or a `Dyn` last
/// axis, checked at run time).
#[derive(Debug)]
pub struct BatchNorm<const F: usize> {
    inner: layers::BatchNorm,
}

impl<const F: usize> BatchNorm<F> {
    /// Builds `layers::BatchNorm::new(F, rngs)` (NNX defaults: momentum 0.99, epsilon 1e-5).
    pub fn new(rngs: &mut Rngs) -> Result<Self> {
        Self::from_dynamic(layers::BatchNorm::new(F, rngs)?)
    }

    /// A builder for the other options (momentum, epsilon, ...); type the result with
    /// [`BatchNorm::from_dynamic`].
    pub fn builder() -> layers::BatchNormBuilder {
        layers::BatchNorm::builder(F)
    }

    /// Types a dynamic layer; fails unless it normalizes `F` features.
    pub fn from_dynamic(inner: layers::BatchNorm) -> Result<Self> {
        if inner.num_features != F {
            return Err(Error::config(
                format!("typed BatchNorm<{F}>"),
                format!(
                    "the dynamic layer normalizes {} features",
                    inner.num_features
                ),
            ));
        }
        Ok(Self { inner })
    }

    /// The dynamic layer (its parameters and running statistics).
    #[inline]
    pub fn as_dynamic(&self) -> &layers::BatchNorm {
        &self.inner
    }

    /// The dynamic layer, by value.
    #[inline]
    pub fn into_dynamic(self) -> layers::BatchNorm {
        self.inner
    }
}

transparent_module!(BatchNorm<const F: usize>);

impl<const F: usize> Build for BatchNorm<F> {
    fn build(rngs: &mut Rngs) -> Result<Self> {
        Self::new(rngs)
    }
}

impl<S, const F: usize> Forward<S> for BatchNorm<F>
where
    S: HasLast,
    S::Last: Features<F>,
{
    type Out = S;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, train: Option<bool>) -> Result<Tensor<S>> {
        Ok(Tensor::assume(self.inner.forward_t(x.inner(), train)?))
    }
}
