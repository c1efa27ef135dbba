//! [`Single`]: the world of one process.

use super::{Communicator, DistributedError};
use crate::Result;

/// One process, rank 0 of 1: every reduction is the identity (the default communicator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn backend(&self) -> &'static str {
        "single"
    }

    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn broadcast_bytes(&self, _buf: &mut Vec<u8>, root: usize) -> Result<()> {
        check_root(root)
    }

    fn broadcast_f32(&self, _buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root)
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

fn check_root(root: usize) -> Result<()> {
    if root == 0 {
        Ok(())
    } else {
        Err(DistributedError::BadRoot {
            root,
            world_size: 1,
        }
        .into())
    }
}
