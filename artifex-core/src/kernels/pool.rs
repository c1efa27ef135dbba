//! Parallel work of the fused kernels on candle's own CPU worker pool (the threads its
//! element-wise ops already use), so a kernel's threads never compete for the cores with
//! candle's busy-waiting workers, as a second pool (rayon's) would.
//!
//! The closures given here must do plain slice work only: candle's pool runs one job at a time,
//! so a candle op that uses the pool from inside one of them would wait on itself.

use std::ops::Range;

/// Calls `f(range)` for disjoint ranges covering `0..n`, spread over the pool's threads
/// (the calling thread included; all on it when the pool has no workers).
pub(crate) fn for_ranges(n: usize, f: impl Fn(Range<usize>) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(n, f);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn for_ranges_covers_everything_once() {
        let seen = Mutex::new(vec![0u8; 257]);
        for_ranges(257, |r| {
            let mut s = seen.lock().unwrap();
            for i in r {
                s[i] += 1;
            }
        });
        assert!(seen.into_inner().unwrap().iter().all(|&v| v == 1));
    }
}
