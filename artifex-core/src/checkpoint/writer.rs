//! A streaming safetensors writer: the header, then each tensor's bytes in bounded chunks, to
//! any `Write`. Output is deterministic (keys sorted, metadata sorted) and never holds a second
//! full copy of a large tensor.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use candle_core::{DType, Tensor};

/// Elements converted to bytes per step.
const CHUNK_ELEMS: usize = 1 << 21;

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The safetensors name of a dtype this writer supports.
fn dtype_name(dtype: DType) -> std::io::Result<&'static str> {
    Ok(match dtype {
        DType::U8 => "U8",
        DType::U32 => "U32",
        DType::I16 => "I16",
        DType::I32 => "I32",
        DType::I64 => "I64",
        DType::BF16 => "BF16",
        DType::F16 => "F16",
        DType::F32 => "F32",
        DType::F64 => "F64",
        other_dtype => {
            return Err(other(format!(
                "cannot save {other_dtype:?} tensors (supported: integer and 16/32/64-bit float)"
            )))
        }
    })
}

/// Writes `entries` (sorted by key; keys must be unique) and `metadata` as a safetensors file.
pub(crate) fn write_safetensors<W: Write>(
    w: &mut W,
    entries: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> std::io::Result<()> {
    let mut order: Vec<&(String, Tensor)> = entries.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let sorted: BTreeMap<&String, &String> = metadata.iter().collect();
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(sorted).map_err(other)?,
        );
    }
    let mut offset = 0usize;
    for (key, t) in &order {
        let size = t.elem_count() * t.dtype().size_in_bytes();
        let info = serde_json::json!({
            "dtype": dtype_name(t.dtype())?,
            "shape": t.dims(),
            "data_offsets": [offset, offset + size],
        });
        if header.insert(key.clone(), info).is_some() {
            return Err(other(format!("duplicate key `{key}`")));
        }
        offset += size;
    }
    let mut json = serde_json::to_vec(&header).map_err(other)?;
    json.resize(json.len().next_multiple_of(8), b' ');
    w.write_all(&(json.len() as u64).to_le_bytes())?;
    w.write_all(&json)?;
    for (_, t) in order {
        write_values(w, t)?;
    }
    w.flush()
}

/// Writes the little-endian bytes of `t`: straight from its memory when it is contiguous on
/// the CPU of a little-endian machine, else `CHUNK_ELEMS` elements at a time.
fn write_values<W: Write>(w: &mut W, t: &Tensor) -> std::io::Result<()> {
    if cfg!(target_endian = "little") && write_cpu_bytes(w, t)? {
        return Ok(());
    }
    let flat = t.flatten_all().map_err(other)?;
    let n = flat.elem_count();
    let mut start = 0;
    while start < n {
        let len = CHUNK_ELEMS.min(n - start);
        let chunk = flat
            .narrow(0, start, len)
            .and_then(|c| c.to_device(&candle_core::Device::Cpu))
            .map_err(other)?;
        let bytes = chunk_bytes(&chunk).map_err(other)?;
        w.write_all(&bytes)?;
        start += len;
    }
    Ok(())
}

/// Writes the in-memory bytes of a contiguous CPU tensor (its little-endian encoding on a
/// little-endian machine) without a copy; `Ok(false)` when `t` is not such a tensor.
fn write_cpu_bytes<W: Write>(w: &mut W, t: &Tensor) -> std::io::Result<bool> {
    use bytemuck::cast_slice;
    use candle_core::{CpuStorage, Storage};
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(false);
    };
    let range = start..end;
    let bytes: Option<&[u8]> = match cpu {
        CpuStorage::U8(v) => v.get(range),
        CpuStorage::U32(v) => v.get(range).map(cast_slice),
        CpuStorage::I16(v) => v.get(range).map(cast_slice),
        CpuStorage::I32(v) => v.get(range).map(cast_slice),
        CpuStorage::I64(v) => v.get(range).map(cast_slice),
        CpuStorage::F32(v) => v.get(range).map(cast_slice),
        CpuStorage::F64(v) => v.get(range).map(cast_slice),
        _ => None,
    };
    match bytes {
        Some(b) => w.write_all(b).map(|()| true),
        None => Ok(false),
    }
}

fn chunk_bytes(c: &Tensor) -> candle_core::Result<Vec<u8>> {
    fn le<T, const N: usize>(v: Vec<T>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.into_iter().flat_map(f).collect()
    }
    Ok(match c.dtype() {
        DType::U8 => c.to_vec1::<u8>()?,
        DType::U32 => le(c.to_vec1::<u32>()?, u32::to_le_bytes),
        DType::I16 => le(c.to_vec1::<i16>()?, i16::to_le_bytes),
        DType::I32 => le(c.to_vec1::<i32>()?, i32::to_le_bytes),
        DType::I64 => le(c.to_vec1::<i64>()?, i64::to_le_bytes),
        DType::BF16 => le(c.to_vec1::<half::bf16>()?, half::bf16::to_le_bytes),
        DType::F16 => le(c.to_vec1::<half::f16>()?, half::f16::to_le_bytes),
        DType::F32 => le(c.to_vec1::<f32>()?, f32::to_le_bytes),
        DType::F64 => le(c.to_vec1::<f64>()?, f64::to_le_bytes),
        other_dtype => candle_core::bail!("cannot save {other_dtype:?} tensors"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn output_parses_and_round_trips_every_dtype() -> crate::Result<()> {
        let base = Tensor::arange(0f32, 6.0, &Device::Cpu)?.reshape((2, 3))?;
        let mut entries = Vec::new();
        for dt in [
            DType::U8,
            DType::U32,
            DType::I64,
            DType::BF16,
            DType::F16,
            DType::F32,
            DType::F64,
        ] {
            entries.push((format!("t.{dt:?}"), base.to_dtype(dt)?));
        }
        entries.push(("scalar".into(), Tensor::new(7i64, &Device::Cpu)?));
        // Not contiguous: written through the chunked path instead of straight from memory.
        entries.push(("transposed".into(), base.t()?));
        let meta = HashMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
        let mut bytes = Vec::new();
        write_safetensors(&mut bytes, &entries, &meta)
            .map_err(|e| crate::Error::config("test", e.to_string()))?;
        let mut again = Vec::new();
        write_safetensors(&mut again, &entries, &meta)
            .map_err(|e| crate::Error::config("test", e.to_string()))?;
        assert_eq!(bytes, again, "deterministic");
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| crate::Error::config("test", e.to_string()))?;
        assert_eq!(st.len(), entries.len());
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        for (k, t) in &entries {
            let back = &loaded[k];
            assert_eq!(back.dtype(), t.dtype());
            assert_eq!(back.dims(), t.dims());
            let (a, b) = (back.to_dtype(DType::F64)?, t.to_dtype(DType::F64)?);
            assert_eq!(
                a.flatten_all()?.to_vec1::<f64>()?,
                b.flatten_all()?.to_vec1::<f64>()?
            );
        }
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| crate::Error::config("test", e.to_string()))?;
        assert_eq!(m.metadata().as_ref().map(|m| m["a"].as_str()), Some("1"));
        Ok(())
    }

    #[test]
    fn duplicate_keys_are_refused() -> crate::Result<()> {
        let t = Tensor::zeros(2, DType::F32, &Device::Cpu)?;
        let entries = vec![("a".to_string(), t.clone()), ("a".to_string(), t)];
        let err = write_safetensors(&mut Vec::new(), &entries, &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("duplicate key `a`"));
        Ok(())
    }
}
