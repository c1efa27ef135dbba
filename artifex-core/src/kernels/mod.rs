//! Fused CPU kernels (candle custom ops) behind the layers' plain-ops paths.
//!
//! Each kernel applies only to contiguous `f32` tensors on the CPU while
//! [`crate::fast_paths::enabled`]; everywhere else (other devices, dtypes, layouts) the
//! layers run their plain candle ops, so CUDA / Metal models keep working unchanged.
//! In higher-order mode ([`crate::autodiff::enable_higher_order`]) they never apply, and each
//! backward pass refuses to run inside a graph-keeping gradient
//! ([`crate::autodiff::refuse_fused_backward`]) instead of giving a wrong second derivative.

pub(crate) mod allocator;
pub(crate) mod batch_norm;
pub(crate) mod concat;
pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod linear;
pub(crate) mod mse;
pub(crate) mod pool;
pub(crate) mod relu;
#[cfg(test)]
mod relu_pairs;
pub(crate) mod sigmoid;
pub(crate) mod transpose;

use candle_core::{CpuStorage, Layout, Storage, Tensor};

/// The activation a fused layer op applies to its output (`Linear` and `BatchNorm`): its
/// forward runs on each block of the output while that is in cache, its backward on the
/// incoming gradient before the layer's own, so no pre-activation tensor (and gradient of
/// it) ever exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// The layer's output as it is.
    None,
    /// `max(y, 0)`.
    Relu,
    /// `1 / (exp(-y) + 1)`, candle-nn's formula (the same bits as [`sigmoid::sigmoid`]).
    Sigmoid,
}

impl Epilogue {
    /// Applies the activation to `v` in place, on the calling thread.
    pub(crate) fn apply_serial(self, v: &mut [f32]) {
        match self {
            Epilogue::None => {}
            Epilogue::Relu => relu::relu_serial(v),
            Epilogue::Sigmoid => sigmoid::sigmoid_serial(v),
        }
    }

    /// The gradient at the pre-activation, from the op's output `y` and the gradient `grad`
    /// at it (`grad` itself, shared, for [`Epilogue::None`]).
    pub(crate) fn grad_through(self, y: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Epilogue::None => Ok(grad.clone()),
            Epilogue::Relu => relu::grad_through_if(true, y, grad),
            Epilogue::Sigmoid => sigmoid::grad_through(y, grad),
        }
    }
}

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

/// True when `t` is a contiguous `f32` tensor on the CPU, the fast paths are on, and
/// higher-order mode is off ([`crate::autodiff`]: the kernels' backward passes are not
/// themselves differentiable, so graph-keeping gradients need the plain ops).
pub(crate) fn applies(t: &Tensor) -> bool {
    if !crate::fast_paths::enabled()
        || crate::autodiff::higher_order_enabled()
        || t.dtype() != candle_core::DType::F32
    {
        return false;
    }
    allocator::tune_once();
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

/// Runs `f` on the contiguous `f32` CPU data of `t`, mutably and in place (under the write
/// lock of `t`'s storage); `Ok(None)` when `t` is not contiguous `f32` on the CPU, and `f`
/// never runs.
///
/// Locks nest: calling this for two tensors that share one storage would deadlock, so callers
/// check [`shares_storage`] first.
pub(crate) fn with_f32_mut<R>(
    t: &Tensor,
    f: impl FnOnce(&mut [f32]) -> candle_core::Result<R>,
) -> candle_core::Result<Option<R>> {
    {
        let (storage, layout) = t.storage_and_layout();
        let on_cpu_f32 = matches!(&*storage, Storage::Cpu(CpuStorage::F32(_)));
        if !on_cpu_f32 || !layout.is_contiguous() {
            return Ok(None);
        }
    }
    let op = MutAccess {
        f: std::cell::RefCell::new(Some(f)),
        out: std::cell::RefCell::new(None),
    };
    t.inplace_op1(&op)?;
    Ok(op.out.into_inner())
}

/// Elements per task of the element-wise passes (fixed, so the split depends on the length
/// only).
pub(crate) const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `f(a[i], grad[i])` for every `i`, as a new tensor of `grad`'s shape, in chunks over the
/// pool: the one-pass backward of an element-wise op (`a` its input or output, `grad` the
/// gradient at its output); an error naming `op` when the lengths differ.
pub(crate) fn zip_with_grad(
    op: &str,
    a: &Tensor,
    grad: &Tensor,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> candle_core::Result<Tensor> {
    let out = with_f32(a, |a| {
        with_f32(grad, |g| {
            if g.len() != a.len() {
                candle_core::bail!(
                    "{op}: gradient of {} values for {} values",
                    g.len(),
                    a.len()
                );
            }
            Ok(pool::collect_chunks(
                a.len(),
                ELEMENTWISE_CHUNK,
                |start, n| {
                    let (a, g) = (&a[start..start + n], &g[start..start + n]);
                    a.iter().zip(g).map(|(&a, &g)| f(a, g))
                },
            ))
        })
    })?;
    Tensor::from_vec(out, grad.shape(), grad.device())
}

/// Runs `f` on the contiguous `f32` CPU data of every tensor of `ts` at once, mutably and in
/// place (under the write locks of all their storages, taken in order); `Ok(false)` when one
/// is not contiguous `f32` on the CPU or two share a storage (whose locks would deadlock), and
/// `f` never runs. For one pass over many tensors (an optimizer step) in one pool call.
pub(crate) fn with_all_f32_mut(
    ts: &[&Tensor],
    f: &mut dyn FnMut(&mut [&mut [f32]]) -> candle_core::Result<()>,
) -> candle_core::Result<bool> {
    fn hold(
        ts: &[&Tensor],
        held: Vec<&mut [f32]>,
        f: &mut dyn FnMut(&mut [&mut [f32]]) -> candle_core::Result<()>,
    ) -> candle_core::Result<bool> {
        let Some((first, rest)) = ts.split_first() else {
            let mut held = held;
            f(&mut held)?;
            return Ok(true);
        };
        let done = with_f32_mut(first, move |slice| {
            let mut held: Vec<&mut [f32]> = held;
            held.push(slice);
            hold(rest, held, f)
        })?;
        Ok(done == Some(true))
    }
    if shares_storage(ts) {
        return Ok(false);
    }
    hold(ts, Vec::with_capacity(ts.len()), f)
}

/// Whether any two of `ts` share a storage (so their locks must not nest). One pass with a
/// set of storage addresses (an optimizer step asks this of every parameter's tensors), each
/// read lock held only while its address is taken: the tensors keep their storages alive.
pub(crate) fn shares_storage(ts: &[&Tensor]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(ts.len());
    !ts.iter().all(|t| {
        let storage: *const Storage = &*t.storage_and_layout().0;
        seen.insert(storage)
    })
}

/// The in-place op behind [`with_f32_mut`]: hands the locked slice to a closure once.
struct MutAccess<F, R> {
    f: std::cell::RefCell<Option<F>>,
    out: std::cell::RefCell<Option<R>>,
}

impl<F, R> candle_core::InplaceOp1 for MutAccess<F, R>
where
    F: FnOnce(&mut [f32]) -> candle_core::Result<R>,
{
    fn name(&self) -> &'static str {
        "artifex-mut-access"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(v), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("artifex-mut-access: expected contiguous f32 data");
        };
        let Some(slice) = v.get_mut(start..end) else {
            candle_core::bail!("artifex-mut-access: layout outside its storage");
        };
        let Some(f) = self.f.borrow_mut().take() else {
            candle_core::bail!("artifex-mut-access: ran twice");
        };
        *self.out.borrow_mut() = Some(f(slice)?);
        Ok(())
    }
}
