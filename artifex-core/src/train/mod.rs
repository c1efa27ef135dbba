//! The `Trainer` (Artifex's trainer, in Rust): a user loss closure, train and eval loops,
//! gradient clipping, learning-rate schedules, metrics logging, a NaN/inf guard, checkpoints
//! that resume bitwise-identically, a lock on the run directory, and clean stops on Ctrl-C.
//!
//! [`Trainer`] and [`AdversarialTrainer`] share one loop (steps, evaluation, logging,
//! checkpoints, resume, stops); they differ only in what one step does.
//!
//! ```no_run
//! use artifex_core::data::{DataLoader, TensorDataset};
//! use artifex_core::optim::Adam;
//! use artifex_core::prelude::*;
//! use artifex_core::train::{Metrics, Trainer, TrainerConfig};
//!
//! let mut rngs = Rngs::new(0);
//! let model = Linear::new(4, 1, &mut rngs)?;
//! let optimizer = Adam::new(model.named_params(), 1e-2)?;
//! let x = Tensor::randn(0f32, 1., (64, 4), &Device::Cpu)?;
//! let y = x.sum_keepdim(1)?;
//! let mut loader = DataLoader::new(TensorDataset::new(vec![x, y])?, 16)?;
//! let loss = |m: &Linear, b: &[Tensor]| -> Result<(Tensor, Metrics)> {
//!     let mse = artifex_core::losses::mse(&m.forward(&b[0])?, &b[1])?;
//!     Ok((mse, Metrics::new()))
//! };
//! let config = TrainerConfig::new(200, "out/linear").checkpoint_every(100);
//! let mut trainer = Trainer::new(model, optimizer, config, loss);
//! trainer.resume(&mut loader)?; // continues a stopped run, if there is one
//! let history = trainer.fit(&mut loader, None)?;
//! println!("{} steps, last loss {:?}", history.steps, history.last_train().map(|m| m["loss"]));
//! # Ok::<(), artifex_core::Error>(())
//! ```

mod adversarial;
mod checkpoints;
mod config;
mod engine;
mod history;
mod logger;
mod metrics;
mod penalty;
#[cfg(feature = "plot")]
mod plot;
mod run_lock;
mod stop;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;

pub use adversarial::AdversarialTrainer;
pub use checkpoints::{CheckpointDir, MODEL_FILE, TRAINER_FILE};
pub use config::TrainerConfig;
pub use engine::{LOSS_PLOT_FILE, METRICS_FILE};
pub use history::{History, Record, StopReason};
pub use logger::MetricsLogger;
pub use metrics::{scalar, LossOutput, Metrics, Scalars};
pub use penalty::PenalizedCritic;
#[cfg(feature = "plot")]
pub use plot::{plot_metrics_file, LossCurves};
pub use run_lock::{RunLock, LOCK_FILE};
pub use stop::StopHandle;

use crate::data::DataLoader;
use crate::optim::Optimizer;
use crate::{Module, Result};
use engine::{gradients, Engine, StepTask};
use metrics::{ensure_finite, host_scalars};

/// Trains a model with an optimizer and a loss closure `(model, batch) -> (loss, metrics)`.
pub struct Trainer<M, O, F> {
    engine: Engine,
    task: Supervised<M, O, F>,
}

/// One optimizer, one loss: the step of a [`Trainer`].
struct Supervised<M, O, F> {
    model: M,
    optimizer: O,
    loss_fn: F,
    clip_grad_norm: Option<f64>,
}

impl<M, O, F> StepTask for Supervised<M, O, F>
where
    M: Module,
    O: Optimizer,
    F: Fn(&M, &[Tensor]) -> Result<LossOutput>,
{
    type Model = M;
    const NAME: &'static str = "Trainer";

    fn model(&self) -> &M {
        &self.model
    }

    fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    fn train_step(&mut self, batch: &[Tensor], step: u64) -> Result<Scalars> {
        let (loss, metrics) = (self.loss_fn)(&self.model, batch)?;
        let mut host = host_scalars("loss", &loss, &metrics)?;
        let grads = gradients(
            &loss,
            &self.optimizer,
            self.clip_grad_norm,
            "grad_norm",
            &mut host,
        )?;
        ensure_finite(step, &host)?;
        let lr = self.optimizer.learning_rate();
        self.optimizer.step(&grads)?;
        host.insert("lr".into(), lr);
        Ok(host)
    }

    fn eval_batch(&self, batch: &[Tensor]) -> Result<Scalars> {
        let (loss, metrics) = (self.loss_fn)(&self.model, batch)?;
        host_scalars("loss", &loss, &metrics)
    }

    fn optimizer_state(&self) -> Result<Vec<(String, Tensor)>> {
        self.optimizer.state_tensors()
    }

    fn load_optimizer_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.optimizer.load_state(state)
    }
}

impl<M, O, F> Trainer<M, O, F>
where
    M: Module,
    O: Optimizer,
    F: Fn(&M, &[Tensor]) -> Result<LossOutput>,
{
    /// A trainer at step 0.
    pub fn new(model: M, optimizer: O, config: TrainerConfig, loss_fn: F) -> Self {
        let clip_grad_norm = config.clip_grad_norm;
        Self {
            engine: Engine::new(config),
            task: Supervised {
                model,
                optimizer,
                loss_fn,
                clip_grad_norm,
            },
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.task.model
    }

    /// The model, mutably (switch a submodule to eval mode to freeze its statistics, ...).
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.task.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.task.model
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &O {
        &self.task.optimizer
    }

    /// The configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.engine.config
    }

    /// Optimizer steps taken so far.
    pub fn step(&self) -> u64 {
        self.engine.step
    }

    /// The checkpoint folder.
    pub fn checkpoints(&self) -> &CheckpointDir {
        &self.engine.checkpoints
    }

    /// A handle that stops a running [`fit`](Self::fit) after its current step, as Ctrl-C does.
    pub fn stop_handle(&self) -> StopHandle {
        self.engine.stop.clone()
    }

    /// One optimization step on `batch`; returns its metrics (plus `loss`, `grad_norm`, `lr`).
    ///
    /// If any metric or the gradient norm is not finite, the step is refused: no parameter,
    /// batch statistic or rng counter changes, and the error names the metric.
    ///
    /// With a multi-rank [`communicator`](TrainerConfig::communicator) every rank must call
    /// it with its shard of the same global batch (see
    /// [`DataLoader::set_shard`](crate::data::DataLoader::set_shard)); the first call checks
    /// that the ranks hold the same parameters.
    pub fn train_step(&mut self, batch: &[Tensor]) -> Result<Scalars> {
        self.engine.guarded_step(&mut self.task, batch)
    }

    /// Averages the loss closure's metrics over one pass of `loader` (batches weighted by
    /// size) with every layer in evaluation mode ([`Mode::evaluating`](crate::Mode::evaluating)):
    /// the model's own modes, including submodules you switched by hand, are left as they are.
    pub fn evaluate(&self, loader: &mut DataLoader) -> Result<Scalars> {
        self.engine.evaluate(&self.task, loader)
    }

    /// Trains until `config.total_steps`, cycling through `train` epochs; evaluates on `val`
    /// and writes checkpoints as configured; logs to `out_dir/metrics.jsonl` (and redraws
    /// `out_dir/loss.png`). Returns the history of this call: every step's and evaluation's
    /// metrics and why it stopped.
    ///
    /// - The model trains in the modes it is in: a new model is in training mode; a submodule
    ///   you switched to `eval()` stays so (its batch statistics stay frozen). Call
    ///   `model_mut().train()` after sampling in eval mode.
    /// - A fresh run (step 0) refuses an `out_dir` holding another run's log or checkpoints
    ///   unless `config.overwrite`; after [`resume`](Self::resume) the log is appended to.
    /// - The checkpoint folder is locked for the trainer's lifetime: a second process
    ///   training into it gets [`TrainError::DirectoryInUse`](crate::TrainError::DirectoryInUse)
    ///   naming the holder.
    /// - On SIGINT/SIGTERM (`config.handle_signals`) or a [`StopHandle`] request, the step in
    ///   progress finishes, a checkpoint is written, and the history says
    ///   [`StopReason::Signal`] / [`StopReason::Requested`]; resuming from that checkpoint
    ///   continues bitwise as an uninterrupted run would.
    pub fn fit(&mut self, train: &mut DataLoader, val: Option<&mut DataLoader>) -> Result<History> {
        self.engine.fit(&mut self.task, train, val)
    }

    /// Writes `checkpoints/step-N/` with the model, optimizer, step and data-order state.
    /// With several ranks every rank calls it; rank 0 writes.
    pub fn save_checkpoint(&self, train: &DataLoader) -> Result<PathBuf> {
        self.engine.save_checkpoint(&self.task, train)
    }

    /// Restores the newest checkpoint of `out_dir/checkpoints` (model, optimizer, step, data
    /// order); returns the step resumed from, or `None` when there is none. With several
    /// ranks every rank calls it and reads the same files.
    pub fn resume(&mut self, train: &mut DataLoader) -> Result<Option<u64>> {
        self.engine.resume(&mut self.task, train)
    }
}
