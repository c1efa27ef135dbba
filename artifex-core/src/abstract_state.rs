//! Abstract state (Flax NNX `nnx.eval_shape`): a model's state tree as paths, kinds, shapes
//! and dtypes, built from its configuration without allocating a tensor or drawing a random
//! number.

use std::fmt;
use std::sync::{Arc, Mutex};

use candle_core::DType;

use crate::checkpoint::EntrySpec;
use crate::construction::{Construction, ShapeRecorder};
use crate::summary::{Summary, SummaryRow};
use crate::{Limits, Module, Result, Rngs, StateKind, StateRef};

/// One variable of an [`AbstractState`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbstractVar {
    /// `.`-joined state path, as in checkpoints.
    pub path: String,
    /// Param, BatchStat, RngKey or RngCount.
    pub kind: StateKind,
    /// The shape the variable would have.
    pub shape: Vec<usize>,
    /// The dtype it would have.
    pub dtype: DType,
}

impl AbstractVar {
    /// Number of scalars (the shape's product; overflow was refused when it was recorded).
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of the value.
    pub fn bytes(&self) -> usize {
        self.count() * self.dtype.size_in_bytes()
    }
}

/// A model's state tree without values: what `module.state()` would list, from the config.
///
/// ```
/// use artifex_core::prelude::*;
/// use artifex_core::{AbstractState, Limits};
///
/// // 14.4 GB of parameters, described in microseconds without allocating them.
/// let state = AbstractState::trace(Limits::any_size(), |rngs| Linear::new(60_000, 60_000, rngs))?;
/// assert_eq!(state.vars[0].path, "kernel");
/// assert_eq!(state.vars[0].shape, [60_000, 60_000]);
/// assert_eq!(state.bytes(), (60_000 * 60_000 + 60_000) * 4);
/// println!("{}", state.summary());
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbstractState {
    /// Every variable, in the order `module.state()` visits them.
    pub vars: Vec<AbstractVar>,
}

impl AbstractState {
    /// Runs `build` (any constructor taking `&mut Rngs`) in shape-only mode and returns the
    /// state tree it describes. Variables are created through `Param::from_init`,
    /// `Param::zeros`, `BatchStat::from_init` and `Rngs::fork` (all `#[module]` fields and
    /// the library's layers do so); each is recorded and stands in as a one-element
    /// placeholder, so nothing of the declared size is allocated and no value is drawn.
    /// A constructor that creates a tensor itself (`Param::new(&Tensor::zeros(..))`) still
    /// works, with that tensor allocated and its real shape reported.
    ///
    /// `limits` bound what the config may describe: past them (or on `usize` overflow) the
    /// build stops at the first variable that crosses them, with a typed error.
    pub fn trace<M: Module>(
        limits: Limits,
        build: impl FnOnce(&mut Rngs) -> Result<M>,
    ) -> Result<Self> {
        let recorder = Arc::new(Mutex::new(ShapeRecorder::new(limits)));
        let mut rngs =
            Rngs::new(0).with_construction(Construction::ShapeOnly(Arc::clone(&recorder)));
        let module = build(&mut rngs)?;
        let rec = recorder.lock().unwrap_or_else(|e| e.into_inner());
        let vars = module
            .state()
            .into_iter()
            .map(|(path, var)| {
                let id = match var {
                    StateRef::Param(p) => Some(p.value().id()),
                    StateRef::BatchStat(b) => Some(b.id()),
                    _ => None,
                };
                let (shape, dtype) = id
                    .and_then(|id| rec.shape_of(id).cloned())
                    .unwrap_or_else(|| (var.dims(), var.dtype()));
                AbstractVar {
                    path,
                    kind: var.kind(),
                    shape,
                    dtype,
                }
            })
            .collect();
        Ok(Self { vars })
    }

    /// Total bytes of all variables.
    pub fn bytes(&self) -> usize {
        self.vars.iter().map(AbstractVar::bytes).sum()
    }

    /// Total scalars of one kind.
    pub fn total(&self, kind: StateKind) -> usize {
        self.vars
            .iter()
            .filter(|v| v.kind == kind)
            .map(AbstractVar::count)
            .sum()
    }

    /// The number of trainable scalars (as `Module::num_params`).
    pub fn num_params(&self) -> usize {
        self.total(StateKind::Param)
    }

    /// The entries a checkpoint of this model holds, for [`checkpoint::compare`](crate::checkpoint::compare).
    pub fn specs(&self) -> Vec<EntrySpec> {
        self.vars
            .iter()
            .map(|v| EntrySpec {
                path: v.path.clone(),
                kind: v.kind,
                shape: v.shape.clone(),
                dtype: v.dtype.into(),
            })
            .collect()
    }

    /// The same table `module.summary()` prints for a built model.
    pub fn summary(&self) -> Summary {
        Summary {
            rows: self
                .vars
                .iter()
                .map(|v| SummaryRow {
                    path: v.path.clone(),
                    kind: v.kind,
                    shape: v.shape.clone(),
                    dtype: v.dtype,
                    count: v.count(),
                })
                .collect(),
        }
    }
}

impl fmt::Display for AbstractState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.summary().fmt(f)
    }
}
