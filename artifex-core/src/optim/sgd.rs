//! [`Sgd`]: stochastic gradient descent with optional (Nesterov) momentum and weight decay.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::state::{check_and_take, step_entry};
use super::{check_params, non_negative, Optimizer, Schedule};
use crate::{Error, Param, Result};

/// Hyper-parameters of [`Sgd`]; the default is plain SGD.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdConfig {
    /// Momentum decay (0: none). As optax's `trace`: `t = g + momentum * t`.
    pub momentum: f64,
    /// Nesterov momentum: the update is `g + momentum * t` instead of `t`.
    pub nesterov: bool,
    /// L2 penalty added to the gradient before momentum (`g + weight_decay * p`, as PyTorch).
    pub weight_decay: f64,
}

/// SGD (`optax.sgd`), plus coupled weight decay.
///
/// State keys: `opt.step` and, with momentum, `opt.sgd.momentum.<param path>`.
#[derive(Clone, Debug)]
pub struct Sgd {
    params: Vec<(String, Param)>,
    schedule: Schedule,
    config: SgdConfig,
    /// One trace per parameter when momentum is on, empty otherwise.
    trace: Vec<Tensor>,
    step: u64,
}

impl Sgd {
    /// Plain SGD over `params` at learning rate (or schedule) `lr`.
    pub fn new(params: Vec<(String, Param)>, lr: impl Into<Schedule>) -> Result<Self> {
        Self::with_config(params, lr, SgdConfig::default())
    }

    /// SGD with momentum / Nesterov / weight decay.
    pub fn with_config(
        params: Vec<(String, Param)>,
        lr: impl Into<Schedule>,
        config: SgdConfig,
    ) -> Result<Self> {
        check_params("Sgd", &params)?;
        let schedule = lr.into();
        schedule.validate()?;
        let SgdConfig {
            momentum,
            weight_decay,
            ..
        } = config;
        if !(non_negative(momentum) && non_negative(weight_decay)) {
            return Err(Error::config(
                "Sgd",
                format!("momentum ({momentum}) and weight_decay ({weight_decay}) must be finite and non-negative"),
            ));
        }
        let mut trace = Vec::new();
        if momentum != 0.0 {
            for (_, p) in &params {
                trace.push(p.zeros_like()?.detach());
            }
        }
        Ok(Self {
            params,
            schedule,
            config,
            trace,
            step: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn keys(&self) -> Vec<(String, &Tensor)> {
        self.params
            .iter()
            .zip(&self.trace)
            .map(|((path, _), t)| (format!("opt.sgd.momentum.{path}"), t))
            .collect()
    }
}

impl Optimizer for Sgd {
    /// Per parameter with a gradient: 2 tensor ops, +2 for weight decay, +2 for momentum,
    /// +2 for Nesterov.
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.schedule.lr_at(self.step);
        let SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        } = self.config;
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.value()) else {
                continue;
            };
            // Gradients can carry the backward graph (they are built from tracked forward
            // tensors); detached, the optimizer state never keeps a step's graph alive.
            let g = g.detach();
            let value = p.value().detach();
            let g = if weight_decay != 0.0 {
                (value.affine(weight_decay, 0.0)? + g)?
            } else {
                g.clone()
            };
            let update = match self.trace.get_mut(i) {
                Some(trace) => {
                    let t = (trace.affine(momentum, 0.0)? + &g)?;
                    let u = if nesterov {
                        (t.affine(momentum, 0.0)? + &g)?
                    } else {
                        t.clone()
                    };
                    *trace = t;
                    u
                }
                None => g,
            };
            p.set(&(value - update.affine(lr, 0.0)?)?)?;
        }
        self.step += 1;
        Ok(())
    }

    fn params(&self) -> &[(String, Param)] {
        &self.params
    }

    fn step_count(&self) -> u64 {
        self.step
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![step_entry(self.step)?];
        out.extend(self.keys().into_iter().map(|(k, t)| (k, t.clone())));
        Ok(out)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let (step, values) = check_and_take("Sgd", &self.keys(), state)?;
        self.trace = values;
        self.step = step;
        Ok(())
    }
}
