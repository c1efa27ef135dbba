//! Sample-quality metrics computed on feature vectors: the Fréchet distance between Gaussians
//! fitted to two feature sets (FID, Heusel et al. 2017) and k-nearest-neighbour precision and
//! recall (Kynkäänniemi et al. 2019).
//!
//! The metrics take features `(N, D)` of any float dtype, computed by whatever network the
//! caller chooses, and work in f64. Bad input is an [`Error::Metrics`](crate::Error::Metrics)
//! naming the problem, never NaN: fewer samples than feature dimensions (a singular
//! covariance), feature sets of different widths, non-finite features.
//!
//! ```
//! use artifex_core::metrics::{frechet_distance, precision_recall};
//! use artifex_core::prelude::*;
//!
//! let real = Tensor::randn(0f64, 1.0, (200, 4), &Device::Cpu)?;
//! let fake = Tensor::randn(0.5f64, 1.0, (200, 4), &Device::Cpu)?;
//! let fid = frechet_distance(&real, &fake)?;
//! assert!(fid > 0.5, "means 0.5 apart in 4 dimensions: {fid}");
//! assert!(frechet_distance(&real, &real)?.abs() < 1e-9);
//! let pr = precision_recall(&real, &fake, 3)?;
//! assert!(pr.precision > 0.0 && pr.precision <= 1.0 && pr.recall <= 1.0);
//! # Ok::<(), artifex_core::Error>(())
//! ```

mod features;
mod frechet;
mod precision_recall;

pub use crate::error::MetricsError;
pub use features::Features;
pub use frechet::{frechet_distance, frechet_distance_of, FeatureStats};
pub use precision_recall::{precision_recall, precision_recall_of, PrecisionRecall, DEFAULT_K};
