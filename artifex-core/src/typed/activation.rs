//! Typed activations: shape-preserving, stateless layers over the functions of
//! [`crate::activation`] (so typed and dynamic models compute bit-identical values).

use super::forward::{Build, Forward};
use super::shape::Shape;
use super::tensor::Tensor;
use crate::activation::{self as act, Activation};
use crate::walk::{Visit, VisitMut};
use crate::{Module, Result, Rngs};

macro_rules! stateless_module {
    ($ty:ty) => {
        impl Module for $ty {
            #[inline]
            fn walk<'a>(&'a self, _v: &mut dyn Visit<'a>) {}
            #[inline]
            fn walk_mut(&mut self, _v: &mut dyn VisitMut) {}
        }
    };
}

macro_rules! unit_activation {
    ($(#[$doc:meta])* $name:ident => $f:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        stateless_module!($name);

        impl Build for $name {
            #[inline]
            fn build(_rngs: &mut Rngs) -> Result<Self> {
                Ok($name)
            }
        }

        impl<S: Shape> Forward<S> for $name {
            type Out = S;

            #[inline]
            fn forward_t(&self, x: &Tensor<S>, _train: Option<bool>) -> Result<Tensor<S>> {
                let f: fn(&candle_core::Tensor) -> Result<candle_core::Tensor> = $f;
                Ok(Tensor::assume(f(x.inner())?))
            }
        }
    };
}

unit_activation!(
    /// The input unchanged.
    Identity => |x| Ok(x.clone())
);
unit_activation!(
    /// [`relu`](act::relu): `max(x, 0)`.
    Relu => act::relu
);
unit_activation!(
    /// Exact, erf-based [`gelu`](act::gelu).
    Gelu => act::gelu
);
unit_activation!(
    /// The tanh approximation [`gelu_tanh`](act::gelu_tanh) (what `nnx.gelu` computes).
    GeluTanh => act::gelu_tanh
);
unit_activation!(
    /// [`silu`](act::silu): `x * sigmoid(x)`.
    Silu => act::silu
);
unit_activation!(
    /// [`sigmoid`](act::sigmoid).
    Sigmoid => act::sigmoid
);
unit_activation!(
    /// [`tanh`](act::tanh).
    Tanh => act::tanh
);
unit_activation!(
    /// [`softplus`](act::softplus).
    Softplus => act::softplus
);
unit_activation!(
    /// [`softmax`](act::softmax) over the last axis.
    Softmax => |x| act::softmax(x, -1)
);
unit_activation!(
    /// [`log_softmax`](act::log_softmax) over the last axis.
    LogSoftmax => |x| act::log_softmax(x, -1)
);

/// Any [`Activation`] chosen at run time (from a config), as a typed, shape-preserving layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DynActivation(pub Activation);

stateless_module!(DynActivation);

impl<S: Shape> Forward<S> for DynActivation {
    type Out = S;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, _train: Option<bool>) -> Result<Tensor<S>> {
        Ok(Tensor::assume(self.0.apply(x.inner())?))
    }
}
