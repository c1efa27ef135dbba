//! The kind of a checkpoint entry comes from the model's state tree, not from its name: a
//! batch stat not called `mean`/`var`, a param called `mean` and rng state under a field not
//! called `rngs` keep their kinds through a save, an inspection and a load. Only a file that
//! records no kinds (a foreign one) falls back to a guess from the names.

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{
    self, guess_kind, CheckpointFile, Dtype, KindSource, LoadOptions, KINDS_KEY,
};
use artifex_core::prelude::*;
use artifex_core::RngStream;

/// Every name here misleads a guess from names.
#[module]
struct OddNames {
    /// A trainable vector that happens to be called `mean`.
    #[param(init = zeros, shape = [3])]
    mean: Param,
    /// Running statistics under a name no guess knows.
    #[batch_stat(init = ones, shape = [3])]
    ema: BatchStat,
    /// Rng state under a field not called `rngs`.
    #[rng(stream = "dropout")]
    noise: RngStream,
}

fn tmp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("artifex-kinds-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("m.safetensors")
}

fn kinds_of(specs: &[checkpoint::EntrySpec]) -> Vec<(&str, StateKind)> {
    specs.iter().map(|e| (e.path.as_str(), e.kind)).collect()
}

const MODEL_KINDS: [(&str, StateKind); 4] = [
    ("ema", StateKind::BatchStat),
    ("mean", StateKind::Param),
    ("noise.count", StateKind::RngCount),
    ("noise.key", StateKind::RngKey),
];

#[test]
fn a_saved_file_records_the_models_kinds_whatever_the_names() -> Result<()> {
    let model = OddNames::new(&mut Rngs::new(0))?;
    assert_eq!(model.num_params(), 3, "`mean` is the only param");
    let path = tmp_file("record");
    model.save_safetensors(&path)?;
    let file = CheckpointFile::open(&path)?;
    assert_eq!(file.kind_source()?, KindSource::Recorded);
    assert_eq!(kinds_of(&file.specs()?), MODEL_KINDS);
    // The names alone would have misled: this is what a guess makes of them.
    assert_eq!(guess_kind("mean", Dtype::F32), StateKind::BatchStat);
    assert_eq!(guess_kind("ema", Dtype::F32), StateKind::Param);
    assert_eq!(guess_kind("noise.key", Dtype::U32), StateKind::Param);
    Ok(())
}

#[test]
fn the_round_trip_keeps_values_and_kinds() -> Result<()> {
    let model = OddNames::new(&mut Rngs::new(0))?;
    model
        .mean
        .set(&Tensor::new(&[1f32, 2., 3.], &Device::Cpu)?)?;
    model
        .ema
        .set(&Tensor::new(&[4f32, 5., 6.], &Device::Cpu)?)?;
    let path = tmp_file("round-trip");
    model.save_safetensors(&path)?;
    let mut twin = OddNames::new(&mut Rngs::new(7))?;
    let report = twin.load_safetensors(&path)?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(twin.mean.to_vec1::<f32>()?, [1., 2., 3.]);
    assert_eq!(twin.ema.value().to_vec1::<f32>()?, [4., 5., 6.]);
    let kinds: Vec<(String, StateKind)> = twin
        .state()
        .into_iter()
        .map(|(p, v)| (p, v.kind()))
        .collect();
    let expected: Vec<(String, StateKind)> = ["mean", "ema", "noise.count", "noise.key"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                MODEL_KINDS.iter().find(|(k, _)| k == p).unwrap().1,
            )
        })
        .collect();
    assert_eq!(kinds, expected);
    // Saved again, the twin's file records the same kinds.
    twin.save_safetensors(&path)?;
    assert_eq!(
        kinds_of(&CheckpointFile::open(&path)?.specs()?),
        MODEL_KINDS
    );
    Ok(())
}

#[test]
fn optional_rng_state_follows_the_models_kinds() -> Result<()> {
    let model = OddNames::new(&mut Rngs::new(0))?;
    let mut twin = OddNames::new(&mut Rngs::new(1))?;
    // Params and batch stats only: the rng entries, called `noise.*`, are rng state to the
    // model, so a load that makes rng state optional does not miss them.
    let tensors: HashMap<String, Tensor> = model
        .state()
        .into_iter()
        .filter(|(_, v)| matches!(v.kind(), StateKind::Param | StateKind::BatchStat))
        .map(|(p, v)| Ok((p, v.to_tensor()?)))
        .collect::<Result<_>>()?;
    let report = twin.load_tensors(&tensors, &LoadOptions::strict().with_optional_rng_state())?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.loaded, ["mean", "ema"]);
    // Without the option they are missing, as the strict default wants.
    let strict = twin.load_tensors(&tensors, &LoadOptions::lenient())?;
    assert_eq!(strict.missing, ["noise.count", "noise.key"]);
    // The same decision from two files (`artifex inspect --diff`) reads the recorded kinds.
    let model_path = tmp_file("diff-model");
    model.save_safetensors(&model_path)?;
    let partial_path = tmp_file("diff-partial");
    candle_core::safetensors::save(&tensors, &partial_path)?;
    let report = checkpoint::compare(
        &CheckpointFile::open(&model_path)?.specs()?,
        &CheckpointFile::open(&partial_path)?.specs()?,
        &LoadOptions::strict().with_optional_rng_state(),
    );
    assert!(report.is_clean(), "{report}");
    Ok(())
}

#[test]
fn a_file_without_recorded_kinds_falls_back_to_the_guess() -> Result<()> {
    let model = OddNames::new(&mut Rngs::new(0))?;
    let tensors: HashMap<String, Tensor> = model
        .state()
        .into_iter()
        .map(|(p, v)| Ok((p, v.to_tensor()?)))
        .collect::<Result<_>>()?;
    let path = tmp_file("foreign");
    candle_core::safetensors::save(&tensors, &path)?;
    let file = CheckpointFile::open(&path)?;
    assert!(!file.metadata()?.contains_key(KINDS_KEY));
    assert_eq!(file.kind_source()?, KindSource::Guessed);
    assert_eq!(
        kinds_of(&file.specs()?),
        [
            ("ema", StateKind::Param),
            ("mean", StateKind::BatchStat),
            ("noise.count", StateKind::Param),
            ("noise.key", StateKind::Param),
        ],
        "a guess from names, wrong for every entry of this model"
    );
    // Loading it into the model still works: there the model's kinds decide.
    let mut twin = OddNames::new(&mut Rngs::new(3))?;
    let report = twin.load_safetensors(&path)?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        twin.state()
            .iter()
            .filter(|(_, v)| v.kind() == StateKind::Param)
            .count(),
        1
    );
    Ok(())
}
