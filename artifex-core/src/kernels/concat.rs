//! Concatenation of two channels-last tensors on their last axis as one custom op: the
//! forward interleaves the rows of both, the backward splits the gradient into two contiguous
//! tensors (candle's `cat` backward hands out strided views of it, which every consumer then
//! copies or reads through a strided loop).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::{cpu_f32, pool, with_f32};

/// Rows per task of the copies.
const TASK_ROWS: usize = 1024;

struct ConcatLast;

/// One task of the backward: its block of rows, and the matching rows of each input's
/// gradient (`None` for an input that needs none).
type SplitTask<'a> = (usize, Option<&'a mut [f32]>, Option<&'a mut [f32]>);

/// Widths `(a, b)` of the last axes; the leading dimensions must agree.
fn widths(a: &Shape, b: &Shape) -> candle_core::Result<(usize, usize, usize)> {
    let (da, db) = (a.dims(), b.dims());
    match (da.split_last(), db.split_last()) {
        (Some((&ca, lead_a)), Some((&cb, lead_b))) if lead_a == lead_b && ca + cb > 0 => {
            Ok((lead_a.iter().product(), ca, cb))
        }
        _ => {
            candle_core::bail!("artifex-concat: shapes {a:?} and {b:?} differ before the last axis")
        }
    }
}

impl CustomOp2 for ConcatLast {
    fn name(&self) -> &'static str {
        "artifex-concat-last"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, ca, cb) = widths(l1.shape(), l2.shape())?;
        let (Some(a), Some(b)) = (cpu_f32(s1, l1), cpu_f32(s2, l2)) else {
            candle_core::bail!("artifex-concat: expected contiguous f32 operands");
        };
        let c = ca + cb;
        let mut y = vec![0f32; rows * c];
        let tasks: Vec<(usize, &mut [f32])> = y.chunks_mut(TASK_ROWS * c).enumerate().collect();
        pool::for_each_task(tasks, |(t, dst)| {
            let first = t * TASK_ROWS;
            for (i, row) in dst.chunks_exact_mut(c).enumerate() {
                let r = first + i;
                row[..ca].copy_from_slice(&a[r * ca..(r + 1) * ca]);
                row[ca..].copy_from_slice(&b[r * cb..(r + 1) * cb]);
            }
        });
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = c;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, ca, cb) = widths(a.shape(), b.shape())?;
        let c = ca + cb;
        let (needs_a, needs_b) = (a.track_op(), b.track_op());
        let mut da = vec![0f32; if needs_a { rows * ca } else { 0 }];
        let mut db = vec![0f32; if needs_b { rows * cb } else { 0 }];
        with_f32(grad, |g| {
            if g.len() != rows * c {
                candle_core::bail!(
                    "artifex-concat: gradient of {} values for {rows} rows of {c}",
                    g.len()
                );
            }
            let chunks_a = da.chunks_mut((TASK_ROWS * ca).max(1));
            let chunks_b = db.chunks_mut((TASK_ROWS * cb).max(1));
            let tasks: Vec<SplitTask<'_>> = (0..rows.div_ceil(TASK_ROWS))
                .zip(chunks_a.map(Some).chain(std::iter::repeat_with(|| None)))
                .zip(chunks_b.map(Some).chain(std::iter::repeat_with(|| None)))
                .map(|((t, x), y)| (t, x, y))
                .collect();
            pool::for_each_task(tasks, |(t, dst_a, dst_b)| {
                let first = t * TASK_ROWS;
                let n = TASK_ROWS.min(rows - first);
                let gt = &g[first * c..(first + n) * c];
                if let Some(d) = dst_a {
                    for (row, src) in d.chunks_exact_mut(ca).zip(gt.chunks_exact(c)) {
                        row.copy_from_slice(&src[..ca]);
                    }
                }
                if let Some(d) = dst_b {
                    for (row, src) in d.chunks_exact_mut(cb).zip(gt.chunks_exact(c)) {
                        row.copy_from_slice(&src[ca..]);
                    }
                }
            });
            Ok(())
        })?;
        let dev = a.device();
        let da = match needs_a {
            true => Some(Tensor::from_vec(da, a.shape(), dev)?),
            false => None,
        };
        let db = match needs_b {
            true => Some(Tensor::from_vec(db, b.shape(), dev)?),
            false => None,
        };
        Ok((da, db))
    }
}

/// `a` and `b` concatenated on their last axis; only where [`super::applies`] holds for both
/// and the leading dimensions agree.
pub(crate) fn concat_last(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    a.apply_op2(b, ConcatLast)
}
