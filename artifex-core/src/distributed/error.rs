//! [`exit_on_error`], the fault path of a multi-process job (its error type,
//! [`DistributedError`], is defined in the bottom `error` module and re-exported here).

use super::Communicator;
pub use crate::error::DistributedError;
use crate::{ErrorChain, Result};

/// The value of `result`, or: print `rank R/N: error: ...` (with its causes) to stderr and end
/// the whole job ([`Communicator::abort`], exit code 1).
///
/// A rank that fails while the others wait in a collective (a corrupt data file, a loss that
/// errors) cannot tell them; aborting ends every rank with this rank's message instead of a
/// hang. With one process it simply exits with code 1 after printing.
pub fn exit_on_error<T>(comm: &dyn Communicator, result: Result<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "rank {}/{}: error: {}",
                comm.rank(),
                comm.world_size(),
                ErrorChain::new(&e)
            );
            if comm.world_size() > 1 {
                comm.abort(1)
            }
            std::process::exit(1)
        }
    }
}
