//! Parallel work of the fused kernels on candle's own CPU worker pool (the threads its
//! element-wise ops already use), so a kernel's threads never compete for the cores with
//! candle's busy-waiting workers, as a second pool (rayon's) would.
//!
//! The closures given here must do plain slice work only: candle's pool runs one job at a time,
//! so a candle op that uses the pool from inside one of them would wait on itself.

use std::ops::Range;
use std::sync::Mutex;

/// Calls `f(range)` for disjoint ranges covering `0..n`, spread over the pool's threads
/// (the calling thread included; all on it when the pool has no workers).
pub(crate) fn for_ranges(n: usize, f: impl Fn(Range<usize>) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(n, f);
}

/// Calls `f` once on each task, spread over the pool's threads (on the calling thread alone
/// when there is at most one task). Tasks may hold mutable borrows: each is handed out once.
pub(crate) fn for_each_task<T: Send>(tasks: Vec<T>, f: impl Fn(T) + Sync) {
    if tasks.len() <= 1 {
        tasks.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<T>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    for_ranges(slots.len(), |r| {
        for slot in &slots[r] {
            let task = slot.lock().map(|mut t| t.take()).unwrap_or(None);
            if let Some(t) = task {
                f(t);
            }
        }
    });
}

/// Runs fallible `f` once on each task as [`for_each_task`] does; the first error, if any.
pub(crate) fn try_for_each_task<T: Send>(
    tasks: Vec<T>,
    f: impl Fn(T) -> candle_core::Result<()> + Sync,
) -> candle_core::Result<()> {
    let failure = Mutex::new(None);
    for_each_task(tasks, |t| {
        if let Err(e) = f(t) {
            if let Ok(mut slot) = failure.lock() {
                slot.get_or_insert(e);
            }
        }
    });
    match failure.into_inner() {
        Ok(None) => Ok(()),
        Ok(Some(e)) => Err(e),
        Err(_) => candle_core::bail!("artifex kernels: a task panicked"),
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn for_each_task_hands_out_every_task_once() {
        let mut data = vec![0u32; 100];
        let tasks: Vec<&mut [u32]> = data.chunks_mut(7).collect();
        for_each_task(tasks, |chunk| chunk.iter_mut().for_each(|v| *v += 1));
        assert!(data.iter().all(|&v| v == 1));
    }
}
