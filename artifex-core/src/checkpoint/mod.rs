//! Safetensors checkpoints of the whole state tree: atomic saves, strict or reporting loads.
//!
//! Keys are the `.`-joined state paths (`encoder.0.kernel`, `encoder.1.mean`,
//! `dropout.rngs.count`), so a Flax NNX state flattened the same way loads with no renaming.
//! The header's `__metadata__` carries `format`, `format_version`, `crate_version`,
//! `type_name` and, when given, `config` (JSON).

mod atomic;
mod report;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{DType, Tensor};
use safetensors::SafeTensors;

pub use atomic::write_atomically;
pub use report::{LoadReport, Mismatch, Unexpected};

use crate::{CheckpointError, Module, Result, StateKind};

/// The `format` value written into every artifex checkpoint's metadata.
pub const FORMAT: &str = "artifex";
/// The checkpoint layout version.
pub const FORMAT_VERSION: &str = "1";

/// Options of a save.
#[derive(Clone, Debug, Default)]
pub struct SaveOptions {
    /// Model configuration as JSON, stored under `config` so a checkpoint can rebuild its model.
    pub config_json: Option<String>,
    /// More metadata entries.
    pub extra: HashMap<String, String>,
}

impl SaveOptions {
    /// Options that embed `config` (serialized with serde_json).
    pub fn with_config<C: serde::Serialize>(config: &C) -> Result<Self> {
        let json = serde_json::to_string(config)
            .map_err(|e| crate::Error::config("SaveOptions", format!("config to JSON: {e}")))?;
        Ok(Self {
            config_json: Some(json),
            extra: HashMap::new(),
        })
    }
}

/// Options of a load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Refuse any mismatch (the default); otherwise load what matches and report the rest.
    pub strict: bool,
    /// Read the entries under this key prefix (e.g. `"generator."` to load one submodule of a
    /// larger file); other keys of the file are ignored, not reported as unexpected.
    pub prefix: Option<String>,
    /// Treat absent rng keys/counters as fine (files written by NNX or PyTorch tools carry no
    /// artifex rng state); the model keeps its own.
    pub rng_state_optional: bool,
}

impl LoadOptions {
    /// All entries must match; nothing changes otherwise.
    pub fn strict() -> Self {
        Self {
            strict: true,
            prefix: None,
            rng_state_optional: false,
        }
    }

    /// Load the matching entries, report the others.
    pub fn lenient() -> Self {
        Self {
            strict: false,
            ..Self::strict()
        }
    }

    /// Strict on params and batch stats, rng state optional: for state exported by Flax NNX.
    pub fn nnx() -> Self {
        Self {
            rng_state_optional: true,
            ..Self::strict()
        }
    }

    /// Reads only the entries under `prefix`.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_string());
        self
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self::strict()
    }
}

/// Writes the state of `module` to `path` (see [`Module::save_safetensors`]).
pub fn save<M: Module>(module: &M, path: &Path, options: &SaveOptions) -> Result<()> {
    let mut entries: Vec<(String, Tensor)> = Vec::new();
    for (key, var) in module.state() {
        entries.push((key, var.to_tensor()?));
    }
    let mut metadata = options.extra.clone();
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("format_version".into(), FORMAT_VERSION.into());
    metadata.insert("crate_version".into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert("type_name".into(), std::any::type_name::<M>().into());
    if let Some(config) = &options.config_json {
        metadata.insert("config".into(), config.clone());
    }
    write_atomically(path, |tmp| {
        safetensors::serialize_to_file(entries, Some(metadata), tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// A checkpoint file mapped into memory and parsed.
pub struct CheckpointFile {
    path: String,
    mmap: memmap2::Mmap,
}

impl CheckpointFile {
    /// Maps `path` (no copy of the tensor data is made).
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let io = |source| CheckpointError::Io {
            path: name.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; artifex writes checkpoints by atomic rename, so a file
        // being read is never modified in place by us.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let this = Self { path: name, mmap };
        this.parse()?;
        Ok(this)
    }

    /// The parsed view of the file.
    pub fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| {
            CheckpointError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// The header's `__metadata__` (empty when the file has none).
    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) =
            SafeTensors::read_metadata(&self.mmap).map_err(|e| CheckpointError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }
}

/// Loads `path` into `module` (see [`Module::load_safetensors_with`]).
pub fn load<M: Module>(module: &M, path: &Path, options: &LoadOptions) -> Result<LoadReport> {
    let file = CheckpointFile::open(path)?;
    let tensors = file.parse()?;
    let state = module.state();
    let mut report = LoadReport::default();
    let mut matched = Vec::new();
    let model_keys: BTreeSet<&str> = state.iter().map(|(k, _)| k.as_str()).collect();

    let prefix = options.prefix.as_deref().unwrap_or("");
    for (key, var) in &state {
        let Ok(view) = tensors.tensor(&format!("{prefix}{key}")) else {
            let is_rng = matches!(var.kind(), StateKind::RngKey | StateKind::RngCount);
            if !(is_rng && options.rng_state_optional) {
                report.missing.push(key.clone());
            }
            continue;
        };
        let mismatch = || Mismatch {
            path: key.clone(),
            expected_shape: var.dims(),
            found_shape: view.shape().to_vec(),
            expected_dtype: var.dtype(),
            found_dtype: format!("{:?}", view.dtype()),
        };
        let file_dtype = DType::try_from(view.dtype()).ok();
        if file_dtype != Some(var.dtype()) {
            report.dtype_mismatches.push(mismatch());
        } else if view.shape() != var.dims().as_slice() {
            report.shape_mismatches.push(mismatch());
        } else {
            matched.push((key.clone(), *var, view));
        }
    }
    let mut file_keys = tensors.names();
    file_keys.sort_unstable();
    for key in file_keys.into_iter().filter_map(|k| k.strip_prefix(prefix)) {
        if !model_keys.contains(key) {
            report.unexpected.push(Unexpected {
                path: key.to_string(),
                suggestion: closest(key, &model_keys, &report.missing),
            });
        }
    }
    if options.strict && !report.is_clean() {
        return Err(CheckpointError::Incompatible {
            path: path.display().to_string(),
            report: Box::new(report),
        }
        .into());
    }
    for (key, var, view) in matched {
        let entry_err = |reason: String| CheckpointError::Entry {
            path: path.display().to_string(),
            key: key.clone(),
            reason,
        };
        let value = view
            .load(&candle_core::Device::Cpu)
            .map_err(|e| entry_err(e.to_string()))?;
        var.assign(&value).map_err(|e| entry_err(e.to_string()))?;
        report.loaded.push(key);
    }
    Ok(report)
}

/// The model path closest to an unexpected key, preferring missing ones ("did you mean").
fn closest(key: &str, model_keys: &BTreeSet<&str>, missing: &[String]) -> Option<String> {
    let limit = (key.len() / 3).max(3);
    let best = |cands: &mut dyn Iterator<Item = &str>| {
        cands
            .map(|c| (strsim::levenshtein(key, c), c))
            .filter(|(d, _)| *d <= limit)
            .min()
            .map(|(_, c)| c.to_string())
    };
    best(&mut missing.iter().map(String::as_str)).or_else(|| best(&mut model_keys.iter().copied()))
}
