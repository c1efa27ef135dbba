//! Gradient and metric averaging over the ranks: fixed-size buckets in parameter order, so
//! the result depends on nothing but the ranks' values.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use super::Communicator;
use crate::{Param, Result};

/// Elements per all-reduce call (4 MiB of `f32`): large enough to amortize the call, small
/// enough that the host copy of a bucket stays modest.
const BUCKET_ELEMENTS: usize = 1 << 20;

/// Replaces every gradient of `params` in `grads` by its mean over the ranks.
///
/// A parameter without a gradient on any rank keeps none (the optimizer leaves it alone, as in
/// a single process); one with a gradient on some rank only counts zeros for the others.
pub(crate) fn all_reduce_mean_grads(
    comm: &dyn Communicator,
    grads: &mut GradStore,
    params: &[(String, Param)],
) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    let mut present: Vec<f64> = params
        .iter()
        .map(|(_, p)| f64::from(u8::from(grads.get(p.var().as_tensor()).is_some())))
        .collect();
    comm.all_reduce_sum_f64(&mut present)?;
    let members: Vec<&Param> = params
        .iter()
        .zip(&present)
        .filter(|(_, &n)| n > 0.0)
        .map(|((_, p), _)| p)
        .collect();
    let mut start = 0;
    while start < members.len() {
        if let Some(end) = reduce_on_device(comm, grads, &members, start)? {
            start = end;
            continue;
        }
        let mut end = start;
        let mut bucket: Vec<f32> = Vec::new();
        while end < members.len() && (end == start || bucket.len() < BUCKET_ELEMENTS) {
            let var = members[end].var().as_tensor();
            match grads.get(var) {
                Some(g) => bucket.extend(g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
                None => bucket.resize(bucket.len() + var.elem_count(), 0.0),
            }
            end += 1;
        }
        comm.all_reduce_sum_f32(&mut bucket)?;
        let scale = world as f32;
        let mut offset = 0;
        for p in &members[start..end] {
            let var = p.var().as_tensor();
            let n = var.elem_count();
            let mean: Vec<f32> = bucket[offset..offset + n]
                .iter()
                .map(|g| g / scale)
                .collect();
            let g = Tensor::from_vec(mean, var.shape(), var.device())?.to_dtype(var.dtype())?;
            grads.insert(var, g);
            offset += n;
        }
        start = end;
    }
    Ok(())
}

/// The device path of [`all_reduce_mean_grads`]: the bucket starting at `members[start]`,
/// concatenated on the gradients' device and all-reduced there when the engine can
/// ([`Communicator::all_reduce_sum_tensor_in_place`], NCCL on CUDA); returns the end of the
/// bucket, or `None` (nothing done) for engines that reduce host buffers.
fn reduce_on_device(
    comm: &dyn Communicator,
    grads: &mut GradStore,
    members: &[&Param],
    start: usize,
) -> Result<Option<usize>> {
    let device = members[start].var().device();
    if device.is_cpu() {
        return Ok(None);
    }
    let (mut end, mut len) = (start, 0);
    let mut parts = Vec::new();
    while end < members.len() && (end == start || len < BUCKET_ELEMENTS) {
        let var = members[end].var().as_tensor();
        parts.push(match grads.get(var) {
            Some(g) => g.to_dtype(DType::F32)?.flatten_all()?,
            None => Tensor::zeros(var.elem_count(), DType::F32, var.device())?,
        });
        len += var.elem_count();
        end += 1;
    }
    // The bucket is reduced in place, so it must own its memory: `cat` of several parts makes a
    // fresh tensor, but of one part returns that part, whose storage is the gradient's (which
    // backprop may share with another parameter's gradient), hence the copy.
    let bucket = match parts.as_slice() {
        [one] => one.copy()?,
        _ => Tensor::cat(&parts, 0)?,
    };
    if !comm.all_reduce_sum_tensor_in_place(&bucket)? {
        return Ok(None);
    }
    let bucket = (bucket / comm.world_size() as f64)?;
    let mut offset = 0;
    for p in &members[start..end] {
        let var = p.var().as_tensor();
        let n = var.elem_count();
        let g = bucket
            .narrow(0, offset, n)?
            .reshape(var.shape())?
            .to_dtype(var.dtype())?;
        grads.insert(var, g);
        offset += n;
    }
    Ok(Some(end))
}

/// Replaces every value of `scalars` by its mean over the ranks (every rank must hold the
/// same keys: the same loss closure).
pub(crate) fn average_scalars(
    comm: &dyn Communicator,
    scalars: &mut BTreeMap<String, f64>,
) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    let mut values: Vec<f64> = scalars.values().copied().collect();
    comm.all_reduce_sum_f64(&mut values)?;
    for (v, sum) in scalars.values_mut().zip(values) {
        *v = sum / world as f64;
    }
    Ok(())
}
