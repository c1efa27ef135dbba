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
/// reduction runs on the host in `f32`; other dtypes and devices are converted there and back.
pub fn all_reduce_sum(x: &Tensor, comm: &Arc<dyn Communicator>) -> Result<Tensor> {
    if comm.world_size() == 1 {
        return Ok(x.clone());
    }
    let (dtype, device) = (x.dtype(), x.device().clone());
    let host = x
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .contiguous()?;
    let summed = host.apply_op1(AllReduceSum {
        comm: Arc::clone(comm),
    })?;
    Ok(summed.to_dtype(dtype)?.to_device(&device)?)
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
        let Some(x) = crate::kernels::cpu_f32(storage, layout) else {
            candle_core::bail!("all_reduce_sum: expected a contiguous f32 CPU tensor")
        };
        let mut buf = x.to_vec();
        self.comm
            .all_reduce_sum_f32(&mut buf)
            .map_err(crate::error::to_candle)?;
        Ok((CpuStorage::F32(buf), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let summed = grad.apply_op1_no_bwd(&AllReduceSum {
            comm: Arc::clone(&self.comm),
        })?;
        Ok(Some(summed))
    }
}
