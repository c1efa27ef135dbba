//! What a `fit` call did: every step's and every evaluation's metrics, and why it stopped.

use std::path::PathBuf;

use super::Scalars;

/// The metrics of one training step or one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The optimizer step after which they were measured (1-based).
    pub step: u64,
    /// The metrics (`loss`, `grad_norm`, `lr` and the loss closure's own).
    pub metrics: Scalars,
}

/// Why a `fit` call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `total_steps` were reached.
    Completed,
    /// A stop was requested through a [`StopHandle`](super::StopHandle).
    Requested,
    /// The process received a termination signal (`SIGINT`: 2, Ctrl-C; `SIGTERM`: 15).
    Signal(i32),
}

/// The run of one `fit` call: per-step and per-evaluation metrics, timing, how it ended and
/// the last checkpoint it wrote.
#[derive(Clone, Debug)]
pub struct History {
    /// One record per training step taken in this call, in order.
    pub train: Vec<Record>,
    /// One record per evaluation, in order.
    pub eval: Vec<Record>,
    /// The step the call started from (0 for a fresh run, N after a resume).
    pub first_step: u64,
    /// Steps taken in this call.
    pub steps: u64,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
    /// Why the call returned.
    pub stop: StopReason,
    /// The newest checkpoint written by this call, if any.
    pub checkpoint: Option<PathBuf>,
}

impl History {
    pub(crate) fn new(first_step: u64) -> Self {
        Self {
            train: Vec::new(),
            eval: Vec::new(),
            first_step,
            steps: 0,
            seconds: 0.0,
            stop: StopReason::Completed,
            checkpoint: None,
        }
    }

    /// The metrics of the last training step, if any step was taken.
    pub fn last_train(&self) -> Option<&Scalars> {
        self.train.last().map(|r| &r.metrics)
    }

    /// The metrics of the last evaluation, if any.
    pub fn last_eval(&self) -> Option<&Scalars> {
        self.eval.last().map(|r| &r.metrics)
    }

    /// `(step, value)` of one training metric over the run (steps that lack it are skipped).
    pub fn train_curve(&self, metric: &str) -> Vec<(u64, f64)> {
        curve(&self.train, metric)
    }

    /// `(step, value)` of one evaluation metric over the run.
    pub fn eval_curve(&self, metric: &str) -> Vec<(u64, f64)> {
        curve(&self.eval, metric)
    }

    /// True when the run stopped before `total_steps` (a signal or a stop request).
    pub fn interrupted(&self) -> bool {
        self.stop != StopReason::Completed
    }
}

fn curve(records: &[Record], metric: &str) -> Vec<(u64, f64)> {
    records
        .iter()
        .filter_map(|r| r.metrics.get(metric).map(|v| (r.step, *v)))
        .collect()
}
