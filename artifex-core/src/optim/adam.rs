//! [`Adam`] and [`AdamW`], with optax's formulas: bias-corrected moments and `eps` added
//! outside the square root.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::adam_update::{fused_all, update, Coefs};
use super::state::{check_and_take, step_entry};
use super::{check_params, non_negative, Optimizer, Schedule};
use crate::{Error, Param, Result};

/// Hyper-parameters shared by [`Adam`] and [`AdamW`]; the defaults are optax's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Decay of the first moment (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment (default 0.999).
    pub beta2: f64,
    /// Added to the denominator outside the square root (default 1e-8).
    pub eps: f64,
    /// Added to the second moment inside the square root (default 0).
    pub eps_root: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
        }
    }
}

/// The state and update shared by Adam and AdamW.
///
/// The moments are owned: the fused CPU update writes them in place, so `Clone`,
/// `state_tensors` and `load_state` copy them instead of sharing storage.
#[derive(Debug)]
struct AdamCore {
    name: &'static str,
    params: Vec<(String, Param)>,
    schedule: Schedule,
    config: AdamConfig,
    weight_decay: f64,
    mu: Vec<Tensor>,
    nu: Vec<Tensor>,
    step: u64,
}

impl Clone for AdamCore {
    fn clone(&self) -> Self {
        // A copy fails only on an accelerator (out of memory, ...), where the update never
        // runs in place, so sharing the storage is then harmless.
        let own = |ts: &[Tensor]| -> Vec<Tensor> {
            ts.iter()
                .map(|t| t.copy().unwrap_or_else(|_| t.clone()))
                .collect()
        };
        Self {
            name: self.name,
            params: self.params.clone(),
            schedule: self.schedule.clone(),
            config: self.config.clone(),
            weight_decay: self.weight_decay,
            mu: own(&self.mu),
            nu: own(&self.nu),
            step: self.step,
        }
    }
}

impl AdamCore {
    fn new(
        name: &'static str,
        params: Vec<(String, Param)>,
        schedule: Schedule,
        config: AdamConfig,
        weight_decay: f64,
    ) -> Result<Self> {
        check_params(name, &params)?;
        schedule.validate()?;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            eps_root,
        } = config;
        let in_unit = |b: f64| (0.0..1.0).contains(&b);
        if !in_unit(beta1) || !in_unit(beta2) {
            return Err(Error::config(
                name,
                format!("betas must be in [0, 1), got ({beta1}, {beta2})"),
            ));
        }
        if ![eps, eps_root, weight_decay].into_iter().all(non_negative) {
            return Err(Error::config(
                name,
                format!("eps ({eps}), eps_root ({eps_root}) and weight_decay ({weight_decay}) must be finite and non-negative"),
            ));
        }
        let mut mu = Vec::with_capacity(params.len());
        let mut nu = Vec::with_capacity(params.len());
        for (_, p) in &params {
            // Separate storages: the fused update writes them in place.
            mu.push(p.zeros_like()?.detach());
            nu.push(p.zeros_like()?.detach());
        }
        Ok(Self {
            name,
            params,
            schedule,
            config,
            weight_decay,
            mu,
            nu,
            step: 0,
        })
    }

    /// Per parameter with a gradient: one fused in-place pass for contiguous f32 CPU tensors,
    /// else 13 tensor ops (14 with weight decay); no host sync either way.
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.schedule.lr_at(self.step);
        let t = self.step + 1;
        let AdamConfig {
            beta1: b1,
            beta2: b2,
            eps,
            eps_root,
        } = self.config;
        let coefs = Coefs {
            b1,
            b2,
            inv_bc2: 1.0 / (1.0 - b2.powf(t as f64)),
            eps_root,
            eps,
            lr_bc1: lr / (1.0 - b1.powf(t as f64)),
            decay: (self.weight_decay != 0.0).then_some(1.0 - lr * self.weight_decay),
        };
        // Gradients can carry the backward graph (they are built from tracked forward
        // tensors); detached, the optimizer state never keeps a step's graph alive.
        let with_grads: Vec<(usize, Tensor)> = (self.params.iter().enumerate())
            .filter_map(|(i, (_, p))| Some((i, grads.get(p.value())?.detach())))
            .collect();
        let all: Vec<_> = (with_grads.iter())
            .map(|(i, g)| (self.params[*i].1.value(), g, &self.mu[*i], &self.nu[*i]))
            .collect();
        if !(crate::fast_paths::enabled() && fused_all(&all, &coefs)?) {
            for (i, g) in &with_grads {
                let p = &self.params[*i].1;
                update(p, g, &mut self.mu[*i], &mut self.nu[*i], &coefs)?;
            }
        }
        self.step = t;
        Ok(())
    }

    fn keys(&self) -> impl Iterator<Item = (String, &Tensor)> {
        let mu = self.params.iter().zip(&self.mu);
        let nu = self.params.iter().zip(&self.nu);
        mu.map(|((path, _), m)| (format!("opt.adam.mu.{path}"), m))
            .chain(nu.map(|((path, _), n)| (format!("opt.adam.nu.{path}"), n)))
    }

    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![step_entry(self.step)?];
        // Copies: the moments are updated in place, a snapshot must not move with them.
        for (k, t) in self.keys() {
            out.push((k, t.copy()?));
        }
        Ok(out)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let expected: Vec<(String, &Tensor)> = self.keys().collect();
        let (step, values) = check_and_take(self.name, &expected, state)?;
        // Own copies: the moments are updated in place, the caller's tensors must not move.
        let mut values = values
            .iter()
            .map(Tensor::copy)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let nu = values.split_off(self.params.len());
        self.mu = values;
        self.nu = nu;
        self.step = step;
        Ok(())
    }
}

/// Adam (`optax.adam`): bias-corrected first and second moments, no weight decay.
///
/// State keys: `opt.step`, `opt.adam.mu.<param path>`, `opt.adam.nu.<param path>`; the
/// moments have the dtype of their parameter.
///
/// ```
/// use artifex_core::optim::{Adam, Optimizer};
/// use artifex_core::{candle_core::{Device, Tensor}, Param};
///
/// let w = Param::new(&Tensor::new(&[1f32, -2.0], &Device::Cpu)?)?;
/// let mut opt = Adam::new(vec![("w".into(), w.clone())], 0.1)?;
/// for _ in 0..100 {
///     let loss = w.sqr()?.sum_all()?;
///     opt.backward_step(&loss)?;
/// }
/// assert!(w.sqr()?.sum_all()?.to_scalar::<f32>()? < 0.05);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    core: AdamCore,
}

impl Adam {
    /// Adam with optax's defaults (betas 0.9 / 0.999, eps 1e-8) over `params`
    /// (`model.named_params()`), at learning rate (or schedule) `lr`.
    pub fn new(params: Vec<(String, Param)>, lr: impl Into<Schedule>) -> Result<Self> {
        Self::with_config(params, lr, AdamConfig::default())
    }

    /// Adam with explicit hyper-parameters.
    pub fn with_config(
        params: Vec<(String, Param)>,
        lr: impl Into<Schedule>,
        config: AdamConfig,
    ) -> Result<Self> {
        Ok(Self {
            core: AdamCore::new("Adam", params, lr.into(), config, 0.0)?,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.core.config
    }
}

/// AdamW (`optax.adamw`): Adam with decoupled weight decay, `p -= lr * (adam_update + wd * p)`,
/// applied to every parameter given that has a gradient in the step.
///
/// A parameter without a gradient in a step (frozen with `Module::freeze` after the optimizer
/// was built, or not used by the loss) is left exactly as it is: no moment update and no weight
/// decay. `optax.adamw` would still decay it (its update is zero, the decay is not); to decay
/// every parameter, keep them all in the loss's graph.
///
/// State keys are Adam's (`opt.adam.mu.*`, `opt.adam.nu.*`, `opt.step`), so the moments carry
/// over between the two.
#[derive(Clone, Debug)]
pub struct AdamW {
    core: AdamCore,
}

impl AdamW {
    /// AdamW with optax's default betas and eps and the given `weight_decay` (optax's default
    /// is 1e-4).
    pub fn new(
        params: Vec<(String, Param)>,
        lr: impl Into<Schedule>,
        weight_decay: f64,
    ) -> Result<Self> {
        Self::with_config(params, lr, AdamConfig::default(), weight_decay)
    }

    /// AdamW with explicit hyper-parameters.
    pub fn with_config(
        params: Vec<(String, Param)>,
        lr: impl Into<Schedule>,
        config: AdamConfig,
        weight_decay: f64,
    ) -> Result<Self> {
        Ok(Self {
            core: AdamCore::new("AdamW", params, lr.into(), config, weight_decay)?,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.core.config
    }

    /// The decoupled weight decay.
    pub fn weight_decay(&self) -> f64 {
        self.core.weight_decay
    }
}

macro_rules! delegate_to_core {
    ($ty:ty) => {
        impl Optimizer for $ty {
            fn step(&mut self, grads: &GradStore) -> Result<()> {
                self.core.step(grads)
            }
            fn params(&self) -> &[(String, Param)] {
                &self.core.params
            }
            fn step_count(&self) -> u64 {
                self.core.step
            }
            fn schedule(&self) -> &Schedule {
                &self.core.schedule
            }
            fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
                self.core.state_tensors()
            }
            fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
                self.core.load_state(state)
            }
        }
    };
}

delegate_to_core!(Adam);
delegate_to_core!(AdamW);
