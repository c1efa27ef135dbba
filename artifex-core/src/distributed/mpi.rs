//! [`Mpi`]: the communicator of an `mpirun` job, over the system's MPI library (rsmpi).

use std::sync::{Mutex, MutexGuard};

use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};
use mpi::Threading;

use super::{Communicator, DistributedError};
use crate::Result;

/// The world of an MPI job (`mpirun -np N program`): rank and size from MPI, reductions with
/// `MPI_Allgather` followed by a sum in rank order on every rank.
///
/// Summing the gathered buffers in rank order (rather than `MPI_Allreduce`, whose reduction
/// order the MPI standard leaves to the library) makes every rank's result bitwise the same
/// and independent of timing and of the library's algorithm choice. It moves `N` times the
/// buffer per rank instead of about twice: right for CPU jobs of a few ranks, the size this
/// engine is meant for; large GPU jobs use ring all-reduces (NCCL).
///
/// MPI is initialized by [`Mpi::init`] and finalized when the value is dropped; create it
/// once, at the start of `main`.
pub struct Mpi {
    inner: Mutex<Inner>,
    rank: usize,
    size: usize,
}

/// The universe (finalizes MPI on drop) and its world communicator.
struct Inner {
    world: SimpleCommunicator,
    _universe: Universe,
}

// SAFETY: MPI is initialized with `MPI_THREAD_SERIALIZED` (checked in `init`), which allows
// MPI calls from any thread as long as no two run at once; every call goes through the
// `Mutex` around `Inner`, so calls never overlap.
unsafe impl Send for Inner {}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

impl Mpi {
    /// Initializes MPI (thread level `SERIALIZED`) and returns the world communicator.
    ///
    /// Run under `mpirun -np N`; started directly, Open MPI gives a world of one process.
    /// Errors when MPI was already initialized or cannot give the thread level.
    pub fn init() -> Result<Self> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| backend("MPI is already initialized in this process"))?;
        if level < Threading::Serialized {
            return Err(backend(format!(
                "the MPI library offers thread level {level:?}, SERIALIZED is needed"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Self {
            inner: Mutex::new(Inner {
                world,
                _universe: universe,
            }),
            rank,
            size,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| backend("a thread panicked during an MPI call"))
    }

    /// Gathers every rank's `buf` and sums them in rank order into `buf`.
    fn gather_sum<T: Copy + std::ops::AddAssign + mpi::datatype::Equivalence + Default>(
        &self,
        buf: &mut [T],
    ) -> Result<()> {
        if self.size == 1 || buf.is_empty() {
            return Ok(());
        }
        let n = buf.len();
        let mut all = vec![T::default(); n * self.size];
        self.lock()?.world.all_gather_into(&*buf, &mut all[..]);
        buf.copy_from_slice(&all[..n]);
        for chunk in all.chunks_exact(n).skip(1) {
            for (b, v) in buf.iter_mut().zip(chunk) {
                *b += *v;
            }
        }
        Ok(())
    }

    fn check_root(&self, root: usize) -> Result<i32> {
        if root < self.size {
            Ok(root as i32)
        } else {
            Err(DistributedError::BadRoot {
                root,
                world_size: self.size,
            }
            .into())
        }
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn backend(&self) -> &'static str {
        "mpi"
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.gather_sum(buf)
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.gather_sum(buf)
    }

    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let root = self.check_root(root)?;
        let inner = self.lock()?;
        let process = inner.world.process_at_rank(root);
        let mut len = buf.len() as u64;
        process.broadcast_into(&mut len);
        let len = usize::try_from(len).map_err(|_| backend("broadcast length overflows usize"))?;
        buf.resize(len, 0);
        if len > 0 {
            process.broadcast_into(&mut buf[..]);
        }
        Ok(())
    }

    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        let root = self.check_root(root)?;
        if buf.is_empty() {
            return Ok(());
        }
        let inner = self.lock()?;
        inner.world.process_at_rank(root).broadcast_into(buf);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.lock()?.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        // Abort must not wait for a lock another thread may hold in a collective.
        mpi::topology::SimpleCommunicator::world().abort(code)
    }
}

fn backend(message: impl Into<String>) -> crate::Error {
    DistributedError::Backend {
        backend: "mpi",
        message: message.into(),
    }
    .into()
}
