//! Safetensors checkpoints of the whole state tree: atomic saves, strict or reporting loads.
//!
//! Keys are the `.`-joined state paths (`encoder.0.kernel`, `encoder.1.mean`,
//! `dropout.rngs.count`), so a Flax NNX state flattened the same way loads with no renaming.
//! The header's `__metadata__` carries `format`, `format_version`, `crate_version`,
//! `type_name`, `kinds` (the kind of every non-param entry, from the model's state tree; see
//! [`KINDS_KEY`]) and, when given, `config` (JSON).

#[cfg(feature = "torch")]
mod adapter;
mod atomic;
mod checkpointable;
mod copy;
mod file;
mod kinds;
mod load;
mod options;
mod plan;
mod writer;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::Tensor;

pub use crate::error::{LoadReport, Mismatch, Problems, Unexpected};
#[cfg(feature = "torch")]
pub use adapter::{Adapted, AdaptedEntry, Adapter, Layout};
pub(crate) use atomic::is_temp_of;
pub use atomic::{write_atomically, write_atomically_with};
pub use checkpointable::Checkpointable;
pub use file::CheckpointFile;
pub use kinds::{guess_kind, KindSource, KINDS_KEY};
pub use load::{load_bytes, load_map};
pub use options::{DtypePolicy, LoadOptions, SaveOptions};
pub use plan::{compare, model_specs, EntrySpec};
/// The dtype names of safetensors files (`F32`, `BF16`, `I64`, ...), as [`EntrySpec`] uses them.
pub use safetensors::Dtype;

use crate::{CheckpointError, Module, Result};

/// The `format` value written into every artifex checkpoint's metadata.
pub const FORMAT: &str = "artifex";
/// The checkpoint layout version.
pub const FORMAT_VERSION: &str = "1";

/// Writes the state of `module` to `path` (see [`Checkpointable::save_safetensors`]):
/// streamed into a temp file beside `path`, fsynced (unless [`SaveOptions::durable`] is off)
/// and renamed over it, so a crash at any point leaves either the old file or the complete
/// new one.
pub fn save<M: Module>(module: &M, path: &Path, options: &SaveOptions) -> Result<()> {
    let (entries, metadata) = entries_and_metadata(module, options)?;
    let durable = options.durable;
    write_atomically_with(path, durable, |tmp| {
        write_file(tmp, &entries, &metadata, durable)
    })
}

/// Writes the state of `module` as safetensors bytes to `writer` (a buffer, a socket, ...);
/// the same bytes [`save`] puts in a file.
pub fn save_to_writer<M: Module, W: Write>(
    module: &M,
    writer: &mut W,
    options: &SaveOptions,
) -> Result<()> {
    let (entries, metadata) = entries_and_metadata(module, options)?;
    writer::write_safetensors(writer, &entries, &metadata).map_err(|source| {
        CheckpointError::Io {
            path: "<writer>".into(),
            source,
        }
        .into()
    })
}

/// The `__metadata__` entries of a file.
type Metadata = HashMap<String, String>;

fn entries_and_metadata<M: Module>(
    module: &M,
    options: &SaveOptions,
) -> Result<(Vec<(String, Tensor)>, Metadata)> {
    let state = match &options.filter {
        Some(filter) => module.state_filtered(filter),
        None => module.state(),
    };
    let kinds = kinds::encode(state.iter().map(|(key, var)| (key.as_str(), var.kind())));
    let mut entries: Vec<(String, Tensor)> = Vec::with_capacity(state.len());
    for (key, var) in state {
        entries.push((key, var.to_tensor()?));
    }
    if let (Some(filter), true) = (&options.filter, entries.is_empty()) {
        return Err(crate::Error::Input {
            module: std::any::type_name::<M>().into(),
            message: format!("save: the filter {filter:?} selects no state variable"),
        });
    }
    let mut metadata = options.extra.clone();
    metadata.insert(KINDS_KEY.into(), kinds);
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("format_version".into(), FORMAT_VERSION.into());
    metadata.insert("crate_version".into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert("type_name".into(), std::any::type_name::<M>().into());
    if let Some(config) = &options.config_json {
        metadata.insert("config".into(), config.clone());
    }
    Ok((entries, metadata))
}

/// Creates `path` and streams `entries` into it as safetensors, then fsyncs it when `sync`.
pub(crate) fn write_file(
    path: &Path,
    entries: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
    sync: bool,
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    writer::write_safetensors(&mut w, entries, metadata)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

/// Loads `path` into `module` (see [`Checkpointable::load_safetensors_with`]).
pub fn load<M: Module>(module: &M, path: &Path, options: &LoadOptions) -> Result<LoadReport> {
    CheckpointFile::open(path)?.load_into(module, options)
}
