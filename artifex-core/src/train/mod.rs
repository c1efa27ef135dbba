//! The `Trainer` (Artifex's trainer, in Rust): a user loss closure, train and eval loops,
//! gradient clipping, learning-rate schedules, metrics logging, a NaN/inf guard, and
//! checkpoints that resume bitwise-identically.

mod adversarial;
mod checkpoints;
mod logger;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

pub use adversarial::AdversarialTrainer;
pub use checkpoints::{CheckpointDir, MODEL_FILE, TRAINER_FILE};
pub use logger::MetricsLogger;

use crate::checkpoint::{LoadOptions, SaveOptions};
use crate::data::{DataLoader, LoaderState};
use crate::optim::{clip_grad_norm, global_norm, Optimizer};
use crate::{Error, Module, Result, StateKind};

/// Named scalar metrics of one step, as tensors (the loss closure's second return value).
pub type Metrics = BTreeMap<String, Tensor>;

/// What a loss closure returns: the scalar to minimize and metrics to log.
pub type LossOutput = (Tensor, Metrics);

/// Settings of a [`Trainer`].
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Train until this many optimizer steps have been taken in total.
    pub total_steps: u64,
    /// Run the evaluation loop every N steps (and at the end) when a validation loader is given.
    pub eval_every: Option<u64>,
    /// Write a checkpoint every N steps (and at the end).
    pub checkpoint_every: Option<u64>,
    /// How many checkpoints to keep.
    pub keep_last: usize,
    /// Where `metrics.jsonl` and `checkpoints/` go.
    pub out_dir: PathBuf,
    /// Clip gradients to this global norm (the learning-rate schedule is the optimizer's).
    pub clip_grad_norm: Option<f64>,
    /// Without a terminal, print a plain progress line every N steps (`None`: quiet).
    pub print_every: Option<u64>,
    /// Model configuration JSON stored in checkpoint metadata.
    pub model_config_json: Option<String>,
}

impl TrainerConfig {
    /// `total_steps`, writing into `out_dir`; no eval, no checkpoints, no clipping.
    pub fn new(total_steps: u64, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            total_steps,
            eval_every: None,
            checkpoint_every: None,
            keep_last: 3,
            out_dir: out_dir.into(),
            clip_grad_norm: None,
            print_every: None,
            model_config_json: None,
        }
    }
}

/// Trains a model with an optimizer and a loss closure `(model, batch) -> (loss, metrics)`.
pub struct Trainer<M, O, F> {
    model: M,
    optimizer: O,
    loss_fn: F,
    config: TrainerConfig,
    step: u64,
    checkpoints: CheckpointDir,
}

/// A finished run: the last metrics of each split and timing.
#[derive(Clone, Debug, Default)]
pub struct TrainSummary {
    /// Steps taken in this call.
    pub steps: u64,
    /// Metrics of the last training step.
    pub last_train: BTreeMap<String, f64>,
    /// Metrics of the last evaluation.
    pub last_eval: BTreeMap<String, f64>,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
}

impl<M, O, F> Trainer<M, O, F>
where
    M: Module,
    O: Optimizer,
    F: Fn(&M, &[Tensor]) -> Result<LossOutput>,
{
    /// A trainer at step 0.
    pub fn new(model: M, optimizer: O, config: TrainerConfig, loss_fn: F) -> Self {
        let checkpoints = CheckpointDir::new(config.out_dir.join("checkpoints"), config.keep_last);
        Self {
            model,
            optimizer,
            loss_fn,
            config,
            step: 0,
            checkpoints,
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// Optimizer steps taken so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The checkpoint folder.
    pub fn checkpoints(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    /// One optimization step on `batch`; returns its metrics (plus `loss`, `grad_norm`, `lr`).
    ///
    /// If any metric or the gradient norm is not finite, the step is refused: no parameter,
    /// batch statistic or rng counter changes, and the error names the metric.
    pub fn train_step(&mut self, batch: &[Tensor]) -> Result<BTreeMap<String, f64>> {
        let snapshot = self.snapshot_state()?;
        let outcome = self.try_step(batch);
        if outcome.is_err() {
            self.restore_state(&snapshot)?;
        }
        outcome
    }

    fn try_step(&mut self, batch: &[Tensor]) -> Result<BTreeMap<String, f64>> {
        let (loss, metrics) = (self.loss_fn)(&self.model, batch)?;
        let mut host = host_metrics(&metrics)?;
        host.insert("loss".into(), scalar(&loss)?);
        let grads = loss.backward()?;
        let mut grads = grads;
        let params = self.optimizer.params();
        let norm = match self.config.clip_grad_norm {
            Some(max_norm) => clip_grad_norm(&mut grads, params, max_norm)?,
            None => global_norm(&grads, params)?,
        };
        host.insert("grad_norm".into(), norm);
        if let Some((name, value)) = host.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                step: self.step + 1,
                metric: name.clone(),
                value: *value,
            });
        }
        let lr = self.optimizer.learning_rate();
        self.optimizer.step(&grads)?;
        host.insert("lr".into(), lr);
        self.step += 1;
        Ok(host)
    }

    /// Copies of every batch statistic and rng counter, to undo a refused step.
    fn snapshot_state(&self) -> Result<Vec<(String, Tensor)>> {
        self.model
            .state()
            .into_iter()
            .filter(|(_, v)| v.kind() != StateKind::Param)
            .map(|(p, v)| Ok((p, v.to_tensor()?.copy()?)))
            .collect()
    }

    fn restore_state(&self, snapshot: &[(String, Tensor)]) -> Result<()> {
        let saved: BTreeMap<&str, &Tensor> =
            snapshot.iter().map(|(p, t)| (p.as_str(), t)).collect();
        for (path, var) in self.model.state() {
            if let Some(t) = saved.get(path.as_str()) {
                var.assign(t)?;
            }
        }
        Ok(())
    }

    /// Averages the loss closure's metrics over one pass of `loader` in eval mode (batches
    /// weighted by size), then switches the model back to training mode.
    pub fn evaluate(&mut self, loader: &mut DataLoader) -> Result<BTreeMap<String, f64>>
    where
        M: Sized,
    {
        self.model.eval();
        let result = (|| {
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            let mut count = 0usize;
            for batch in loader.epoch_batches() {
                let batch = batch?;
                let n = batch
                    .first()
                    .map(|t| t.dims().first().copied().unwrap_or(1))
                    .unwrap_or(1);
                let (loss, metrics) = (self.loss_fn)(&self.model, &batch)?;
                let mut host = host_metrics(&metrics)?;
                host.insert("loss".into(), scalar(&loss)?);
                for (k, v) in host {
                    *sums.entry(k).or_default() += v * n as f64;
                }
                count += n;
            }
            Ok(sums
                .into_iter()
                .map(|(k, v)| (k, v / count.max(1) as f64))
                .collect())
        })();
        self.model.train();
        result
    }

    /// Trains until `config.total_steps`, cycling through `train` epochs; evaluates on `val`
    /// and writes checkpoints as configured; logs to `out_dir/metrics.jsonl`.
    pub fn fit(
        &mut self,
        train: &mut DataLoader,
        mut val: Option<&mut DataLoader>,
    ) -> Result<TrainSummary>
    where
        M: Sized,
    {
        let cfg = self.config.clone();
        std::fs::create_dir_all(&cfg.out_dir).map_err(|source| crate::CheckpointError::Io {
            path: cfg.out_dir.display().to_string(),
            source,
        })?;
        let mut logger = MetricsLogger::open(
            &cfg.out_dir.join("metrics.jsonl"),
            cfg.total_steps,
            self.step,
            cfg.print_every,
        )?;
        let started = Instant::now();
        let first_step = self.step;
        let mut summary = TrainSummary::default();
        if train.batches_per_epoch() == 0 {
            return Err(Error::config(
                "Trainer",
                "the training loader yields no batch (empty dataset, or drop_last with fewer examples than one batch)",
            ));
        }
        self.model.train();
        while self.step < cfg.total_steps {
            let batch = match train.next_batch()? {
                Some(b) => b,
                None => continue, // epoch boundary: the loader reshuffles
            };
            let n = batch
                .first()
                .map(|t| t.dims().first().copied().unwrap_or(1))
                .unwrap_or(1);
            let t0 = Instant::now();
            let metrics = self.train_step(&batch)?;
            let rate = n as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            logger.log(self.step, "train", &metrics, Some(rate))?;
            summary.last_train = metrics;
            let step = self.step;
            let due = |every: Option<u64>| {
                every.is_some_and(|e| e > 0 && step.is_multiple_of(e)) || step == cfg.total_steps
            };
            if let (Some(val), true) = (val.as_deref_mut(), due(cfg.eval_every)) {
                let metrics = self.evaluate(val)?;
                logger.log(self.step, "eval", &metrics, None)?;
                summary.last_eval = metrics;
            }
            if cfg.checkpoint_every.is_some() && due(cfg.checkpoint_every) {
                self.save_checkpoint(train)?;
            }
        }
        logger.finish();
        summary.steps = self.step - first_step;
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Writes `checkpoints/step-N/` with the model, optimizer, step and data-order state.
    pub fn save_checkpoint(&self, train: &DataLoader) -> Result<PathBuf>
    where
        M: Sized,
    {
        let mut state = self.optimizer.state_tensors()?;
        state.extend(train.state().to_tensors("data.")?);
        state.push((
            "trainer.step".into(),
            Tensor::new(self.step as i64, &Device::Cpu)?,
        ));
        let options = SaveOptions {
            config_json: self.config.model_config_json.clone(),
            ..SaveOptions::default()
        };
        self.checkpoints
            .save(self.step, &self.model, &options, state)
    }

    /// Restores the newest checkpoint of `out_dir/checkpoints` (model, optimizer, step, data
    /// order); returns the step resumed from, or `None` when there is none.
    pub fn resume(&mut self, train: &mut DataLoader) -> Result<Option<u64>>
    where
        M: Sized,
    {
        let Some((step, dir)) = self.checkpoints.latest()? else {
            return Ok(None);
        };
        let state = CheckpointDir::load_trainer_state(&dir)?;
        let _ = self
            .model
            .load_safetensors_with(dir.join(MODEL_FILE), &LoadOptions::strict())?;
        self.optimizer.load_state(&state)?;
        train.restore(&LoaderState::from_tensors(&state, "data.")?)?;
        self.step = step;
        Ok(Some(step))
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

fn host_metrics(metrics: &Metrics) -> Result<BTreeMap<String, f64>> {
    metrics
        .iter()
        .map(|(k, v)| Ok((k.clone(), scalar(v)?)))
        .collect()
}
