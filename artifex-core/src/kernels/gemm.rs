//! Checked `f32` matrix products on the `gemm` crate (candle's CPU matmul engine), called
//! directly so a kernel can accumulate into an existing buffer (bias rows, gradients) and read
//! transposed operands through strides, without copies. Several products are cut into blocks
//! of output rows and spread over candle's CPU worker pool ([`super::pool`]).

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

    /// Rows `start..start + rows` as a matrix of their own.
    fn row_block(self, start: usize, rows: usize) -> Self {
        let offset = (start * self.row_stride).min(self.data.len());
        Self {
            data: &self.data[offset..],
            rows,
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

/// One product for [`matmuls`]: `dst = a @ b`, or `dst += a @ b` when `accumulate`.
pub(crate) struct Product<'a> {
    pub dst: &'a mut [f32],
    pub accumulate: bool,
    pub a: MatRef<'a>,
    pub b: MatRef<'a>,
}

/// Multiply-adds per block of a product (about), so a thread that stalls holds back a small
/// share of the work while the others take the rest.
const BLOCK_MACS: usize = 1 << 21;

/// The most blocks one product is cut into: each block packs the shared operand `b` again.
const MAX_BLOCKS: usize = 8;

/// Block heights are multiples of this: 16 (the f32 micro-kernel's height) and a multiple of
/// its widths (6 with AVX2, 8 with AVX-512; gemm runs the product transposed), so blocks do
/// not end in narrow edge tiles.
const ROW_MULTIPLE: usize = 48;

/// Output rows per block of an `m x k @ k x n` product, giving each block about
/// [`BLOCK_MACS`]. It depends on the shapes only, never on the number of threads, and row
/// blocks give the bits of the whole product.
fn block_rows(m: usize, n: usize, k: usize) -> usize {
    let macs = m.saturating_mul(n).saturating_mul(k);
    let parts = (macs / BLOCK_MACS).clamp(1, MAX_BLOCKS);
    m.div_ceil(parts).next_multiple_of(ROW_MULTIPLE).max(1)
}

/// Runs independent products at once: each is cut into blocks of output rows, and the
/// blocks of all of them are claimed one at a time by the threads of candle's worker pool;
/// a product of one block stays on the calling thread.
pub(crate) fn matmuls(products: Vec<Product<'_>>) -> candle_core::Result<()> {
    let mut blocks = Vec::new();
    for Product {
        dst,
        accumulate,
        a,
        b,
    } in products
    {
        check(dst.len(), a, b)?;
        let (m, n) = (a.rows, b.cols);
        if m == 0 || n == 0 {
            continue;
        }
        let rows = block_rows(m, n, a.cols);
        for (i, d) in dst.chunks_mut(rows * n).enumerate() {
            let block = a.row_block(i * rows, d.len() / n);
            blocks.push(Product {
                dst: d,
                accumulate,
                a: block,
                b,
            });
        }
    }
    super::pool::try_for_each_task(blocks, |p| matmul_serial(p.dst, p.accumulate, p.a, p.b))
}

/// Checks the shapes and bounds of `dst (dst_len) = a @ b`.
fn check(dst_len: usize, a: MatRef<'_>, b: MatRef<'_>) -> candle_core::Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst_len != m * n || !a.in_bounds() || !b.in_bounds() {
        candle_core::bail!(
            "artifex-gemm: ({m}, {k}) @ ({}, {n}) into {dst_len} elements (or operands out of bounds)",
            b.rows,
        );
    }
    Ok(())
}

/// `dst (a.rows x b.cols, row-major) = a @ b`, or `dst += a @ b` when `accumulate`, on the
/// calling thread.
pub(crate) fn matmul_serial(
    dst: &mut [f32],
    accumulate: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
) -> candle_core::Result<()> {
    check(dst.len(), a, b)?;
    let (m, k, n) = (a.rows, a.cols, b.cols);
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
    // SAFETY: all three matrices were checked to lie inside their slices (`check`: `a` and
    // `b` in bounds, `dst` exactly `m * n` row-major); `dst` is a unique borrow, so it aliases
    // neither operand.
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
            Parallelism::None,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` deterministic values in about [-2, 2]: `i * mul mod modulus`, centred and scaled.
    fn pattern(n: usize, mul: usize, modulus: usize) -> Vec<f32> {
        let half = (modulus / 2) as f32;
        (0..n)
            .map(|i| ((i * mul % modulus) as f32 - half) / (half / 2.0))
            .collect()
    }

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
        let data = |n: usize| pattern(n, 37, 101);
        let (m, k, n) = (7, 13, 5);
        let a_data = data(m * k);
        let b_data = data(k * n);
        let a = MatRef::row_major(&a_data, m, k);
        let b = MatRef::row_major(&b_data, k, n);
        let mut dst = vec![0f32; m * n];
        matmul_serial(&mut dst, false, a, b)?;
        close(&dst, &naive(a, b));
        // a^T stored (k, m): read back transposed.
        let at_data: Vec<f32> = (0..k * m).map(|i| a_data[(i % m) * k + i / m]).collect();
        let at = MatRef::row_major(&at_data, k, m).t();
        let mut dst2 = vec![1f32; m * n];
        matmul_serial(&mut dst2, true, at, b)?;
        let want: Vec<f32> = naive(a, b).iter().map(|v| v + 1.0).collect();
        close(&dst2, &want);
        Ok(())
    }

    #[test]
    fn blocked_products_match_whole_ones() -> candle_core::Result<()> {
        let data = |n: usize| pattern(n, 53, 97);
        // Large enough to be cut into row blocks; 300 rows is not a multiple of 16.
        let (m, k, n) = (300, 70, 90);
        let (a_data, b_data, c_data) = (data(m * k), data(k * n), data(m * n));
        let a = MatRef::row_major(&a_data, m, k);
        let b = MatRef::row_major(&b_data, k, n);
        let c = MatRef::row_major(&c_data, m, n);
        let (mut x, mut y) = (vec![0f32; m * n], vec![2f32; k * n]);
        matmuls(vec![
            Product {
                dst: &mut x,
                accumulate: false,
                a,
                b,
            },
            Product {
                dst: &mut y,
                accumulate: true,
                a: a.t(),
                b: c,
            },
        ])?;
        close(&x, &naive(a, b));
        let want: Vec<f32> = naive(a.t(), c).iter().map(|v| v + 2.0).collect();
        close(&y, &want);
        Ok(())
    }

    /// Row blocks give the bits of the whole product (block sizes depend on the shapes only,
    /// so thread counts could not change results anyway).
    #[test]
    fn row_blocks_are_bitwise_the_whole_product() -> candle_core::Result<()> {
        let data = |n: usize| pattern(n, 7919, 1009);
        for (m, k, n) in [
            (128, 784, 512),
            (128, 512, 784),
            (784, 128, 512),
            (50, 33, 70),
        ] {
            let (a_data, b_data) = (data(m * k), data(k * n));
            let a = MatRef::row_major(&a_data, m, k);
            let b = MatRef::row_major(&b_data, k, n);
            let mut whole = vec![0f32; m * n];
            matmul_serial(&mut whole, false, a, b)?;
            for rows in [16, 32, 48, 64] {
                let mut blocked = vec![0f32; m * n];
                for (i, d) in blocked.chunks_mut(rows * n).enumerate() {
                    matmul_serial(d, false, a.row_block(i * rows, d.len() / n), b)?;
                }
                assert!(
                    whole == blocked,
                    "({m}, {k}) @ ({k}, {n}) in blocks of {rows} rows"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_out_of_bounds_operands() {
        let a = [0f32; 6];
        let view = MatRef::row_major(&a, 3, 3);
        let mut dst = vec![0f32; 9];
        assert!(matmul_serial(&mut dst, false, view, view).is_err());
        let ok = MatRef::row_major(&a, 2, 3);
        let mut dst = vec![0f32; 5];
        assert!(matmul_serial(&mut dst, false, ok, ok.t()).is_err());
        let mut dst = vec![0f32; 5];
        let product = Product {
            dst: &mut dst,
            accumulate: false,
            a: ok,
            b: ok.t(),
        };
        assert!(matmuls(vec![product]).is_err());
    }
}
