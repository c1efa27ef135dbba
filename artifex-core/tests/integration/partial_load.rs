//! Partial loads: one pretrained conv from a PyTorch `state_dict` into a bigger model (the
//! README's recipe), and the lenient loads that must not pass for success: a file that
//! matches nothing, a wrong prefix, a corrupt rng counter.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{Adapter, LoadOptions};
use artifex_core::layers::Conv;
use artifex_core::prelude::*;
use artifex_core::CheckpointError;
use common::{state_bytes, Mlp};

/// A small image classifier whose `conv` has the shape of the fixture's pretrained conv.
#[module]
struct Classifier {
    #[init(Conv::new(3, 4, vec![2, 3], rngs)?)]
    conv: Conv,
    #[init(BatchNorm::new(4, rngs)?)]
    norm: BatchNorm,
    #[init(Linear::new(4, 2, rngs)?)]
    head: Linear,
}

/// The PyTorch file of `tests/fixtures/interop` (written by python/torch_layout_fixture.py).
fn torch_file() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("tests/fixtures/interop/torch_mlp.safetensors")
}

/// A `state_dict` holding one pretrained conv (`conv.weight`, `conv.bias`), converted.
fn pretrained_conv(adapter: Adapter) -> Result<HashMap<String, Tensor>> {
    Ok(adapter
        .drop_matching(r"^(net|up)\.")?
        .apply_file(torch_file())?
        .tensors
        .into_iter()
        .collect())
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1()?)
}

#[test]
fn one_pretrained_conv_loads_into_a_bigger_model_and_the_report_says_what_is_left() -> Result<()> {
    let pretrained = pretrained_conv(Adapter::pytorch())?;
    let mut model = Classifier::new(&mut Rngs::new(0))?;
    let head_before = values(&model.head.kernel)?;

    let report = model.load_tensors(&pretrained, &LoadOptions::lenient())?;
    assert_eq!(report.loaded, ["conv.kernel", "conv.bias"]);
    assert_eq!(report.unloaded_submodules, ["norm", "head"]);
    assert!(!report.is_clean());
    let text = report.to_string();
    assert_eq!(
        text.lines().next(),
        Some(
            "PARTIAL LOAD: loaded 2 of 8 model entries; 6 missing; nothing loaded into: norm, head"
        ),
        "{text}"
    );
    assert_eq!(
        values(&model.conv.kernel)?,
        values(&pretrained["conv.kernel"])?
    );
    assert_eq!(
        values(&model.head.kernel)?,
        head_before,
        "head keeps its init"
    );

    // The same conv inside a larger file, under a prefix.
    let nested: HashMap<String, Tensor> = pretrained
        .iter()
        .map(|(k, t)| (format!("backbone.{k}"), t.clone()))
        .chain([(
            "optimizer.step".to_string(),
            Tensor::new(3i64, &Device::Cpu)?,
        )])
        .collect();
    let mut other = Classifier::new(&mut Rngs::new(1))?;
    let options = LoadOptions::lenient().with_prefix("backbone.");
    let report = other.load_tensors(&nested, &options)?;
    assert_eq!(report.loaded, ["conv.kernel", "conv.bias"]);
    assert!(
        report.unexpected.is_empty(),
        "keys outside the prefix are ignored"
    );
    Ok(())
}

#[test]
fn a_strict_load_of_a_partial_file_fails_without_claiming_to_have_loaded() -> Result<()> {
    let pretrained = pretrained_conv(Adapter::pytorch())?;
    let mut model = Classifier::new(&mut Rngs::new(0))?;
    let before = state_bytes(&model);
    let err = model
        .load_tensors(&pretrained, &LoadOptions::nnx())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing was changed (a lenient load would load 2 of 8 entries)"),
        "{err}"
    );
    assert!(!err.contains("loaded:"), "{err}");
    assert!(
        err.contains("no usable entry for the submodules: norm, head"),
        "{err}"
    );
    assert!(err.contains("missing: head.kernel"), "{err}");
    assert_eq!(state_bytes(&model), before);
    Ok(())
}

#[test]
fn a_lenient_load_that_matches_nothing_is_an_error_with_suggestions() -> Result<()> {
    // Renamed wrongly: the model calls its conv `conv`, not `stem`.
    let renamed = pretrained_conv(Adapter::pytorch().rename_regex(r"^conv\.", "stem.")?)?;
    let mut model = Classifier::new(&mut Rngs::new(0))?;
    let before = state_bytes(&model);
    let err = model
        .load_tensors(&renamed, &LoadOptions::lenient())
        .unwrap_err();
    let Error::Checkpoint(CheckpointError::NothingLoaded {
        file_entries,
        report,
        ..
    }) = &err
    else {
        panic!("expected NothingLoaded, got {err}");
    };
    assert_eq!(*file_entries, 2);
    assert!(report.loaded.is_empty());
    let text = err.to_string();
    for want in [
        "a lenient load matched none of the file's 2 entries; nothing was changed",
        "the model's entries start with: conv., norm., head.; the file's with: stem.",
        "missing: 8 model entries",
        "unexpected: stem.kernel (did you mean conv.kernel?)",
        "unexpected: stem.bias (did you mean conv.bias?)",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert_eq!(state_bytes(&model), before, "nothing changed");

    // Without the PyTorch conversions the names differ too: `weight` is not `kernel`.
    let raw = pretrained_conv(Adapter::new())?;
    let report = model.load_tensors(&raw, &LoadOptions::lenient())?;
    assert_eq!(report.loaded, ["conv.bias"]);
    assert_eq!(
        report.unexpected[0].suggestion.as_deref(),
        Some("conv.kernel"),
        "conv.weight: same place, same size"
    );
    Ok(())
}

#[test]
fn a_prefix_that_selects_nothing_is_an_error_naming_the_file_keys() -> Result<()> {
    let pretrained = pretrained_conv(Adapter::pytorch())?;
    let mut model = Classifier::new(&mut Rngs::new(0))?;
    let err = model
        .load_tensors(&pretrained, &LoadOptions::lenient().with_prefix("model."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the file has no entries under prefix `model.` (its keys start with: conv.)"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_negative_rng_counter_in_a_file_is_refused_as_corrupt() -> Result<()> {
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    let mut entries: HashMap<String, Tensor> = HashMap::new();
    for (key, var) in model.state() {
        entries.insert(key, var.to_tensor()?);
    }
    entries.insert(
        "dropout.rngs.count".into(),
        Tensor::new(-5i64, &Device::Cpu)?,
    );
    let bytes = safetensors::serialize(entries.clone(), None).expect("serialize");
    let mut target = Mlp::new(6, 10, 3, &mut Rngs::new(1))?;
    let err =
        artifex_core::checkpoint::load_bytes(&target, &bytes, &LoadOptions::strict()).unwrap_err();
    let Error::Checkpoint(CheckpointError::Entry { key, reason, .. }) = &err else {
        panic!("expected an Entry error, got {err}");
    };
    assert_eq!(key, "dropout.rngs.count");
    assert!(
        reason.contains("stored rng counter -5 is negative"),
        "{reason}"
    );
    // The same file with a valid counter loads.
    entries.insert(
        "dropout.rngs.count".into(),
        Tensor::new(5i64, &Device::Cpu)?,
    );
    let report = target.load_tensors(&entries, &LoadOptions::strict())?;
    assert!(report.is_clean());
    assert_eq!(target.dropout.rngs.count(), 5);
    Ok(())
}
