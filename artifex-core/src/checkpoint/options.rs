//! Options of saves and loads, and the dtype policy of a load.

use std::collections::HashMap;

use candle_core::DType;

use crate::{Filter, Result};

/// Options of a save.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Model configuration as JSON, stored under `config` so a checkpoint can rebuild its model.
    pub config_json: Option<String>,
    /// More metadata entries.
    pub extra: HashMap<String, String>,
    /// Flush the file and its directory to disk (`fsync`) before returning (default `true`).
    ///
    /// Either way the file is written beside the target and renamed over it, so readers never
    /// see a partial file. Without the flush a save returns as soon as the bytes are handed to
    /// the operating system (several times faster for large models on slow disks), but a power
    /// loss or kernel crash soon after may lose the new checkpoint.
    pub durable: bool,
    /// Save only the variables this filter selects (`None`: the whole state), e.g. the
    /// fine-tuned head of a model: `SaveOptions::default().only(Filter::path("head"))`.
    /// Load such a file into the full model with [`LoadOptions::lenient`]; its report lists
    /// what the file did not hold. A filter that selects nothing makes the save fail.
    pub filter: Option<Filter>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            config_json: None,
            extra: HashMap::new(),
            durable: true,
            filter: None,
        }
    }
}

impl SaveOptions {
    /// These options with [`durable`](Self::durable) set to `on`.
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// These options saving only what `filter` selects (see [`filter`](Self::filter)).
    pub fn only(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Options that embed `config` (serialized with serde_json).
    pub fn with_config<C: serde::Serialize>(config: &C) -> Result<Self> {
        let json = serde_json::to_string(config)
            .map_err(|e| crate::Error::config("SaveOptions", format!("config to JSON: {e}")))?;
        Ok(Self {
            config_json: Some(json),
            ..Self::default()
        })
    }
}

/// What a load does when an entry's dtype differs from the model's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DtypePolicy {
    /// Refuse: the entry is reported as a dtype mismatch (no silent precision change).
    #[default]
    Exact,
    /// Convert floating-point entries (`F16`, `BF16`, `F32`, `F64`) to the model's float dtype,
    /// rounding to nearest; each converted entry is listed in
    /// [`LoadReport::converted`](super::LoadReport::converted). Integer entries (rng state)
    /// must still match exactly.
    ConvertFloats,
}

impl DtypePolicy {
    /// Whether an entry stored as `file` may be loaded into a model entry of dtype `model`.
    pub fn accepts(self, file: DType, model: DType) -> bool {
        file == model || (self == DtypePolicy::ConvertFloats && is_float(file) && is_float(model))
    }
}

/// The float dtypes [`DtypePolicy::ConvertFloats`] converts between.
fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
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
    /// Whether float entries of another dtype are refused (the default) or converted.
    pub dtype: DtypePolicy,
}

impl LoadOptions {
    /// All entries must match; nothing changes otherwise.
    pub fn strict() -> Self {
        Self {
            strict: true,
            prefix: None,
            rng_state_optional: false,
            dtype: DtypePolicy::Exact,
        }
    }

    /// Load the matching entries, report the others: for loading part of a model (one
    /// pretrained submodule, with [`with_prefix`](Self::with_prefix) to pick it from a larger
    /// file). The returned [`LoadReport`](super::LoadReport) is `#[must_use]`; its first line
    /// says `PARTIAL LOAD` with the counts and names every submodule left entirely unloaded
    /// ([`unloaded_submodules`](super::LoadReport::unloaded_submodules)). A lenient load that
    /// matches no entry at all fails with
    /// [`CheckpointError::NothingLoaded`](crate::CheckpointError::NothingLoaded) (unexpected
    /// keys with "did you mean", the first segments of the model's and the file's keys) and
    /// changes nothing.
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

    /// Treats absent rng keys/counters as fine ([`rng_state_optional`](Self::rng_state_optional)).
    pub fn with_optional_rng_state(mut self) -> Self {
        self.rng_state_optional = true;
        self
    }

    /// Reads only the entries under `prefix`.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_string());
        self
    }

    /// Converts float entries to the model's dtype ([`DtypePolicy::ConvertFloats`]): an `f16`,
    /// `bf16` or `f64` file into an `f32` model, or an `f32` file into an `f16` model.
    pub fn with_dtype_conversion(mut self) -> Self {
        self.dtype = DtypePolicy::ConvertFloats;
        self
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self::strict()
    }
}
