//! [`Checkpointable`]: the save and load methods of every [`Module`], as an extension trait so
//! that the module layer does not depend on checkpoints.

use std::path::Path;

use candle_core::Tensor;

use super::{LoadOptions, LoadReport, SaveOptions};
use crate::{Module, Result, StatePath};

/// Safetensors checkpoints of a whole module: implemented for every [`Module`] (bring it into
/// scope with `use artifex_core::prelude::*` or `use artifex_core::checkpoint::Checkpointable`).
///
/// Keys are the state paths; the kind of every entry (param, batch stat, rng state) is the
/// kind the model's state tree gives it, never a guess from its name.
///
/// ```
/// use artifex_core::prelude::*;
///
/// let dir = std::env::temp_dir().join(format!("artifex-doc-ckpt-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("linear.safetensors");
/// let layer = Linear::new(3, 2, &mut Rngs::new(0))?;
/// layer.save_safetensors(&path)?;
/// let mut twin = Linear::new(3, 2, &mut Rngs::new(1))?;
/// let report = twin.load_safetensors(&path)?;
/// assert_eq!(report.loaded, ["kernel", "bias"]);
/// assert_eq!(twin.kernel.to_vec2::<f32>()?, layer.kernel.to_vec2::<f32>()?);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Checkpointable: Module + Sized {
    /// Saves the whole state (params, batch stats, rng counters) atomically to a safetensors file.
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        super::save(self, path.as_ref(), &SaveOptions::default())
    }

    /// Saves with options (a config JSON to embed, ...).
    fn save_safetensors_with(&self, path: impl AsRef<Path>, options: &SaveOptions) -> Result<()> {
        super::save(self, path.as_ref(), options)
    }

    /// Loads a checkpoint strictly: every problem is reported at once and nothing is changed
    /// unless the file matches the model exactly.
    fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        self.load_safetensors_with(path, &LoadOptions::strict())
    }

    /// Loads with options; in non-strict mode loads what matches and returns the report, whose
    /// first line says `PARTIAL LOAD` when anything was left out (a lenient load that matches
    /// no entry at all fails with [`CheckpointError::NothingLoaded`](crate::CheckpointError::NothingLoaded)).
    fn load_safetensors_with(
        &mut self,
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<LoadReport> {
        self.bind_paths(&mut StatePath::root());
        super::load(self, path.as_ref(), options)
    }

    /// Loads tensors by key (e.g. from a [`checkpoint::Adapter`](crate::checkpoint)) with the
    /// same checks, options and report as
    /// [`load_safetensors_with`](Checkpointable::load_safetensors_with).
    fn load_tensors<'t, K>(
        &mut self,
        tensors: impl IntoIterator<Item = (&'t K, &'t Tensor)>,
        options: &LoadOptions,
    ) -> Result<LoadReport>
    where
        K: AsRef<str> + ?Sized + 't,
    {
        self.bind_paths(&mut StatePath::root());
        super::load_map(self, tensors, options)
    }
}

impl<M: Module> Checkpointable for M {}
