//! Typed [`Linear<I, O>`](Linear): `[*, I] -> [*, O]`, wrapping [`layers::Linear`].

use super::check::Features;
use super::dim::Const;
use super::forward::{Build, Forward};
use super::shape::HasLast;
use super::tensor::Tensor;
use super::transparent::transparent_module;
use crate::{layers, Error, Result, Rngs};

/// A dense layer with `I` inputs and `O` outputs known at compile time.
///
/// It is a [`layers::Linear`] (same parameters drawn in the same order, same `kernel` /
/// `bias` paths, same checkpoints) whose forward pass only accepts `[*, I]` (or a `Dyn` last
/// axis, checked at run time) and returns `[*, O]`.
///
/// ```
/// use artifex_core::typed::{Forward, Linear, Rows, Tensor};
/// use artifex_core::{candle_core::{DType, Device}, Module, Rngs};
///
/// let layer = Linear::<784, 256>::new(&mut Rngs::new(0))?;
/// let x = Tensor::<Rows<784>>::new(candle_core::Tensor::ones((32, 784), DType::F32, &Device::Cpu)?)?;
/// let y: Tensor<Rows<256>> = layer.forward(&x)?;
/// assert_eq!(y.dims(), &[32, 256]);
/// let paths: Vec<String> = layer.state().into_iter().map(|(p, _)| p).collect();
/// assert_eq!(paths, ["kernel", "bias"]);
/// # use artifex_core::candle_core;
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Linear<const I: usize, const O: usize> {
    inner: layers::Linear,
}

impl<const I: usize, const O: usize> Linear<I, O> {
    /// Builds `layers::Linear::new(I, O, rngs)` (NNX defaults: lecun_normal kernel, zero bias).
    pub fn new(rngs: &mut Rngs) -> Result<Self> {
        Self::from_dynamic(layers::Linear::new(I, O, rngs)?)
    }

    /// A builder for the other options: `Linear::<784, 10>::from_dynamic(
    /// Linear::<784, 10>::builder().use_bias(false).build(rngs)?)`.
    pub fn builder() -> layers::LinearBuilder {
        layers::Linear::builder(I, O)
    }

    /// Types a dynamic layer; fails unless it maps `I` features to `O`.
    pub fn from_dynamic(inner: layers::Linear) -> Result<Self> {
        if inner.in_features != I || inner.out_features != O {
            return Err(Error::config(
                format!("typed Linear<{I}, {O}>"),
                format!(
                    "the dynamic layer maps {} features to {}",
                    inner.in_features, inner.out_features
                ),
            ));
        }
        Ok(Self { inner })
    }

    /// The dynamic layer (its `kernel` and `bias`).
    #[inline]
    pub fn as_dynamic(&self) -> &layers::Linear {
        &self.inner
    }

    /// The dynamic layer, by value.
    #[inline]
    pub fn into_dynamic(self) -> layers::Linear {
        self.inner
    }
}

transparent_module!(Linear<const I: usize, const O: usize>);

impl<const I: usize, const O: usize> Build for Linear<I, O> {
    fn build(rngs: &mut Rngs) -> Result<Self> {
        Self::new(rngs)
    }
}

impl<S, const I: usize, const O: usize> Forward<S> for Linear<I, O>
where
    S: HasLast,
    S::Last: Features<I>,
{
    type Out = S::WithLast<Const<O>>;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, _train: Option<bool>) -> Result<Tensor<Self::Out>> {
        Ok(Tensor::assume(self.inner.forward(x.inner())?))
    }
}
