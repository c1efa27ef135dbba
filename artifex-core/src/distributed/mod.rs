//! Data-parallel training across processes: a [`Communicator`] (rank, world size, in-place
//! all-reduce, broadcast, barrier) with the [`Single`] (one process), `Mpi` (feature `mpi`,
//! Open MPI through rsmpi) and `Nccl` (feature `nccl`) engines.
//!
//! The [`Trainer`](crate::train::Trainer) takes a communicator through
//! [`TrainerConfig::communicator`](crate::train::TrainerConfig::communicator); with a world
//! larger than one it
//! - checks once that every rank holds the same parameters (a hash of every parameter,
//!   compared with rank 0's; the error names the first path that differs),
//! - hands each rank a disjoint shard of every global batch
//!   ([`DataLoader::set_shard`](crate::data::DataLoader::set_shard)),
//! - averages the gradients over the ranks in fixed-size buckets in parameter order (and the
//!   logged metrics), so every rank takes the same optimizer step,
//! - lets rank 0 alone write the log, the progress bar, the plot and the checkpoints.
//!
//! Layers reach the communicator of the step in progress through [`current`]: the trainer
//! installs it (thread-local) for the duration of each training step with [`scope`]. Only two
//! things read it: the gradient averaging and [`BatchNorm`](crate::layers::BatchNorm) in
//! synchronized mode (built with `.sync_stats(true)`, or every BatchNorm when
//! [`TrainerConfig::sync_batch_stats`](crate::train::TrainerConfig::sync_batch_stats) is set),
//! plus [`normal_rows`] and [`uniform_rows`] for per-example noise; outside a step (evaluation, sampling) nothing
//! is installed and every layer computes locally.
//!
//! ```
//! use std::sync::Arc;
//! use artifex_core::distributed::{Communicator, Single};
//!
//! let comm: Arc<dyn Communicator> = Arc::new(Single);
//! let mut grads = vec![1.0f32, 2.0];
//! comm.all_reduce_sum_f32(&mut grads)?;
//! assert_eq!((comm.rank(), comm.world_size(), grads), (0, 1, vec![1.0, 2.0]));
//! # Ok::<(), artifex_core::Error>(())
//! ```

mod autograd;
mod consistency;
mod error;
mod grads;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
mod scope;
mod single;
#[cfg(test)]
mod tests;

use std::fmt::Debug;

use crate::Result;

pub use autograd::all_reduce_sum;
pub(crate) use consistency::{agree, check_same_params};
pub use error::{exit_on_error, DistributedError};
pub(crate) use grads::{all_reduce_mean_grads, average_scalars};
#[cfg(feature = "mpi")]
pub use mpi::Mpi;
#[cfg(feature = "nccl")]
pub use nccl::{Nccl, NcclId, NCCL_ID_BYTES};
pub use scope::{batch_stats_synced, current, normal_rows, scope, uniform_rows};
pub use single::Single;

/// A group of processes (ranks) that reduce and broadcast buffers together.
///
/// Every method is collective (except [`rank`](Self::rank), [`world_size`](Self::world_size),
/// [`backend`](Self::backend) and [`abort`](Self::abort)): all ranks must call it in the same
/// order with buffers of the same length, or the job hangs or aborts, as in MPI.
/// Implementations return identical results on every rank (bitwise), so ranks that start
/// equal stay equal.
pub trait Communicator: Send + Sync + Debug {
    /// This process's index, `0..world_size()`.
    fn rank(&self) -> usize;

    /// The number of processes.
    fn world_size(&self) -> usize;

    /// The engine's name (`"single"`, `"mpi"`, `"nccl"`), for messages.
    fn backend(&self) -> &'static str;

    /// Replaces `buf` by the element-wise sum of every rank's `buf`.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;

    /// Replaces `buf` by the element-wise sum of every rank's `buf` (metrics, flags).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;

    /// Replaces `buf` on every rank by `root`'s `buf` (lengths may differ before the call).
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()>;

    /// Replaces `buf` on every rank by `root`'s `buf` (same length on every rank).
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Sums the contiguous `f32` tensor `t` over every rank in place, in its device's memory,
    /// when this engine reduces on that device (NCCL on CUDA tensors); otherwise returns
    /// `Ok(false)` without communicating, and the caller reduces a host copy instead (the
    /// default). The answer depends only on the engine and the tensor's device, so all ranks
    /// agree on it.
    fn all_reduce_sum_tensor_in_place(&self, t: &candle_core::Tensor) -> Result<bool> {
        let _ = t;
        Ok(false)
    }

    /// Ends every process of the job with exit code `code` (`MPI_Abort`); the way out when a
    /// rank fails where the others wait in a collective.
    fn abort(&self, code: i32) -> !;
}
