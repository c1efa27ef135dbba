//! Models that can be rebuilt from a serializable config stored in their checkpoint.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::{self, CheckpointFile, Checkpointable, LoadOptions, SaveOptions};
use crate::construction::Construction;
use crate::{AbstractState, CheckpointError, Limits, Module, Result, Rngs, StatePath};

/// A module with a serializable configuration; `#[module(serde)]` implements it with the
/// generated builder as the config.
pub trait Configurable: Module + Sized {
    /// The configuration (for `#[module(serde)]`: the builder).
    type Config: Serialize + DeserializeOwned + Clone;

    /// This module's configuration.
    fn config(&self) -> Self::Config;

    /// Builds a fresh module from a configuration.
    fn from_config(config: Self::Config, rngs: &mut Rngs) -> Result<Self>;

    /// Saves the state with the config JSON in the metadata (`config`).
    fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_safetensors_with(path, &SaveOptions::with_config(&self.config())?)
    }

    /// The state tree `config` describes (paths, kinds, shapes, dtypes, bytes), built without
    /// allocating any tensor or drawing any random number (Flax NNX `nnx.eval_shape`); works
    /// for models far too large to build on this machine. `#[check]` conditions run and
    /// sizes that overflow are configuration errors.
    fn abstract_state(config: &Self::Config) -> Result<AbstractState> {
        AbstractState::trace(Limits::any_size(), |rngs| {
            Self::from_config(config.clone(), rngs)
        })
    }

    /// Rebuilds the module from a checkpoint's config and loads its state (strictly).
    ///
    /// A checkpoint is untrusted input, and its config decides what gets allocated, so the
    /// config is checked first, shape-only: its abstract state is built under the file's
    /// limits (no more variables than the file has entries, no more bytes than its size;
    /// the build stops at the first variable past them with
    /// [`CheckpointError::ConfigExceedsFile`]) and compared strictly with the file's
    /// entries (every path, shape and dtype; [`CheckpointError::Incompatible`] with the full
    /// report otherwise). Only then is the model allocated, zero-filled (no random values
    /// drawn and thrown away), and each tensor filled straight from the file.
    fn from_checkpoint(path: impl AsRef<Path>) -> Result<Self> {
        let file = CheckpointFile::open(path.as_ref())?;
        let config: Self::Config = config_of(&file)?;
        let entries = file.specs()?;
        let limits = Limits::checkpoint(file.path(), entries.len(), file.len());
        let shapes = AbstractState::trace(limits, |rngs| Self::from_config(config.clone(), rngs))?;
        let report = checkpoint::compare(&shapes.specs(), &entries, &LoadOptions::strict());
        if !report.is_clean() {
            return Err(CheckpointError::Incompatible {
                path: file.path().to_string(),
                report: Box::new(report),
            }
            .into());
        }
        let mut rngs = Rngs::new(0).with_construction(Construction::Zeroed);
        let mut module = Self::from_config(config, &mut rngs)?;
        module.bind_paths(&mut StatePath::root());
        // Strict: any problem is an error, so the report has nothing more to say.
        let _ = file.load_into(&module, &LoadOptions::strict())?;
        Ok(module)
    }
}

/// Reads and parses the `config` metadata entry of a checkpoint.
pub fn read_config<C: DeserializeOwned>(path: &Path) -> Result<C> {
    config_of(&CheckpointFile::open(path)?)
}

fn config_of<C: DeserializeOwned>(file: &CheckpointFile) -> Result<C> {
    let meta = file.metadata()?;
    let entry = |reason: String| CheckpointError::Entry {
        path: file.path().to_string(),
        key: "__metadata__.config".into(),
        reason,
    };
    let json = meta
        .get("config")
        .ok_or_else(|| entry("the checkpoint has no config; it was saved without one".into()))?;
    Ok(serde_json::from_str(json)
        .map_err(|e| entry(format!("config does not fit this model: {e}")))?)
}

/// Serde for candle's `DType` (which has none) as its name (`"f32"`, `"bf16"`): `#[module(serde)]`
/// uses it for `DType` configs.
pub mod dtype_serde {
    use candle_core::DType;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the dtype's name.
    pub fn serialize<S: Serializer>(dtype: &DType, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(dtype.as_str())
    }

    /// Reads a dtype name; an unknown name is an error naming it.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DType, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown dtype `{name}`")))
    }
}
