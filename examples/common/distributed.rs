//! `--distributed` of the training examples: the world of `mpirun` (feature `mpi`) or one
//! process, and how a multi-rank job ends when one rank fails.

use std::sync::Arc;

use artifex_core::distributed::{exit_on_error, Communicator, Single};
use artifex_core::Result;

/// `Single`, or with `distributed` the world of `mpirun` (an error naming the build command
/// when the example was built without the `mpi` feature).
pub fn communicator(distributed: bool, example: &str) -> Result<Arc<dyn Communicator>> {
    if !distributed {
        return Ok(Arc::new(Single));
    }
    #[cfg(feature = "mpi")]
    {
        let _ = example;
        Ok(Arc::new(artifex_core::distributed::Mpi::init()?))
    }
    #[cfg(not(feature = "mpi"))]
    Err(artifex_core::Error::config(
        example,
        format!(
            "--distributed needs the `mpi` feature: cargo build --release --features mpi \
             --example {example}, then mpirun -np 2 target/release/examples/{example} \
             --distributed"
        ),
    ))
}

/// `result` itself; on more than one rank a failure ends the whole job with this rank's
/// error (`rank R/N: error: ...`, `MPI_Abort`) instead of leaving the other ranks waiting in
/// a collective.
pub fn on_every_rank<T>(comm: &Arc<dyn Communicator>, result: Result<T>) -> Result<T> {
    if comm.world_size() > 1 {
        return Ok(exit_on_error(&**comm, result));
    }
    result
}
