//! Training checkpoints: `checkpoints/step-NNNNNNNN/{model,trainer}.safetensors`, written
//! into a hidden temp directory `.step-NNNNNNNN.tmp-PID` and renamed into place, keeping the
//! last K. Writers hold the directory's [`RunLock`], so only one process writes into it; a
//! temp directory left by a killed process is never listed, and since no other writer can be
//! alive while we hold the lock, the next save or prune removes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::Tensor;

use super::RunLock;
use crate::checkpoint::{Checkpointable, SaveOptions};
use crate::{CheckpointError, Module, Result};

/// The file of a step directory holding the model state (a plain model checkpoint).
pub const MODEL_FILE: &str = "model.safetensors";
/// The file of a step directory holding optimizer, step and data-order state.
pub const TRAINER_FILE: &str = "trainer.safetensors";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Manages the step directories under one folder. Reading needs nothing; the first write (or
/// [`CheckpointDir::lock`]) takes the folder's lock, held until the last clone is dropped.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    keep_last: usize,
    lock: Arc<Mutex<Option<RunLock>>>,
}

impl CheckpointDir {
    /// Checkpoints under `root`, keeping the newest `keep_last` (at least 1).
    pub fn new(root: impl Into<PathBuf>, keep_last: usize) -> Self {
        Self {
            root: root.into(),
            keep_last: keep_last.max(1),
            lock: Arc::default(),
        }
    }

    /// Takes the folder's lock (creating the folder) unless this handle holds it already; a
    /// folder locked by another run is a [`TrainError::DirectoryInUse`] naming the holder.
    ///
    /// [`TrainError::DirectoryInUse`]: crate::TrainError::DirectoryInUse
    pub fn lock(&self) -> Result<()> {
        let mut held = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.is_none() {
            *held = Some(RunLock::acquire(&self.root)?);
        }
        Ok(())
    }

    /// Removes every checkpoint and temp directory (a run started over); takes the lock.
    pub fn clear(&self) -> Result<()> {
        self.lock()?;
        for (_, dir) in self.list()? {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        self.remove_stale_temps();
        Ok(())
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `step`.
    pub fn step_dir(&self, step: u64) -> PathBuf {
        self.root.join(format!("step-{step:08}"))
    }

    /// Complete checkpoints, oldest first (temp directories and partial ones are ignored).
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.root)(e).into()),
        };
        let mut steps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(step) = name
                .strip_prefix("step-")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let dir = entry.path();
            if dir.join(MODEL_FILE).is_file() && dir.join(TRAINER_FILE).is_file() {
                steps.push((step, dir));
            }
        }
        steps.sort();
        Ok(steps)
    }

    /// The newest complete checkpoint.
    pub fn latest(&self) -> Result<Option<(u64, PathBuf)>> {
        Ok(self.list()?.pop())
    }

    /// Writes the model and trainer state of `step` atomically, then prunes old checkpoints.
    pub fn save<M: Module>(
        &self,
        step: u64,
        model: &M,
        model_options: &SaveOptions,
        trainer_state: Vec<(String, Tensor)>,
    ) -> Result<PathBuf> {
        self.lock()?;
        self.remove_stale_temps();
        let final_dir = self.step_dir(step);
        let tmp = self
            .root
            .join(format!(".step-{step:08}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = (|| -> Result<()> {
            std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
            model.save_safetensors_with(tmp.join(MODEL_FILE), model_options)?;
            let trainer_path = tmp.join(TRAINER_FILE);
            crate::checkpoint::write_atomically(&trainer_path, |p| {
                crate::checkpoint::write_file(p, &trainer_state, &HashMap::new(), true)
            })?;
            if final_dir.exists() {
                std::fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
            }
            std::fs::rename(&tmp, &final_dir).map_err(io_err(&final_dir))?;
            if let Ok(dir) = std::fs::File::open(&self.root) {
                let _ = dir.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result?;
        self.prune()?;
        Ok(final_dir)
    }

    /// Removes all but the newest `keep_last` checkpoints, and stale temp directories; takes
    /// the lock.
    pub fn prune(&self) -> Result<()> {
        self.lock()?;
        let list = self.list()?;
        let excess = list.len().saturating_sub(self.keep_last);
        for (_, dir) in &list[..excess] {
            std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
        }
        self.remove_stale_temps();
        Ok(())
    }

    /// Removes every temp directory `.step-NNNNNNNN.tmp-PID`: called with the lock held, so
    /// none can belong to a live writer (best effort).
    fn remove_stale_temps(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_temp = name
                .strip_prefix(".step-")
                .and_then(|rest| rest.split_once('.'))
                .is_some_and(|(step, _)| {
                    crate::checkpoint::is_temp_of(&name, &format!("step-{step}"))
                });
            if is_temp {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Reads the trainer state of a step directory.
    pub fn load_trainer_state(dir: &Path) -> Result<HashMap<String, Tensor>> {
        let path = dir.join(TRAINER_FILE);
        // Parse through our checked reader first so corrupt files are typed errors.
        let file = crate::checkpoint::CheckpointFile::open(&path)?;
        let tensors = file.parse()?;
        let mut out = HashMap::new();
        for (name, view) in tensors.iter() {
            use candle_core::safetensors::Load;
            let t = view
                .load(&candle_core::Device::Cpu)
                .map_err(|e| CheckpointError::Entry {
                    path: path.display().to_string(),
                    key: name.to_string(),
                    reason: e.to_string(),
                })?;
            out.insert(name.to_string(), t);
        }
        Ok(out)
    }
}
