//! Counter-based random streams (NNX `nnx.Rngs`), reproducible from one seed.
//!
//! Every draw derives a fresh key from `(stream key, counter)` with ChaCha20 and then increments
//! the counter, so results depend only on the seed, the stream name and the number of previous
//! draws from that stream: not on threads, devices or candle's RNG. Noise is generated on the
//! host and moved to the target device.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::construction::Construction;
use crate::{Error, Result};

/// Number of `u32` words in a serialized [`RngKey`].
pub const KEY_WORDS: usize = 8;

/// A 256-bit ChaCha20 key: the seed of one random draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RngKey([u8; 32]);

impl RngKey {
    /// The key of an integer seed (as `jax.random.key(seed)`).
    pub fn from_seed(seed: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        // One ChaCha round trip so that nearby seeds give unrelated keys.
        Self(bytes).fold_in(0x0061_7274_6966_6578)
    }

    /// The all-zero key, for deterministic initializers that draw nothing.
    pub fn zero() -> Self {
        Self([0; 32])
    }

    /// A new key derived from this key and `data` (as `jax.random.fold_in`).
    pub fn fold_in(&self, data: u64) -> Self {
        let mut rng = ChaCha20Rng::from_seed(self.0);
        rng.set_stream(data);
        let mut out = [0u8; 32];
        rng.fill_bytes(&mut out);
        Self(out)
    }

    /// A new key derived from this key and a name (stream names).
    pub fn fold_in_str(&self, name: &str) -> Self {
        // FNV-1a: stable across Rust versions and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.fold_in(hash)
    }

    /// A generator seeded by this key.
    pub fn generator(&self) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.0)
    }

    /// The key as 8 little-endian `u32` words (its checkpoint form).
    pub fn to_words(&self) -> [u32; KEY_WORDS] {
        let mut words = [0u32; KEY_WORDS];
        for (w, chunk) in words.iter_mut().zip(self.0.chunks_exact(4)) {
            *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        words
    }

    /// The key from its checkpoint form.
    pub fn from_words(words: &[u32]) -> Result<Self> {
        if words.len() != KEY_WORDS {
            return Err(Error::config(
                "RngKey",
                format!("expected {KEY_WORDS} u32 words, got {}", words.len()),
            ));
        }
        let mut bytes = [0u8; 32];
        for (chunk, w) in bytes.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Ok(Self(bytes))
    }

    /// `n` standard-normal samples.
    pub fn normal_vec(&self, n: usize) -> Vec<f64> {
        let mut rng = self.generator();
        (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
    }

    /// `n` standard-normal samples truncated to `[lower, upper]` (rejection sampling).
    pub fn truncated_normal_vec(&self, n: usize, lower: f64, upper: f64) -> Vec<f64> {
        let mut rng = self.generator();
        (0..n)
            .map(|_| loop {
                let v: f64 = StandardNormal.sample(&mut rng);
                if (lower..=upper).contains(&v) {
                    break v;
                }
            })
            .collect()
    }

    /// `n` samples uniform in `[low, high)`.
    pub fn uniform_vec(&self, n: usize, low: f64, high: f64) -> Vec<f64> {
        let mut rng = self.generator();
        (0..n)
            .map(|_| low + (high - low) * rng.random::<f64>())
            .collect()
    }

    /// A tensor of standard-normal samples.
    pub fn normal(&self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n = shape.iter().product();
        host_tensor(self.normal_vec(n), shape, dtype, device)
    }

    /// A tensor of samples uniform in `[low, high)`.
    pub fn uniform(
        &self,
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let n = shape.iter().product();
        host_tensor(self.uniform_vec(n, low, high), shape, dtype, device)
    }

    /// A 0/1 mask where each entry is 1 with probability `p`.
    pub fn bernoulli(
        &self,
        shape: &[usize],
        p: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let mut rng = self.generator();
        let mask: Vec<f32> = (0..n)
            .map(|_| if rng.random::<f64>() < p { 1.0 } else { 0.0 })
            .collect();
        Ok(Tensor::from_vec(mask, shape, device)?.to_dtype(dtype)?)
    }
}

/// Builds a tensor from host samples, converting to `dtype` on the way.
pub(crate) fn host_tensor(
    values: Vec<f64>,
    shape: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let t = if dtype == DType::F64 {
        Tensor::from_vec(values, shape, device)?
    } else {
        let v: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
        Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?
    };
    Ok(t)
}

/// One named random stream: a key and a draw counter (NNX `RngStream`).
///
/// Its key and counter are module state (`rngs.key`, `rngs.count`), so a checkpoint resumes
/// the same sequence. Drawing takes `&self`; the counter is atomic.
#[derive(Debug)]
pub struct RngStream {
    key: std::sync::RwLock<RngKey>,
    count: AtomicU64,
}

impl Clone for RngStream {
    fn clone(&self) -> Self {
        Self::with_count(self.key(), self.count())
    }
}

impl RngStream {
    /// A stream starting at counter 0.
    pub fn new(key: RngKey) -> Self {
        Self::with_count(key, 0)
    }

    /// A stream at a given counter.
    pub fn with_count(key: RngKey, count: u64) -> Self {
        Self {
            key: std::sync::RwLock::new(key),
            count: AtomicU64::new(count),
        }
    }

    /// The stream's key.
    pub fn key(&self) -> RngKey {
        *self.key.read().unwrap_or_else(|e| e.into_inner())
    }

    /// How many keys have been drawn.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The key of the next draw: `fold_in(key, count)`, then `count += 1`.
    pub fn next_key(&self) -> RngKey {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        self.key().fold_in(n)
    }

    /// A new independent stream keyed by this stream's next key (NNX `fork()`).
    pub fn fork(&self) -> RngStream {
        RngStream::new(self.next_key())
    }

    pub(crate) fn set_key(&self, key: RngKey) {
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    pub(crate) fn set_count(&self, count: u64) {
        self.count.store(count, Ordering::SeqCst);
    }
}

/// A set of named random streams (`params`, `dropout`, `sample`, ...), plus the device that
/// constructors put new parameters on.
///
/// ```
/// use artifex_core::Rngs;
/// let mut rngs = Rngs::new(0).with_stream("dropout", 1);
/// let k1 = rngs.params().unwrap(); // falls back to `default`
/// let k2 = rngs.params().unwrap();
/// assert_ne!(k1, k2);
/// assert!(rngs.contains("dropout") && !rngs.contains("sample"));
/// ```
#[derive(Clone, Debug)]
pub struct Rngs {
    /// The streams by name (walked by its `Module` impl in `module.rs`).
    pub(crate) streams: BTreeMap<String, RngStream>,
    device: Device,
    /// How constructors create variables with these rngs (drawn, zeroed or shape-only).
    construction: Construction,
    /// Where the constructor running now sits, for configuration errors.
    build_path: crate::build_path::BuildPath,
}

impl Rngs {
    /// Rngs with one `default` stream seeded by `seed` (NNX `Rngs(seed)`), on the CPU.
    pub fn new(seed: u64) -> Self {
        Self::empty().with_stream("default", seed)
    }

    /// Rngs with no stream at all; add some with [`Rngs::with_stream`].
    pub fn empty() -> Self {
        Self {
            streams: BTreeMap::new(),
            device: Device::Cpu,
            construction: Construction::Draw,
            build_path: Default::default(),
        }
    }

    /// Adds (or replaces) stream `name` seeded by `seed`; its key depends on both.
    pub fn with_stream(mut self, name: &str, seed: u64) -> Self {
        let key = RngKey::from_seed(seed).fold_in_str(name);
        self.streams.insert(name.to_string(), RngStream::new(key));
        self
    }

    /// Puts parameters built with these rngs on `device`.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The device constructors put parameters on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Where the `#[module]` constructor running now sits (used by generated code).
    #[doc(hidden)]
    pub fn build_path(&mut self) -> &mut crate::build_path::BuildPath {
        &mut self.build_path
    }

    /// These rngs with constructors creating variables as `construction` says.
    pub(crate) fn with_construction(mut self, construction: Construction) -> Self {
        self.construction = construction;
        self
    }

    /// How constructors create variables with these rngs.
    pub(crate) fn construction(&self) -> &Construction {
        &self.construction
    }

    /// True if a stream of exactly this name exists (no fallback).
    pub fn contains(&self, name: &str) -> bool {
        self.streams.contains_key(name)
    }

    /// The names of the streams.
    pub fn names(&self) -> Vec<String> {
        self.streams.keys().cloned().collect()
    }

    /// Stream `name`, or `default` when there is none of that name.
    pub fn stream(&self, name: &str) -> Result<&RngStream> {
        self.streams
            .get(name)
            .or_else(|| self.streams.get("default"))
            .ok_or_else(|| Error::MissingRngStream {
                stream: name.to_string(),
                available: self.names(),
            })
    }

    /// The next key of stream `name` (falling back to `default`).
    pub fn next_key(&mut self, name: &str) -> Result<RngKey> {
        Ok(self.stream(name)?.next_key())
    }

    /// The next key of the `params` stream.
    pub fn params(&mut self) -> Result<RngKey> {
        self.next_key("params")
    }

    /// The next key of the `dropout` stream.
    pub fn dropout(&mut self) -> Result<RngKey> {
        self.next_key("dropout")
    }

    /// The next key of the `sample` stream.
    pub fn sample(&mut self) -> Result<RngKey> {
        self.next_key("sample")
    }

    /// A new stream forked from stream `name` (falling back to `default`), for modules that
    /// draw at call time (Dropout, sampling layers).
    pub fn fork(&mut self, name: &str) -> Result<RngStream> {
        self.construction.count_stream(KEY_WORDS * 4 + 8)?;
        Ok(self.stream(name)?.fork())
    }
}
