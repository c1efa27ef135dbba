//! [`all_reduce_sum`]: a differentiable all-reduce, for statistics computed across ranks
//! inside the model (synchronized BatchNorm).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use super::Communicator;
use crate::Result;

/// The element-wise sum of `x` over every rank of `comm`, as a tensor that backpropagates.
///
/// Every rank's loss depends on the sum, so the gradient reaching each rank's `x` is the sum
/// of the incoming gradients of all ranks: the backward pass is itself an all-reduce (run in
/// the same order on every rank, since every rank backpropagates the same graph). The
/// reduction runs on the host, in `f64` for `f64` tensors and in `f32` otherwise (other
/// dtypes and devices are converted there and back).
pub fn all_reduce_sum(x: &Tensor, comm: &Arc<dyn Communicator>) -> Result<Tensor> {
    if comm.world_size() == 1 {
        return Ok(x.clone());
    }
    let (dtype, device) = (x.dtype(), x.device().clone());
    let host = x
        .to_device(&Device::Cpu)?
        .to_dtype(reduce_dtype(dtype))?
        .contiguous()?;
    let summed = host.apply_op1(AllReduceSum {
        comm: Arc::clone(comm),
    })?;
    Ok(summed.to_dtype(dtype)?.to_device(&device)?)
}

/// The dtype a tensor of `dtype` is reduced in: `f64` stays, the rest go through `f32`.
fn reduce_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// The custom op behind [`all_reduce_sum`].
struct AllReduceSum {
    comm: Arc<dyn Communicator>,
}

impl CustomOp1 for AllReduceSum {
    fn name(&self) -> &'static str {
        "artifex-all-reduce-sum"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("all_reduce_sum: expected a contiguous tensor")
        };
        let reduced = match storage {
            CpuStorage::F32(v) => v.get(start..end).map(|v| {
                let mut buf = v.to_vec();
                self.comm
                    .all_reduce_sum_f32(&mut buf)
                    .map(|()| CpuStorage::F32(buf))
            }),
            CpuStorage::F64(v) => v.get(start..end).map(|v| {
                let mut buf = v.to_vec();
                self.comm
                    .all_reduce_sum_f64(&mut buf)
                    .map(|()| CpuStorage::F64(buf))
            }),
            _ => None,
        };
        let Some(reduced) = reduced else {
            candle_core::bail!("all_reduce_sum: expected f32 or f64 data within its storage")
        };
        Ok((
            reduced.map_err(crate::error::to_candle)?,
            layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.to_dtype(arg.dtype())?.contiguous()?;
        let summed = grad.apply_op1_no_bwd(&AllReduceSum {
            comm: Arc::clone(&self.comm),
        })?;
        Ok(Some(summed))
    }
}
