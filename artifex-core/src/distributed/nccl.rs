//! [`Nccl`]: the communicator of a multi-GPU job, one process per GPU, over NVIDIA's NCCL
//! (through cudarc's bindings, the library candle's CUDA backend is built on).
//!
//! Built with feature `nccl` (implies `cuda`). It compiles against the CUDA toolkit; it has
//! never been run on a GPU yet (see README "Distributed training").

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{CpuStorage, CudaStorage, DType, Device, InplaceOp1, Layout, Tensor};
use cudarc::driver::CudaStream;
use cudarc::nccl::safe::{Comm, Id, ReduceOp};

use super::{Communicator, DistributedError};
use crate::Result;

/// Length in bytes of an NCCL unique id (`NCCL_UNIQUE_ID_BYTES`).
pub const NCCL_ID_BYTES: usize = 128;

/// The rendezvous token of an NCCL job: rank 0 creates it ([`NcclId::new`]) and every other
/// rank receives its bytes ([`NcclId::to_bytes`] / [`NcclId::from_bytes`]) through any channel
/// (MPI in `Nccl::from_mpi` with feature `mpi`, a file, an environment variable, ...).
#[derive(Clone, Copy, Debug)]
pub struct NcclId(Id);

impl NcclId {
    /// A fresh id (on rank 0 only; it opens NCCL's bootstrap socket on this host).
    pub fn new() -> Result<Self> {
        Id::new()
            .map(Self)
            .map_err(|e| backend(format!("ncclGetUniqueId: {e:?}")))
    }

    /// The id as bytes, to send to the other ranks.
    pub fn to_bytes(&self) -> [u8; NCCL_ID_BYTES] {
        // `c_char` is `i8` or `u8` by platform; both reinterpret bit for bit.
        self.0.internal().map(|c| c as u8)
    }

    /// The id rank 0 sent as [`to_bytes`](Self::to_bytes); errors unless `bytes` holds exactly
    /// [`NCCL_ID_BYTES`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let raw: [u8; NCCL_ID_BYTES] = bytes.try_into().map_err(|_| {
            backend(format!(
                "an NCCL unique id has {NCCL_ID_BYTES} bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self(Id::uninit(raw.map(|b| b as std::ffi::c_char))))
    }
}

/// One rank of an NCCL job: this process drives one GPU ([`device`](Self::device)), and every
/// collective runs on that device's CUDA stream, ordered with candle's own kernels.
///
/// The host-buffer methods of [`Communicator`] copy to the GPU, reduce there and copy back;
/// [`all_reduce_sum_tensor`](Self::all_reduce_sum_tensor) sums a CUDA tensor in place in its
/// device memory, without a host copy. Every call goes through NCCL, even in a world of one
/// (so one GPU exercises the whole path). NCCL reduces along its own ring or tree: every rank
/// receives the same result, but its rounding need not equal a sum in rank order.
pub struct Nccl {
    inner: Mutex<Inner>,
    device: Device,
    rank: usize,
    size: usize,
    /// Built by `Nccl::from_mpi`: [`abort`](Communicator::abort) ends the job through MPI.
    #[cfg(feature = "mpi")]
    via_mpi: bool,
}

/// The NCCL communicator and the stream its calls are queued on.
struct Inner {
    comm: Comm,
    stream: Arc<CudaStream>,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls on it do not
// overlap; every call goes through the `Mutex` around `Inner`.
unsafe impl Send for Inner {}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nccl")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("device", &self.device)
            .finish()
    }
}

impl Nccl {
    /// Joins the job of `world_size` ranks as `rank`, on `device` (a CUDA device: build the
    /// model on the same [`Device`] value, or on [`device`](Self::device)). Every rank passes
    /// the same `id`. Collective: returns once all ranks have joined.
    pub fn new(device: &Device, rank: usize, world_size: usize, id: NcclId) -> Result<Self> {
        if rank >= world_size {
            return Err(DistributedError::BadRoot {
                root: rank,
                world_size,
            }
            .into());
        }
        let cuda = device.as_cuda_device()?;
        let stream = cuda.cuda_stream();
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| backend(format!("binding the CUDA context: {e}")))?;
        let comm = Comm::from_rank(Arc::clone(&stream), rank, world_size, id.0).map_err(|e| {
            backend(format!(
                "ncclCommInitRank (rank {rank}/{world_size}): {e:?}"
            ))
        })?;
        Ok(Self {
            inner: Mutex::new(Inner { comm, stream }),
            device: device.clone(),
            rank,
            size: world_size,
            #[cfg(feature = "mpi")]
            via_mpi: false,
        })
    }

    /// Joins an NCCL job with the ranks of an MPI job: rank 0 creates the id and broadcasts
    /// it over `mpi`, every rank opens CUDA device `device_ordinal` (usually the rank within
    /// its node). Run one process per GPU: `mpirun -np N program`.
    #[cfg(feature = "mpi")]
    pub fn from_mpi(mpi: &super::Mpi, device_ordinal: usize) -> Result<Self> {
        let mut bytes = if mpi.rank() == 0 {
            NcclId::new()?.to_bytes().to_vec()
        } else {
            Vec::new()
        };
        mpi.broadcast_bytes(&mut bytes, 0)?;
        let id = NcclId::from_bytes(&bytes)?;
        let device = Device::new_cuda(device_ordinal)?;
        let mut nccl = Self::new(&device, mpi.rank(), mpi.world_size(), id)?;
        nccl.via_mpi = true;
        Ok(nccl)
    }

    /// The CUDA device this rank drives.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Sums the contiguous `f32` tensor `t` over every rank, in place: in its device memory
    /// for a tensor on [`device`](Self::device), through the host for a CPU tensor.
    ///
    /// The memory is written in place: every tensor sharing `t`'s storage (views, clones, a
    /// gradient that backprop handed to two parameters) sees the sum; reduce a `copy()` when
    /// that matters. Errors for another dtype, a non-contiguous layout or another CUDA device.
    pub fn all_reduce_sum_tensor(&self, t: &Tensor) -> Result<()> {
        if t.dtype() != DType::F32 || !t.is_contiguous() {
            return Err(backend(format!(
                "all_reduce_sum_tensor needs a contiguous f32 tensor, got {:?} of shape {:?}{}",
                t.dtype(),
                t.dims(),
                if t.is_contiguous() { "" } else { " (strided)" }
            )));
        }
        if t.elem_count() == 0 {
            return Ok(());
        }
        t.inplace_op1(&InPlaceSum { nccl: self })?;
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| backend("a thread panicked during an NCCL call"))
    }

    fn check_root(&self, root: usize) -> Result<()> {
        if root < self.size {
            Ok(())
        } else {
            Err(DistributedError::BadRoot {
                root,
                world_size: self.size,
            }
            .into())
        }
    }

    /// Host buffer -> device, `op` on the device copy, device -> host (synchronous).
    fn through_device<T>(
        &self,
        buf: &mut [T],
        op: impl FnOnce(&Comm, &mut cudarc::driver::CudaSlice<T>) -> Result<()>,
    ) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr,
    {
        if buf.is_empty() {
            return Ok(());
        }
        let inner = self.lock()?;
        let mut dev = inner.stream.clone_htod(&*buf).map_err(driver)?;
        op(&inner.comm, &mut dev)?;
        inner.stream.memcpy_dtoh(&dev, buf).map_err(driver)?;
        inner.stream.synchronize().map_err(driver)
    }

    fn sum_host<T>(&self, buf: &mut [T]) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::safe::NcclType,
    {
        self.through_device(buf, |comm, dev| {
            comm.all_reduce_in_place(dev, &ReduceOp::Sum)
                .map(drop)
                .map_err(|e| backend(format!("ncclAllReduce: {e:?}")))
        })
    }

    fn broadcast_host<T>(&self, buf: &mut [T], root: usize) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::safe::NcclType,
    {
        self.check_root(root)?;
        self.through_device(buf, |comm, dev| {
            comm.broadcast_in_place(dev, root as i32)
                .map(drop)
                .map_err(|e| backend(format!("ncclBroadcast: {e:?}")))
        })
    }
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn backend(&self) -> &'static str {
        "nccl"
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.sum_host(buf)
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.sum_host(buf)
    }

    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let mut len = [buf.len() as u64];
        self.broadcast_host(&mut len, root)?;
        let len =
            usize::try_from(len[0]).map_err(|_| backend("broadcast length overflows usize"))?;
        buf.resize(len, 0);
        self.broadcast_host(&mut buf[..], root)
    }

    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        self.broadcast_host(buf, root)
    }

    fn barrier(&self) -> Result<()> {
        // A one-element all-reduce returns only once every rank has contributed.
        self.sum_host(&mut [0.0f32])
    }

    fn all_reduce_sum_tensor_in_place(&self, t: &Tensor) -> Result<bool> {
        if !t.device().same_device(&self.device) {
            return Ok(false);
        }
        self.all_reduce_sum_tensor(t)?;
        Ok(true)
    }

    fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self.via_mpi {
            // As `Mpi::abort`: MPI_Abort ends every process of the job.
            use mpi::traits::Communicator as _;
            mpi::topology::SimpleCommunicator::world().abort(code)
        }
        // Without MPI there is no way to reach the other processes: the launcher (or NCCL's
        // own timeout) ends them once this one is gone.
        std::process::exit(code)
    }
}

/// The in-place op behind [`Nccl::all_reduce_sum_tensor`].
struct InPlaceSum<'a> {
    nccl: &'a Nccl,
}

impl InplaceOp1 for InPlaceSum<'_> {
    fn name(&self) -> &'static str {
        "artifex-nccl-all-reduce-sum"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("nccl all_reduce_sum_tensor: expected f32 storage")
        };
        let n = layout.shape().elem_count();
        let start = layout.start_offset();
        let Some(slice) = data.get_mut(start..start + n) else {
            candle_core::bail!("nccl all_reduce_sum_tensor: layout outside its storage")
        };
        self.nccl
            .all_reduce_sum_f32(slice)
            .map_err(crate::error::to_candle)
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        let inner = self.nccl.lock().map_err(crate::error::to_candle)?;
        if storage.device().cuda_stream().cu_stream() != inner.stream.cu_stream() {
            candle_core::bail!(
                "nccl all_reduce_sum_tensor: the tensor is on {:?}, this rank's communicator on {:?}",
                storage.device().location(),
                self.nccl.device.location()
            )
        }
        let n = layout.shape().elem_count();
        let start = layout.start_offset();
        let slice = storage.as_cuda_slice_mut::<f32>()?;
        if start + n > slice.len() {
            candle_core::bail!("nccl all_reduce_sum_tensor: layout outside its storage")
        }
        let mut view = slice.slice_mut(start..start + n);
        inner
            .comm
            .all_reduce_in_place(&mut view, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("ncclAllReduce: {e:?}")))?;
        Ok(())
    }
}

fn driver(e: cudarc::driver::DriverError) -> crate::Error {
    backend(format!("CUDA: {e}"))
}

fn backend(message: impl Into<String>) -> crate::Error {
    DistributedError::Backend {
        backend: "nccl",
        message: message.into(),
    }
    .into()
}

/// These need a CUDA GPU and libnccl (`cargo test --release -p artifex-core --features nccl
/// --lib distributed::nccl::`); a world of one rank runs every NCCL call on one GPU.
#[cfg(test)]
mod tests {
    use super::*;

    fn one_rank() -> Result<Nccl> {
        Nccl::new(&Device::new_cuda(0)?, 0, 1, NcclId::new()?)
    }

    #[test]
    fn id_round_trips_through_bytes() -> Result<()> {
        let id = NcclId::new()?;
        let back = NcclId::from_bytes(&id.to_bytes())?;
        assert_eq!(back.to_bytes(), id.to_bytes());
        let err = NcclId::from_bytes(&[0u8; 12]).unwrap_err().to_string();
        assert!(err.contains("128 bytes, got 12"), "{err}");
        Ok(())
    }

    #[test]
    fn host_collectives_on_one_rank() -> Result<()> {
        let nccl = one_rank()?;
        let mut f = vec![1.5f32, -2.0, 3.25];
        nccl.all_reduce_sum_f32(&mut f)?;
        assert_eq!(f, vec![1.5, -2.0, 3.25]);
        let mut d = vec![0.1f64, 1e300];
        nccl.all_reduce_sum_f64(&mut d)?;
        assert_eq!(d, vec![0.1, 1e300]);
        let mut bytes = b"rank zero".to_vec();
        nccl.broadcast_bytes(&mut bytes, 0)?;
        assert_eq!(bytes, b"rank zero");
        nccl.barrier()?;
        assert!(nccl.broadcast_f32(&mut f, 1).is_err());
        Ok(())
    }

    #[test]
    fn tensor_sum_runs_in_device_memory() -> Result<()> {
        let nccl = one_rank()?;
        let t = Tensor::arange(0f32, 6., nccl.device())?.reshape((2, 3))?;
        nccl.all_reduce_sum_tensor(&t)?;
        assert_eq!(
            t.to_vec2::<f32>()?,
            vec![vec![0., 1., 2.], vec![3., 4., 5.]]
        );
        // A view starting inside its storage reduces only its own elements.
        let row = t.narrow(0, 1, 1)?;
        nccl.all_reduce_sum_tensor(&row)?;
        assert_eq!(row.to_vec2::<f32>()?, vec![vec![3., 4., 5.]]);
        let err = nccl.all_reduce_sum_tensor(&t.t()?).unwrap_err().to_string();
        assert!(err.contains("strided"), "{err}");
        Ok(())
    }
}
