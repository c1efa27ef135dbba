//! GAN training: two optimizers, alternating discriminator and generator updates, on the same
//! loop as the [`Trainer`](super::Trainer) (evaluation, logging, checkpoints, resume, NaN
//! guard, clean stops).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;

use super::engine::{gradients, Engine, StepTask};
use super::metrics::{ensure_finite, host_scalars};
use super::penalty::{metric_name, penalty_of, PenalizedCritic, Penalty};
use super::{CheckpointDir, History, LossOutput, Scalars, StopHandle, TrainerConfig};
use crate::data::DataLoader;
use crate::losses::GradientPenalty;
use crate::optim::Optimizer;
use crate::{Error, Module, Result};

/// Trains a two-player model: each step updates the discriminator on a real batch with its
/// optimizer, then the generator with the other one. Both objectives come from closures, so
/// any GAN loss (non-saturating, hinge, least squares, Wasserstein) plugs in:
/// `d_loss(model, real_batch)` and `g_loss(model, batch_size)`. Optional: a gradient penalty
/// of the critic ([`gradient_penalty`](Self::gradient_penalty), WGAN-GP or R1) and several
/// critic updates per generator update ([`generator_every`](Self::generator_every)).
///
/// A step is all or nothing: if the generator's loss or gradient is not finite after the
/// discriminator was updated, the discriminator's parameters and optimizer state are put back
/// too (a copy of them is kept during each step for that).
pub struct AdversarialTrainer<M, D, G, DL, GL> {
    engine: Engine,
    task: Adversarial<M, D, G, DL, GL>,
}

struct Adversarial<M, D, G, DL, GL> {
    model: M,
    d_opt: D,
    g_opt: G,
    d_loss: DL,
    g_loss: GL,
    clip_grad_norm: Option<f64>,
    penalty: Option<Penalty<M>>,
    generator_every: u64,
}

impl<M, D, G, DL, GL> Adversarial<M, D, G, DL, GL>
where
    D: Optimizer,
{
    /// Copies of the discriminator's parameters and optimizer state.
    fn snapshot_discriminator(&self) -> Result<(Vec<Tensor>, HashMap<String, Tensor>)> {
        let params = self
            .d_opt
            .params()
            .iter()
            .map(|(_, p)| Ok(p.var().as_tensor().copy()?))
            .collect::<Result<Vec<_>>>()?;
        Ok((params, self.d_opt.state_tensors()?.into_iter().collect()))
    }

    fn restore_discriminator(
        &mut self,
        (params, state): (Vec<Tensor>, HashMap<String, Tensor>),
    ) -> Result<()> {
        for ((_, p), saved) in self.d_opt.params().iter().zip(&params) {
            p.var().set(saved)?;
        }
        self.d_opt.load_state(&state)
    }
}

impl<M, D, G, DL, GL> StepTask for Adversarial<M, D, G, DL, GL>
where
    M: Module,
    D: Optimizer,
    G: Optimizer,
    DL: Fn(&M, &Tensor) -> Result<LossOutput>,
    GL: Fn(&M, usize) -> Result<LossOutput>,
{
    type Model = M;
    const NAME: &'static str = "AdversarialTrainer";

    fn model(&self) -> &M {
        &self.model
    }

    fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    fn train_step(&mut self, batch: &[Tensor], step: u64) -> Result<Scalars> {
        let real = real_batch(batch)?;
        let (mut loss, mut metrics) = (self.d_loss)(&self.model, real)?;
        if let Some(p) = &self.penalty {
            let value = (p.compute)(&self.model, p.kind, real)?;
            loss = (loss + (&value * p.weight)?)?;
            metrics.insert(metric_name(p.kind).to_string(), value);
        }
        let mut host = host_scalars("d_loss", &loss, &metrics)?;
        let grads = gradients(
            &loss,
            &self.d_opt,
            self.clip_grad_norm,
            "d_grad_norm",
            &mut host,
        )?;
        ensure_finite(step, &host)?;
        let snapshot = self.snapshot_discriminator()?;
        self.d_opt.step(&grads)?;
        if !step.is_multiple_of(self.generator_every) {
            return Ok(host);
        }

        let generator = (|| {
            let (loss, metrics) = (self.g_loss)(&self.model, real.dim(0)?)?;
            let mut g_host = host_scalars("g_loss", &loss, &metrics)?;
            let grads = gradients(
                &loss,
                &self.g_opt,
                self.clip_grad_norm,
                "g_grad_norm",
                &mut g_host,
            )?;
            ensure_finite(step, &g_host)?;
            Ok((g_host, grads))
        })();
        let (g_host, grads) = match generator {
            Ok(ok) => ok,
            Err(e) => {
                self.restore_discriminator(snapshot)?;
                return Err(e);
            }
        };
        self.g_opt.step(&grads)?;
        host.extend(g_host);
        Ok(host)
    }

    fn eval_batch(&self, batch: &[Tensor]) -> Result<Scalars> {
        let real = real_batch(batch)?;
        let (loss, metrics) = (self.d_loss)(&self.model, real)?;
        let mut host = host_scalars("d_loss", &loss, &metrics)?;
        let (loss, metrics) = (self.g_loss)(&self.model, real.dim(0)?)?;
        host.extend(host_scalars("g_loss", &loss, &metrics)?);
        Ok(host)
    }

    fn optimizer_state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut state = Vec::new();
        for (prefix, opt) in [
            ("d.", &self.d_opt as &dyn Optimizer),
            ("g.", &self.g_opt as &dyn Optimizer),
        ] {
            state.extend(
                opt.state_tensors()?
                    .into_iter()
                    .map(|(k, t)| (format!("{prefix}{k}"), t)),
            );
        }
        Ok(state)
    }

    fn load_optimizer_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let part = |prefix: &str| -> HashMap<String, Tensor> {
            state
                .iter()
                .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t.clone())))
                .collect()
        };
        self.d_opt.load_state(&part("d."))?;
        self.g_opt.load_state(&part("g."))
    }
}

fn real_batch(batch: &[Tensor]) -> Result<&Tensor> {
    batch.first().ok_or_else(|| {
        Error::config(
            "AdversarialTrainer",
            "a batch without tensors (the first tensor of each batch is the real data)",
        )
    })
}

impl<M, D, G, DL, GL> AdversarialTrainer<M, D, G, DL, GL>
where
    M: Module + PenalizedCritic,
    D: Optimizer,
    G: Optimizer,
    DL: Fn(&M, &Tensor) -> Result<LossOutput>,
    GL: Fn(&M, usize) -> Result<LossOutput>,
{
    /// Adds `weight` times a gradient penalty of the critic to the discriminator's loss at
    /// every step ([`crate::losses::wgan_gp_penalty`] on interpolates of the real batch and as
    /// many fresh generated samples, or [`crate::losses::r1_penalty`] on the real batch); its
    /// unweighted value is logged as `gp` or `r1`. Usual weights: 10 for WGAN-GP, `γ/2` for R1.
    /// Evaluation reports the adversarial losses without it.
    ///
    /// The penalty differentiates a gradient, so the program must be in higher-order mode:
    /// call [`crate::autodiff::enable_higher_order`] at the start of `main` (the first step is
    /// an error saying so otherwise).
    pub fn gradient_penalty(mut self, kind: GradientPenalty, weight: f64) -> Self {
        self.task.penalty = Some(Penalty {
            kind,
            weight,
            compute: penalty_of::<M>,
        });
        self
    }
}

impl<M, D, G, DL, GL> AdversarialTrainer<M, D, G, DL, GL>
where
    M: Module,
    D: Optimizer,
    G: Optimizer,
    DL: Fn(&M, &Tensor) -> Result<LossOutput>,
    GL: Fn(&M, usize) -> Result<LossOutput>,
{
    /// `d_opt` must hold the discriminator's parameters and `g_opt` the generator's;
    /// `d_loss(model, real)` and `g_loss(model, batch_size)` give each player's objective.
    pub fn new(
        model: M,
        d_opt: D,
        g_opt: G,
        config: TrainerConfig,
        d_loss: DL,
        g_loss: GL,
    ) -> Self {
        let clip_grad_norm = config.clip_grad_norm;
        Self {
            engine: Engine::new(config),
            task: Adversarial {
                model,
                d_opt,
                g_opt,
                d_loss,
                g_loss,
                clip_grad_norm,
                penalty: None,
                generator_every: 1,
            },
        }
    }

    /// Updates the generator only every `n`-th step (the discriminator every step): WGAN-GP's
    /// `n_critic` (5 in Gulrajani et al.), each critic update on a fresh real batch. Steps
    /// without a generator update log no `g_loss` / `g_grad_norm`. `n = 0` counts as 1.
    pub fn generator_every(mut self, n: u64) -> Self {
        self.task.generator_every = n.max(1);
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.task.model
    }

    /// The model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.task.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.task.model
    }

    /// Steps taken so far.
    pub fn step(&self) -> u64 {
        self.engine.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.engine.config
    }

    /// The checkpoint folder.
    pub fn checkpoints(&self) -> &CheckpointDir {
        &self.engine.checkpoints
    }

    /// A handle that stops a running [`fit`](Self::fit) after its current step.
    pub fn stop_handle(&self) -> StopHandle {
        self.engine.stop.clone()
    }

    /// One discriminator update on `batch[0]` (the real data), then one generator update;
    /// metrics `d_loss`, `g_loss`, `d_grad_norm`, `g_grad_norm` and the closures' own. A
    /// non-finite value refuses the whole step: nothing changes, the error names the metric.
    pub fn train_step(&mut self, batch: &[Tensor]) -> Result<Scalars> {
        self.engine.guarded_step(&mut self.task, batch)
    }

    /// Both losses averaged over one pass of `loader`, every layer in evaluation mode.
    pub fn evaluate(&self, loader: &mut DataLoader) -> Result<Scalars> {
        self.engine.evaluate(&self.task, loader)
    }

    /// Trains until `config.total_steps`, exactly as [`Trainer::fit`](super::Trainer::fit)
    /// (evaluation, `metrics.jsonl`, `loss.png`, checkpoints, lock, clean stops).
    pub fn fit(&mut self, train: &mut DataLoader, val: Option<&mut DataLoader>) -> Result<History> {
        self.engine.fit(&mut self.task, train, val)
    }

    /// Writes `checkpoints/step-N/` (model, both optimizers as `d.opt.*` / `g.opt.*`, step,
    /// data order).
    pub fn save_checkpoint(&self, train: &DataLoader) -> Result<PathBuf> {
        self.engine.save_checkpoint(&self.task, train)
    }

    /// Restores the newest checkpoint; returns its step, or `None` when there is none.
    pub fn resume(&mut self, train: &mut DataLoader) -> Result<Option<u64>> {
        self.engine.resume(&mut self.task, train)
    }
}
