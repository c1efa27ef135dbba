//! The [`Module`] trait: a named state tree, train/eval switching and everything built on them.
//!
//! Checkpoints are built on this layer, not in it: their methods (`save_safetensors`, ...)
//! come from [`Checkpointable`](crate::checkpoint::Checkpointable), implemented for every
//! module.

pub mod walk;
pub(crate) mod walkers;

use candle_core::{Tensor, Var};

use crate::summary::Summary;
use crate::{
    Filter, Mode, ModulePath, NamedState, Param, Result, RngStream, Rngs, StateKind, StatePath,
    StateRef,
};
use walk::{Leaf, LeafMut, Segment, Visit, VisitMut};

/// A node of the state tree. Derive it with `#[derive(Module)]` (or get it from `#[module]`);
/// a struct field is part of the tree because its type implements this trait.
///
/// Leaves are [`Param`], [`BatchStat`](crate::BatchStat), [`RngStream`](crate::RngStream),
/// [`Mode`] and [`ModulePath`]; containers (`Vec`, slices, `Option`, `Box`, arrays, tuples,
/// `BTreeMap<String, _>`) forward to their items, naming them by index or key as NNX does.
///
/// The two required methods are one walk in its shared and mutable forms; every other
/// method (state, filters, train/eval, paths, regularizers, freezing) is a visitor over them.
/// A hand-written impl (an enum of layers, a wrapper that adds no path segment) forwards
/// both to its children:
///
/// ```
/// use artifex_core::prelude::*;
/// use artifex_core::walk::{Segment, Visit, VisitMut};
///
/// enum Either { Dense(Linear), Norm(LayerNorm) }
///
/// impl Module for Either {
///     fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
///         match self {
///             Either::Dense(l) => v.child(Segment::Field("dense"), l),
///             Either::Norm(n) => v.child(Segment::Field("norm"), n),
///         }
///     }
///     fn walk_mut(&mut self, v: &mut dyn VisitMut) {
///         match self {
///             Either::Dense(l) => v.child(Segment::Field("dense"), l),
///             Either::Norm(n) => v.child(Segment::Field("norm"), n),
///         }
///     }
/// }
///
/// let mut layer = Either::Dense(Linear::new(2, 3, &mut Rngs::new(0))?);
/// let paths: Vec<String> = layer.state().into_iter().map(|(p, _)| p).collect();
/// assert_eq!(paths, ["dense.kernel", "dense.bias"]);
/// layer.freeze(&Filter::path("dense.kernel"))?; // freezing comes with the walk
/// assert_eq!(layer.named_params().len(), 1);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module or state variable",
    label = "this field's type does not implement `artifex_core::Module`",
    note = "mark configuration fields (sizes, flags, activations) with #[config]; derive or implement `Module` for submodule types"
)]
pub trait Module {
    /// Walks the tree below `self` with a shared visitor: [`Visit::enter`] /
    /// [`Visit::leave`] around each named child (field, index or key), [`Visit::leaf`] at
    /// each leaf, [`Visit::regularizer`] when `self` is a [`Regularizer`]. The one walk every
    /// read-only operation (state, paths, regularizers, trainable variables) is built on.
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>);

    /// The same walk, mutably: train/eval switching, path binding, freezing are built on it.
    fn walk_mut(&mut self, v: &mut dyn VisitMut);

    /// Tells every [`ModulePath`] below `self` where it sits, `path` being `self`'s own path,
    /// for error messages.
    ///
    /// Paths are stored, not derived from the walk: a forward call (`layer.forward(&x)`) is
    /// no walk and has no other way to know where its layer sits. They are re-bound by every
    /// `#[module]` constructor, `train()`, `eval()`, checkpoint loads and
    /// `Configurable::load`; a submodule moved into another model reports its old path until
    /// the new model's next one of those (or a call of this method).
    fn bind_paths(&mut self, path: &mut StatePath) {
        walkers::bind_paths(self, path);
    }

    /// Switches this module and everything below it to training (`true`) or evaluation mode
    /// without re-binding paths ([`train`](Module::train) / [`eval`](Module::eval) do both).
    fn set_training(&mut self, training: bool) {
        walkers::set_training(self, training);
    }

    /// The sum of every [`Regularizer`]'s penalty in the tree (`None` when there is none),
    /// collected through the walk: add it to the loss. Every module whose type implements
    /// `Regularizer` counts, no marker needed.
    fn collect_regularization_loss(&self) -> Result<Option<Tensor>>
    where
        Self: Sized,
    {
        let mut total: Option<Tensor> = None;
        for term in walkers::regularizers(self) {
            let value = term.regularization_loss()?;
            total = Some(match total {
                Some(t) => (t + value)?,
                None => value,
            });
        }
        Ok(total)
    }

    /// Training mode everywhere below (NNX `model.train()`): dropout active, batch statistics.
    fn train(&mut self)
    where
        Self: Sized,
    {
        self.bind_paths(&mut StatePath::root());
        self.set_training(true);
    }

    /// Evaluation mode everywhere below (NNX `model.eval()`): dropout off, running averages.
    fn eval(&mut self)
    where
        Self: Sized,
    {
        self.bind_paths(&mut StatePath::root());
        self.set_training(false);
    }

    /// Calls `f` with the path and a reference of every state variable, in walking order.
    fn for_each_state<'a>(&'a self, f: impl FnMut(&StatePath, StateRef<'a>))
    where
        Self: Sized,
    {
        walkers::for_each_state(self, &mut StatePath::root(), f);
    }

    /// Every state variable with its `.`-joined path, in visiting order.
    fn state(&self) -> Vec<NamedState<'_>>
    where
        Self: Sized,
    {
        self.state_filtered(&Filter::Everything)
    }

    /// The state variables `filter` selects (NNX `nnx.state(model, filter)`), in visiting
    /// order: `model.state_filtered(&Filter::kind(StateKind::BatchStat))`.
    fn state_filtered(&self, filter: &Filter) -> Vec<NamedState<'_>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.for_each_state(|path, var| {
            let joined = path.joined();
            if filter.matches(&joined, var.kind()) {
                out.push((joined, var));
            }
        });
        out
    }

    /// The trainable parameters with their paths: batch stats, rng state and frozen
    /// parameters excluded. What an optimizer over the whole model takes.
    fn named_params(&self) -> Vec<(String, Param)>
    where
        Self: Sized,
    {
        walkers::trainable_params(self, &Filter::Everything)
    }

    /// The trainable (not frozen) parameters `filter` selects, with their paths: an optimizer
    /// over a subset (NNX `nnx.Optimizer(model, tx, wrt=filter)`), e.g.
    /// `Adam::new(model.params_wrt(&Filter::path("head")), 1e-3)`. The
    /// [`Trainer`](crate::train::Trainer) clips and updates exactly its optimizer's
    /// parameters, so the others stay bitwise as they are.
    fn params_wrt(&self, filter: &Filter) -> Vec<(String, Param)>
    where
        Self: Sized,
    {
        walkers::trainable_params(self, filter)
    }

    /// The trainable candle `Var`s (frozen parameters excluded), as an optimizer wants them.
    fn trainable_vars(&self) -> Vec<Var>
    where
        Self: Sized,
    {
        walkers::trainable_vars(self)
    }

    /// Freezes every parameter `filter` selects (`Filter::path("encoder")`): its forward
    /// value is detached, so no gradient flows into it, it is left out of
    /// [`named_params`](Module::named_params), [`params_wrt`](Module::params_wrt) and
    /// [`trainable_vars`](Module::trainable_vars), and it is still saved and loaded. Returns
    /// how many parameters were frozen; a filter that selects none is an error.
    fn freeze(&mut self, filter: &Filter) -> Result<usize>
    where
        Self: Sized,
    {
        walkers::set_frozen(self, filter, true)
    }

    /// Unfreezes every parameter `filter` selects (see [`freeze`](Module::freeze)).
    fn unfreeze(&mut self, filter: &Filter) -> Result<usize>
    where
        Self: Sized,
    {
        walkers::set_frozen(self, filter, false)
    }

    /// The number of trainable scalars (NNX counts `nnx.Param` only; frozen ones included).
    fn num_params(&self) -> usize
    where
        Self: Sized,
    {
        let mut n = 0;
        self.for_each_state(|_, v| {
            if v.kind() == StateKind::Param {
                n += v.dims().iter().product::<usize>();
            }
        });
        n
    }

    /// A table of every variable: path, kind, shape, dtype, count, with totals.
    fn summary(&self) -> Summary
    where
        Self: Sized,
    {
        Summary::of_state(self.state())
    }
}

/// A module that contributes a penalty to the training loss (L1/L2 on its weights, ...).
///
/// Implementing it is enough: the walk `#[derive(Module)]` / `#[module]` writes reports a
/// struct whose type implements it, so [`Module::collect_regularization_loss`] of any model
/// holding it collects the penalty. For a generic struct the impl is found when its bounds
/// follow from the `Module` impl's where-clause; mark the struct `#[regularizer]` to make the
/// compiler check that (an unmet bound is then an error, not a dropped penalty).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Regularizer`",
    label = "`Regularizer` is required here (a struct marked #[regularizer] must implement it)",
    note = "implement `Regularizer` for it; for a generic struct, the impl's bounds must follow from the `Module` impl's where-clause (declare them with #[module(bound = \"...\")])"
)]
pub trait Regularizer {
    /// The penalty, a scalar tensor.
    fn regularization_loss(&self) -> Result<Tensor>;
}

/// How `#[module]` constructors fill fields that carry no attribute ([`Mode`], [`ModulePath`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be built without an attribute in a #[module] struct",
    label = "add #[init(expr)], #[param(..)], #[batch_stat(..)], #[rng(stream = \"..\")] or #[config]",
    note = "only `Mode` and `ModulePath` fields may go without an attribute"
)]
pub trait AutoField {
    /// The field's initial value.
    fn auto() -> Self;
}

impl AutoField for Mode {
    fn auto() -> Self {
        Mode::default()
    }
}

impl AutoField for ModulePath {
    fn auto() -> Self {
        ModulePath::default()
    }
}

impl Module for Param {
    #[inline]
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        v.leaf(Leaf::State(StateRef::Param(self)));
    }
    #[inline]
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        v.leaf(LeafMut::Param(self));
    }
}

impl Module for crate::BatchStat {
    #[inline]
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        v.leaf(Leaf::State(StateRef::BatchStat(self)));
    }
    #[inline]
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        v.leaf(LeafMut::BatchStat(self));
    }
}

impl Module for Mode {
    #[inline]
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        v.leaf(Leaf::Mode(self));
    }
    #[inline]
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        v.leaf(LeafMut::Mode(self));
    }
}

/// A `ModulePath` field is a leaf of the walk; path binding gives it the path of the struct
/// holding it (the field's own name is dropped).
impl Module for ModulePath {
    #[inline]
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        v.leaf(Leaf::Path(self));
    }
    #[inline]
    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        v.leaf(LeafMut::Path(self));
    }
}

impl Module for RngStream {
    /// Two state entries, `count` then `key`; a mutable walk meets the stream itself.
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        if v.enter(Segment::Field("count")) {
            v.leaf(Leaf::State(StateRef::RngCount(self)));
            v.leave();
        }
        if v.enter(Segment::Field("key")) {
            v.leaf(Leaf::State(StateRef::RngKey(self)));
            v.leave();
        }
    }

    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        v.leaf(LeafMut::Rng(self));
    }
}

impl Module for Rngs {
    fn walk<'a>(&'a self, v: &mut dyn Visit<'a>) {
        for (name, stream) in &self.streams {
            v.child(Segment::Key(name), stream);
        }
    }

    fn walk_mut(&mut self, v: &mut dyn VisitMut) {
        for (name, stream) in self.streams.iter_mut() {
            v.child(Segment::Key(name), stream);
        }
    }
}
