//! Optimizers with checkpointable state, keyed by parameter path: [`Sgd`], [`Adam`],
//! [`AdamW`]; global-norm clipping; learning-rate [`Schedule`]s.
//!
//! Built over `model.named_params()`; [`Optimizer::state_tensors`] gives `opt.*` entries to
//! save beside the model's state in one safetensors file, and [`Optimizer::load_state`] takes
//! them back (entries outside `opt.` are ignored), so a resumed run continues bit for bit.
//!
//! ```
//! use artifex_core::optim::{self, AdamW, Optimizer, Schedule};
//! use artifex_core::prelude::*;
//!
//! let model = artifex_core::layers::Linear::new(4, 2, &mut Rngs::new(0))?;
//! let lr = Schedule::WarmupCosine { peak: 1e-3, warmup_steps: 10, decay_steps: 100, end: 0.0 };
//! let mut opt = AdamW::new(model.named_params(), lr, 1e-4)?;
//! let x = Tensor::ones((8, 4), DType::F32, &Device::Cpu)?;
//! let mut grads = model.forward(&x)?.sqr()?.mean_all()?.backward()?;
//! let norm = opt.clip_grad_norm(&mut grads, 1.0)?;
//! opt.step(&grads)?;
//! assert!(norm > 0.0 && opt.step_count() == 1);
//! let keys: Vec<String> = opt.state_tensors()?.into_iter().map(|(k, _)| k).collect();
//! assert!(keys.contains(&"opt.adam.mu.kernel".to_string()));
//! # Ok::<(), artifex_core::Error>(())
//! ```

mod adam;
mod adam_update;
mod clip;
mod schedule;
mod sgd;
mod state;

use std::collections::{HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::Tensor;

pub use adam::{Adam, AdamConfig, AdamW};
pub use clip::{clip_grad_norm, global_norm};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};
pub use state::{load_state_file, load_tensors, save_state_file, save_tensors, PREFIX, STEP_KEY};

use crate::{Error, Param, Result};

/// What every optimizer offers: an update from gradients and checkpointable state.
pub trait Optimizer {
    /// Applies one update from `grads` (parameters without a gradient are left as they are;
    /// the step counter advances once per call).
    fn step(&mut self, grads: &GradStore) -> Result<()>;

    /// The parameters updated, with their paths.
    fn params(&self) -> &[(String, Param)];

    /// Updates applied so far (`opt.step`).
    fn step_count(&self) -> u64;

    /// The learning-rate schedule.
    fn schedule(&self) -> &Schedule;

    /// The learning rate of the next update.
    fn learning_rate(&self) -> f64 {
        self.schedule().lr_at(self.step_count())
    }

    /// The state as `opt.*` entries: `opt.step` (an `I64` scalar) and the per-parameter
    /// buffers keyed by parameter path.
    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>>;

    /// Restores the state from entries as written by [`Optimizer::state_tensors`]; any missing,
    /// mis-shaped or unknown `opt.*` entry is an [`Error::OptimizerState`] and changes nothing.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;

    /// [`clip_grad_norm`] over this optimizer's parameters; returns the norm before clipping.
    fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        clip::clip_grad_norm(grads, self.params(), max_norm)
    }

    /// Backpropagates `loss` and applies the update.
    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = crate::autodiff::backward(loss)?;
        self.step(&grads)
    }
}

/// True for finite values `>= 0`.
pub(crate) fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// Parameter paths must be unique (they key the state) and values floating point.
pub(crate) fn check_params(optimizer: &str, params: &[(String, Param)]) -> Result<()> {
    let mut seen = HashSet::new();
    for (path, p) in params {
        if !seen.insert(path.as_str()) {
            return Err(Error::config(
                optimizer,
                format!("parameter path `{path}` appears twice"),
            ));
        }
        if !p.dtype().is_float() {
            return Err(Error::config(
                optimizer,
                format!("parameter `{path}` has dtype {:?}, not a float", p.dtype()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
