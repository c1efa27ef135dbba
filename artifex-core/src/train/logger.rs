//! Metrics logging: one JSON object per line in `metrics.jsonl`, and a progress bar on a TTY.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

#[cfg(not(feature = "progress"))]
use self::no_progress::ProgressBar;
#[cfg(feature = "progress")]
use indicatif::{ProgressBar, ProgressStyle};

use crate::{CheckpointError, Result};

/// Appends `{"step": .., "split": "train"|"eval", "<metric>": value, ...}` lines to a file
/// and shows progress: an indicatif bar on a terminal, plain lines otherwise (quiet in CI).
///
/// The trainers open it in append mode for resumed runs; a fresh run starts from an empty file
/// (they refuse, or clear with `overwrite`, a directory holding another run's log).
pub struct MetricsLogger {
    path: PathBuf,
    file: std::fs::File,
    bar: Option<ProgressBar>,
    plain_every: Option<u64>,
}

impl MetricsLogger {
    /// Opens (appending) `path`; `total_steps` sizes the progress bar; `plain_every` prints a
    /// plain line every N steps when stdout is not a terminal (`None`: silent).
    pub fn open(
        path: &Path,
        total_steps: u64,
        start_step: u64,
        plain_every: Option<u64>,
    ) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| CheckpointError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        #[cfg(not(feature = "progress"))]
        let bar = {
            let _ = (interactive, total_steps, start_step);
            ProgressBar::none()
        };
        #[cfg(feature = "progress")]
        let bar = interactive.then(|| {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(start_step);
            bar
        });
        Ok(Self {
            path: path.to_path_buf(),
            file,
            bar,
            plain_every,
        })
    }

    /// Records the metrics of one step (or one evaluation).
    pub fn log(
        &mut self,
        step: u64,
        split: &str,
        metrics: &BTreeMap<String, f64>,
        samples_per_sec: Option<f64>,
    ) -> Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("step".into(), step.into());
        line.insert("split".into(), split.into());
        for (k, v) in metrics {
            line.insert(k.clone(), serde_json::Value::from(*v));
        }
        if let Some(rate) = samples_per_sec {
            line.insert("samples_per_sec".into(), rate.into());
        }
        writeln!(self.file, "{}", serde_json::Value::Object(line)).map_err(|source| {
            CheckpointError::Io {
                path: self.path.display().to_string(),
                source,
            }
        })?;
        let summary = metrics
            .iter()
            .filter(|(k, _)| k.ends_with("loss"))
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect::<Vec<_>>()
            .join("  ");
        match &self.bar {
            Some(bar) if split == "train" => {
                bar.set_position(step);
                let rate = samples_per_sec
                    .map(|r| format!("  {r:.0} samples/s"))
                    .unwrap_or_default();
                bar.set_message(format!("{summary}{rate}"));
            }
            Some(bar) => bar.println(format!("step {step} [{split}] {summary}")),
            None => {
                let due = self
                    .plain_every
                    .is_some_and(|n| n > 0 && step.is_multiple_of(n));
                if split != "train" || due {
                    let rate = samples_per_sec
                        .map(|r| format!("  {r:.0} samples/s"))
                        .unwrap_or_default();
                    println!("step {step} [{split}] {summary}{rate}");
                }
            }
        }
        Ok(())
    }

    /// Prints a line for the person watching (above the bar on a terminal, on stderr).
    pub fn message(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Closes the progress bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Without the `progress` feature there is no bar: this type has no values, so every bar
/// method is unreachable and the logger always takes its plain-line path.
#[cfg(not(feature = "progress"))]
mod no_progress {
    /// The absent progress bar.
    pub(super) enum ProgressBar {}

    impl ProgressBar {
        pub(super) fn none() -> Option<Self> {
            None
        }
        pub(super) fn set_position(&self, _: u64) {
            match *self {}
        }
        pub(super) fn set_message(&self, _: String) {
            match *self {}
        }
        pub(super) fn println(&self, _: impl AsRef<str>) {
            match *self {}
        }
        pub(super) fn finish_and_clear(&self) {
            match *self {}
        }
    }
}
