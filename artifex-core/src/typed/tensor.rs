//! [`Tensor<S>`]: a candle tensor with a typed shape, zero-copy.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use super::shape::Shape;
use crate::{Error, Result};

/// A candle tensor whose shape is the type `S`, e.g. `Tensor<(Dyn, Const<784>)>`.
///
/// It is the candle tensor plus a zero-sized marker: building one from a candle tensor
/// ([`Tensor::new`]) checks the run-time dims once, at the boundary; typed layers then hand
/// each other typed tensors without further checks. It dereferences to the candle tensor for
/// everything else (losses, `backward`, reading values); those results are untyped again.
///
/// ```
/// use artifex_core::typed::{Const, Dyn, Tensor};
/// use artifex_core::candle_core::{DType, Device, Tensor as CandleTensor};
///
/// let x = CandleTensor::zeros((32, 784), DType::F32, &Device::Cpu)?;
/// let typed: Tensor<(Dyn, Const<784>)> = Tensor::new(x.clone())?;
/// assert_eq!(typed.dims(), &[32, 784]);
/// let err = Tensor::<(Dyn, Const<256>)>::new(x).unwrap_err().to_string();
/// assert_eq!(err, "typed tensor: expected input of shape [*, 256], got [32, 784]");
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[repr(transparent)]
pub struct Tensor<S: Shape> {
    inner: candle_core::Tensor,
    shape: PhantomData<fn() -> S>,
}

impl<S: Shape> Tensor<S> {
    /// Types a candle tensor, checking its dims against `S` (rank and every `Const` axis).
    pub fn new(tensor: candle_core::Tensor) -> Result<Self> {
        if !S::accepts(tensor.dims()) {
            return Err(Error::Shape {
                module: "typed tensor".to_string(),
                expected: S::describe(),
                got: tensor.dims().to_vec(),
            });
        }
        Ok(Self::assume(tensor))
    }

    /// Wraps a tensor the caller knows to have shape `S` (checked in debug builds only).
    #[inline]
    pub(crate) fn assume(tensor: candle_core::Tensor) -> Self {
        debug_assert!(
            S::accepts(tensor.dims()),
            "typed layer produced {:?}, not {}",
            tensor.dims(),
            S::describe()
        );
        Self {
            inner: tensor,
            shape: PhantomData,
        }
    }

    /// The candle tensor.
    #[inline]
    pub fn inner(&self) -> &candle_core::Tensor {
        &self.inner
    }

    /// The candle tensor, by value.
    #[inline]
    pub fn into_inner(self) -> candle_core::Tensor {
        self.inner
    }

    /// Reshapes to the typed shape `T`: `Const` axes as given, at most one `Dyn` axis taking
    /// what is left (`(Dyn, Const<28>, Const<28>, Const<1>)` to `(Dyn, Const<784>)`).
    pub fn reshape_to<T: Shape>(&self) -> Result<Tensor<T>> {
        let sizes = T::sizes();
        let known: usize = sizes.iter().flatten().product();
        let holes = sizes.iter().filter(|s| s.is_none()).count();
        let count = self.inner.elem_count();
        let fits = match holes {
            0 => known == count,
            1 => known > 0 && count.is_multiple_of(known),
            _ => false,
        };
        if !fits {
            return Err(Error::Shape {
                module: "typed reshape".to_string(),
                expected: format!("{} elements for {}", known, T::describe()),
                got: self.inner.dims().to_vec(),
            });
        }
        let dims: Vec<usize> = sizes
            .iter()
            .map(|s| s.unwrap_or(count / known.max(1)))
            .collect();
        Ok(Tensor::assume(self.inner.reshape(dims)?))
    }

    /// The same values, cut from the autograd graph.
    #[inline]
    pub fn detach(&self) -> Self {
        Self::assume(self.inner.detach())
    }
}

impl<S: Shape> Clone for Tensor<S> {
    #[inline]
    fn clone(&self) -> Self {
        Self::assume(self.inner.clone())
    }
}

impl<S: Shape> Deref for Tensor<S> {
    type Target = candle_core::Tensor;

    #[inline]
    fn deref(&self) -> &candle_core::Tensor {
        &self.inner
    }
}

impl<S: Shape> AsRef<candle_core::Tensor> for Tensor<S> {
    #[inline]
    fn as_ref(&self) -> &candle_core::Tensor {
        &self.inner
    }
}

impl<S: Shape> TryFrom<candle_core::Tensor> for Tensor<S> {
    type Error = Error;

    fn try_from(tensor: candle_core::Tensor) -> Result<Self> {
        Self::new(tensor)
    }
}

impl<S: Shape> From<Tensor<S>> for candle_core::Tensor {
    #[inline]
    fn from(tensor: Tensor<S>) -> Self {
        tensor.inner
    }
}

impl<S: Shape> fmt::Debug for Tensor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>({:?})", S::describe(), self.inner)
    }
}
