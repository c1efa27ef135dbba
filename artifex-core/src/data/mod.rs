//! Data sets and batching: the MNIST / IDX reader, in-memory [`TensorDataset`]s and a
//! resumable, reproducibly shuffling [`DataLoader`].
//!
//! ```
//! use artifex_core::data::{DataLoader, Mnist};
//! use artifex_core::{RngKey, RngStream};
//!
//! let mnist = Mnist::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist10k"))?;
//! let mut loader = DataLoader::new(mnist.train.dataset()?, 128)?
//!     .with_shuffle(RngStream::new(RngKey::from_seed(0)));
//! let batch = loader.next_batch()?.expect("an epoch has batches");
//! assert_eq!(batch[0].dims(), &[128, 28, 28, 1]);
//! assert_eq!(batch[1].dims(), &[128]);
//! # Ok::<(), artifex_core::Error>(())
//! ```

mod dataset;
pub mod idx;
mod loader;
pub mod mnist;

pub use dataset::TensorDataset;
pub use idx::{parse_idx, read_idx, IdxArray};
pub use loader::{permutation, DataLoader, EpochBatches, LoaderState};
pub use mnist::{Mnist, MnistSplit};
