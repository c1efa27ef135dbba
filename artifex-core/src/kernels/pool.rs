//! Parallel work of the fused kernels on candle's own CPU worker pool (the threads its
//! element-wise ops already use), so a kernel's threads never compete for the cores with
//! candle's busy-waiting workers, as a second pool (rayon's) would.
//!
//! Work is handed out dynamically: a kernel cuts its work into tasks whose boundaries depend
//! on the shapes only (never on the number of threads), and every thread of the pool, the
//! calling one included, claims the next task from one atomic counter until none is left. A
//! thread that the OS or the host preempts holds back at most the task it is running; the
//! others take over the rest. Which thread runs which task changes nothing in the results.
//!
//! The closures given here must do plain slice work only: candle's pool runs one job at a time,
//! so a candle op that uses the pool from inside one of them would wait on itself. A task that
//! hands out tasks of its own runs them on its thread.

use std::cell::{Cell, UnsafeCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

thread_local! {
    /// Set while this thread runs a task of [`for_each_task`] (nested calls run inline).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Tasks claimed one at a time from an atomic counter, each by exactly one thread.
struct Claims<T> {
    slots: Vec<UnsafeCell<Option<T>>>,
    next: AtomicUsize,
}

// SAFETY: a slot is only touched by the one thread whose `fetch_add` returned its index, so
// sharing `Claims` hands each `T` to one thread (which needs `T: Send`, nothing more).
unsafe impl<T: Send> Sync for Claims<T> {}

impl<T> Claims<T> {
    fn new(tasks: Vec<T>) -> Self {
        Self {
            slots: tasks
                .into_iter()
                .map(|t| UnsafeCell::new(Some(t)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next unclaimed task, or `None` when all are taken.
    fn claim(&self) -> Option<T> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = self.slots.get(i)?;
        // SAFETY: `fetch_add` returns each index once, so no other thread accesses slot `i`;
        // the tasks were written before the pool's job was published (release/acquire).
        unsafe { (*slot.get()).take() }
    }
}

/// Resets [`IN_TASK`] when a thread leaves its claim loop, panicking or not.
struct InTask(bool);

impl InTask {
    fn enter() -> Self {
        Self(IN_TASK.with(|f| f.replace(true)))
    }
}

impl Drop for InTask {
    fn drop(&mut self) {
        IN_TASK.with(|f| f.set(self.0));
    }
}

/// Calls `f` once on each task, the tasks claimed one at a time by the pool's threads (the
/// calling thread included); on the calling thread alone when there is at most one task, the
/// pool has no workers, or this runs inside another task. Tasks may hold mutable borrows: each
/// is handed out once.
pub(crate) fn for_each_task<T: Send>(tasks: Vec<T>, f: impl Fn(T) + Sync) {
    let pool = candle_core::utils::barrier_pool();
    if tasks.len() <= 1 || pool.n_workers() == 0 || IN_TASK.with(Cell::get) {
        tasks.into_iter().for_each(f);
        return;
    }
    let claims = Claims::new(tasks);
    // A panicking task is caught here and raised again after the pool call: candle's pool
    // would re-raise it itself, but while holding its job lock, which poisons that lock and
    // makes every later candle CPU op of the process panic too.
    let panicked = Mutex::new(None);
    pool.execute(|_| {
        let _guard = InTask::enter();
        while let Some(t) = claims.claim() {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(t))) {
                if let Ok(mut first) = panicked.lock() {
                    first.get_or_insert(payload);
                }
            }
        }
    });
    if let Some(payload) = panicked.into_inner().ok().flatten() {
        panic::resume_unwind(payload);
    }
}

/// Calls `f(start, block)` for each block of `chunk` elements of `dst` (`start`: the index of
/// its first element), spread over the pool as [`for_each_task`] does.
pub(crate) fn for_chunks<T: Send>(dst: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunk = chunk.max(1);
    for_each_task(dst.chunks_mut(chunk).enumerate().collect(), |(i, d)| {
        f(i * chunk, d)
    });
}

/// A vector of `len` values made over the pool, block by block: the block of values
/// `start..start + n` (blocks of `chunk`) is the first `n` items of `make(start, n)`, written
/// straight into the new vector (no zero fill first); values an iterator does not yield are 0.
pub(crate) fn collect_chunks<I: Iterator<Item = f32>>(
    len: usize,
    chunk: usize,
    make: impl Fn(usize, usize) -> I + Sync,
) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    for_chunks(&mut v.spare_capacity_mut()[..len], chunk, |start, dst| {
        let n = dst.len();
        let mut written = 0;
        // A plain counted loop over zipped slices, so it vectorizes.
        for (d, x) in dst.iter_mut().zip(make(start, n)) {
            d.write(x);
            written += 1;
        }
        for d in &mut dst[written..] {
            d.write(0.0);
        }
    });
    // SAFETY: the blocks cover `0..len` and every value of each was written above (the
    // iterator's items, then zeros). A block whose closure panicked was not finished, but then
    // `for_chunks` does not return: candle's pool re-raises a worker's panic in the calling
    // thread (test `a_panicking_task_reaches_the_caller`), so this line is never reached.
    unsafe { v.set_len(len) };
    v
}

/// A `rows x width` row-major matrix made over the pool in blocks of `rows_per_task` rows:
/// row `r` is the first `width` items of `make_row(r)`, written straight into the new vector
/// (no zero fill first); values an iterator does not yield are 0.
pub(crate) fn collect_rows<I: Iterator<Item = f32>>(
    rows: usize,
    width: usize,
    rows_per_task: usize,
    make_row: impl Fn(usize) -> I + Sync,
) -> Vec<f32> {
    let len = rows * width;
    let mut v: Vec<f32> = Vec::with_capacity(len);
    if width > 0 {
        let chunk = rows_per_task.max(1) * width;
        for_chunks(&mut v.spare_capacity_mut()[..len], chunk, |start, block| {
            for (i, dst) in block.chunks_exact_mut(width).enumerate() {
                let mut written = 0;
                for (d, x) in dst.iter_mut().zip(make_row(start / width + i)) {
                    d.write(x);
                    written += 1;
                }
                for d in &mut dst[written..] {
                    d.write(0.0);
                }
            }
        });
    }
    // SAFETY: the blocks are whole rows covering `0..len` (nothing when `width` is 0: then
    // `len` is 0), and every value of each row was written above (items, then zeros); a
    // panicking block never gets here, as in `collect_chunks`.
    unsafe { v.set_len(len) };
    v
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
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    #[test]
    fn for_each_task_hands_out_every_task_once() {
        let mut data = vec![0u32; 100];
        let tasks: Vec<&mut [u32]> = data.chunks_mut(7).collect();
        for_each_task(tasks, |chunk| chunk.iter_mut().for_each(|v| *v += 1));
        assert!(data.iter().all(|&v| v == 1));
    }

    #[test]
    fn collect_chunks_writes_every_value() {
        let v = collect_chunks(1000, 64, |start, n| (start..start + n).map(|i| i as f32));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        // An iterator that stops early leaves zeros, never uninitialized values.
        let short = collect_chunks(100, 30, |start, _| {
            (start..start + 5).map(|i| i as f32 + 1.0)
        });
        for (i, &x) in short.iter().enumerate() {
            let want = if i % 30 < 5 { i as f32 + 1.0 } else { 0.0 };
            assert_eq!(x, want, "value {i}");
        }
    }

    #[test]
    fn collect_rows_writes_every_value() {
        let v = collect_rows(37, 5, 4, |r| (0..5).map(move |c| (r * 10 + c) as f32));
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, &x)| x == ((i / 5) * 10 + i % 5) as f32));
        let short = collect_rows(9, 4, 2, |r| std::iter::once(r as f32 + 1.0));
        for (i, &x) in short.iter().enumerate() {
            let want = if i % 4 == 0 {
                (i / 4) as f32 + 1.0
            } else {
                0.0
            };
            assert_eq!(x, want, "value {i}");
        }
        assert!(collect_rows(3, 0, 1, |_| std::iter::empty()).is_empty());
    }

    #[test]
    fn nested_calls_run_inline() {
        let mut data = vec![0u32; 64];
        let tasks: Vec<&mut [u32]> = data.chunks_mut(16).collect();
        for_each_task(tasks, |chunk| {
            let inner: Vec<&mut [u32]> = chunk.chunks_mut(4).collect();
            for_each_task(inner, |c| c.iter_mut().for_each(|v| *v += 2));
        });
        assert!(data.iter().all(|&v| v == 2));
    }

    /// A worker that stalls (preempted by the OS or the host) holds back only the task it
    /// claimed: the calling thread and the other workers run all the others meanwhile, and
    /// every task's result is right.
    #[test]
    fn a_stalled_worker_holds_back_only_its_own_task() {
        let caller = std::thread::current().id();
        let stalled = AtomicBool::new(false);
        let stalled_thread = Mutex::new(None);
        let done_by_stalled = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let (tasks_n, width) = (64, 257);
        let mut data = vec![0u64; tasks_n * width];
        let tasks: Vec<(usize, &mut [u64])> = data.chunks_mut(width).enumerate().collect();
        for_each_task(tasks, |(i, chunk)| {
            let me = std::thread::current().id();
            if me != caller && !stalled.swap(true, Ordering::SeqCst) {
                *stalled_thread.lock().unwrap() = Some(me);
                // Stall until every other task is done (10 s at most: with a static split
                // the others could never finish while this thread sleeps on its share).
                let start = Instant::now();
                while finished.load(Ordering::SeqCst) < tasks_n - 1
                    && start.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            if *stalled_thread.lock().unwrap() == Some(me) {
                done_by_stalled.fetch_add(1, Ordering::SeqCst);
            }
            // Tasks long enough (1 ms) that a worker wakes before the caller is done.
            std::thread::sleep(Duration::from_millis(1));
            for (j, v) in chunk.iter_mut().enumerate() {
                *v = ((i * width + j) as u64).wrapping_mul(2_654_435_761);
            }
            finished.fetch_add(1, Ordering::SeqCst);
        });
        let want: Vec<u64> = (0..tasks_n * width)
            .map(|k| (k as u64).wrapping_mul(2_654_435_761))
            .collect();
        assert!(data == want, "every task ran once, with the right data");
        // The stalled worker ran the one task it held; the other 63 were taken by the rest.
        // (If no worker woke before the caller finished, nothing stalled: the count is 0.)
        let n = done_by_stalled.load(Ordering::SeqCst);
        assert!(n <= 1, "the stalled worker ran {n} tasks");
    }

    /// `collect_chunks` / `collect_rows` set their length after the pool returns, which is
    /// sound only if a task that panics on any thread (a worker or the caller) makes the pool
    /// call panic too instead of returning with a block unwritten; and the pool must keep
    /// working afterwards (candle's own re-raise would poison its job lock).
    #[test]
    fn a_panicking_task_reaches_the_caller() {
        for bad in [0usize, 5, 19] {
            let outcome = std::panic::catch_unwind(|| {
                collect_chunks(20 * 64, 64, |start, n| {
                    if start / 64 == bad {
                        panic!("block {bad} fails");
                    }
                    // Long enough that the pool's workers take part.
                    std::thread::sleep(Duration::from_millis(1));
                    (start..start + n).map(|i| i as f32)
                })
            });
            assert!(
                outcome.is_err(),
                "a panic in block {bad} must reach the caller"
            );
        }
        // The pool still works afterwards, for our tasks and for candle's own ops.
        let v = collect_chunks(256, 64, |start, n| (start..start + n).map(|i| i as f32));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        let ones = candle_core::Tensor::ones(
            (256, 256),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        );
        let sum = ones.and_then(|t| t.matmul(&t)?.sum_all()?.to_scalar::<f32>());
        assert_eq!(sum.ok(), Some(256.0 * 256.0 * 256.0));
    }

    #[test]
    fn errors_come_back_and_every_other_task_runs() {
        let ran = AtomicUsize::new(0);
        let result = try_for_each_task((0..20).collect(), |i: usize| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 7 {
                candle_core::bail!("task {i} failed")
            }
            Ok(())
        });
        let err = result.expect_err("task 7 fails");
        assert!(err.to_string().contains("task 7 failed"), "{err}");
        assert_eq!(ran.load(Ordering::SeqCst), 20);
    }
}
