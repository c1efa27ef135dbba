//! The one training loop behind [`Trainer`](super::Trainer) and
//! [`AdversarialTrainer`](super::AdversarialTrainer): steps with the NaN guard, evaluation,
//! logging, checkpoints, resume, the run-directory lock and clean stops. A trainer is an
//! [`Engine`] plus a [`StepTask`] that knows how to take one step.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use super::history::{History, Record, StopReason};
use super::stop::{SignalWatch, StopHandle};
use super::{CheckpointDir, MetricsLogger, Scalars, TrainerConfig, MODEL_FILE};
use crate::checkpoint::{LoadOptions, SaveOptions};
use crate::data::{DataLoader, LoaderState};
use crate::optim::{clip_grad_norm, global_norm, Optimizer};
use crate::{CheckpointError, Mode, Module, Result, StateKind, TrainError};

/// The file of per-step metrics in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The loss-curve plot in a run directory.
pub const LOSS_PLOT_FILE: &str = "loss.png";

/// One kind of training step: what a trainer does with a batch, and the optimizer state it
/// checkpoints.
pub(crate) trait StepTask {
    /// The model trained.
    type Model: Module;
    /// The trainer's name in errors.
    const NAME: &'static str;

    fn model(&self) -> &Self::Model;

    fn model_mut(&mut self) -> &mut Self::Model;

    /// One update on `batch` as step `step`. On `Err`, parameters and optimizer state must be
    /// as before the call (the engine restores batch statistics and rng counters).
    fn train_step(&mut self, batch: &[Tensor], step: u64) -> Result<Scalars>;

    /// The metrics of `batch` without any update (called in evaluation mode).
    fn eval_batch(&self, batch: &[Tensor]) -> Result<Scalars>;

    /// Optimizer state to checkpoint.
    fn optimizer_state(&self) -> Result<Vec<(String, Tensor)>>;

    /// Restores what [`StepTask::optimizer_state`] wrote.
    fn load_optimizer_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

/// The loop's state: configuration, step counter, checkpoint folder, stop handle.
pub(crate) struct Engine {
    pub(crate) config: TrainerConfig,
    pub(crate) step: u64,
    pub(crate) checkpoints: CheckpointDir,
    pub(crate) stop: StopHandle,
}

impl Engine {
    pub(crate) fn new(config: TrainerConfig) -> Self {
        let checkpoints = CheckpointDir::new(config.out_dir.join("checkpoints"), config.keep_last);
        Self {
            config,
            step: 0,
            checkpoints,
            stop: StopHandle::new(),
        }
    }

    /// One step under the NaN guard: a refused step changes nothing.
    pub(crate) fn guarded_step<T: StepTask>(
        &mut self,
        task: &mut T,
        batch: &[Tensor],
    ) -> Result<Scalars> {
        let snapshot = snapshot_non_params(task.model())?;
        match task.train_step(batch, self.step + 1) {
            Ok(metrics) => {
                self.step += 1;
                Ok(metrics)
            }
            Err(e) => {
                restore(task.model(), &snapshot)?;
                Err(e)
            }
        }
    }

    /// Averages the task's metrics over one pass of `loader` (batches weighted by size), with
    /// every layer in evaluation mode; the model's own modes are untouched.
    pub(crate) fn evaluate<T: StepTask>(
        &self,
        task: &T,
        loader: &mut DataLoader,
    ) -> Result<Scalars> {
        Mode::evaluating(|| {
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            let mut count = 0usize;
            for batch in loader.epoch_batches() {
                let batch = batch?;
                let n = batch_len(&batch);
                for (k, v) in task.eval_batch(&batch)? {
                    *sums.entry(k).or_default() += v * n as f64;
                }
                count += n;
            }
            Ok(sums
                .into_iter()
                .map(|(k, v)| (k, v / count.max(1) as f64))
                .collect())
        })
    }

    /// Trains until `total_steps` or a stop; see [`Trainer::fit`](super::Trainer::fit).
    pub(crate) fn fit<T: StepTask>(
        &mut self,
        task: &mut T,
        train: &mut DataLoader,
        mut val: Option<&mut DataLoader>,
    ) -> Result<History> {
        let cfg = self.config.clone();
        if train.batches_per_epoch() == 0 {
            return Err(TrainError::EmptyLoader {
                trainer: T::NAME.into(),
                examples: train.dataset().len(),
                batch_size: train.batch_size(),
                drop_last: train.drop_last(),
            }
            .into());
        }
        create_dir(&cfg.out_dir)?;
        self.checkpoints.lock()?;
        if self.step == 0 {
            self.prepare_fresh_run()?;
        }
        let mut logger = MetricsLogger::open(
            &cfg.out_dir.join(METRICS_FILE),
            cfg.total_steps,
            self.step,
            cfg.print_every,
        )?;
        let watch = SignalWatch::start(cfg.handle_signals);
        let started = Instant::now();
        let mut history = History::new(self.step);
        let mut last_saved = None;
        while self.step < cfg.total_steps {
            if let Some(reason) = self.stop_reason(&watch) {
                history.stop = reason;
                break;
            }
            let Some(batch) = train.next_batch()? else {
                continue; // epoch boundary: the loader reshuffles
            };
            let t0 = Instant::now();
            let metrics = self.guarded_step(task, &batch)?;
            let rate = batch_len(&batch) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            logger.log(self.step, "train", &metrics, Some(rate))?;
            history.train.push(Record {
                step: self.step,
                metrics,
            });
            let step = self.step;
            let due = |every: Option<u64>| {
                every.is_some_and(|e| e > 0 && step.is_multiple_of(e)) || step == cfg.total_steps
            };
            if let (Some(val), true) = (val.as_deref_mut(), due(cfg.eval_every)) {
                let metrics = self.evaluate(task, val)?;
                logger.log(self.step, "eval", &metrics, None)?;
                history.eval.push(Record {
                    step: self.step,
                    metrics,
                });
                self.plot_losses(&logger);
            }
            if cfg.checkpoint_every.is_some() && due(cfg.checkpoint_every) {
                history.checkpoint = Some(self.save_checkpoint(task, train)?);
                last_saved = Some(self.step);
            }
        }
        if history.interrupted() {
            if last_saved != Some(self.step) && self.step > 0 {
                history.checkpoint = Some(self.save_checkpoint(task, train)?);
            }
            let saved = match &history.checkpoint {
                Some(dir) => format!("checkpoint: {}", dir.display()),
                None => "no step taken, nothing to save".into(),
            };
            logger.message(&format!(
                "{} at step {}; {saved}; resume to continue from it",
                describe(history.stop),
                self.step
            ));
            self.stop.clear();
        }
        self.plot_losses(&logger);
        logger.finish();
        history.steps = self.step - history.first_step;
        history.seconds = started.elapsed().as_secs_f64();
        Ok(history)
    }

    fn stop_reason(&self, watch: &SignalWatch) -> Option<StopReason> {
        watch.received().or_else(|| {
            self.stop
                .is_stop_requested()
                .then_some(StopReason::Requested)
        })
    }

    /// A fresh run must not mix with another run's log and checkpoints: refuse, or clear them
    /// when `overwrite` is set.
    fn prepare_fresh_run(&self) -> Result<()> {
        let log = self.config.out_dir.join(METRICS_FILE);
        let log_len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let checkpoints = self.checkpoints.list()?;
        if log_len == 0 && checkpoints.is_empty() {
            return Ok(());
        }
        if !self.config.overwrite {
            let mut found = Vec::new();
            if log_len > 0 {
                found.push(METRICS_FILE.to_string());
            }
            if let Some((step, _)) = checkpoints.last() {
                found.push(format!("checkpoints up to step {step}"));
            }
            return Err(TrainError::RunExists {
                dir: self.config.out_dir.display().to_string(),
                found: found.join(", "),
            }
            .into());
        }
        self.checkpoints.clear()?;
        for file in [METRICS_FILE, LOSS_PLOT_FILE] {
            let path = self.config.out_dir.join(file);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&path, e).into())
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Redraws `loss.png` from the whole `metrics.jsonl`; a failure is reported, not fatal.
    fn plot_losses(&self, logger: &MetricsLogger) {
        #[cfg(feature = "plot")]
        if self.config.loss_plot {
            let dir = &self.config.out_dir;
            let drawn =
                super::plot::plot_metrics_file(&dir.join(METRICS_FILE), &dir.join(LOSS_PLOT_FILE));
            if let Err(e) = drawn {
                logger.message(&format!("warning: loss plot not written: {e}"));
            }
        }
        #[cfg(not(feature = "plot"))]
        let _ = logger;
    }

    /// Writes `checkpoints/step-N/` with the model, optimizer, step and data-order state.
    pub(crate) fn save_checkpoint<T: StepTask>(
        &self,
        task: &T,
        train: &DataLoader,
    ) -> Result<PathBuf> {
        let mut state = task.optimizer_state()?;
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
            .save(self.step, task.model(), &options, state)
    }

    /// Restores the newest checkpoint (model, optimizer, step, data order).
    pub(crate) fn resume<T: StepTask>(
        &mut self,
        task: &mut T,
        train: &mut DataLoader,
    ) -> Result<Option<u64>> {
        self.checkpoints.lock()?;
        let Some((step, dir)) = self.checkpoints.latest()? else {
            return Ok(None);
        };
        let state = CheckpointDir::load_trainer_state(&dir)?;
        // Strict: any problem is an error, so the report has nothing more to say.
        let _ = task
            .model_mut()
            .load_safetensors_with(dir.join(MODEL_FILE), &LoadOptions::strict())?;
        task.load_optimizer_state(&state)?;
        train.restore(&LoaderState::from_tensors(&state, "data.")?)?;
        self.step = step;
        Ok(Some(step))
    }
}

fn describe(reason: StopReason) -> String {
    match reason {
        StopReason::Completed => "completed".into(),
        StopReason::Requested => "stopped on request".into(),
        StopReason::Signal(2) => "interrupted (SIGINT)".into(),
        StopReason::Signal(15) => "terminated (SIGTERM)".into(),
        StopReason::Signal(n) => format!("stopped by signal {n}"),
    }
}

/// Backpropagates `loss`, clips (to `clip`) or measures the global norm of the gradient over
/// `opt`'s parameters, and records that norm in `host` as `norm_name`.
pub(crate) fn gradients<O: Optimizer>(
    loss: &Tensor,
    opt: &O,
    clip: Option<f64>,
    norm_name: &str,
    host: &mut Scalars,
) -> Result<GradStore> {
    let mut grads = loss.backward()?;
    let norm = match clip {
        Some(max_norm) => clip_grad_norm(&mut grads, opt.params(), max_norm)?,
        None => global_norm(&grads, opt.params())?,
    };
    host.insert(norm_name.into(), norm);
    Ok(grads)
}

/// The number of examples in a batch (the first tensor's leading axis).
pub(crate) fn batch_len(batch: &[Tensor]) -> usize {
    batch
        .first()
        .and_then(|t| t.dims().first().copied())
        .unwrap_or(1)
}

fn io_error(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    Ok(())
}

/// Copies of every batch statistic and rng counter, to undo a refused step.
fn snapshot_non_params<M: Module + ?Sized>(model: &M) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    let mut failed = None;
    model.visit_state(&mut crate::StatePath::root(), &mut |path, var| {
        if var.kind() != StateKind::Param && failed.is_none() {
            match var.to_tensor().and_then(|t| Ok(t.copy()?)) {
                Ok(t) => out.push((path.joined(), t)),
                Err(e) => failed = Some(e),
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn restore<M: Module + ?Sized>(model: &M, snapshot: &[(String, Tensor)]) -> Result<()> {
    let saved: BTreeMap<&str, &Tensor> = snapshot.iter().map(|(p, t)| (p.as_str(), t)).collect();
    let mut failed = None;
    model.visit_state(&mut crate::StatePath::root(), &mut |path, var| {
        if let Some(t) = saved.get(path.joined().as_str()) {
            if let Err(e) = var.assign(t) {
                failed.get_or_insert(e);
            }
        }
    });
    failed.map_or(Ok(()), Err)
}
