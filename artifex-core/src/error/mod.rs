//! The error type of artifex-core: every fallible call returns [`Result`].
//!
//! This module is the bottom layer of the crate: it imports no other module of it. The error
//! types of the subsystems ([`CheckpointError`] with the [`LoadReport`] it carries,
//! [`AutodiffError`], [`MetricsError`], [`DistributedError`]) are defined here, below both
//! [`Error`] and the subsystems that return them, and re-exported by those subsystems
//! (`checkpoint::LoadReport`, `autodiff::AutodiffError`, ...), so that wrapping them in
//! [`Error`] creates no import cycle.

mod autodiff;
mod checkpoint;
mod distributed;
mod load_report;
mod metrics;

pub use autodiff::AutodiffError;
pub use checkpoint::CheckpointError;
pub use distributed::DistributedError;
pub use load_report::{LoadReport, Mismatch, Problems, Unexpected};
pub use metrics::MetricsError;

/// Shorthand for `std::result::Result<T, artifex_core::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in artifex-core, with the module path and shapes involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A layer received an input whose shape it cannot accept.
    #[error("{module}: expected input of shape {expected}, got {got:?}")]
    Shape {
        /// The module's state path and type, e.g. `encoder.2 (Linear)`.
        module: String,
        /// What the layer accepts, e.g. `[*, 256]`.
        expected: String,
        /// The shape that was passed in.
        got: Vec<usize>,
    },

    /// A layer received an input whose values or dtype it cannot accept (an embedding index
    /// out of range, float indices, ...).
    #[error("{module}: invalid input: {message}")]
    Input {
        /// The module's state path and type, e.g. `tokens (Embed)`.
        module: String,
        /// What is wrong with the input.
        message: String,
    },

    /// A module was configured with values it cannot work with.
    #[error("{module}: invalid configuration: {message}")]
    Config {
        /// The module type (and path when known).
        module: String,
        /// What is wrong and with which values.
        message: String,
    },

    /// Neither the requested RNG stream nor a `default` stream exists.
    #[error("no rng stream named `{stream}` and no `default` stream to fall back to (streams: {available:?})")]
    MissingRngStream {
        /// The stream that was asked for.
        stream: String,
        /// The streams that do exist.
        available: Vec<String>,
    },

    /// A random draw was needed but the module holds no stream.
    #[error("{module}: needs randomness in training mode but has no rng stream; build it with Rngs that have a `{stream}` or `default` stream")]
    NoRng {
        /// The module path and type.
        module: String,
        /// The stream it would draw from.
        stream: String,
    },

    /// A training step produced a NaN or infinite value; the step was not applied.
    #[error("step {step}: metric `{metric}` is not finite ({value}); the step was refused and the model left as before it")]
    NonFinite {
        /// The step that was refused.
        step: u64,
        /// The first non-finite metric (`loss`, `grad_norm`, or a user metric).
        metric: String,
        /// Its value.
        value: f64,
    },

    /// A higher-order gradient could not be computed ([`crate::autodiff`]).
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),

    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),

    /// Reading a data set file failed (missing, truncated or corrupt).
    #[error(transparent)]
    Data(#[from] DataError),

    /// A training run could not start or continue (directory in use, existing run, no data).
    #[error(transparent)]
    Train(#[from] TrainError),

    /// A sample-quality metric got input it cannot be computed on (see [`metrics`](crate::metrics)).
    /// (Boxed: its shape-mismatch variant would otherwise double the size of every `Result`.)
    #[error(transparent)]
    Metrics(Box<MetricsError>),
    /// Ranks of a data-parallel job disagree or cannot communicate.
    #[error(transparent)]
    Distributed(#[from] DistributedError),

    /// Optimizer state handed to `load_state` does not fit the optimizer.
    #[error("{optimizer} state does not match its parameters:{}", list_problems(.missing, .mismatched, .unexpected))]
    OptimizerState {
        /// The optimizer type, e.g. `Adam`.
        optimizer: String,
        /// Keys the optimizer needs that were not given.
        missing: Vec<String>,
        /// Keys given with the wrong shape or dtype, with what was expected and found.
        mismatched: Vec<String>,
        /// `opt.` keys given that the optimizer does not know.
        unexpected: Vec<String>,
    },
}

fn list_problems(missing: &[String], mismatched: &[String], unexpected: &[String]) -> String {
    let mut out = String::new();
    for (title, items) in [
        ("missing", missing),
        ("mismatched", mismatched),
        ("unexpected", unexpected),
    ] {
        if !items.is_empty() {
            out.push_str(&format!("\n  {title}: {}", items.join(", ")));
        }
    }
    out
}

impl From<MetricsError> for Error {
    fn from(error: MetricsError) -> Self {
        Error::Metrics(Box::new(error))
    }
}

/// Wraps an artifex error for candle's `Module` traits (candle errors unwrapped).
pub(crate) fn to_candle(e: Error) -> candle_core::Error {
    match e {
        Error::Candle(e) => e,
        other => candle_core::Error::wrap(other),
    }
}

impl Error {
    /// A configuration error for `module` with a message.
    pub fn config(module: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            module: module.into(),
            message: message.into(),
        }
    }

    /// The error with its module replaced by `module`, when it names one ([`Error::Shape`],
    /// [`Error::Input`], [`Error::Config`]); any other error unchanged. A layer that calls a
    /// library function (e.g. [`dot_product_attention`](crate::layers::dot_product_attention))
    /// claims that function's errors, so they name the layer's path:
    ///
    /// ```
    /// use artifex_core::Error;
    /// let e = Error::config("dot_product_attention", "bad").in_module("attn (MultiHeadAttention)");
    /// assert_eq!(e.to_string(), "attn (MultiHeadAttention): invalid configuration: bad");
    /// ```
    #[must_use]
    pub fn in_module(mut self, module: impl Into<String>) -> Self {
        if let Error::Shape { module: m, .. }
        | Error::Input { module: m, .. }
        | Error::Config { module: m, .. } = &mut self
        {
            *m = module.into();
        }
        self
    }
}

/// Errors of the training loop's set-up: where it writes and what it reads.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Another process (or another trainer in this one) holds the checkpoint directory's lock.
    #[error("checkpoint directory {dir} is in use by another training run ({holder}); wait for it to finish or train into another directory")]
    DirectoryInUse {
        /// The checkpoint directory.
        dir: String,
        /// Who holds the lock, e.g. `process 4242 on host node7, started 31 s ago`.
        holder: String,
    },

    /// A fresh run (step 0) was asked to write into a directory that holds another run.
    #[error("{dir} already holds a training run ({found}); resume it (`Trainer::resume`, `--resume`) or start over (`TrainerConfig::overwrite(true)`, `--overwrite`), or pick another directory")]
    RunExists {
        /// The run directory (`TrainerConfig::out_dir`).
        dir: String,
        /// What was found, e.g. `metrics.jsonl, checkpoints up to step 1500`.
        found: String,
    },

    /// The loss plot could not be drawn or written.
    #[error("loss plot {path}: {reason}")]
    Plot {
        /// The PNG file.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// The training loader yields no batch, so no step could ever be taken.
    #[error("{trainer}: the training loader yields no batch ({examples} examples, batch size {batch_size}, drop_last {drop_last})")]
    EmptyLoader {
        /// `Trainer` or `AdversarialTrainer`.
        trainer: String,
        /// Examples in the data set.
        examples: usize,
        /// The loader's batch size.
        batch_size: usize,
        /// Whether incomplete batches are dropped.
        drop_last: bool,
    },
}

/// Errors of data set files (IDX / MNIST): every one names the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("data file {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// None of the accepted names of a required file exists in the directory.
    #[error("data directory {dir}: no file {tried:?}")]
    NotFound {
        /// The directory searched.
        dir: String,
        /// The file names tried, in order.
        tried: Vec<String>,
    },

    /// The content is not what the format requires (bad magic, dimensions, truncated payload,
    /// broken gzip stream, out-of-range values, ...).
    #[error("data file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file involved (or the name given to an in-memory buffer).
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// An image file and its label file hold different numbers of examples.
    #[error("{images} holds {num_images} images but {labels} holds {num_labels} labels")]
    CountMismatch {
        /// The image file.
        images: String,
        /// The label file.
        labels: String,
        /// Number of images.
        num_images: usize,
        /// Number of labels.
        num_labels: usize,
    },
}

impl DataError {
    /// A [`DataError::Corrupt`] for `path`.
    pub fn corrupt(path: impl Into<String>, reason: impl Into<String>) -> Self {
        DataError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
