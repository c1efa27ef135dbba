//! Writing loaded values into the model's variables: in place, in bounded chunks, converting
//! the dtype chunk by chunk when the load allows it, so a load never holds a second full copy
//! of a large tensor.

use candle_core::{DType, Device, Tensor};

use crate::{Result, StateRef};

/// Bytes converted per step when copying raw file data into a variable.
const CHUNK_BYTES: usize = 8 << 20;

/// The values of one entry to load.
pub(crate) enum Values<'a> {
    /// Raw little-endian bytes of a file (validated length) in `dtype`.
    Bytes {
        /// The bytes.
        data: &'a [u8],
        /// Their dtype.
        dtype: DType,
    },
    /// A tensor already in memory.
    Tensor(&'a Tensor),
}

/// Overwrites `target` with `values` (same shape; the dtype is converted when it differs).
/// `done(bytes)` is called with each part of raw bytes once it has been copied.
pub(crate) fn write(
    target: &StateRef<'_>,
    values: Values<'_>,
    done: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let model_dtype = target.dtype();
    match values {
        Values::Tensor(t) => {
            let v = if t.dtype() == model_dtype {
                t.clone()
            } else {
                t.to_dtype(model_dtype)?
            };
            target.assign(&v)
        }
        Values::Bytes { data, dtype } => match target {
            StateRef::Param(_) | StateRef::BatchStat(_) if chunkable(dtype) => {
                // Shares the variable's storage (detached view), so writes reach the variable.
                let dst = target.to_tensor()?;
                if dst.is_contiguous() && chunkable(dst.dtype()) {
                    return copy_in_chunks(&dst, data, dtype, done);
                }
                assign_whole(target, data, dtype)?;
                done(data);
                Ok(())
            }
            _ => {
                assign_whole(target, data, dtype)?;
                done(data);
                Ok(())
            }
        },
    }
}

/// Dtypes with a whole number of bytes per element that candle reads from raw buffers.
fn chunkable(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::U8
            | DType::U32
            | DType::I16
            | DType::I32
            | DType::I64
            | DType::BF16
            | DType::F16
            | DType::F32
            | DType::F64
    )
}

fn assign_whole(target: &StateRef<'_>, data: &[u8], dtype: DType) -> Result<()> {
    let value = Tensor::from_raw_buffer(data, dtype, &target.dims(), &Device::Cpu)?;
    let value = if dtype == target.dtype() {
        value
    } else {
        value.to_dtype(target.dtype())?
    };
    target.assign(&value)
}

/// Copies `data` into the contiguous `dst` through a flat view of its storage, `CHUNK_BYTES`
/// at a time, calling `done` with each chunk copied.
fn copy_in_chunks(
    dst: &Tensor,
    data: &[u8],
    dtype: DType,
    done: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let flat = dst.flatten_all()?;
    let n = flat.elem_count();
    let size = dtype.size_in_bytes();
    if n.checked_mul(size) != Some(data.len()) {
        return Err(crate::Error::config(
            "checkpoint",
            format!("{} bytes of {dtype:?} for {n} elements", data.len()),
        ));
    }
    let per_chunk = (CHUNK_BYTES / size).max(1);
    let mut start = 0;
    while start < n {
        let len = per_chunk.min(n - start);
        let bytes = &data[start * size..(start + len) * size];
        let mut chunk = Tensor::from_raw_buffer(bytes, dtype, &[len], &Device::Cpu)?;
        if dtype != flat.dtype() {
            chunk = chunk.to_dtype(flat.dtype())?;
        }
        if !flat.device().is_cpu() {
            chunk = chunk.to_device(flat.device())?;
        }
        flat.slice_set(&chunk, 0, start)?;
        done(bytes);
        start += len;
    }
    Ok(())
}
