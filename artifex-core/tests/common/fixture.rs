//! Flax NNX reference fixtures (tests/fixtures/nnx, written by python/make_fixtures.py).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{CheckpointFile, LoadOptions, LoadReport};
use artifex_core::prelude::*;

/// The workspace's `tests/fixtures`, from any of its packages' tests (this module is shared by
/// the tests of artifex-core, artifex-models and the root package).
pub fn fixtures_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/fixtures"))
        .find(|dir| dir.is_dir())
        .expect("tests/fixtures in the workspace")
}

/// One fixture file: tensors by key plus its config JSON.
pub struct Fixture {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    pub config: serde_json::Value,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let path = fixtures_dir().join(format!("nnx/{name}.safetensors"));
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

/// Compares the gradients of `sum(out * grad_r)` w.r.t. the input and every param of `model`
/// with the fixture's `grad.input` / `grad.<path>`.
pub fn assert_grads<M: Module>(
    fx: &Fixture,
    model: &M,
    input: &candle_core::Var,
    out: &Tensor,
    rtol: f64,
) {
    let grads = (out * fx.get("grad_r"))
        .and_then(|t| t.sum_all())
        .and_then(|t| t.backward())
        .expect("backward");
    assert_close(
        grads.get(input.as_tensor()).expect("input grad"),
        fx.get("grad.input"),
        rtol,
        "grad.input",
    );
    let mut compared = 0;
    for (path, param) in model.named_params() {
        let grad = grads
            .get(&param)
            .unwrap_or_else(|| panic!("no gradient for {path}"));
        assert_close(
            grad,
            fx.get(&format!("grad.{path}")),
            rtol,
            &format!("grad.{path}"),
        );
        compared += 1;
    }
    let expected = fx
        .tensors
        .keys()
        .filter(|k| k.starts_with("grad.") && *k != "grad.input")
        .count();
    assert_eq!(compared, expected, "every param gradient compared");
}
