//! The leaves of the state tree: trainable [`Param`]s, non-trainable [`BatchStat`]s, and the
//! [`Mode`] flag that `train()` / `eval()` switch.

use std::fmt;
use std::ops::Deref;

use candle_core::{DType, Device, Shape, Tensor, Var};

use crate::construction::Construction;
use crate::rng::RngStream;
use crate::{Error, Result};

/// A trainable parameter (NNX `nnx.Param`): handed to optimizers, saved in checkpoints.
///
/// Dereferences to its current value, so `x.matmul(&self.kernel)` works directly.
///
/// A *frozen* parameter ([`Module::freeze`](crate::Module::freeze)) dereferences to a
/// detached view of the same storage: no gradient flows into it, optimizers built over the
/// model's [`named_params`](crate::Module::named_params) leave it out, and it is still saved
/// and loaded like any other parameter.
#[derive(Clone, Debug)]
pub struct Param {
    var: Var,
    /// The detached view handed out while frozen (shares the variable's storage, so loads
    /// and in-place updates show through it).
    frozen: Option<Tensor>,
}

impl Param {
    /// Wraps `value` as a new trainable variable (the tensor's storage is copied once).
    pub fn new(value: &Tensor) -> Result<Self> {
        Ok(Self::of(Var::from_tensor(value)?))
    }

    fn of(var: Var) -> Self {
        Self { var, frozen: None }
    }

    /// Draws the value from `init` with one key of the `params` stream of `rngs`, on `rngs`' device.
    ///
    /// A shape whose size overflows is a configuration error. Under
    /// [`AbstractState::trace`](crate::AbstractState::trace) nothing is drawn or allocated
    /// (the shape is recorded); when a model is built to be filled from a checkpoint, the
    /// value starts as zeros and the key is still taken, so stream counters match.
    pub fn from_init<I: crate::Initializer + ?Sized>(
        init: &I,
        shape: &[usize],
        dtype: DType,
        rngs: &mut crate::Rngs,
    ) -> Result<Self> {
        crate::check_shape("Param", "value", shape, dtype)?;
        if let Some(var) = rngs.construction().placeholder("Param", shape, dtype)? {
            return Ok(Self::of(var));
        }
        let key = rngs.params()?;
        if matches!(rngs.construction(), Construction::Zeroed) {
            return Ok(Self::of(Var::zeros(shape, dtype, rngs.device())?));
        }
        let value = init.init(key, shape, dtype, rngs.device())?;
        Self::new(&value)
    }

    /// A zero-filled parameter on `rngs`' device, drawing no key (as `jnp.zeros`).
    pub fn zeros(shape: &[usize], dtype: DType, rngs: &crate::Rngs) -> Result<Self> {
        crate::check_shape("Param", "value", shape, dtype)?;
        if let Some(var) = rngs.construction().placeholder("Param", shape, dtype)? {
            return Ok(Self::of(var));
        }
        Ok(Self::of(Var::zeros(shape, dtype, rngs.device())?))
    }

    /// The current value: tracked by autograd, or a detached view when frozen.
    #[inline]
    pub fn value(&self) -> &Tensor {
        self.frozen.as_ref().unwrap_or_else(|| self.var.as_tensor())
    }

    /// True when frozen: no gradient flows into it and it is no trainable variable.
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Freezes (`true`) or unfreezes this parameter; the value is untouched. A model's
    /// [`Module::freeze`](crate::Module::freeze) does it for every parameter a filter selects.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen.then(|| self.var.as_tensor().detach());
    }

    /// The underlying candle variable, as optimizers need it.
    pub fn var(&self) -> &Var {
        &self.var
    }

    /// Overwrites the value in place; shape and dtype must match.
    pub fn set(&self, value: &Tensor) -> Result<()> {
        Ok(self.var.set(value)?)
    }
}

impl Deref for Param {
    type Target = Tensor;
    #[inline]
    fn deref(&self) -> &Tensor {
        self.value()
    }
}

/// A non-trainable state variable (NNX `nnx.BatchStat`): BatchNorm running statistics,
/// spectral-norm vectors. Saved in checkpoints, never handed to an optimizer.
#[derive(Clone, Debug)]
pub struct BatchStat {
    var: Var,
}

impl BatchStat {
    /// Wraps `value` as a new state variable.
    pub fn new(value: &Tensor) -> Result<Self> {
        Ok(Self {
            var: Var::from_tensor(&value.detach())?,
        })
    }

    /// Initializes the value from `init`; draws no rng key unless the initializer is random.
    /// Overflow, abstract and checkpoint-filled builds as [`Param::from_init`].
    pub fn from_init<I: crate::Initializer + ?Sized>(
        init: &I,
        shape: &[usize],
        dtype: DType,
        rngs: &mut crate::Rngs,
    ) -> Result<Self> {
        crate::check_shape("BatchStat", "value", shape, dtype)?;
        if let Some(var) = rngs.construction().placeholder("BatchStat", shape, dtype)? {
            return Ok(Self { var });
        }
        let key = if init.is_random() {
            rngs.params()?
        } else {
            crate::RngKey::zero()
        };
        if matches!(rngs.construction(), Construction::Zeroed) {
            return Ok(Self {
                var: Var::zeros(shape, dtype, rngs.device())?,
            });
        }
        let value = init.init(key, shape, dtype, rngs.device())?;
        Self::new(&value)
    }

    /// The id of the variable's tensor (stable across `value()` calls, which detach).
    pub(crate) fn id(&self) -> candle_core::TensorId {
        self.var.as_tensor().id()
    }

    /// The current value, detached from autograd.
    pub fn value(&self) -> Tensor {
        self.var.as_tensor().detach()
    }

    /// Overwrites the value in place (detached); shape and dtype must match.
    pub fn set(&self, value: &Tensor) -> Result<()> {
        Ok(self.var.set(&value.detach())?)
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &Shape {
        self.var.shape()
    }
}

/// Training or evaluation mode of one layer (NNX `deterministic` / `use_running_average`).
///
/// A field of this type is switched by the root's `train()` / `eval()`; fresh modules start in
/// training mode, as in NNX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    training: bool,
}

impl Default for Mode {
    fn default() -> Self {
        Self { training: true }
    }
}

thread_local! {
    /// Set while [`Mode::evaluating`] runs on this thread.
    static EVAL_SCOPE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Mode {
    /// True in training mode (false everywhere inside [`Mode::evaluating`]).
    pub fn is_training(self) -> bool {
        self.training && !EVAL_SCOPE.with(|s| s.get())
    }

    /// The per-call override if given, else the module's mode (evaluation inside
    /// [`Mode::evaluating`]).
    pub fn resolve(self, train: Option<bool>) -> bool {
        train.unwrap_or_else(|| self.is_training())
    }

    /// Runs `f` with every module in evaluation mode on this thread, without touching any
    /// module's own mode: when `f` returns (or panics), each layer is in the mode it was in,
    /// including submodules a user switched by hand (`model.encoder.eval()`). A per-call
    /// override (`forward_t(x, Some(true))`) still wins. The Trainer's evaluation loop runs
    /// in here.
    ///
    /// ```
    /// use artifex_core::prelude::*;
    ///
    /// let mut rngs = Rngs::new(0);
    /// let drop = Dropout::builder(0.5).build(&mut rngs)?;
    /// let x = Tensor::ones((2, 8), DType::F32, &Device::Cpu)?;
    /// let y = Mode::evaluating(|| drop.forward(&x))?;
    /// assert_eq!(y.to_vec2::<f32>()?, x.to_vec2::<f32>()?); // identity in eval mode
    /// assert!(drop.is_training()); // the layer's own mode is unchanged
    /// # Ok::<(), artifex_core::Error>(())
    /// ```
    pub fn evaluating<T>(f: impl FnOnce() -> T) -> T {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                EVAL_SCOPE.with(|s| s.set(self.0));
            }
        }
        let _restore = Restore(EVAL_SCOPE.with(|s| s.replace(true)));
        f()
    }

    pub(crate) fn set(&mut self, training: bool) {
        self.training = training;
    }
}

/// The kind of one state variable, as NNX's variable types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateKind {
    /// Trainable parameter.
    Param,
    /// Non-trainable statistics (running mean/var, power-iteration vectors).
    BatchStat,
    /// The key of an rng stream.
    RngKey,
    /// The counter of an rng stream.
    RngCount,
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Param => "Param",
            StateKind::BatchStat => "BatchStat",
            StateKind::RngKey => "RngKey",
            StateKind::RngCount => "RngCount",
        })
    }
}

/// A borrowed state variable met while visiting the tree.
#[derive(Clone, Copy, Debug)]
pub enum StateRef<'a> {
    /// A trainable parameter.
    Param(&'a Param),
    /// A non-trainable statistic.
    BatchStat(&'a BatchStat),
    /// The key of an rng stream.
    RngKey(&'a RngStream),
    /// The counter of an rng stream.
    RngCount(&'a RngStream),
}

impl StateRef<'_> {
    /// Which kind of variable this is.
    pub fn kind(&self) -> StateKind {
        match self {
            StateRef::Param(_) => StateKind::Param,
            StateRef::BatchStat(_) => StateKind::BatchStat,
            StateRef::RngKey(_) => StateKind::RngKey,
            StateRef::RngCount(_) => StateKind::RngCount,
        }
    }

    /// The value's shape.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            StateRef::Param(p) => p.dims().to_vec(),
            StateRef::BatchStat(b) => b.shape().dims().to_vec(),
            StateRef::RngKey(_) => vec![crate::rng::KEY_WORDS],
            StateRef::RngCount(_) => vec![],
        }
    }

    /// The value's dtype (rng keys are `U32`, counters `I64`).
    pub fn dtype(&self) -> DType {
        match self {
            StateRef::Param(p) => p.dtype(),
            StateRef::BatchStat(b) => b.value().dtype(),
            StateRef::RngKey(_) => DType::U32,
            StateRef::RngCount(_) => DType::I64,
        }
    }

    /// The value as a tensor (rng state on the CPU).
    pub fn to_tensor(&self) -> Result<Tensor> {
        Ok(match self {
            StateRef::Param(p) => p.value().detach(),
            StateRef::BatchStat(b) => b.value(),
            StateRef::RngKey(s) => Tensor::new(&s.key().to_words()[..], &Device::Cpu)?,
            StateRef::RngCount(s) => {
                let count = i64::try_from(s.count()).map_err(|_| Error::Input {
                    module: "RngStream".into(),
                    message: format!("rng counter {} does not fit the I64 entry", s.count()),
                })?;
                Tensor::new(count, &Device::Cpu)?
            }
        })
    }

    /// Overwrites the value from `value` (same shape and dtype, any device).
    pub fn assign(&self, value: &Tensor) -> Result<()> {
        match self {
            StateRef::Param(p) => {
                let v = value.to_device(p.device())?;
                p.set(&v)
            }
            StateRef::BatchStat(b) => {
                let v = value.to_device(b.value().device())?;
                b.set(&v)
            }
            StateRef::RngKey(s) => {
                let words: Vec<u32> = value.flatten_all()?.to_vec1()?;
                s.set_key(crate::RngKey::from_words(&words)?);
                Ok(())
            }
            StateRef::RngCount(s) => {
                let stored: i64 = value.to_scalar()?;
                // Counters only grow from 0; a negative one was not written by a save.
                let count = u64::try_from(stored).map_err(|_| Error::Input {
                    module: "RngStream".into(),
                    message: format!(
                        "stored rng counter {stored} is negative: the checkpoint is corrupt"
                    ),
                })?;
                s.set_count(count);
                Ok(())
            }
        }
    }
}

/// One visited variable with its `.`-joined path.
pub type NamedState<'a> = (String, StateRef<'a>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RngKey;

    #[test]
    fn a_negative_stored_rng_counter_is_refused_as_corrupt() {
        let stream = RngStream::with_count(RngKey::from_seed(0), 7);
        let target = StateRef::RngCount(&stream);
        let err = target
            .assign(&Tensor::new(-3i64, &Device::Cpu).unwrap())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("stored rng counter -3 is negative"),
            "{err}"
        );
        assert_eq!(stream.count(), 7, "the counter is left as it was");
        target
            .assign(&Tensor::new(12i64, &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(stream.count(), 12);
    }
}
