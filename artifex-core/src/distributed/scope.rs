//! The communicator of the training step in progress, for the few computations that must
//! reach the other ranks from inside a model (synchronized BatchNorm, per-example noise).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::Communicator;
use crate::{Result, RngKey};

/// What a training step in progress tells the layers.
#[derive(Clone)]
struct Step {
    comm: Arc<dyn Communicator>,
    sync_batch_stats: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Step>> = const { RefCell::new(None) };
}

/// Runs `f` with `comm` as this thread's [`current`] communicator, restoring the previous one
/// afterwards (also when `f` panics). The trainers wrap every training step in it.
/// `sync_batch_stats` makes every [`BatchNorm`](crate::layers::BatchNorm) of the step use the
/// statistics of all ranks, as if each were built with `.sync_stats(true)`.
pub fn scope<R>(comm: &Arc<dyn Communicator>, sync_batch_stats: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Step>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let step = Step {
        comm: Arc::clone(comm),
        sync_batch_stats,
    };
    let previous = CURRENT.with(|c| c.borrow_mut().replace(step));
    let _restore = Restore(previous);
    f()
}

/// The communicator installed by [`scope`] on this thread, if any (a trainer's step in
/// progress).
pub fn current() -> Option<Arc<dyn Communicator>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|s| Arc::clone(&s.comm)))
}

/// Whether the step in progress asked every BatchNorm to synchronize its statistics.
pub fn batch_stats_synced() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|s| s.sync_batch_stats))
}

/// Standard-normal noise for this rank's rows of a batch: `shape[0]` is the local batch.
///
/// Outside a multi-rank step it is `key.normal(shape, ..)`. Inside one, it draws the noise
/// of the whole global batch (`shape[0] * world_size` rows, the same draw on every rank) and
/// keeps this rank's rows, so each example gets the noise it would get in a single-process
/// run on the same global batch (equal shards, as the sharded `DataLoader` guarantees).
pub fn normal_rows(key: &RngKey, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    global_rows(shape, |shape| key.normal(shape, dtype, device))
}

/// Noise uniform in `[low, high)` for this rank's rows of a batch (`shape[0]` is the local
/// batch): [`normal_rows`] for uniform draws, such as the interpolation coefficients of
/// [`wgan_gp_penalty`](crate::losses::wgan_gp_penalty).
pub fn uniform_rows(
    key: &RngKey,
    shape: &[usize],
    low: f64,
    high: f64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    global_rows(shape, |shape| key.uniform(shape, low, high, dtype, device))
}

/// `draw(shape)`, or inside a multi-rank step this rank's rows of `draw` of the global shape.
fn global_rows(shape: &[usize], draw: impl Fn(&[usize]) -> Result<Tensor>) -> Result<Tensor> {
    match (current(), shape.first()) {
        (Some(comm), Some(&rows)) if comm.world_size() > 1 => {
            let mut global = shape.to_vec();
            global[0] = rows * comm.world_size();
            let all = draw(&global)?;
            Ok(all.narrow(0, comm.rank() * rows, rows)?)
        }
        _ => draw(shape),
    }
}
