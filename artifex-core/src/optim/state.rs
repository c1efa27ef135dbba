//! Optimizer state as named tensors: the checks of `load_state` and safetensors files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::Optimizer;
use crate::checkpoint::write_atomically;
use crate::{CheckpointError, Error, Result};

/// The key of the update counter in every optimizer's state.
pub const STEP_KEY: &str = "opt.step";
/// The prefix of every optimizer state key.
pub const PREFIX: &str = "opt.";

/// The counter as a state entry (`I64` scalar on the CPU).
pub(crate) fn step_entry(step: u64) -> Result<(String, Tensor)> {
    Ok((
        STEP_KEY.to_string(),
        Tensor::new(step as i64, &Device::Cpu)?,
    ))
}

/// Checks `given` against the entries an optimizer expects (`(key, current value)` pairs) and
/// returns the step counter and the new values, moved to the current values' devices.
///
/// Every problem is collected into one [`Error::OptimizerState`]; entries of `given` outside
/// `opt.` (the model's, in a shared file) are ignored.
pub(crate) fn check_and_take(
    optimizer: &str,
    expected: &[(String, &Tensor)],
    given: &HashMap<String, Tensor>,
) -> Result<(u64, Vec<Tensor>)> {
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let step = match given.get(STEP_KEY) {
        None => {
            missing.push(STEP_KEY.to_string());
            None
        }
        Some(t) => match read_step(t) {
            Some(s) => Some(s),
            None => {
                mismatched.push(format!(
                    "{STEP_KEY} (expected a non-negative integer scalar, found {:?} {:?})",
                    t.dtype(),
                    t.dims()
                ));
                None
            }
        },
    };
    let mut values = Vec::with_capacity(expected.len());
    for (key, current) in expected {
        match given.get(key) {
            None => missing.push(key.clone()),
            Some(t) if t.dims() != current.dims() || t.dtype() != current.dtype() => mismatched
                .push(format!(
                    "{key} (expected {:?} {:?}, found {:?} {:?})",
                    current.dtype(),
                    current.dims(),
                    t.dtype(),
                    t.dims()
                )),
            Some(t) => values.push(t.to_device(current.device())?),
        }
    }
    let mut unexpected: Vec<String> = given
        .keys()
        .filter(|k| k.starts_with(PREFIX) && k.as_str() != STEP_KEY)
        .filter(|k| !expected.iter().any(|(e, _)| e == *k))
        .cloned()
        .collect();
    unexpected.sort_unstable();
    match step {
        Some(step) if missing.is_empty() && mismatched.is_empty() && unexpected.is_empty() => {
            Ok((step, values))
        }
        _ => Err(Error::OptimizerState {
            optimizer: optimizer.to_string(),
            missing,
            mismatched,
            unexpected,
        }),
    }
}

fn read_step(t: &Tensor) -> Option<u64> {
    if !t.dims().is_empty() || t.dtype().is_float() {
        return None;
    }
    let v: i64 = t.to_dtype(DType::I64).ok()?.to_scalar().ok()?;
    u64::try_from(v).ok()
}

/// Writes named tensors to a safetensors file atomically (e.g. a model's state followed by
/// [`Optimizer::state_tensors`]).
pub fn save_tensors(path: impl AsRef<Path>, entries: &[(String, Tensor)]) -> Result<()> {
    let map: HashMap<String, Tensor> = entries.iter().cloned().collect();
    if map.len() != entries.len() {
        return Err(Error::config("save_tensors", "duplicate entry names"));
    }
    write_atomically(path.as_ref(), |tmp| {
        candle_core::safetensors::save(&map, tmp).map_err(std::io::Error::other)
    })
}

/// Reads every tensor of a safetensors file onto the CPU.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    if let Err(source) = std::fs::metadata(path) {
        return Err(CheckpointError::Io {
            path: path.display().to_string(),
            source,
        }
        .into());
    }
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        CheckpointError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
        .into()
    })
}

/// Saves an optimizer's state alone to `path`.
pub fn save_state_file(optimizer: &dyn Optimizer, path: impl AsRef<Path>) -> Result<()> {
    save_tensors(path, &optimizer.state_tensors()?)
}

/// Loads an optimizer's state from `path` (a file of its own or one shared with the model).
pub fn load_state_file(optimizer: &mut dyn Optimizer, path: impl AsRef<Path>) -> Result<()> {
    optimizer.load_state(&load_tensors(path)?)
}
