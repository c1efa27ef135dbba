//! Checks that keep the ranks together: the same parameters at the start, and agreement on
//! whether a step that only some ranks perform (rank 0's file writes) succeeded.

use candle_core::DType;

use super::{Communicator, DistributedError};
use crate::{Module, Result, StateKind, StatePath};

/// Errors unless every rank holds bitwise the parameters of rank 0 (names, shapes, dtypes
/// and values, hashed per parameter); every rank gets the same error, naming the first
/// parameter path that differs.
pub(crate) fn check_same_params<M: Module + ?Sized>(
    comm: &dyn Communicator,
    model: &M,
) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    let mut paths = Vec::new();
    let mut hashes = Vec::new();
    let mut failed = None;
    crate::module::walkers::for_each_state(model, &mut StatePath::root(), |path, var| {
        if var.kind() != StateKind::Param || failed.is_some() {
            return;
        }
        let name = path.joined();
        match var.to_tensor().and_then(|t| param_hash(&name, &t)) {
            Ok(h) => {
                paths.push(name);
                hashes.push(h);
            }
            Err(e) => failed = Some(e),
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let mut root: Vec<u8> = hashes.iter().flat_map(|h| h.to_le_bytes()).collect();
    comm.broadcast_bytes(&mut root, 0)?;
    let root: Vec<u64> = root
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    // Per parameter, how many ranks differ; one extra slot counts ranks with another count.
    let mut differs = vec![0f64; paths.len().max(root.len()) + 1];
    if root.len() != hashes.len() {
        differs[0] = 1.0;
    } else {
        for (i, (a, b)) in hashes.iter().zip(&root).enumerate() {
            differs[i + 1] = f64::from(u8::from(a != b));
        }
    }
    // Every rank must pass buffers of one length: agree on it first.
    let mut len = [differs.len() as f64; 1];
    let mut max_len = vec![0f64; comm.world_size()];
    max_len[comm.rank()] = len[0];
    comm.all_reduce_sum_f64(&mut max_len)?;
    len[0] = max_len.iter().copied().fold(0.0, f64::max);
    differs.resize(len[0] as usize, 0.0);
    comm.all_reduce_sum_f64(&mut differs)?;
    if differs[0] > 0.0 {
        return Err(DistributedError::ParamCount {
            rank: comm.rank(),
            local: hashes.len(),
            root: root.len(),
        }
        .into());
    }
    if let Some((i, &n)) = differs.iter().enumerate().skip(1).find(|(_, &n)| n > 0.0) {
        return Err(DistributedError::ParamsDiffer {
            path: paths.get(i - 1).cloned().unwrap_or_default(),
            ranks: n as usize,
        }
        .into());
    }
    Ok(())
}

/// FNV-1a over the path, shape, dtype and value bits of one parameter.
fn param_hash(path: &str, t: &candle_core::Tensor) -> Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(path.as_bytes());
    for d in t.dims() {
        eat(&(*d as u64).to_le_bytes());
    }
    eat(t.dtype().as_str().as_bytes());
    if t.dtype() == DType::F64 {
        for v in t.flatten_all()?.to_vec1::<f64>()? {
            eat(&v.to_bits().to_le_bytes());
        }
    } else {
        for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
            eat(&v.to_bits().to_le_bytes());
        }
    }
    Ok(h)
}

/// Every rank passes the outcome of its part of `what`; all get `Ok` only if all succeeded.
/// A failed rank gets its own error back; the others get
/// [`DistributedError::PeerFailed`] naming the failed ranks.
pub(crate) fn agree(comm: &dyn Communicator, what: &str, local: Result<()>) -> Result<()> {
    if comm.world_size() == 1 {
        return local;
    }
    let mut failed = vec![0f64; comm.world_size()];
    failed[comm.rank()] = f64::from(u8::from(local.is_err()));
    comm.all_reduce_sum_f64(&mut failed)?;
    local?;
    let ranks: Vec<usize> = (0..failed.len()).filter(|&r| failed[r] > 0.0).collect();
    if ranks.is_empty() {
        Ok(())
    } else {
        Err(DistributedError::PeerFailed {
            what: what.into(),
            ranks,
        }
        .into())
    }
}
