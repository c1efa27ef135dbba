//! `inspect` and `--diff`: reading a file's header and comparing two files with the load
//! report of artifex-core.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use artifex_core::checkpoint::{
    compare, CheckpointFile, EntrySpec, KindSource, LoadOptions, LoadReport,
};
use artifex_core::{Result, StateKind};

use crate::tree::{natural_cmp, print_rows, Row};

/// What `inspect` found in a file.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The file.
    pub path: String,
    /// Its size in bytes.
    pub file_bytes: usize,
    /// The header's `__metadata__`, sorted.
    pub metadata: BTreeMap<String, String>,
    /// Every entry, in natural path order.
    pub entries: Vec<EntrySpec>,
    /// Whether the entries' kinds were recorded at save time or are guessed from their names.
    pub kinds: KindSource,
}

/// Reads the header of `path` (no tensor data is read).
pub fn inspect(path: &Path) -> Result<Inspection> {
    let file = CheckpointFile::open(path)?;
    let mut entries = file.specs()?;
    entries.sort_by(|a, b| natural_cmp(&a.path, &b.path));
    Ok(Inspection {
        path: path.display().to_string(),
        file_bytes: file.len(),
        metadata: file.metadata()?.into_iter().collect(),
        entries,
        kinds: file.kind_source()?,
    })
}

/// What loading `file` into a model whose entries are those of `model_file` would report.
pub fn diff(file: &Path, model_file: &Path, options: &LoadOptions) -> Result<LoadReport> {
    let model = CheckpointFile::open(model_file)?.specs()?;
    let found = CheckpointFile::open(file)?.specs()?;
    Ok(compare(&model, &found, options))
}

/// The short name of a kind, as `inspect` prints it.
pub fn kind_name(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Param => "param",
        StateKind::BatchStat => "batch stat",
        StateKind::RngKey => "rng key",
        StateKind::RngCount => "rng count",
    }
}

/// `bytes` with a binary unit (`1.5 MiB`).
pub(crate) fn human(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn shorten(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return value.to_string();
    }
    let head: String = value.chars().take(max).collect();
    format!("{head}... ({} chars)", value.chars().count())
}

/// Prints an inspection: metadata, the tree with kind, shape, dtype and size, and totals.
pub fn print_inspection(i: &Inspection, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{} ({})", i.path, human(i.file_bytes))?;
    if i.metadata.is_empty() {
        writeln!(out, "metadata: none")?;
    } else {
        writeln!(out, "metadata:")?;
        for (k, v) in &i.metadata {
            writeln!(out, "  {k}: {}", shorten(v, 100))?;
        }
    }
    match i.kinds {
        KindSource::Recorded => writeln!(out, "entries:")?,
        KindSource::Guessed => writeln!(
            out,
            "entries (the file records no kinds: each is guessed from its name):"
        )?,
    }
    let rows: Vec<Row<'_>> = i
        .entries
        .iter()
        .map(|e| Row {
            path: &e.path,
            kind: e.kind,
            shape: &e.shape,
            dtype: format!("{:?}", e.dtype),
            bytes: e.byte_size(),
        })
        .collect();
    let totals = print_rows(&rows, out)?;
    let all_bytes: usize = totals.values().map(|t| t.2).sum();
    writeln!(
        out,
        "totals: {} entries, {} of tensor data, {} of header",
        i.entries.len(),
        human(all_bytes),
        human(i.file_bytes.saturating_sub(all_bytes))
    )?;
    for (kind, (n, values, bytes)) in totals {
        writeln!(
            out,
            "  {:<10}  {n} entries, {values} values, {}",
            kind_name(kind),
            human(bytes)
        )?;
    }
    Ok(())
}

/// Prints a diff report and its verdict.
pub fn print_diff(
    file: &Path,
    model_file: &Path,
    report: &LoadReport,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "loading {} into a model with the entries of {}:",
        file.display(),
        model_file.display()
    )?;
    // Nothing is loaded here: say "would load", then the problems and conversions.
    writeln!(
        out,
        "  would load: {} of {} model entries",
        report.loaded.len(),
        report.model_entries()
    )?;
    write!(out, "{}", report.problems())?;
    for m in &report.converted {
        writeln!(
            out,
            "  converted: {}: file {} -> model {}",
            m.path,
            m.found_dtype,
            m.expected_dtype.as_str()
        )?;
    }
    let problems = report.missing.len()
        + report.unexpected.len()
        + report.shape_mismatches.len()
        + report.dtype_mismatches.len();
    if problems == 0 {
        writeln!(out, "a strict load would succeed")
    } else if report.loaded.is_empty() {
        writeln!(
            out,
            "a strict load would fail: {problems} problems; a lenient one too: it matches no entry"
        )
    } else {
        writeln!(out, "a strict load would fail: {problems} problems")
    }
}
