//! Improved precision and recall (Kynkäänniemi et al. 2019) in feature space.
//!
//! Each set approximates its manifold by balls around its samples, of radius the distance to
//! the sample's k-th nearest neighbour in the same set (itself excluded). Precision is the
//! fraction of generated samples inside some ball of the real set; recall the fraction of
//! real samples inside some ball of the generated set. Squared Euclidean distances are
//! computed in blocks of [`BLOCK`] x [`BLOCK`] pairs (`|a|² + |b|² - 2 a·b`, one matrix
//! product per block), so memory stays bounded whatever the set sizes.

use candle_core::Tensor;

use super::{Features, MetricsError};
use crate::Result;

/// The neighbourhood size of the paper: the radius of a ball is the distance to the 3rd
/// nearest neighbour.
pub const DEFAULT_K: usize = 3;

/// Rows (and columns) of one block of pairwise distances: 512 x 512 f64, 2 MiB.
const BLOCK: usize = 512;

/// Precision and recall of a generated set against a real one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecall {
    /// Fraction of generated samples inside the real set's k-NN balls (fidelity).
    pub precision: f64,
    /// Fraction of real samples inside the generated set's k-NN balls (coverage).
    pub recall: f64,
    /// The neighbourhood size used.
    pub k: usize,
}

/// Precision and recall of `generated` against `real`, features `(N, D)` of any float
/// dtype, with balls to the `k`-th nearest neighbour ([`DEFAULT_K`] in the paper).
///
/// ```
/// use artifex_core::metrics::{precision_recall, DEFAULT_K};
/// use artifex_core::prelude::*;
///
/// // Real samples: a 20 x 20 grid over [-1, 1)², spacing 0.1.
/// let grid: Vec<f32> = (0..400)
///     .flat_map(|i| [(i / 20) as f32 / 10.0 - 1.0, (i % 20) as f32 / 10.0 - 1.0])
///     .collect();
/// let real = Tensor::from_vec(grid, (400, 2), &Device::Cpu)?;
/// // Generated samples collapsed onto a small region: precise but with poor coverage.
/// let collapsed = (&real * 0.05)?;
/// let pr = precision_recall(&real, &collapsed, DEFAULT_K)?;
/// assert!(pr.precision > 0.9 && pr.recall < 0.3, "{pr:?}");
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn precision_recall(real: &Tensor, generated: &Tensor, k: usize) -> Result<PrecisionRecall> {
    let real = Features::from_tensor("real", real)?;
    let generated = Features::from_tensor("generated", generated)?;
    precision_recall_of(&real, &generated, k)
}

/// [`precision_recall`] of checked feature sets.
pub fn precision_recall_of(
    real: &Features,
    generated: &Features,
    k: usize,
) -> Result<PrecisionRecall> {
    real.check_same_width(generated)?;
    for set in [real, generated] {
        if k == 0 || k >= set.samples() {
            return Err(MetricsError::InvalidK {
                k,
                set: set.name().to_string(),
                samples: set.samples(),
            }
            .into());
        }
    }
    let real_radii = knn_radii(real, k);
    let generated_radii = knn_radii(generated, k);
    Ok(PrecisionRecall {
        precision: covered_fraction(generated, real, &real_radii),
        recall: covered_fraction(real, generated, &generated_radii),
        k,
    })
}

/// The squared distance of every sample to its `k`-th nearest neighbour in its own set
/// (itself excluded).
fn knn_radii(set: &Features, k: usize) -> Vec<f64> {
    // The k smallest squared distances of each row so far, ascending.
    let mut nearest = vec![Vec::with_capacity(k + 1); set.samples()];
    for_each_block(set, set, |i, j, d2| {
        if i == j {
            return false;
        }
        let row = &mut nearest[i];
        if row.len() < k || d2 < row[k - 1] {
            let at = row.partition_point(|&v| v <= d2);
            row.insert(at, d2);
            row.truncate(k);
        }
        false
    });
    nearest.into_iter().map(|row| row[k - 1]).collect()
}

/// The fraction of `points` within `radii` (squared) of some sample of `centres`.
fn covered_fraction(points: &Features, centres: &Features, radii: &[f64]) -> f64 {
    let mut covered = vec![false; points.samples()];
    for_each_block(points, centres, |i, j, d2| {
        covered[i] = d2 <= radii[j];
        covered[i]
    });
    covered.iter().filter(|&&c| c).count() as f64 / points.samples() as f64
}

/// Calls `visit(i, j, squared distance)` for pairs of rows of `a` and `b`, a block of pairs at
/// a time. `visit` returns whether row `i` of `a` is settled; a settled row is not visited
/// again, and once a whole block of rows is settled its remaining columns are skipped.
fn for_each_block(a: &Features, b: &Features, mut visit: impl FnMut(usize, usize, f64) -> bool) {
    let norms = |f: &Features| -> Vec<f64> {
        (0..f.samples())
            .map(|i| f.row(i).iter().map(|v| v * v).sum())
            .collect()
    };
    let (norms_a, norms_b) = (norms(a), norms(b));
    let mut settled = vec![false; a.samples()];
    for i0 in (0..a.samples()).step_by(BLOCK) {
        let rows = BLOCK.min(a.samples() - i0);
        let block_a = a.block(i0, rows);
        for j0 in (0..b.samples()).step_by(BLOCK) {
            if settled[i0..i0 + rows].iter().all(|&s| s) {
                break;
            }
            let cols = BLOCK.min(b.samples() - j0);
            let dots = &block_a * b.block(j0, cols).transpose();
            for r in 0..rows {
                let i = i0 + r;
                for c in 0..cols {
                    if settled[i] {
                        break;
                    }
                    let j = j0 + c;
                    let d2 = (norms_a[i] + norms_b[j] - 2.0 * dots[(r, c)]).max(0.0);
                    settled[i] = visit(i, j, d2);
                }
            }
        }
    }
}
