//! Safetensors checkpoints: bitwise round trips, strict reports, corrupt and foreign files.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{CheckpointFile, LoadOptions, SaveOptions};
use artifex_core::prelude::*;
use artifex_core::CheckpointError;
use common::{batch, state_bytes, Mlp};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("artifex-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// A model that has trained a little: batch stats and rng counters are no longer initial.
fn trained_model(seed: u64) -> Result<Mlp> {
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(seed))?;
    for _ in 0..3 {
        model.forward(&batch(8, 6))?;
    }
    Ok(model)
}

#[test]
fn round_trip_is_bitwise_including_batch_stats_and_rng_counters() -> Result<()> {
    let dir = tmp_dir("roundtrip");
    let path = dir.join("model.safetensors");
    let model = trained_model(1)?;
    assert_eq!(model.dropout.rngs.count(), 3);
    model.save_safetensors(&path)?;

    let mut fresh = Mlp::new(6, 10, 3, &mut Rngs::new(99))?;
    assert_ne!(state_bytes(&fresh), state_bytes(&model));
    let report = fresh.load_safetensors(&path)?;
    assert!(report.is_clean());
    assert_eq!(report.loaded.len(), 10);
    assert_eq!(state_bytes(&fresh), state_bytes(&model));
    assert_eq!(fresh.dropout.rngs.count(), 3);
    // Same rng state => the resumed model draws the same next dropout mask.
    let (a, b) = (model.forward(&batch(8, 6))?, fresh.forward(&batch(8, 6))?);
    assert_eq!(common::bits(&a), common::bits(&b));
    // No temp files are left beside the checkpoint.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
    Ok(())
}

/// Saves without the fsyncs write the same bytes, through the same temp file and rename.
#[test]
fn non_durable_saves_write_the_same_bytes() -> Result<()> {
    let dir = tmp_dir("nosync");
    let model = trained_model(2)?;
    let (durable, fast) = (
        dir.join("durable.safetensors"),
        dir.join("fast.safetensors"),
    );
    model.save_safetensors(&durable)?;
    model.save_safetensors_with(&fast, &SaveOptions::default().durable(false))?;
    assert!(SaveOptions::default().durable, "durable by default");
    let read = |p: &PathBuf| std::fs::read(p).expect("checkpoint bytes");
    assert_eq!(read(&durable), read(&fast));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["durable.safetensors", "fast.safetensors"]);
    Ok(())
}

#[test]
fn metadata_records_format_type_and_config() -> Result<()> {
    let dir = tmp_dir("meta");
    let path = dir.join("m.safetensors");
    let model = trained_model(2)?;
    let config = HashMap::from([("hidden", 10)]);
    model.save_safetensors_with(&path, &SaveOptions::with_config(&config)?)?;
    let meta = CheckpointFile::open(&path)?.metadata()?;
    assert_eq!(meta["format"], "artifex");
    assert_eq!(meta["format_version"], "1");
    assert_eq!(meta["crate_version"], env!("CARGO_PKG_VERSION"));
    assert!(meta["type_name"].ends_with("Mlp"), "{}", meta["type_name"]);
    assert_eq!(meta["config"], r#"{"hidden":10}"#);
    Ok(())
}

#[test]
fn truncated_file_is_a_corrupt_error() -> Result<()> {
    let dir = tmp_dir("trunc");
    let path = dir.join("m.safetensors");
    trained_model(3)?.save_safetensors(&path)?;
    let bytes = std::fs::read(&path).expect("read");
    let mut model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    let before = state_bytes(&model);
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let err = model.load_safetensors(&path).unwrap_err();
        assert!(
            matches!(err, Error::Checkpoint(CheckpointError::Corrupt { .. })),
            "cut at {cut}: {err}"
        );
        assert!(err
            .to_string()
            .contains("is corrupt or not a safetensors file"));
    }
    // Garbage and a header claiming a huge size.
    std::fs::write(&path, b"not a checkpoint at all").expect("write");
    assert!(model.load_safetensors(&path).is_err());
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    std::fs::write(&path, huge).expect("write");
    assert!(model.load_safetensors(&path).is_err());
    assert_eq!(before, state_bytes(&model), "failed loads change nothing");
    Ok(())
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() -> Result<()> {
    let mut model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    let err = model
        .load_safetensors("/nonexistent/dir/m.safetensors")
        .unwrap_err();
    assert!(matches!(err, Error::Checkpoint(CheckpointError::Io { .. })));
    assert!(err.to_string().contains("/nonexistent/dir/m.safetensors"));
    Ok(())
}

#[test]
fn wrong_shapes_and_extra_keys_are_all_reported_at_once() -> Result<()> {
    let dir = tmp_dir("mismatch");
    let path = dir.join("m.safetensors");
    // Another width: every fc1/bn/fc2 entry has a different shape except fc2.bias.
    Mlp::new(6, 12, 3, &mut Rngs::new(0))?.save_safetensors(&path)?;
    let mut model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    let before = state_bytes(&model);
    let err = model.load_safetensors(&path).unwrap_err();
    let Error::Checkpoint(CheckpointError::Incompatible { report, .. }) = &err else {
        panic!("expected Incompatible, got {err}");
    };
    let shape_paths: Vec<&str> = report
        .shape_mismatches
        .iter()
        .map(|m| m.path.as_str())
        .collect();
    assert_eq!(
        shape_paths,
        [
            "fc1.kernel",
            "fc1.bias",
            "bn.scale",
            "bn.bias",
            "bn.mean",
            "bn.var",
            "fc2.kernel"
        ]
    );
    let first = &report.shape_mismatches[0];
    assert_eq!(
        (first.expected_shape.clone(), first.found_shape.clone()),
        (vec![6, 10], vec![6, 12])
    );
    assert!(
        err.to_string()
            .contains("shape mismatch: fc1.kernel: model [6, 10], file [6, 12]"),
        "{err}"
    );
    assert_eq!(
        before,
        state_bytes(&model),
        "strict load changes nothing on error"
    );

    // Lenient: loads what matches (fc2.bias and rng state), reports the rest.
    let report = model.load_safetensors_with(&path, &LoadOptions::lenient())?;
    assert_eq!(
        report.loaded,
        ["dropout.rngs.count", "dropout.rngs.key", "fc2.bias"]
    );
    assert_eq!(report.shape_mismatches.len(), 7);
    Ok(())
}

#[test]
fn unexpected_and_missing_keys_with_suggestions() -> Result<()> {
    let dir = tmp_dir("keys");
    let path = dir.join("m.safetensors");
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    // Write a file by hand: one key misspelt, one extra, one missing.
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (key, var) in model.state() {
        let key = match key.as_str() {
            "fc1.kernel" => "fc1.kernal".to_string(),
            "bn.var" => continue,
            _ => key,
        };
        tensors.push((key, var.to_tensor()?));
    }
    tensors.push((
        "extra.weight".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu)?,
    ));
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, &path)?;

    let mut target = Mlp::new(6, 10, 3, &mut Rngs::new(1))?;
    let err = target.load_safetensors(&path).unwrap_err();
    let Error::Checkpoint(CheckpointError::Incompatible { report, .. }) = &err else {
        panic!("expected Incompatible, got {err}");
    };
    assert_eq!(report.missing, ["fc1.kernel", "bn.var"]);
    let unexpected: Vec<(&str, Option<&str>)> = report
        .unexpected
        .iter()
        .map(|u| (u.path.as_str(), u.suggestion.as_deref()))
        .collect();
    assert_eq!(
        unexpected,
        [("extra.weight", None), ("fc1.kernal", Some("fc1.kernel"))]
    );
    let text = err.to_string();
    assert!(text.contains("missing: bn.var"));
    assert!(
        text.contains("unexpected: fc1.kernal (did you mean fc1.kernel?)"),
        "{text}"
    );
    Ok(())
}

#[test]
fn dtype_change_is_refused() -> Result<()> {
    let dir = tmp_dir("dtype");
    let path = dir.join("m.safetensors");
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(0))?;
    let mut map = HashMap::new();
    for (key, var) in model.state() {
        let t = var.to_tensor()?;
        let t = if t.dtype() == DType::F32 {
            t.to_dtype(DType::F16)?
        } else {
            t
        };
        map.insert(key, t);
    }
    candle_core::safetensors::save(&map, &path)?;
    let mut target = Mlp::new(6, 10, 3, &mut Rngs::new(1))?;
    let err = target.load_safetensors(&path).unwrap_err().to_string();
    assert!(
        err.contains("dtype mismatch: fc1.kernel: model f32, file F16"),
        "{err}"
    );
    Ok(())
}

#[cfg(unix)]
#[test]
fn saving_into_a_read_only_directory_fails_and_keeps_the_old_file() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp_dir("readonly");
    let path = dir.join("m.safetensors");
    let model = trained_model(4)?;
    model.save_safetensors(&path)?;
    let old = std::fs::read(&path).expect("read");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let other = Mlp::new(6, 10, 3, &mut Rngs::new(5))?;
    let result = other.save_safetensors(&path);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Root ignores directory permissions; only assert the failure where it applies.
    if let Err(err) = result {
        assert!(matches!(err, Error::Checkpoint(CheckpointError::Io { .. })));
        assert_eq!(old, std::fs::read(&path).expect("read"));
    }
    let names: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert_eq!(names.len(), 1, "no temp file left behind");
    Ok(())
}

#[test]
fn a_failed_write_keeps_the_old_file_and_leaves_no_temp_file() -> Result<()> {
    let dir = tmp_dir("failed-write");
    let path = dir.join("m.safetensors");
    trained_model(6)?.save_safetensors(&path)?;
    let old = std::fs::read(&path).expect("read");
    let result = artifex_core::checkpoint::write_atomically(&path, |tmp| {
        std::fs::write(tmp, b"half a checkpoint")?;
        Err(std::io::Error::other("disk full"))
    });
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("disk full") && err.contains("m.safetensors"),
        "{err}"
    );
    assert_eq!(old, std::fs::read(&path).expect("read"));
    let names: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert_eq!(names.len(), 1);
    Ok(())
}
