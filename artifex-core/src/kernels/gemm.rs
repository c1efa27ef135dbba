//! Checked `f32` matrix products on the `gemm` crate (candle's CPU matmul engine), called
//! directly so a kernel can accumulate into an existing buffer (bias rows, gradients) and read
//! transposed operands through strides, without copies.

use gemm::Parallelism;

/// A read-only `rows x cols` matrix inside `data`: element `(i, j)` is at
/// `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major (C-contiguous) matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(a, b)| a.checked_add(b));
        matches!(last, Some(i) if i < self.data.len())
    }
}

/// Threads for one product: the whole pool for large products, the calling thread for small
/// ones, where handing work to other threads costs more than it saves.
fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= PARALLEL_MIN_MACS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// Multiply-adds from which a product is split over threads.
const PARALLEL_MIN_MACS: usize = 1 << 26;

/// `dst (a.rows x b.cols, row-major) = a @ b`, or `dst += a @ b` when `accumulate`.
pub(crate) fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
) -> candle_core::Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() != m * n || !a.in_bounds() || !b.in_bounds() {
        candle_core::bail!(
            "artifex-gemm: ({m}, {k}) @ ({}, {n}) into {} elements (or operands out of bounds)",
            b.rows,
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return Ok(());
    }
    let s = |v: usize| v as isize;
    // SAFETY: all three matrices were checked to lie inside their slices (`in_bounds`, and
    // `dst` is exactly `m * n` row-major); `dst` is a unique borrow, so it aliases neither
    // operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            s(n),
            accumulate,
            a.data.as_ptr(),
            s(a.col_stride),
            s(a.row_stride),
            b.data.as_ptr(),
            s(b.col_stride),
            s(b.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    let x = a.data[i * a.row_stride + p * a.col_stride];
                    let y = b.data[p * b.row_stride + j * b.col_stride];
                    s += x as f64 * y as f64;
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn products_with_transposed_views_and_accumulation() -> candle_core::Result<()> {
        let data = |n: usize| {
            (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect::<Vec<_>>()
        };
        let (m, k, n) = (7, 13, 5);
        let a_data = data(m * k);
        let b_data = data(k * n);
        let a = MatRef::row_major(&a_data, m, k);
        let b = MatRef::row_major(&b_data, k, n);
        let mut dst = vec![0f32; m * n];
        matmul(&mut dst, false, a, b)?;
        close(&dst, &naive(a, b));
        // a^T stored (k, m): read back transposed.
        let at_data: Vec<f32> = (0..k * m).map(|i| a_data[(i % m) * k + i / m]).collect();
        let at = MatRef::row_major(&at_data, k, m).t();
        let mut dst2 = vec![1f32; m * n];
        matmul(&mut dst2, true, at, b)?;
        let want: Vec<f32> = naive(a, b).iter().map(|v| v + 1.0).collect();
        close(&dst2, &want);
        Ok(())
    }

    #[test]
    fn refuses_out_of_bounds_operands() {
        let a = [0f32; 6];
        let view = MatRef::row_major(&a, 3, 3);
        let mut dst = vec![0f32; 9];
        assert!(matmul(&mut dst, false, view, view).is_err());
        let ok = MatRef::row_major(&a, 2, 3);
        let mut dst = vec![0f32; 5];
        assert!(matmul(&mut dst, false, ok, ok.t()).is_err());
    }
}
