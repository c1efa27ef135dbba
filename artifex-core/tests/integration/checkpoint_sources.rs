//! One load logic for files, byte buffers and tensor maps; the explicit dtype policy.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::checkpoint::{self, CheckpointFile, DtypePolicy, LoadOptions, SaveOptions};
use artifex_core::layers::Linear;
use artifex_core::prelude::*;
use artifex_core::CheckpointError;
use common::{state_bytes, Mlp};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("artifex-src-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// The model's state with every f32 entry converted to `dtype`, written with candle.
fn save_as(model: &Mlp, dtype: DType, path: &std::path::Path) -> Result<()> {
    let mut map = HashMap::new();
    for (key, var) in model.state() {
        let t = var.to_tensor()?;
        let t = if t.dtype() == DType::F32 {
            t.to_dtype(dtype)?
        } else {
            t
        };
        map.insert(key, t);
    }
    candle_core::safetensors::save(&map, path)?;
    Ok(())
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1())
        .expect("values")
}

#[test]
fn file_bytes_and_map_loads_agree() -> Result<()> {
    let dir = tmp_dir("agree");
    let path = dir.join("m.safetensors");
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(1))?;
    model.save_safetensors(&path)?;

    // save_to_writer gives the very bytes of the file.
    let mut bytes = Vec::new();
    checkpoint::save_to_writer(&model, &mut bytes, &SaveOptions::default())?;
    assert_eq!(bytes, std::fs::read(&path).expect("read"));

    let mut a = Mlp::new(6, 10, 3, &mut Rngs::new(2))?;
    assert!(a.load_safetensors(&path)?.is_clean());
    let b = Mlp::new(6, 10, 3, &mut Rngs::new(3))?;
    assert!(checkpoint::load_bytes(&b, &bytes, &LoadOptions::strict())?.is_clean());
    let mut c = Mlp::new(6, 10, 3, &mut Rngs::new(4))?;
    let map = candle_core::safetensors::load(&path, &Device::Cpu)?;
    let report = c.load_tensors(&map, &LoadOptions::strict())?;
    assert_eq!(report.loaded.len(), 10);
    for m in [state_bytes(&a), state_bytes(&b), state_bytes(&c)] {
        assert_eq!(m, state_bytes(&model));
    }

    // The same problems are reported the same way for a map as for a file.
    let mut map = map;
    let kernel = map.remove("fc1.kernel").expect("key");
    map.insert("fc1.kernal".into(), kernel);
    let err = c
        .load_tensors(&map, &LoadOptions::strict())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint <tensor map> does not match the model"),
        "{err}"
    );
    assert!(
        err.contains("unexpected: fc1.kernal (did you mean fc1.kernel?)"),
        "{err}"
    );
    // Specs of a file and `compare` give the report without loading anything.
    let specs = CheckpointFile::open(&path)?.specs()?;
    let report = checkpoint::compare(&checkpoint::model_specs(&c), &specs, &LoadOptions::strict());
    assert!(report.is_clean() && report.loaded.len() == 10, "{report}");
    Ok(())
}

#[test]
fn half_and_double_files_load_into_f32_only_when_asked() -> Result<()> {
    let dir = tmp_dir("dtype");
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(5))?;
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        let path = dir.join(format!("{dtype:?}.safetensors"));
        save_as(&model, dtype, &path)?;
        let mut target = Mlp::new(6, 10, 3, &mut Rngs::new(6))?;
        let before = state_bytes(&target);

        // Default: refused, with the hint, nothing changed.
        let err = target.load_safetensors(&path).unwrap_err();
        let Error::Checkpoint(CheckpointError::Incompatible { report, .. }) = &err else {
            panic!("expected Incompatible, got {err}");
        };
        assert_eq!(report.dtype_mismatches.len(), 8, "{report}");
        assert!(err.to_string().contains("with_dtype_conversion()"), "{err}");
        assert_eq!(before, state_bytes(&target));

        // Asked: converted, listed, values rounded through the file's dtype.
        let options = LoadOptions::strict().with_dtype_conversion();
        assert_eq!(options.dtype, DtypePolicy::ConvertFloats);
        let report = target.load_safetensors_with(&path, &options)?;
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.converted.len(), 8);
        assert!(
            report.to_string().contains("converted: fc1.kernel: file"),
            "{report}"
        );
        let want = model.fc1.kernel.to_dtype(dtype)?;
        assert_eq!(f32s(&target.fc1.kernel), f32s(&want), "{dtype:?}");
        assert_eq!(target.fc1.kernel.dtype(), DType::F32);
        assert_eq!(target.dropout.rngs.key(), model.dropout.rngs.key());
    }
    Ok(())
}

#[test]
fn an_f32_file_loads_into_an_f16_model_when_asked() -> Result<()> {
    let dir = tmp_dir("f16model");
    let path = dir.join("m.safetensors");
    let source = Linear::new(4, 3, &mut Rngs::new(7))?;
    source.save_safetensors(&path)?;
    let mut half = Linear::builder(4, 3)
        .dtype(DType::F16)
        .build(&mut Rngs::new(8))?;
    assert!(half.load_safetensors(&path).is_err());
    let report =
        half.load_safetensors_with(&path, &LoadOptions::strict().with_dtype_conversion())?;
    assert_eq!(report.converted.len(), 2);
    assert_eq!(half.kernel.dtype(), DType::F16);
    assert_eq!(
        f32s(&half.kernel),
        f32s(&source.kernel.to_dtype(DType::F16)?)
    );
    Ok(())
}

#[test]
fn large_entries_are_copied_in_chunks_into_the_variables() -> Result<()> {
    // 3M elements: several 8 MiB chunks, with a dtype conversion per chunk.
    let dir = tmp_dir("chunks");
    let path = dir.join("big.safetensors");
    let big = Linear::new(1500, 2000, &mut Rngs::new(9))?;
    let mut map = HashMap::new();
    map.insert("kernel".to_string(), big.kernel.to_dtype(DType::F64)?);
    map.insert(
        "bias".to_string(),
        big.bias.as_ref().expect("bias").to_dtype(DType::F64)?,
    );
    candle_core::safetensors::save(&map, &path)?;
    let mut target = Linear::new(1500, 2000, &mut Rngs::new(10))?;
    let report =
        target.load_safetensors_with(&path, &LoadOptions::strict().with_dtype_conversion())?;
    assert_eq!(report.converted.len(), 2, "{report}");
    assert_eq!(f32s(&target.kernel), f32s(&big.kernel));
    // Same dtype, same path.
    big.save_safetensors(&path)?;
    let mut again = Linear::new(1500, 2000, &mut Rngs::new(11))?;
    assert!(again.load_safetensors(&path)?.converted.is_empty());
    assert_eq!(state_bytes(&again), state_bytes(&big));
    Ok(())
}

#[test]
fn integer_entries_are_never_converted() -> Result<()> {
    let dir = tmp_dir("ints");
    let path = dir.join("m.safetensors");
    let model = Mlp::new(6, 10, 3, &mut Rngs::new(12))?;
    let mut map = HashMap::new();
    for (key, var) in model.state() {
        let t = var.to_tensor()?;
        let t = if t.dtype() == DType::U32 {
            t.to_dtype(DType::I64)?
        } else {
            t
        };
        map.insert(key, t);
    }
    candle_core::safetensors::save(&map, &path)?;
    let mut target = Mlp::new(6, 10, 3, &mut Rngs::new(13))?;
    let err = target
        .load_safetensors_with(&path, &LoadOptions::strict().with_dtype_conversion())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dtype mismatch: dropout.rngs.key: model u32, file I64"),
        "{err}"
    );
    Ok(())
}
