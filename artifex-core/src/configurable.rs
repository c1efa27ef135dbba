//! Models that can be rebuilt from a serializable config stored in their checkpoint.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkpoint::{CheckpointFile, SaveOptions};
use crate::{CheckpointError, Module, Result, Rngs};

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

    /// Rebuilds the module from a checkpoint's config and loads its state (strictly).
    fn from_checkpoint(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let config: Self::Config = read_config(path)?;
        let mut module = Self::from_config(config, &mut Rngs::new(0))?;
        // Strict: any problem is an error, so the report has nothing more to say.
        let _ = module.load_safetensors(path)?;
        Ok(module)
    }
}

/// Reads and parses the `config` metadata entry of a checkpoint.
pub fn read_config<C: DeserializeOwned>(path: &Path) -> Result<C> {
    let meta = CheckpointFile::open(path)?.metadata()?;
    let entry = |reason: String| CheckpointError::Entry {
        path: path.display().to_string(),
        key: "__metadata__.config".into(),
        reason,
    };
    let json = meta
        .get("config")
        .ok_or_else(|| entry("the checkpoint has no config; it was saved without one".into()))?;
    Ok(serde_json::from_str(json)
        .map_err(|e| entry(format!("config does not fit this model: {e}")))?)
}
