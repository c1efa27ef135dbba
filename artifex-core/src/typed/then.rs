//! [`Then`]: a layer followed by an activation, at the layer's own path.

use super::forward::{Build, Forward};
use super::shape::Shape;
use super::tensor::Tensor;
use crate::walk::{Visit, VisitMut};
use crate::{Module, Result, Rngs};

/// `layer` then `act`, taking a single index in a [`Seq`](super::Seq): the seed's models
/// apply an activation after every item of their `[Linear, BatchNorm, ...]` lists, and
/// `Seq<(Then<Linear<784, 512>, Relu>, Then<BatchNorm<512>, Relu>)>` keeps their paths
/// (`0.kernel`, `1.mean`).
///
/// Both parts are visited at the same path (state, train/eval, path binding), so `act` may be
/// stateful too (a typed `Dropout` adds `rngs.key` / `rngs.count` beside the layer's state).
#[derive(Clone, Debug, Default)]
pub struct Then<L, A> {
    /// The layer.
    pub layer: L,
    /// What follows it (an activation).
    pub act: A,
}

impl<L, A> Then<L, A> {
    /// `layer` followed by `act`.
    #[inline]
    pub fn new(layer: L, act: A) -> Self {
        Self { layer, act }
    }
}

impl<L: Module, A: Module> Module for Then<L, A> {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        self.layer.walk(v);
        self.act.walk(v);
    }

    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        self.layer.walk_mut(v);
        self.act.walk_mut(v);
    }
}

impl<L: Build, A: Build> Build for Then<L, A> {
    fn build(rngs: &mut Rngs) -> Result<Self> {
        Ok(Self::new(L::build(rngs)?, A::build(rngs)?))
    }
}

impl<S: Shape, L: Forward<S>, A: Forward<L::Out>> Forward<S> for Then<L, A> {
    type Out = A::Out;

    #[inline]
    fn forward_t(&self, x: &Tensor<S>, train: Option<bool>) -> Result<Tensor<Self::Out>> {
        self.act.forward_t(&self.layer.forward_t(x, train)?, train)
    }
}
