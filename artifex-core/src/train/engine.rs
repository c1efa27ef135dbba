//! The one training loop behind [`Trainer`](super::Trainer) and
//! [`AdversarialTrainer`](super::AdversarialTrainer): steps with the NaN guard, evaluation,
//! logging, checkpoints, resume, the run-directory lock and clean stops. A trainer is an
//! [`Engine`] plus a [`StepTask`] that knows how to take one step.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use super::history::{History, Record, StopReason};
use super::stop::{SignalWatch, StopHandle};
use super::{CheckpointDir, MetricsLogger, Scalars, TrainerConfig, MODEL_FILE};
use crate::checkpoint::{Checkpointable, LoadOptions, SaveOptions};
use crate::data::{DataLoader, LoaderState};
use crate::distributed::{self, Communicator, DistributedError};
use crate::optim::{clip_grad_norm, global_norm, Optimizer};
use crate::walk::{Leaf, Visit};
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
    /// Whether the ranks were found to hold the same parameters (checked before the first
    /// step, and again after a resume).
    ranks_agree: bool,
}

impl Engine {
    pub(crate) fn new(config: TrainerConfig) -> Self {
        let checkpoints = CheckpointDir::new(config.out_dir.join("checkpoints"), config.keep_last);
        Self {
            config,
            step: 0,
            checkpoints,
            stop: StopHandle::new(),
            ranks_agree: false,
        }
    }

    fn comm(&self) -> Arc<dyn Communicator> {
        Arc::clone(&self.config.communicator)
    }

    /// Rank 0 writes the run directory; the other ranks only train.
    fn is_root(&self) -> bool {
        self.config.communicator.rank() == 0
    }

    /// One step under the NaN guard: a refused step changes nothing.
    pub(crate) fn guarded_step<T: StepTask>(
        &mut self,
        task: &mut T,
        batch: &[Tensor],
    ) -> Result<Scalars> {
        let comm = self.comm();
        if !self.ranks_agree {
            distributed::check_same_params(&*comm, task.model())?;
            self.ranks_agree = true;
        }
        let snapshot = snapshot_non_params(task.model())?;
        let next = self.step + 1;
        let sync = self.config.sync_batch_stats;
        match distributed::scope(&comm, sync, || task.train_step(batch, next)) {
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
        let comm = self.comm();
        train.set_shard(comm.rank(), comm.world_size())?;
        let setup = match self.is_root() {
            true => self.open_run(&cfg).map(Some),
            false => Ok(None),
        };
        let (mut logger, setup) = match setup {
            Ok(logger) => (logger, Ok(())),
            Err(e) => (None, Err(e)),
        };
        distributed::agree(&*comm, "run setup", setup)?;
        let watch = SignalWatch::start(cfg.handle_signals);
        let started = Instant::now();
        let mut history = History::new(self.step);
        let mut last_saved = None;
        // Rank 0's log and evaluation outcome, reported to every rank at the next check-in.
        let mut pending: Result<()> = Ok(());
        while self.step < cfg.total_steps {
            let local_stop = self.stop_reason(&watch);
            let io = std::mem::replace(&mut pending, Ok(()));
            if let Some(reason) = check_in(&*comm, local_stop, io)? {
                history.stop = reason;
                break;
            }
            let Some(batch) = train.next_batch()? else {
                continue; // epoch boundary: the loader reshuffles
            };
            let t0 = Instant::now();
            let metrics = self.guarded_step(task, &batch)?;
            let rate = batch_len(&batch) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let step = self.step;
            let due = |every: Option<u64>| {
                every.is_some_and(|e| e > 0 && step.is_multiple_of(e)) || step == cfg.total_steps
            };
            if let Some(logger) = logger.as_mut() {
                let eval = val.as_deref_mut().filter(|_| due(cfg.eval_every));
                pending = self.log_step(task, logger, &metrics, rate, eval, &mut history);
                if comm.world_size() == 1 {
                    // One process: fail at once, as before there were ranks to tell.
                    std::mem::replace(&mut pending, Ok(()))?;
                }
            }
            history.train.push(Record {
                step: self.step,
                metrics,
            });
            if cfg.checkpoint_every.is_some() && due(cfg.checkpoint_every) {
                history.checkpoint = Some(self.save_checkpoint(task, train)?);
                last_saved = Some(self.step);
            }
        }
        check_in(&*comm, None, pending)?;
        if history.interrupted() {
            if last_saved != Some(self.step) && self.step > 0 {
                history.checkpoint = Some(self.save_checkpoint(task, train)?);
            }
            let saved = match &history.checkpoint {
                Some(dir) => format!("checkpoint: {}", dir.display()),
                None => "no step taken, nothing to save".into(),
            };
            if let Some(logger) = &logger {
                logger.message(&format!(
                    "{} at step {}; {saved}; resume to continue from it",
                    describe(history.stop),
                    self.step
                ));
            }
            self.stop.clear();
        }
        if let Some(logger) = &logger {
            self.plot_losses(logger);
            logger.finish();
        }
        history.steps = self.step - history.first_step;
        history.seconds = started.elapsed().as_secs_f64();
        Ok(history)
    }

    /// Rank 0's part of starting a run: the directory, its lock, a fresh run's cleanup, the
    /// log.
    fn open_run(&self, cfg: &TrainerConfig) -> Result<MetricsLogger> {
        create_dir(&cfg.out_dir)?;
        self.checkpoints.lock()?;
        if self.step == 0 {
            self.prepare_fresh_run()?;
        }
        MetricsLogger::open(
            &cfg.out_dir.join(METRICS_FILE),
            cfg.total_steps,
            self.step,
            cfg.print_every,
        )
    }

    /// Rank 0's log of a step, and the evaluation on `val` when one is due.
    fn log_step<T: StepTask>(
        &self,
        task: &T,
        logger: &mut MetricsLogger,
        metrics: &Scalars,
        rate: f64,
        val: Option<&mut DataLoader>,
        history: &mut History,
    ) -> Result<()> {
        logger.log(self.step, "train", metrics, Some(rate))?;
        if let Some(val) = val {
            let metrics = self.evaluate(task, val)?;
            logger.log(self.step, "eval", &metrics, None)?;
            history.eval.push(Record {
                step: self.step,
                metrics,
            });
            self.plot_losses(logger);
        }
        Ok(())
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

    /// Writes `checkpoints/step-N/` with the model, optimizer, step and data-order state (rank
    /// 0 writes; every rank returns the folder once rank 0 has written it).
    pub(crate) fn save_checkpoint<T: StepTask>(
        &self,
        task: &T,
        train: &DataLoader,
    ) -> Result<PathBuf> {
        let comm = self.comm();
        let written = match self.is_root() {
            true => self.write_checkpoint(task, train),
            false => Ok(self.checkpoints.step_dir(self.step)),
        };
        let (dir, outcome) = match written {
            Ok(dir) => (dir, Ok(())),
            Err(e) => (PathBuf::new(), Err(e)),
        };
        distributed::agree(&*comm, "checkpoint save", outcome)?;
        Ok(dir)
    }

    fn write_checkpoint<T: StepTask>(&self, task: &T, train: &DataLoader) -> Result<PathBuf> {
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

    /// Restores the newest checkpoint (model, optimizer, step, data order). Every rank reads
    /// the same files (the run directory must be on a filesystem they share); the parameter
    /// check before the next step confirms they loaded the same state.
    pub(crate) fn resume<T: StepTask>(
        &mut self,
        task: &mut T,
        train: &mut DataLoader,
    ) -> Result<Option<u64>> {
        let comm = self.comm();
        let resumed = self.load_latest(task, train);
        let (step, outcome) = match resumed {
            Ok(step) => (step, Ok(())),
            Err(e) => (None, Err(e)),
        };
        distributed::agree(&*comm, "resume", outcome)?;
        self.ranks_agree = false;
        Ok(step)
    }

    fn load_latest<T: StepTask>(
        &mut self,
        task: &mut T,
        train: &mut DataLoader,
    ) -> Result<Option<u64>> {
        if self.is_root() {
            self.checkpoints.lock()?;
        }
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

/// The per-step check-in of all ranks: whether any rank was asked to stop (all stop, for the
/// first such rank's reason) and whether rank 0's last log or evaluation failed (all fail).
/// With one rank it is just `io` and `stop`.
fn check_in(
    comm: &dyn Communicator,
    stop: Option<StopReason>,
    io: Result<()>,
) -> Result<Option<StopReason>> {
    let world = comm.world_size();
    if world == 1 {
        return io.map(|()| stop);
    }
    let code = match stop {
        None | Some(StopReason::Completed) => 0.0,
        Some(StopReason::Requested) => -1.0,
        Some(StopReason::Signal(n)) => f64::from(n),
    };
    let mut slots = vec![0f64; 2 * world];
    slots[comm.rank()] = code;
    slots[world + comm.rank()] = f64::from(u8::from(io.is_err()));
    comm.all_reduce_sum_f64(&mut slots)?;
    io?;
    let failed: Vec<usize> = (0..world).filter(|&r| slots[world + r] > 0.0).collect();
    if !failed.is_empty() {
        return Err(DistributedError::PeerFailed {
            what: "writing the log or evaluating".into(),
            ranks: failed,
        }
        .into());
    }
    Ok(slots[..world].iter().find(|&&c| c != 0.0).map(|&c| {
        if c < 0.0 {
            StopReason::Requested
        } else {
            StopReason::Signal(c as i32)
        }
    }))
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
    let mut grads = crate::autodiff::backward(loss)?;
    if let Some(comm) = distributed::current().filter(|c| c.world_size() > 1) {
        distributed::average_scalars(&*comm, host)?;
        distributed::all_reduce_mean_grads(&*comm, &mut grads, opt.params())?;
    }
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

/// Copies of every batch statistic and rng counter, in walking order, to undo a refused
/// step. No path is built (this runs every step): the tree does not change between the
/// snapshot and its [`restore`].
fn snapshot_non_params<M: Module + ?Sized>(model: &M) -> Result<Vec<Tensor>> {
    struct Snapshot {
        copies: Vec<Tensor>,
        failed: Option<crate::Error>,
    }
    impl<'a> Visit<'a> for Snapshot {
        fn leaf(&mut self, leaf: Leaf<'a>) {
            match leaf {
                Leaf::State(var) if var.kind() != StateKind::Param && self.failed.is_none() => {
                    match var.to_tensor().and_then(|t| Ok(t.copy()?)) {
                        Ok(t) => self.copies.push(t),
                        Err(e) => self.failed = Some(e),
                    }
                }
                _ => {}
            }
        }
    }
    let mut snapshot = Snapshot {
        copies: Vec::new(),
        failed: None,
    };
    model.walk(&mut snapshot);
    snapshot.failed.map_or(Ok(snapshot.copies), Err)
}

/// Assigns back what [`snapshot_non_params`] copied, in the same walking order.
fn restore<M: Module + ?Sized>(model: &M, snapshot: &[Tensor]) -> Result<()> {
    struct Restore<'s> {
        saved: std::slice::Iter<'s, Tensor>,
        failed: Option<crate::Error>,
    }
    impl<'a> Visit<'a> for Restore<'_> {
        fn leaf(&mut self, leaf: Leaf<'a>) {
            if let Leaf::State(var) = leaf {
                if var.kind() != StateKind::Param {
                    if let Some(Err(e)) = self.saved.next().map(|t| var.assign(t)) {
                        self.failed.get_or_insert(e);
                    }
                }
            }
        }
    }
    let mut restore = Restore {
        saved: snapshot.iter(),
        failed: None,
    };
    model.walk(&mut restore);
    restore.failed.map_or(Ok(()), Err)
}
