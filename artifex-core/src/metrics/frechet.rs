//! The Fréchet distance between Gaussians fitted to two feature sets (FID when the features
//! come from an Inception network; MNIST-FID with `artifex_models::MnistFid`).
//!
//! The formula and why it equals pytorch-fid's is on [`frechet_distance`].

use candle_core::Tensor;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

use super::{Features, MetricsError};
use crate::Result;

/// Mean and covariance (unbiased, `N - 1` in the denominator, as `numpy.cov`) of a feature
/// set, in f64.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    name: String,
    samples: usize,
    mean: DVector<f64>,
    cov: DMatrix<f64>,
}

impl FeatureStats {
    /// Fits the Gaussian of `features`. Needs more samples than feature dimensions: with
    /// `N <= D` the covariance is singular, which is an error naming both numbers.
    pub fn from_features(features: &Features) -> Result<Self> {
        let (n, d) = (features.samples(), features.dims());
        if n <= d {
            return Err(MetricsError::SingularCovariance {
                set: features.name().to_string(),
                samples: n,
                dims: d,
            }
            .into());
        }
        let mut mean = DVector::<f64>::zeros(d);
        for i in 0..n {
            mean += DVector::from_column_slice(features.row(i));
        }
        mean /= n as f64;
        let mut centered = features.block(0, n);
        for mut row in centered.row_iter_mut() {
            row -= mean.transpose();
        }
        let cov = centered.tr_mul(&centered) / (n - 1) as f64;
        Ok(FeatureStats {
            name: features.name().to_string(),
            samples: n,
            mean,
            cov,
        })
    }

    /// Number of samples the statistics were fitted on.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Feature width.
    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// The mean, `(D,)`.
    pub fn mean(&self) -> &[f64] {
        self.mean.as_slice()
    }

    /// The covariance, `(D, D)` (symmetric, so row- and column-major agree).
    pub fn covariance(&self) -> &[f64] {
        self.cov.as_slice()
    }
}

/// The Fréchet distance between the Gaussians fitted to `real` and `generated` features
/// `(N, D)`.
///
/// For N(m1, S1) and N(m2, S2) the distance is
/// `|m1 - m2|² + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))`.
/// pytorch-fid computes `sqrt(S1 S2)` with `scipy.linalg.sqrtm`, a Schur-based square root of
/// a non-symmetric matrix, and keeps the real part of its trace. Here the trace comes from
/// two symmetric eigendecompositions instead: with `A = sqrt(S1)` (from the eigenvalues and
/// eigenvectors of S1), `S1 S2 = A (A S2)` and `(A S2) A = A S2 A` have the same eigenvalues
/// (`XY` and `YX` always do), and `A S2 A` is symmetric positive semi-definite. The principal
/// square root of S1 S2 therefore has the eigenvalues `sqrt(λ_i(A S2 A))`, and
/// `tr(sqrt(S1 S2)) = Σ sqrt(λ_i(A S2 A))`: the same number as scipy's, from symmetric
/// problems only, so there are no complex intermediates and no non-convergence of `sqrtm`
/// on ill-conditioned products. Rounding leaves eigenvalues of PSD matrices slightly below
/// zero; they are clamped to 0 (the true values are >= 0) before the square roots.
///
/// ```
/// use artifex_core::metrics::frechet_distance;
/// use artifex_core::prelude::*;
///
/// let a = Tensor::randn(0f32, 1.0, (64, 8), &Device::Cpu)?;
/// let few = Tensor::randn(0f32, 1.0, (5, 8), &Device::Cpu)?;
/// let err = frechet_distance(&a, &few).unwrap_err().to_string();
/// assert!(err.contains("5 samples of 8 dimensions") && err.contains("singular"), "{err}");
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn frechet_distance(real: &Tensor, generated: &Tensor) -> Result<f64> {
    let real = Features::from_tensor("real", real)?;
    let generated = Features::from_tensor("generated", generated)?;
    real.check_same_width(&generated)?;
    frechet_distance_of(
        &FeatureStats::from_features(&real)?,
        &FeatureStats::from_features(&generated)?,
    )
}

/// The Fréchet distance between two fitted Gaussians (the formula of [`frechet_distance`]).
pub fn frechet_distance_of(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    if a.dims() != b.dims() {
        return Err(MetricsError::ShapeMismatch {
            what: "feature widths differ".to_string(),
            first_name: a.name.clone(),
            first: vec![a.samples, a.dims()],
            second_name: b.name.clone(),
            second: vec![b.samples, b.dims()],
        }
        .into());
    }
    let sqrt_a = psd_sqrt(&a.cov, "covariance")?;
    let product = &sqrt_a * &b.cov * &sqrt_a;
    // Exactly symmetric before the symmetric solver (rounding breaks symmetry slightly).
    let product = (&product + product.transpose()) * 0.5;
    let trace_sqrt: f64 = eigenvalues(product, "product sqrt(S1) S2 sqrt(S1)")?
        .iter()
        .map(|&l| l.max(0.0).sqrt())
        .sum();
    let diff = &a.mean - &b.mean;
    let distance = diff.dot(&diff) + a.cov.trace() + b.cov.trace() - 2.0 * trace_sqrt;
    Ok(distance)
}

/// The symmetric square root `V diag(sqrt(max(λ, 0))) Vᵀ` of a positive semi-definite matrix.
fn psd_sqrt(m: &DMatrix<f64>, what: &str) -> Result<DMatrix<f64>> {
    let eig = decompose(m.clone(), what)?;
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    let v = &eig.eigenvectors;
    Ok(v * DMatrix::from_diagonal(&roots) * v.transpose())
}

fn eigenvalues(m: DMatrix<f64>, what: &str) -> Result<DVector<f64>> {
    Ok(decompose(m, what)?.eigenvalues)
}

fn decompose(m: DMatrix<f64>, what: &str) -> Result<SymmetricEigen<f64, nalgebra::Dyn>> {
    let dims = m.nrows();
    SymmetricEigen::try_new(m, f64::EPSILON, 100_000).ok_or_else(|| {
        MetricsError::NoConvergence {
            what: what.to_string(),
            dims,
        }
        .into()
    })
}
