//! [`TrainerConfig`]: how long to train, where to write, how often to evaluate and save.

use std::path::PathBuf;
use std::sync::Arc;

use crate::distributed::{Communicator, Single};

/// Settings of a [`Trainer`](super::Trainer) or [`AdversarialTrainer`](super::AdversarialTrainer).
///
/// Build it with [`TrainerConfig::new`] and chained setters (each field has one of the same
/// name); the fields stay public for struct-update syntax.
///
/// ```
/// use artifex_core::train::TrainerConfig;
///
/// let config = TrainerConfig::new(1500, "out/run")
///     .eval_every(500)
///     .checkpoint_every(500)
///     .keep_last(2)
///     .clip_grad_norm(1.0);
/// assert_eq!(config.eval_every, Some(500));
/// assert!(config.handle_signals && !config.overwrite);
/// ```
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Train until this many optimizer steps have been taken in total.
    pub total_steps: u64,
    /// Run the evaluation loop every N steps (and at the end) when a validation loader is given.
    pub eval_every: Option<u64>,
    /// Write a checkpoint every N steps (and at the end). Without it, a checkpoint is still
    /// written when a run is interrupted.
    pub checkpoint_every: Option<u64>,
    /// How many checkpoints to keep.
    pub keep_last: usize,
    /// Where `metrics.jsonl`, `loss.png` and `checkpoints/` go.
    pub out_dir: PathBuf,
    /// Clip gradients to this global norm (the learning-rate schedule is the optimizer's).
    pub clip_grad_norm: Option<f64>,
    /// Without a terminal, print a plain progress line every N steps (`None`: quiet).
    pub print_every: Option<u64>,
    /// Model configuration JSON stored in checkpoint metadata.
    pub model_config_json: Option<String>,
    /// A fresh run (step 0) into an `out_dir` that holds another run's `metrics.jsonl` or
    /// checkpoints: `false` (default) refuses with [`TrainError::RunExists`]; `true` deletes
    /// them first. A resumed run always appends.
    ///
    /// [`TrainError::RunExists`]: crate::TrainError::RunExists
    pub overwrite: bool,
    /// Stop cleanly on SIGINT (Ctrl-C) / SIGTERM: finish the step, write a checkpoint, return
    /// a history that says so (default `true`; see [`StopHandle`](super::StopHandle)).
    pub handle_signals: bool,
    /// Redraw `out_dir/loss.png` (train and eval loss over the whole run, resumed parts
    /// included) after each evaluation and at the end (default `true`; needs the `plot`
    /// feature, otherwise ignored).
    pub loss_plot: bool,
    /// The ranks that train together ([`Single`] by default: one process). With more than
    /// one rank, each trains on its shard of every global batch of the train loader and the
    /// gradients are averaged; rank 0 alone writes the log, the plot and the checkpoints and
    /// runs the evaluations (see [`crate::distributed`]).
    pub communicator: Arc<dyn Communicator>,
    /// Every BatchNorm of the model normalizes with the statistics of the whole global batch
    /// (summed over the ranks) instead of its rank's shard (default `false`: per-replica, as
    /// `jax.pmap`; see [`BatchNorm`](crate::layers::BatchNorm)). No effect with one rank.
    pub sync_batch_stats: bool,
}

impl TrainerConfig {
    /// `total_steps`, writing into `out_dir`; no eval, no periodic checkpoints, no clipping.
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
            overwrite: false,
            handle_signals: true,
            loss_plot: true,
            communicator: Arc::new(Single),
            sync_batch_stats: false,
        }
    }

    /// Sets [`total_steps`](Self::total_steps).
    pub fn total_steps(mut self, steps: u64) -> Self {
        self.total_steps = steps;
        self
    }

    /// Evaluates every `every` steps (and at the end).
    pub fn eval_every(mut self, every: u64) -> Self {
        self.eval_every = Some(every);
        self
    }

    /// Writes a checkpoint every `every` steps (and at the end).
    pub fn checkpoint_every(mut self, every: u64) -> Self {
        self.checkpoint_every = Some(every);
        self
    }

    /// Keeps the newest `n` checkpoints.
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep_last = n;
        self
    }

    /// Writes into `dir`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = dir.into();
        self
    }

    /// Clips gradients to global norm `max_norm`.
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// Prints a plain progress line every `every` steps when not on a terminal.
    pub fn print_every(mut self, every: u64) -> Self {
        self.print_every = Some(every);
        self
    }

    /// Stores `json` as the model's config in every checkpoint.
    pub fn model_config_json(mut self, json: impl Into<String>) -> Self {
        self.model_config_json = Some(json.into());
        self
    }

    /// Sets [`overwrite`](Self::overwrite).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Sets [`handle_signals`](Self::handle_signals).
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }

    /// Sets [`loss_plot`](Self::loss_plot).
    pub fn loss_plot(mut self, plot: bool) -> Self {
        self.loss_plot = plot;
        self
    }

    /// Sets [`communicator`](Self::communicator): train data-parallel over its ranks.
    pub fn communicator(mut self, comm: Arc<dyn Communicator>) -> Self {
        self.communicator = comm;
        self
    }

    /// Sets [`sync_batch_stats`](Self::sync_batch_stats).
    pub fn sync_batch_stats(mut self, sync: bool) -> Self {
        self.sync_batch_stats = sync;
        self
    }
}

impl Default for TrainerConfig {
    /// 1,000 steps into `out/run`, the rest as [`TrainerConfig::new`].
    fn default() -> Self {
        Self::new(1000, "out/run")
    }
}
