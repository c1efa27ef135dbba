//! The [`Module`] trait: a named state tree, train/eval switching and everything built on them.
//!
//! Checkpoints are built on this layer, not in it: their methods (`save_safetensors`, ...)
//! come from [`Checkpointable`](crate::checkpoint::Checkpointable), implemented for every
//! module.

use candle_core::{Tensor, Var};

use crate::summary::Summary;
use crate::{
    Mode, ModulePath, NamedState, Param, Result, RngStream, Rngs, StateKind, StatePath, StateRef,
    StateVisitor,
};

/// A node of the state tree. Derive it with `#[derive(Module)]` (or get it from `#[module]`);
/// a struct field is part of the tree because its type implements this trait.
///
/// Leaves are [`Param`], [`BatchStat`](crate::BatchStat), [`RngStream`](crate::RngStream),
/// [`Mode`] and [`ModulePath`]; containers (`Vec`, `Option`, `Box`, arrays, tuples,
/// `BTreeMap<String, _>`) forward to their items, naming them by index or key as NNX does.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module or state variable",
    label = "this field's type does not implement `artifex_core::Module`",
    note = "mark configuration fields (sizes, flags, activations) with #[config]; derive or implement `Module` for submodule types"
)]
pub trait Module {
    /// Calls `visitor` with the path and a reference of every state variable below `self`.
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>);

    /// Switches this module and everything below it to training (`true`) or evaluation mode.
    fn set_training(&mut self, training: bool);

    /// Tells every [`ModulePath`] below `self` where it sits, for error messages.
    fn bind_paths(&mut self, path: &mut StatePath) {
        let _ = path;
    }

    /// Calls `f` with every module below (and including) `self` that adds a penalty to the
    /// loss (structs marked `#[regularizer]`, e.g. `RegularizedLinear`).
    fn visit_regularizers<'a>(&'a self, f: &mut dyn FnMut(&'a dyn Regularizer)) {
        let _ = f;
    }

    /// The sum of every [`Regularizer`]'s penalty in the tree (`None` when there is none),
    /// collected through the state tree: add it to the loss.
    fn collect_regularization_loss(&self) -> Result<Option<Tensor>>
    where
        Self: Sized,
    {
        let mut terms = Vec::new();
        self.visit_regularizers(&mut |r| terms.push(r));
        let mut total: Option<Tensor> = None;
        for term in terms {
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

    /// Every state variable with its `.`-joined path, in visiting order.
    fn state(&self) -> Vec<NamedState<'_>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.visit_state(&mut StatePath::root(), &mut |path, var| {
            out.push((path.joined(), var))
        });
        out
    }

    /// The trainable parameters with their paths (batch stats and rng state excluded).
    fn named_params(&self) -> Vec<(String, Param)>
    where
        Self: Sized,
    {
        self.state()
            .into_iter()
            .filter_map(|(path, var)| match var {
                StateRef::Param(p) => Some((path, p.clone())),
                _ => None,
            })
            .collect()
    }

    /// The trainable candle `Var`s, as an optimizer wants them.
    fn trainable_vars(&self) -> Vec<Var>
    where
        Self: Sized,
    {
        self.named_params()
            .into_iter()
            .map(|(_, p)| p.var().clone())
            .collect()
    }

    /// The number of trainable scalars (NNX counts `nnx.Param` only).
    fn num_params(&self) -> usize
    where
        Self: Sized,
    {
        self.state()
            .iter()
            .filter(|(_, v)| v.kind() == StateKind::Param)
            .map(|(_, v)| v.dims().iter().product::<usize>())
            .sum()
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
/// Mark the struct `#[regularizer]` (next to `#[derive(Module)]` or `#[module]`) so that
/// [`Module::collect_regularization_loss`] of any model holding it collects the penalty.
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
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        visitor(path, StateRef::Param(self));
    }
    fn set_training(&mut self, _training: bool) {}
}

impl Module for crate::BatchStat {
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        visitor(path, StateRef::BatchStat(self));
    }
    fn set_training(&mut self, _training: bool) {}
}

impl Module for Mode {
    fn visit_state<'a>(&'a self, _path: &mut StatePath, _visitor: &mut StateVisitor<'_, 'a>) {}
    fn set_training(&mut self, training: bool) {
        self.set(training);
    }
}

impl Module for ModulePath {
    fn visit_state<'a>(&'a self, _path: &mut StatePath, _visitor: &mut StateVisitor<'_, 'a>) {}
    fn set_training(&mut self, _training: bool) {}
    /// Takes the path of the struct holding this field (the field's own name is dropped).
    fn bind_paths(&mut self, path: &mut StatePath) {
        self.set(path.parent_joined());
    }
}

impl Module for RngStream {
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        path.push("count");
        visitor(path, StateRef::RngCount(self));
        path.pop();
        path.push("key");
        visitor(path, StateRef::RngKey(self));
        path.pop();
    }

    fn set_training(&mut self, _training: bool) {}
}

impl Module for Rngs {
    fn visit_state<'a>(&'a self, path: &mut StatePath, visitor: &mut StateVisitor<'_, 'a>) {
        for (name, stream) in &self.streams {
            path.push(name.as_str());
            stream.visit_state(path, visitor);
            path.pop();
        }
    }

    fn set_training(&mut self, _training: bool) {}
}
