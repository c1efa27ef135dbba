//! [`CheckpointError`]: what can go wrong reading or writing a checkpoint file.

use super::LoadReport;

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
