//! The error type of artifex-core: every fallible call returns [`Result`].

use crate::checkpoint::LoadReport;

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
    Autodiff(#[from] crate::autodiff::AutodiffError),

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
    Metrics(Box<crate::metrics::MetricsError>),
    /// Ranks of a data-parallel job disagree or cannot communicate.
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistributedError),

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

impl From<crate::metrics::MetricsError> for Error {
    fn from(error: crate::metrics::MetricsError) -> Self {
        Error::Metrics(Box::new(error))
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
}

/// Errors of checkpoint files: I/O, corrupt or foreign content, incompatible state.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused a read or write.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a readable safetensors file (truncated, corrupt header, bad offsets, ...).
    #[error("checkpoint {path} is corrupt or not a safetensors file: {reason}")]
    Corrupt {
        /// The file involved.
        path: String,
        /// What the safetensors parser reported.
        reason: String,
    },

    /// The file is readable but its tensors do not fit the model; the report lists every problem.
    /// Nothing was changed (a strict load checks everything before writing).
    #[error(
        "checkpoint {path} does not match the model; nothing was changed (a lenient load would load {} of {} entries):\n{}",
        .report.loaded.len(),
        .report.model_entries(),
        .report.problems()
    )]
    Incompatible {
        /// The file involved.
        path: String,
        /// Every missing, unexpected and mismatched entry.
        report: Box<LoadReport>,
    },

    /// A lenient load matched none of the file's entries, so it would have changed nothing:
    /// keys renamed wrongly, a wrong prefix, a file of another model. Nothing was changed.
    #[error("checkpoint {path}: {}", nothing_loaded(.prefix, *.file_entries, .file_roots, .model_roots, .report))]
    NothingLoaded {
        /// The file involved.
        path: String,
        /// The key prefix of the load ([`LoadOptions::prefix`](crate::checkpoint::LoadOptions::prefix)).
        prefix: Option<String>,
        /// How many entries of the file were considered (those under the prefix).
        file_entries: usize,
        /// The first path segments of the file's keys (under the prefix when any are).
        file_roots: Vec<String>,
        /// The first path segments of the model's entries.
        model_roots: Vec<String>,
        /// Every missing, unexpected (with "did you mean") and mismatched entry.
        report: Box<LoadReport>,
    },

    /// The config stored in the file describes more state than the file holds (more
    /// variables than entries, or more bytes than the file has): refused while building the
    /// abstract state, before anything of that size is allocated.
    #[error("checkpoint {path}: its config describes a model larger than the file: {reason}")]
    ConfigExceedsFile {
        /// The file involved.
        path: String,
        /// The variable that crossed the limit and the totals.
        reason: String,
    },

    /// An entry of the file could not be turned into the model's value.
    #[error("checkpoint {path}: entry `{key}`: {reason}")]
    Entry {
        /// The file involved.
        path: String,
        /// The state path of the entry.
        key: String,
        /// What went wrong.
        reason: String,
    },
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

/// The message of [`CheckpointError::NothingLoaded`].
fn nothing_loaded(
    prefix: &Option<String>,
    file_entries: usize,
    file_roots: &[String],
    model_roots: &[String],
    report: &LoadReport,
) -> String {
    let roots = |r: &[String]| {
        let shown: Vec<String> = r.iter().take(8).map(|s| format!("{s}.")).collect();
        let more = if r.len() > 8 { ", ..." } else { "" };
        format!("{}{more}", shown.join(", "))
    };
    let head = match (prefix, file_entries) {
        (Some(p), 0) => format!(
            "the file has no entries under prefix `{p}` (its keys start with: {}); nothing was changed",
            roots(file_roots)
        ),
        (Some(p), n) => format!(
            "a lenient load matched none of the file's {n} entries under prefix `{p}`; nothing was changed"
        ),
        (None, n) => {
            format!("a lenient load matched none of the file's {n} entries; nothing was changed")
        }
    };
    let roots_line = if file_entries == 0 {
        format!("\n  the model's entries start with: {}", roots(model_roots))
    } else {
        format!(
            "\n  the model's entries start with: {}; the file's with: {}",
            roots(model_roots),
            roots(file_roots)
        )
    };
    // Every model entry is missing or mismatched: count the missing ones instead of listing
    // them, the unexpected keys and their suggestions are what tells what went wrong.
    let mut shown = report.clone();
    let missing = std::mem::take(&mut shown.missing).len();
    let missing_line = if missing > 0 {
        format!("\n  missing: {missing} model entries")
    } else {
        String::new()
    };
    format!("{head}{roots_line}{missing_line}\n{}", shown.problems())
}
