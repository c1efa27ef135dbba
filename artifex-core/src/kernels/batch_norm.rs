//! BatchNorm in training mode over `(rows, features)` as one custom op: the batch statistics
//! in one pass, the normalization in one pass, and the backward
//! (`dx`, `dscale`, `dbias`) in two passes, where the plain ops take about forty. In eval
//! mode the same op normalizes with the running statistics in one pass (three broadcast ops
//! on the plain path).
//!
//! The statistics are the plain path's: mean `E[x]` and biased variance
//! `max(E[x²] - E[x]², 0)`; results agree with it up to float rounding.
//!
//! Every pass runs over the worker pool: the per-feature sums in blocks of features (each
//! feature still summed in row order, so the bits do not depend on the thread count), the
//! element-wise passes in blocks of rows.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::{cpu_f32, pool, with_f32};
use crate::autodiff::route_param_grad as route;

/// Features per task of the per-feature sums (narrower blocks cost more loop overhead per
/// row than they gain).
const FEATURES_PER_TASK: usize = 64;

/// Elements per task of the element-wise passes, and below which the sums stay on the
/// calling thread.
const TASK_VALUES: usize = 1 << 14;

/// `f(range)` for blocks of the `features` (one block when `len`, the element count, is
/// small), the results in feature order.
fn by_features<R: Send>(
    features: usize,
    len: usize,
    f: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let step = match len < 2 * TASK_VALUES {
        true => features.max(1),
        false => FEATURES_PER_TASK,
    };
    let ranges = (0..features)
        .step_by(step)
        .map(|s| s..features.min(s + step));
    let mut out: Vec<Option<R>> = Vec::new();
    out.resize_with(features.div_ceil(step), || None);
    pool::for_each_task(ranges.zip(out.iter_mut()).collect(), |(r, o)| {
        *o = Some(f(r));
    });
    out.into_iter().flatten().collect()
}

/// Row `r` of a row-major matrix `features` wide.
fn row(v: &[f32], r: usize, features: usize) -> &[f32] {
    &v[r * features..(r + 1) * features]
}

/// A `(rows, features)` matrix whose row `r` is `make_row(r)`, made over the pool in blocks
/// of rows.
fn by_rows<I: Iterator<Item = f32>>(
    rows: usize,
    features: usize,
    make_row: impl Fn(usize) -> I + Sync,
) -> Vec<f32> {
    pool::collect_rows(rows, features, TASK_VALUES / features.max(1), make_row)
}

/// Per-feature batch mean and biased variance of contiguous `f32` `x (rows, features)`, with
/// the plain path's f32 arithmetic (row-order sums scaled by `1 / rows`, then
/// `max(E[x²] - E[x]², 0)`), which is also what NNX computes.
pub(crate) fn batch_stats(x: &Tensor) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    let (rows, features) = x.dims2()?;
    with_f32(x, |v| {
        let blocks = by_features(features, v.len(), |r| {
            let mut sum = vec![0f32; r.len()];
            let mut sq = vec![0f32; r.len()];
            for row in v.chunks_exact(features.max(1)) {
                for ((s, q), &x) in sum.iter_mut().zip(sq.iter_mut()).zip(&row[r.clone()]) {
                    *s += x;
                    *q += x * x;
                }
            }
            (sum, sq)
        });
        let sum: Vec<f32> = blocks.iter().flat_map(|b| b.0.iter().copied()).collect();
        let sq: Vec<f32> = blocks.iter().flat_map(|b| b.1.iter().copied()).collect();
        let scale = (1.0 / rows.max(1) as f64) as f32;
        let mean: Vec<f32> = sum.iter().map(|s| s * scale).collect();
        let var = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q * scale - m * m).max(0.0))
            .collect();
        Ok((mean, var))
    })
}

/// `(x - mean) * (scale / sqrt(var + eps)) + bias` with the statistics held by the op: the
/// batch's own (training mode; the backward then includes their dependence on `x`) or the
/// running ones (eval mode; constants).
struct BatchNormTrain {
    mean: Arc<Vec<f32>>,
    /// `1 / sqrt(var + eps)`.
    inv_std: Arc<Vec<f32>>,
    /// Whether `mean` and the variance are `x`'s batch statistics.
    batch_stats: bool,
    /// Whether a ReLU follows (`max(., 0)` on the output, its mask on the gradient).
    relu: bool,
}

impl BatchNormTrain {
    fn normalize(&self, x: &[f32], scale: &[f32], bias: &[f32]) -> Vec<f32> {
        let features = self.mean.len();
        let mul: Vec<f32> = self.inv_std.iter().zip(scale).map(|(i, s)| i * s).collect();
        by_rows(x.len() / features.max(1), features, |r| {
            // Zipped iterators (no indexing) so the loop vectorizes.
            let terms = row(x, r, features).iter().zip(self.mean.iter()).zip(&mul);
            let relu = self.relu;
            terms.zip(bias).map(move |(((&x, &m), &k), &b)| {
                let y = (x - m) * k + b;
                // The ReLU kernel's expression (NaN and -0 give 0, as there).
                match !relu || y > 0.0 {
                    true => y,
                    false => 0.0,
                }
            })
        })
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        match self.relu {
            true => "artifex-batch-norm-relu",
            false => "artifex-batch-norm-train",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some(x), Some(scale), Some(bias)) =
            (cpu_f32(s1, l1), cpu_f32(s2, l2), cpu_f32(s3, l3))
        else {
            candle_core::bail!("artifex-batch-norm-train: expected contiguous f32 data");
        };
        let features = self.mean.len();
        if features == 0
            || scale.len() != features
            || bias.len() != features
            || x.len() % features != 0
        {
            candle_core::bail!("artifex-batch-norm-train: feature count mismatch");
        }
        let y = self.normalize(x, scale, bias);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        crate::autodiff::refuse_fused_backward(self.name(), "BatchNorm")?;
        // Through the ReLU first, when fused: the gradient where the output is positive.
        let grad = &super::relu::grad_through_if(self.relu, res, grad)?;
        let (rows, features) = x.dims2()?;
        let n = rows.max(1) as f32;
        let (dx, dscale, dbias) = with_f32(x, |x| {
            with_f32(grad, |g| {
                with_f32(scale, |scale| {
                    if features == 0 || g.len() != x.len() || x.len() % features != 0 {
                        candle_core::bail!(
                            "artifex-batch-norm-train: gradient of {} values for {} inputs",
                            g.len(),
                            x.len()
                        );
                    }
                    // dbias = sum g, dscale = sum g * xhat (f64 sums in row order per feature;
                    // zipped loops vectorize)
                    let blocks = by_features(features, x.len(), |r| {
                        let mut db = vec![0f64; r.len()];
                        let mut ds = vec![0f64; r.len()];
                        let stats = self.mean[r.clone()].iter().zip(&self.inv_std[r.clone()]);
                        for (xr, gr) in x.chunks_exact(features).zip(g.chunks_exact(features)) {
                            let sums = db.iter_mut().zip(ds.iter_mut());
                            let (xr, gr) = (&xr[r.clone()], &gr[r.clone()]);
                            for (((b, s), (&m, &i)), (&x, &g)) in
                                sums.zip(stats.clone()).zip(xr.iter().zip(gr))
                            {
                                *b += g as f64;
                                *s += (g * ((x - m) * i)) as f64;
                            }
                        }
                        (db, ds)
                    });
                    let db: Vec<f32> = blocks
                        .iter()
                        .flat_map(|b| &b.0)
                        .map(|&v| v as f32)
                        .collect();
                    let ds: Vec<f32> = blocks
                        .iter()
                        .flat_map(|b| &b.1)
                        .map(|&v| v as f32)
                        .collect();
                    // dx = scale * inv_std * (g - dbias / n - xhat * dscale / n)
                    let k: Vec<f32> = scale
                        .iter()
                        .zip(self.inv_std.iter())
                        .map(|(s, i)| s * i)
                        .collect();
                    if !self.batch_stats {
                        // Constant statistics: dx = scale * inv_std * g.
                        let dx = by_rows(rows, features, |r| {
                            row(g, r, features).iter().zip(&k).map(|(&g, &k)| k * g)
                        });
                        return Ok((dx, ds, db));
                    }
                    let db_n: Vec<f32> = db.iter().map(|v| v / n).collect();
                    let ds_n: Vec<f32> = ds.iter().map(|v| v / n).collect();
                    let per_feature = self.mean.iter().zip(self.inv_std.iter()).zip(&k);
                    let per_feature = per_feature.zip(db_n.iter().zip(&ds_n));
                    let dx = by_rows(rows, features, |r| {
                        let (xr, gr) = (row(x, r, features), row(g, r, features));
                        let terms = xr.iter().zip(gr).zip(per_feature.clone());
                        terms.map(|((&x, &g), (((&m, &i), &k), (&db_n, &ds_n)))| {
                            k * (g - db_n - ((x - m) * i) * ds_n)
                        })
                    });
                    Ok((dx, ds, db))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (rows, features), dev)?),
            route(scale, Tensor::from_vec(dscale, features, dev)?)?,
            route(bias, Tensor::from_vec(dbias, features, dev)?)?,
        ))
    }
}

/// BatchNorm of `x (rows, features)` with the batch statistics `(mean, var)` (as from
/// [`batch_stats`]), followed by a ReLU when `relu`; only for tensors where
/// [`super::applies`] holds.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    mean: Vec<f32>,
    var: &[f32],
    scale: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> candle_core::Result<Tensor> {
    let eps = eps as f32;
    let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let op = BatchNormTrain {
        mean: Arc::new(mean),
        inv_std: Arc::new(inv_std),
        batch_stats: true,
        relu,
    };
    x.apply_op3(scale, bias, op)
}

/// Eval-mode BatchNorm of `x (rows, features)` with the running statistics `(mean, var)`
/// (constants: no gradient flows into them); only where [`super::applies`] holds.
pub(crate) fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    scale: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let eps = eps as f32;
    let mean = with_f32(mean, |m| Ok(m.to_vec()))?;
    let inv_std = with_f32(var, |v| {
        Ok(v.iter().map(|v| 1.0 / (v + eps).sqrt()).collect())
    })?;
    let op = BatchNormTrain {
        mean: Arc::new(mean),
        inv_std: Arc::new(inv_std),
        batch_stats: false,
        relu: false,
    };
    x.apply_op3(scale, bias, op)
}
