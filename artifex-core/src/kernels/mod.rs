//! Fused CPU kernels (candle custom ops) behind the layers' plain-ops paths.
//!
//! Each kernel applies only to contiguous `f32` tensors on the CPU while
//! [`crate::fast_paths::enabled`]; everywhere else (other devices, dtypes, layouts) the
//! layers run their plain candle ops, so CUDA / Metal models keep working unchanged.

pub(crate) mod batch_norm;
pub(crate) mod linear;
pub(crate) mod relu;

use candle_core::{CpuStorage, Layout, Storage, Tensor};

/// The contiguous `f32` data of a CPU storage, if it is such.
pub(crate) fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Option<&'a [f32]> {
    match storage {
        CpuStorage::F32(v) => {
            let (start, end) = layout.contiguous_offsets()?;
            v.get(start..end)
        }
        _ => None,
    }
}

/// True when `t` is a contiguous `f32` tensor on the CPU and the fast paths are on.
pub(crate) fn applies(t: &Tensor) -> bool {
    if !crate::fast_paths::enabled() || t.dtype() != candle_core::DType::F32 {
        return false;
    }
    let (storage, layout) = t.storage_and_layout();
    matches!(&*storage, Storage::Cpu(_)) && layout.is_contiguous()
}

/// Runs `f` on the contiguous `f32` CPU data of `t` (made contiguous first if needed).
pub(crate) fn with_f32<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => match cpu_f32(s, layout) {
            Some(v) => f(v),
            None => candle_core::bail!("fused kernel: expected f32 data, got {:?}", t.dtype()),
        },
        _ => candle_core::bail!("fused kernel: expected a CPU tensor"),
    }
}
