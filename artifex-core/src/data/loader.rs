//! [`DataLoader`]: batches of a [`TensorDataset`], reshuffled every epoch from an
//! [`RngStream`], with a [`LoaderState`] that resumes the exact same order after a restart.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::RngCore;
use rand_chacha::ChaCha20Rng;

use super::TensorDataset;
use crate::{Error, Result, RngKey, RngStream, KEY_WORDS};

/// A random permutation of `0..n` drawn from `key`: Fisher-Yates with ChaCha20 and Lemire's
/// unbiased bounded integers, so the order depends only on the key and `n` (not on `rand`'s
/// version).
pub fn permutation(key: RngKey, n: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n).collect();
    let mut rng = key.generator();
    for i in (1..order.len()).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// A uniform integer in `0..bound` (`bound > 0`), Lemire's multiply-and-reject method.
fn below(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(bound);
    if (m as u64) < bound {
        let threshold = bound.wrapping_neg() % bound;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(bound);
        }
    }
    (m >> 64) as u64
}

/// Where a [`DataLoader`] stands: enough to continue the exact same batches after a restart.
///
/// `count` is the shuffle stream's counter at the start of the current epoch, so the epoch's
/// permutation is redrawn on resume and the first `step` batches skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderState {
    /// The current epoch, counting from 0.
    pub epoch: u64,
    /// Batches already produced in the current epoch.
    pub step: u64,
    /// The shuffle stream's key (all zero without shuffling).
    pub key: [u32; KEY_WORDS],
    /// The shuffle stream's counter at the start of the current epoch.
    pub count: u64,
}

impl LoaderState {
    /// The state as checkpoint entries `PREFIX.epoch`, `PREFIX.step`, `PREFIX.rng.key`,
    /// `PREFIX.rng.count` (CPU tensors, `I64` / `U32`), to save beside a model.
    pub fn to_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let cpu = &Device::Cpu;
        Ok(vec![
            (
                format!("{prefix}.epoch"),
                Tensor::new(self.epoch as i64, cpu)?,
            ),
            (
                format!("{prefix}.step"),
                Tensor::new(self.step as i64, cpu)?,
            ),
            (
                format!("{prefix}.rng.key"),
                Tensor::new(&self.key[..], cpu)?,
            ),
            (
                format!("{prefix}.rng.count"),
                Tensor::new(self.count as i64, cpu)?,
            ),
        ])
    }

    /// Reads the entries written by [`LoaderState::to_tensors`].
    pub fn from_tensors(entries: &HashMap<String, Tensor>, prefix: &str) -> Result<Self> {
        let get = |name: &str| {
            let key = format!("{prefix}.{name}");
            entries
                .get(&key)
                .ok_or_else(|| Error::config("LoaderState", format!("missing entry `{key}`")))
        };
        let scalar = |name: &str| -> Result<u64> {
            let t = get(name)?;
            let v: i64 = t.to_dtype(candle_core::DType::I64)?.to_scalar()?;
            u64::try_from(v).map_err(|_| {
                Error::config("LoaderState", format!("`{prefix}.{name}` is negative: {v}"))
            })
        };
        let words: Vec<u32> = get("rng.key")?.flatten_all()?.to_vec1()?;
        let key = RngKey::from_words(&words)?.to_words();
        Ok(Self {
            epoch: scalar("epoch")?,
            step: scalar("step")?,
            key,
            count: scalar("rng.count")?,
        })
    }
}

/// Batches of a dataset, in order or reshuffled every epoch.
///
/// ```
/// use artifex_core::data::{DataLoader, TensorDataset};
/// use artifex_core::{candle_core::{Device, Tensor}, RngKey, RngStream};
///
/// let x = Tensor::arange(0u32, 10, &Device::Cpu)?;
/// let mut loader = DataLoader::new(TensorDataset::new(vec![x])?, 4)?
///     .with_shuffle(RngStream::new(RngKey::from_seed(0)))
///     .with_drop_last(true);
/// assert_eq!(loader.batches_per_epoch(), 2);
/// for batch in loader.epoch_batches() {
///     assert_eq!(batch?[0].dims(), &[4]);
/// }
/// assert_eq!(loader.epoch(), 1);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DataLoader {
    dataset: TensorDataset,
    batch_size: usize,
    drop_last: bool,
    shuffle: Option<RngStream>,
    epoch: u64,
    step: u64,
    epoch_start_count: u64,
    /// The current epoch's order; `None` until its first batch is asked for.
    order: Option<Vec<u32>>,
    /// `(rank, world_size)`: this process's share of every batch (`(0, 1)`: all of it).
    shard: (usize, usize),
}

impl DataLoader {
    /// Batches of `batch_size` examples, in dataset order, keeping a short last batch.
    pub fn new(dataset: TensorDataset, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("DataLoader", "batch_size must be at least 1"));
        }
        if u32::try_from(dataset.len()).is_err() {
            return Err(Error::config(
                "DataLoader",
                format!("{} examples exceed the u32 index range", dataset.len()),
            ));
        }
        Ok(Self {
            dataset,
            batch_size,
            drop_last: false,
            shuffle: None,
            epoch: 0,
            step: 0,
            epoch_start_count: 0,
            order: None,
            shard: (0, 1),
        })
    }

    /// Reshuffles at the start of every epoch with a key drawn from `stream` (set this before
    /// the first batch).
    pub fn with_shuffle(mut self, stream: RngStream) -> Self {
        self.shuffle = Some(stream);
        self
    }

    /// Drops the last batch of an epoch when it would be short.
    pub fn with_drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Hands out only shard `rank` of `world_size` equal, disjoint, contiguous parts of every
    /// batch: every rank draws the same (global) batches in the same shuffled order and keeps
    /// its part, so the union over the ranks is exactly the single-process batch.
    /// [`batch_size`](Self::batch_size) stays the global batch; the [`LoaderState`] does not
    /// depend on the shard, so a checkpoint resumes on any number of ranks.
    ///
    /// Errors (the same on every rank) when a batch does not split evenly: `batch_size` not a
    /// multiple of `world_size`, or a short last batch that is not (drop it with
    /// [`with_drop_last`](Self::with_drop_last)).
    pub fn set_shard(&mut self, rank: usize, world_size: usize) -> Result<()> {
        if world_size == 0 || rank >= world_size {
            return Err(Error::config(
                "DataLoader",
                format!("shard {rank} of {world_size} ranks does not exist"),
            ));
        }
        let uneven = |batch: usize, detail: String| {
            Err(crate::error::DistributedError::UnevenBatch {
                batch,
                world_size,
                detail,
            }
            .into())
        };
        if !self.batch_size.is_multiple_of(world_size) {
            return uneven(
                self.batch_size,
                format!(
                    "; use a batch size that is a multiple of {world_size} (e.g. {})",
                    self.batch_size.div_ceil(world_size) * world_size
                ),
            );
        }
        let last = self.dataset.len() % self.batch_size;
        if !self.drop_last && !last.is_multiple_of(world_size) {
            return uneven(
                last,
                format!(
                    " (the last batch of each epoch: {} examples, batch size {}); drop it with \
                     with_drop_last(true) or change the batch size",
                    self.dataset.len(),
                    self.batch_size
                ),
            );
        }
        self.shard = (rank, world_size);
        Ok(())
    }

    /// [`set_shard`](Self::set_shard) in builder form.
    pub fn with_shard(mut self, rank: usize, world_size: usize) -> Result<Self> {
        self.set_shard(rank, world_size)?;
        Ok(self)
    }

    /// `(rank, world_size)` of the shard this loader hands out (`(0, 1)`: whole batches).
    pub fn shard(&self) -> (usize, usize) {
        self.shard
    }

    /// Whether an incomplete last batch of an epoch is dropped.
    pub fn drop_last(&self) -> bool {
        self.drop_last
    }

    /// The dataset batched.
    pub fn dataset(&self) -> &TensorDataset {
        &self.dataset
    }

    /// The number of examples per (full) batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shuffle stream, if shuffling.
    pub fn shuffle_stream(&self) -> Option<&RngStream> {
        self.shuffle.as_ref()
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The current epoch, counting from 0.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Batches already produced in the current epoch.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The position to save for an exact resume.
    pub fn state(&self) -> LoaderState {
        let (key, count) = match &self.shuffle {
            Some(s) if self.order.is_some() => (s.key().to_words(), self.epoch_start_count),
            Some(s) => (s.key().to_words(), s.count()),
            None => ([0; KEY_WORDS], 0),
        };
        LoaderState {
            epoch: self.epoch,
            step: self.step,
            key,
            count,
        }
    }

    /// Continues from a saved position: the next batch is the one that followed it.
    pub fn restore(&mut self, state: &LoaderState) -> Result<()> {
        if state.step > self.batches_per_epoch() as u64 {
            return Err(Error::config(
                "DataLoader",
                format!(
                    "saved step {} is past the {} batches of an epoch",
                    state.step,
                    self.batches_per_epoch()
                ),
            ));
        }
        if let Some(s) = &self.shuffle {
            s.set_key(RngKey::from_words(&state.key)?);
            s.set_count(state.count);
        }
        self.epoch = state.epoch;
        self.step = state.step;
        self.epoch_start_count = state.count;
        self.order = None;
        Ok(())
    }

    /// The next batch (one tensor per dataset tensor), or `None` once the current epoch is
    /// done; the call after a `None` starts the next epoch.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>> {
        if self.order.is_none() {
            self.start_epoch();
        }
        let n = self.dataset.len();
        if self.step >= self.batches_per_epoch() as u64 {
            self.epoch += 1;
            self.step = 0;
            self.order = None;
            return Ok(None);
        }
        let start = self.step as usize * self.batch_size;
        let end = (start + self.batch_size).min(n);
        self.step += 1;
        let (rank, world) = self.shard;
        let part = (end - start) / world;
        let (start, end) = (start + rank * part, start + (rank + 1) * part);
        let batch = match (&self.order, &self.shuffle) {
            (Some(order), Some(_)) => self.dataset.gather(&order[start..end])?,
            _ => self.dataset.slice(start, end - start)?,
        };
        Ok(Some(batch))
    }

    /// The remaining batches of the current epoch; the loader is at the next epoch once the
    /// iterator has ended.
    pub fn epoch_batches(&mut self) -> EpochBatches<'_> {
        EpochBatches {
            loader: self,
            done: false,
        }
    }

    fn start_epoch(&mut self) {
        let n = self.dataset.len() as u32;
        self.order = Some(match &self.shuffle {
            Some(s) => {
                self.epoch_start_count = s.count();
                permutation(s.next_key(), n)
            }
            None => Vec::new(),
        });
    }
}

/// The remaining batches of one epoch (see [`DataLoader::epoch_batches`]).
pub struct EpochBatches<'a> {
    loader: &'a mut DataLoader,
    done: bool,
}

impl Iterator for EpochBatches<'_> {
    type Item = Result<Vec<Tensor>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.loader.next_batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader(n: u32, bs: usize, seed: u64) -> DataLoader {
        let x = Tensor::arange(0u32, n, &Device::Cpu).unwrap();
        let y = x.affine(2.0, 1.0).unwrap();
        DataLoader::new(TensorDataset::new(vec![x, y]).unwrap(), bs)
            .unwrap()
            .with_shuffle(RngStream::new(RngKey::from_seed(seed)))
    }

    fn epoch_ids(l: &mut DataLoader) -> Vec<Vec<u32>> {
        l.epoch_batches()
            .map(|b| b.unwrap()[0].to_vec1::<u32>().unwrap())
            .collect()
    }

    #[test]
    fn permutation_is_a_reproducible_permutation() {
        let k = RngKey::from_seed(3);
        let p = permutation(k, 100);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(p, permutation(k, 100));
        assert_ne!(p, permutation(RngKey::from_seed(4), 100));
        assert_ne!(p, sorted);
        assert!(permutation(k, 0).is_empty());
    }

    #[test]
    fn permutation_is_roughly_uniform() {
        // position of element 0 over many keys: each of 4 slots about 1/4 of the time
        let mut hits = [0u32; 4];
        for s in 0..4000 {
            let p = permutation(RngKey::from_seed(s), 4);
            hits[p.iter().position(|&v| v == 0).unwrap()] += 1;
        }
        assert!(hits.iter().all(|&h| (850..1150).contains(&h)), "{hits:?}");
    }

    #[test]
    fn batches_cover_the_epoch_and_reshuffle() {
        let mut l = loader(10, 4, 0);
        assert_eq!(l.batches_per_epoch(), 3);
        let e0 = epoch_ids(&mut l);
        assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<u32> = e0.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!((l.epoch(), l.step()), (1, 0));
        let e1 = epoch_ids(&mut l);
        assert_ne!(e0, e1);
        // aligned tensors stay aligned
        let b = l.next_batch().unwrap().unwrap();
        let x: Vec<u32> = b[0].to_vec1().unwrap();
        let y: Vec<u32> = b[1].to_vec1().unwrap();
        assert!(x.iter().zip(&y).all(|(a, b)| 2 * a + 1 == *b));
    }

    #[test]
    fn drop_last_and_no_shuffle() {
        let x = Tensor::arange(0u32, 10, &Device::Cpu).unwrap();
        let mut l = DataLoader::new(TensorDataset::new(vec![x]).unwrap(), 4)
            .unwrap()
            .with_drop_last(true);
        assert_eq!(epoch_ids(&mut l), [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(epoch_ids(&mut l).len(), 2);
        assert!(DataLoader::new(l.dataset().clone(), 0).is_err());
    }

    #[test]
    fn same_seed_same_order() {
        let (mut a, mut b) = (loader(50, 7, 9), loader(50, 7, 9));
        for _ in 0..3 {
            assert_eq!(epoch_ids(&mut a), epoch_ids(&mut b));
        }
    }

    #[test]
    fn resumes_mid_epoch_and_at_epoch_boundaries() {
        let mut reference = loader(23, 5, 1);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(epoch_ids(&mut reference));
        }
        let flat: Vec<Vec<u32>> = seen.concat();
        // stop after k batches (counting the epoch-end `None`s), restart from the state
        for k in 0..flat.len() + 3 {
            let mut l = loader(23, 5, 1);
            let mut got = Vec::new();
            let mut calls = 0;
            while calls < k {
                if let Some(b) = l.next_batch().unwrap() {
                    got.push(b[0].to_vec1::<u32>().unwrap());
                }
                calls += 1;
            }
            let saved = l.state();
            let tensors: HashMap<String, Tensor> =
                saved.to_tensors("data").unwrap().into_iter().collect();
            let restored_state = LoaderState::from_tensors(&tensors, "data").unwrap();
            assert_eq!(restored_state, saved);
            // a fresh loader with a different seed: everything comes from the state
            let mut fresh = loader(23, 5, 77);
            fresh.restore(&restored_state).unwrap();
            while got.len() < flat.len() {
                if let Some(b) = fresh.next_batch().unwrap() {
                    got.push(b[0].to_vec1::<u32>().unwrap());
                }
            }
            assert_eq!(got, flat, "resumed after {k} calls");
        }
    }

    #[test]
    fn shards_partition_every_global_batch_and_uneven_splits_are_refused() {
        let mut whole = loader(24, 8, 3);
        let mut shards: Vec<DataLoader> = (0..4)
            .map(|r| loader(24, 8, 3).with_shard(r, 4).unwrap())
            .collect();
        for _ in 0..2 {
            for batch in epoch_ids(&mut whole) {
                let parts: Vec<Vec<u32>> = shards
                    .iter_mut()
                    .map(|l| l.next_batch().unwrap().unwrap()[0].to_vec1().unwrap())
                    .collect();
                assert!(parts.iter().all(|p| p.len() == 2));
                assert_eq!(parts.concat(), batch);
            }
            for l in &mut shards {
                assert!(l.next_batch().unwrap().is_none());
                assert_eq!(l.state(), whole.state());
            }
        }
        let err = loader(24, 10, 0).with_shard(0, 4).unwrap_err().to_string();
        assert!(
            err.contains("global batch of 10 examples does not split evenly over 4 ranks"),
            "{err}"
        );
        // 24 examples in batches of 8 on 8 ranks split; 26 leave a last batch of 2.
        let err = loader(26, 8, 0).with_shard(1, 8).unwrap_err().to_string();
        assert!(err.contains("last batch"), "{err}");
        assert!(loader(26, 8, 0)
            .with_drop_last(true)
            .with_shard(1, 8)
            .is_ok());
        assert!(loader(24, 8, 0).with_shard(4, 4).is_err());
    }

    #[test]
    fn restore_rejects_a_step_past_the_epoch() {
        let mut l = loader(10, 4, 0);
        let mut s = l.state();
        s.step = 4;
        assert!(l.restore(&s).is_err());
        let serde_roundtrip: LoaderState =
            serde_json::from_str(&serde_json::to_string(&l.state()).unwrap()).unwrap();
        assert_eq!(serde_roundtrip, l.state());
    }
}
