//! Flax NNX interop both ways, on committed fixtures (python/nnx_interop.py):
//! - `nnx_vae_state.safetensors`: `nnx.state(CustomVAE)` exported by Flax with `.`-joined
//!   paths, loaded here with no renaming;
//! - `rust_vae.safetensors`: a checkpoint written by this crate (`write_rust_vae_fixture`),
//!   which the Python script loads into the NNX CustomVAE and checks against the outputs
//!   stored beside it (`rust_vae.expected.safetensors`, computed here).

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{CheckpointFile, LoadOptions};
use artifex_core::prelude::*;
use artifex_core::{Configurable, RngKey};
use artifex_models::CustomVAE;
use common::fixture::assert_close;
use common::state_bytes;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join(format!("tests/fixtures/interop/{name}"))
}

fn load_all(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).expect("fixture")
}

fn config(name: &str) -> serde_json::Value {
    let meta = CheckpointFile::open(&fixture(name))
        .and_then(|f| f.metadata())
        .expect("metadata");
    serde_json::from_str(&meta["config"]).expect("config json")
}

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
        .collect()
}

#[test]
fn nnx_exported_state_loads_with_no_renaming_and_matches_nnx() -> Result<()> {
    let cfg = config("nnx_vae_state.expected.safetensors");
    let want = load_all("nnx_vae_state.expected.safetensors");
    let mut vae = CustomVAE::new(
        usizes(&cfg["input_shape"]),
        cfg["latent_dim"].as_u64().expect("latent") as usize,
        usizes(&cfg["encoder_layers"]),
        usizes(&cfg["decoder_layers"]),
        &mut Rngs::new(0),
    )?;
    let report =
        vae.load_safetensors_with(fixture("nnx_vae_state.safetensors"), &LoadOptions::nnx())?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.loaded.len(),
        30,
        "every Param and BatchStat, as NNX named them"
    );

    vae.eval();
    let (mean, logvar) = vae.encode(&want["x"])?;
    assert_close(&mean, &want["enc_eval.mean"], 1e-5, "encode mean (eval)");
    assert_close(
        &logvar,
        &want["enc_eval.logvar"],
        1e-5,
        "encode logvar (eval)",
    );
    assert_close(
        &vae.decode(&want["z"])?,
        &want["dec_eval"],
        1e-5,
        "decode (eval)",
    );

    vae.train();
    let (mean, _) = vae.encode(&want["x"])?;
    assert_close(&mean, &want["enc_train.mean"], 1e-4, "encode mean (train)");
    for (path, var) in vae.state() {
        if path.starts_with("encoder.") && var.kind() == StateKind::BatchStat {
            let key = format!("after_train.{path}");
            assert_close(&var.to_tensor()?, &want[&key], 1e-5, &key);
        }
    }
    Ok(())
}

/// The model of the Rust-written fixture: seeded, then three train-mode steps so batch
/// statistics and the sample stream are no longer initial.
fn rust_vae() -> Result<(CustomVAE, Tensor, Tensor)> {
    let vae = CustomVAE::new(
        vec![6, 6, 1],
        3,
        vec![8, 6],
        vec![6, 8],
        &mut Rngs::new(2024),
    )?;
    let key = RngKey::from_seed(7);
    let x = key
        .fold_in(0)
        .uniform(&[5, 6, 6, 1], 0.0, 1.0, DType::F32, &Device::Cpu)?;
    let z = key.fold_in(1).normal(&[5, 3], DType::F32, &Device::Cpu)?;
    for _ in 0..3 {
        vae.forward(&x)?;
    }
    Ok((vae, x, z))
}

/// What the Python side checks: eval outputs, and a train-mode encode with the batch stats
/// after it.
fn rust_outputs(vae: &mut CustomVAE, x: &Tensor, z: &Tensor) -> Result<Vec<(String, Tensor)>> {
    vae.eval();
    let (mean, logvar) = vae.encode(x)?;
    let mut out = vec![
        ("x".to_string(), x.clone()),
        ("z".to_string(), z.clone()),
        ("enc_eval.mean".to_string(), mean),
        ("enc_eval.logvar".to_string(), logvar),
        ("dec_eval".to_string(), vae.decode(z)?),
    ];
    vae.train();
    let (mean, _) = vae.encode(x)?;
    out.push(("enc_train.mean".to_string(), mean));
    for (path, var) in vae.state() {
        if path.starts_with("encoder.") && var.kind() == StateKind::BatchStat {
            out.push((format!("after_train.{path}"), var.to_tensor()?));
        }
    }
    Ok(out)
}

#[test]
#[ignore = "writes tests/fixtures/interop/rust_vae*.safetensors; run when the format changes"]
fn write_rust_vae_fixture() -> Result<()> {
    let (mut vae, x, z) = rust_vae()?;
    vae.save_checkpoint(fixture("rust_vae.safetensors"))?;
    let outputs: HashMap<String, Tensor> = rust_outputs(&mut vae, &x, &z)?.into_iter().collect();
    candle_core::safetensors::save(&outputs, fixture("rust_vae.expected.safetensors"))?;
    Ok(())
}

#[test]
fn the_rust_written_fixture_is_what_this_code_writes_and_computes() -> Result<()> {
    // The committed checkpoint rebuilds its model from its own config and loads strictly ...
    let mut loaded = CustomVAE::from_checkpoint(fixture("rust_vae.safetensors"))?;
    let (mut fresh, x, z) = rust_vae()?;
    // ... bitwise-equal to what the writer builds today (params, batch stats, rng state) ...
    assert_eq!(state_bytes(&loaded), state_bytes(&fresh));
    // ... and the stored outputs are what this code computes from it.
    let stored = load_all("rust_vae.expected.safetensors");
    for (key, value) in rust_outputs(&mut loaded, &x, &z)? {
        assert_close(&value, &stored[&key], 1e-6, &key);
    }
    let again = rust_outputs(&mut fresh, &x, &z)?;
    assert_eq!(again.len(), stored.len());
    Ok(())
}
