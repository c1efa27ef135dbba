//! Data sets and batching: in-memory [`TensorDataset`]s, a resumable, reproducibly shuffling
//! [`DataLoader`] and, with the `mnist` cargo feature (on by default), the IDX reader and
//! `Mnist` (whose `MnistSplit::dataset` feeds the loader).
//!
//! ```
//! use artifex_core::data::{DataLoader, TensorDataset};
//! use artifex_core::candle_core::{DType, Device, Tensor};
//! use artifex_core::{RngKey, RngStream};
//!
//! let images = Tensor::zeros((300, 28, 28, 1), DType::F32, &Device::Cpu)?;
//! let labels = Tensor::arange(0u32, 300, &Device::Cpu)?;
//! let mut loader = DataLoader::new(TensorDataset::new(vec![images, labels])?, 128)?
//!     .with_shuffle(RngStream::new(RngKey::from_seed(0)));
//! let batch = loader.next_batch()?.expect("an epoch has batches");
//! assert_eq!(batch[0].dims(), &[128, 28, 28, 1]);
//! assert_eq!(batch[1].dims(), &[128]);
//! # Ok::<(), artifex_core::Error>(())
//! ```

mod dataset;
#[cfg(feature = "mnist")]
pub mod idx;
mod loader;
#[cfg(feature = "mnist")]
pub mod mnist;

pub use dataset::TensorDataset;
#[cfg(feature = "mnist")]
pub use idx::{parse_idx, read_idx, IdxArray};
pub use loader::{permutation, DataLoader, EpochBatches, LoaderState};
#[cfg(feature = "mnist")]
pub use mnist::{Mnist, MnistSplit};
