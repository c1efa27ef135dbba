//! Flax NNX reference fixtures (tests/fixtures/nnx, written by python/make_fixtures.py).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{CheckpointFile, LoadOptions, LoadReport};
use artifex_core::prelude::*;

/// One fixture file: tensors by key plus its config JSON.
pub struct Fixture {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    pub config: serde_json::Value,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/nnx/{name}.safetensors"));
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture loads");
        let meta = CheckpointFile::open(&path)
            .and_then(|f| f.metadata())
            .expect("metadata");
        let config = serde_json::from_str(&meta["config"]).expect("config json");
        Self {
            path,
            tensors,
            config,
        }
    }

    pub fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture {} has no `{key}`", self.path.display()))
    }

    pub fn usize(&self, key: &str) -> usize {
        self.config[key]
            .as_u64()
            .unwrap_or_else(|| panic!("config `{key}`")) as usize
    }

    pub fn usizes(&self, key: &str) -> Vec<usize> {
        self.config[key]
            .as_array()
            .unwrap_or_else(|| panic!("config `{key}`"))
            .iter()
            .map(|v| v.as_u64().expect("int") as usize)
            .collect()
    }

    /// Loads the `state.*` entries into `model` with our checkpoint loader, strictly: every
    /// param and batch stat must be there under the same name (rng state is artifex's own).
    pub fn load_state<M: Module>(&self, model: &mut M) -> LoadReport {
        model
            .load_safetensors_with(&self.path, &LoadOptions::nnx().with_prefix("state."))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Asserts `|a - b| <= rtol * (|b| + 1)` everywhere (relative, with a floor near zero).
pub fn assert_close(actual: &Tensor, expected: &Tensor, rtol: f64, what: &str) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let a: Vec<f32> = actual
        .flatten_all()
        .expect("flat")
        .to_dtype(DType::F32)
        .expect("f32")
        .to_vec1()
        .expect("vec");
    let b: Vec<f32> = expected
        .flatten_all()
        .expect("flat")
        .to_dtype(DType::F32)
        .expect("f32")
        .to_vec1()
        .expect("vec");
    let mut worst = (0.0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x.is_finite(), "{what}: non-finite value at {i}");
        let err = (f64::from(*x) - f64::from(*y)).abs() / (f64::from(y.abs()) + 1.0);
        if err > worst.0 {
            worst = (err, i);
        }
    }
    assert!(
        worst.0 <= rtol,
        "{what}: relative error {:.3e} at {} (ours {}, NNX {}) exceeds {rtol:e}",
        worst.0,
        worst.1,
        a[worst.1],
        b[worst.1]
    );
}
