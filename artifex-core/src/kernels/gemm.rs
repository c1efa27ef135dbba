//! Checked `f32` matrix products on the `gemm` crate (candle's CPU matmul engine), called
//! directly so a kernel can accumulate into an existing buffer (bias rows, gradients) and read
//! transposed operands through strides, without copies. Several products are cut into blocks
//! of output rows and spread over candle's CPU worker pool ([`super::pool`]).

use std::mem::MaybeUninit;

use gemm::Parallelism;

use super::Epilogue;

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

/// Block heights are multiples of this, so a 128-row batch splits into 4 equal blocks. gemm
/// runs our products transposed, so our rows are the columns of its f32 micro-kernel (64 x 6
/// with AVX-512): a 32-row block ends in one 2-column edge tile (gemm's `x4x2` kernel, 3.6%
/// of the VAE step's samples). 48 (8 x 6, no edge tiles) split 128 rows 48 + 48 + 32, and
/// with 2 threads one idled a third of every forward product (the step 6-7% slower).
const ROW_MULTIPLE: usize = 32;

/// Output rows per block of an `m x k @ k x n` product, giving each block about
/// [`BLOCK_MACS`]. It depends on the shapes only, never on the number of threads, and row
/// blocks give the bits of the whole product.
fn block_rows(m: usize, n: usize, k: usize) -> usize {
    let macs = m.saturating_mul(n).saturating_mul(k);
    let parts = (macs / BLOCK_MACS).clamp(1, MAX_BLOCKS);
    m.div_ceil(parts).next_multiple_of(ROW_MULTIPLE).max(1)
}

/// Where a block of a product goes: an initialized buffer (overwritten, or accumulated onto
/// when `accumulate`) or the uninitialized spare capacity of a new vector (overwritten).
enum Dst<'a> {
    Init {
        data: &'a mut [f32],
        accumulate: bool,
    },
    Uninit(&'a mut [MaybeUninit<f32>]),
    /// Uninitialized whole rows that get `bias` first, then the product added, then the
    /// `epilogue`: the bias and activation in the block's own task, while it is in cache.
    Biased {
        data: &'a mut [MaybeUninit<f32>],
        bias: &'a [f32],
        epilogue: Epilogue,
    },
}

impl<'a> Dst<'a> {
    fn len(&self) -> usize {
        match self {
            Dst::Init { data, .. } => data.len(),
            Dst::Uninit(data) | Dst::Biased { data, .. } => data.len(),
        }
    }

    /// Consecutive pieces of `chunk` elements (the last one shorter).
    fn chunks(self, chunk: usize) -> Vec<Dst<'a>> {
        match self {
            Dst::Init { data, accumulate } => data
                .chunks_mut(chunk)
                .map(|data| Dst::Init { data, accumulate })
                .collect(),
            Dst::Uninit(data) => data.chunks_mut(chunk).map(Dst::Uninit).collect(),
            Dst::Biased {
                data,
                bias,
                epilogue,
            } => data
                .chunks_mut(chunk)
                .map(|data| Dst::Biased {
                    data,
                    bias,
                    epilogue,
                })
                .collect(),
        }
    }
}

/// One block of a product: `dst = a @ b` (or `+=`).
struct Block<'a> {
    dst: Dst<'a>,
    a: MatRef<'a>,
    b: MatRef<'a>,
}

/// Runs independent products at once: each is cut into blocks of output rows, and the
/// blocks of all of them are claimed one at a time by the threads of candle's worker pool;
/// a product of one block stays on the calling thread.
pub(crate) fn matmuls(products: Vec<Product<'_>>) -> candle_core::Result<()> {
    let products = products.into_iter().map(|p| {
        let dst = Dst::Init {
            data: p.dst,
            accumulate: p.accumulate,
        };
        (dst, p.a, p.b)
    });
    run_blocked(products.collect())
}

/// `a @ b` for each `(a, b)`, each into a new row-major vector of `a.rows * b.cols` values,
/// computed as [`matmuls`] does, but with no zero fill of the results first: gemm writes
/// every value of a product it does not accumulate onto.
pub(crate) fn new_products(
    pairs: &[(MatRef<'_>, MatRef<'_>)],
) -> candle_core::Result<Vec<Vec<f32>>> {
    let mut outs = Vec::with_capacity(pairs.len());
    for (a, b) in pairs {
        let Some(len) = a.rows.checked_mul(b.cols) else {
            candle_core::bail!("artifex-gemm: a {} x {} product overflows", a.rows, b.cols);
        };
        outs.push(Vec::<f32>::with_capacity(len));
    }
    let products = outs.iter_mut().zip(pairs).map(|(out, &(a, b))| {
        let len = a.rows * b.cols;
        (Dst::Uninit(&mut out.spare_capacity_mut()[..len]), a, b)
    });
    run_blocked(products.collect())?;
    for (out, (a, b)) in outs.iter_mut().zip(pairs) {
        // SAFETY: `run_blocked` returned Ok, so each product was checked to be exactly
        // `a.rows * b.cols` values (the length handed to it, inside the capacity), and every
        // one of its blocks ran to completion: `gemm_block` writes every value of an
        // uninitialized block (gemm with `read_dst = false` stores `a @ b` to each element of
        // `dst` and never reads it; with `k == 0` the block is filled with zeros).
        unsafe { out.set_len(a.rows * b.cols) };
    }
    Ok(outs)
}

/// `a @ b + bias` (`bias` added to every row), then the `epilogue`, into a new row-major
/// vector: one product cut into blocks as [`matmuls`] does, each block writing its bias rows,
/// accumulating its product onto them and applying the activation in its own task (no serial
/// bias fill or activation pass over the whole output).
pub(crate) fn new_biased_product(
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: &[f32],
    epilogue: Epilogue,
) -> candle_core::Result<Vec<f32>> {
    if bias.len() != b.cols {
        candle_core::bail!(
            "artifex-gemm: a bias of {} values for {} output columns",
            bias.len(),
            b.cols
        );
    }
    let Some(len) = a.rows.checked_mul(b.cols) else {
        candle_core::bail!("artifex-gemm: a {} x {} product overflows", a.rows, b.cols);
    };
    let mut out = Vec::<f32>::with_capacity(len);
    let data = &mut out.spare_capacity_mut()[..len];
    let dst = Dst::Biased {
        data,
        bias,
        epilogue,
    };
    run_blocked(vec![(dst, a, b)])?;
    // SAFETY: `run_blocked` returned Ok, so the product was checked to be exactly `len`
    // values and every block ran to completion, writing all of its values (bias rows first).
    // With no columns there is nothing to write; with no rows `len` is 0.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// Checks the products, cuts them into blocks of output rows, and runs the blocks over the
/// pool.
fn run_blocked(products: Vec<(Dst<'_>, MatRef<'_>, MatRef<'_>)>) -> candle_core::Result<()> {
    let mut blocks = Vec::new();
    for (dst, a, b) in products {
        check(dst.len(), a, b)?;
        let (m, n) = (a.rows, b.cols);
        if m == 0 || n == 0 {
            continue;
        }
        let rows = block_rows(m, n, a.cols);
        for (i, d) in dst.chunks(rows * n).into_iter().enumerate() {
            let block = a.row_block(i * rows, d.len() / n);
            blocks.push(Block {
                dst: d,
                a: block,
                b,
            });
        }
    }
    super::pool::try_for_each_task(blocks, gemm_block)
}

/// One block on the calling thread.
fn gemm_block(block: Block<'_>) -> candle_core::Result<()> {
    let Block { dst, a, b } = block;
    match dst {
        Dst::Init { data, accumulate } => matmul_serial(data, accumulate, a, b),
        Dst::Uninit(data) => {
            check(data.len(), a, b)?;
            if a.cols == 0 {
                data.fill(MaybeUninit::new(0.0));
                return Ok(());
            }
            // SAFETY: checked above (`dst` is exactly `a.rows * b.cols` values, the operands
            // in bounds); with `accumulate = false` gemm never reads `dst`, so its being
            // uninitialized is never observed, and it writes every element.
            unsafe { gemm_raw(data.as_mut_ptr().cast::<f32>(), false, a, b) };
            Ok(())
        }
        Dst::Biased {
            data,
            bias,
            epilogue,
        } => {
            if bias.is_empty() || data.len() % bias.len() != 0 {
                candle_core::bail!(
                    "artifex-gemm: a bias of {} values for a block of {}",
                    bias.len(),
                    data.len()
                );
            }
            for row in data.chunks_exact_mut(bias.len()) {
                for (d, &v) in row.iter_mut().zip(bias) {
                    d.write(v);
                }
            }
            // SAFETY: every value was written just above (whole rows of `bias`).
            let data = unsafe { &mut *(data as *mut [MaybeUninit<f32>] as *mut [f32]) };
            matmul_serial(data, true, a, b)?;
            epilogue.apply_serial(data);
            Ok(())
        }
    }
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
    if a.cols == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return Ok(());
    }
    // SAFETY: checked above; `dst` is a unique borrow, so it aliases neither operand.
    unsafe { gemm_raw(dst.as_mut_ptr(), accumulate, a, b) };
    Ok(())
}

/// `dst = a @ b` (or `+=` when `accumulate`) through gemm on the calling thread.
///
/// # Safety
/// `check(len, a, b)` must have passed for the `len` values at `dst`, which must be valid for
/// writes (and initialized when `accumulate`) and alias neither operand.
unsafe fn gemm_raw(dst: *mut f32, accumulate: bool, a: MatRef<'_>, b: MatRef<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let s = |v: usize| v as isize;
    // SAFETY: by this function's contract, all three matrices lie inside their buffers (`a`
    // and `b` in bounds, `dst` exactly `m * n` row-major values) and `dst` aliases neither
    // operand; gemm reads `dst` only when `accumulate` (`read_dst`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
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

    /// New products (no zero fill) give the bits of products into zeroed buffers, for odd
    /// shapes, transposed views, several blocks and an empty inner dimension.
    #[test]
    fn new_products_are_the_overwritten_products() -> candle_core::Result<()> {
        let data = |n: usize| pattern(n, 7919, 1009);
        for (m, k, n) in [
            (300, 70, 90),
            (1, 1, 1),
            (17, 33, 49),
            (128, 512, 784),
            (5, 0, 3),
        ] {
            let (a_data, b_data) = (data(m * k), data(k * n));
            let a = MatRef::row_major(&a_data, m, k);
            let b = MatRef::row_major(&b_data, k, n);
            let bt_data = crate::kernels::transpose::transpose(&b_data, k, n)?;
            let bt = MatRef::row_major(&bt_data, n, k).t();
            let mut want = vec![7f32; m * n];
            matmuls(vec![Product {
                dst: &mut want,
                accumulate: false,
                a,
                b,
            }])?;
            let got = new_products(&[(a, b), (a, bt)])?;
            assert!(got[0] == want, "({m}, {k}, {n})");
            assert!(got[1] == want, "({m}, {k}, {n}) through the transpose");
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
