//! The transposed copy of a row-major `f32` matrix, over the worker pool: what a product
//! reads many times as `MatRef::t()` costs gemm a strided repacking each time, while the copy
//! is read as it lies (the Linear kernel's input gradient `grad @ kernel^T`).
//!
//! Each task makes [`TASK_COLS`] output rows (source columns). With AVX (any x86-64 CPU of
//! the last decade, checked at run time) it moves 8 x 8 tiles through registers (8 loads, 24
//! shuffles, 8 stores); the scalar loop, which does a load and a store per value, was 7% of
//! the VAE training step's CPU time. The edges, and CPUs without AVX, take the scalar loop.

use std::mem::MaybeUninit;

/// Source columns (output rows) per task of [`transpose`].
const TASK_COLS: usize = 16;

/// The transpose of row-major `src (rows x cols)`, row-major `(cols x rows)`.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> candle_core::Result<Vec<f32>> {
    if rows.checked_mul(cols) != Some(src.len()) {
        candle_core::bail!(
            "artifex-transpose: {} values for ({rows}, {cols})",
            src.len()
        );
    }
    let mut out: Vec<f32> = Vec::with_capacity(src.len());
    if rows > 0 {
        let dst = &mut out.spare_capacity_mut()[..src.len()];
        super::pool::for_chunks(dst, TASK_COLS * rows, |start, block| {
            let tile = Tile {
                src,
                rows,
                cols,
                first: start / rows,
            };
            tile.write(block);
        });
    }
    // SAFETY: the blocks are whole output rows (`rows` values each) covering `0..len`, and
    // `Tile::write` writes every value of its block; with `rows == 0` the length is 0.
    unsafe { out.set_len(src.len()) };
    Ok(out)
}

/// The output rows `first..` (source columns) of one task.
struct Tile<'a> {
    src: &'a [f32],
    rows: usize,
    cols: usize,
    first: usize,
}

impl Tile<'_> {
    /// Writes every value of `block`, `block.len() / rows` whole output rows from `first`.
    fn write(&self, block: &mut [MaybeUninit<f32>]) {
        let width = block.len() / self.rows;
        let (rows8, width8) = (self.rows / 8 * 8, width / 8 * 8);
        #[cfg(target_arch = "x86_64")]
        if width8 > 0 && rows8 > 0 && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available (checked above), and `tiles_avx` reads and writes only
            // inside the 8 x 8 tiles of `0..rows8 x 0..width8` (see there).
            unsafe { self.tiles_avx(block, rows8, width8) };
            self.scalar(block, 0..rows8, width8..width);
            self.scalar(block, rows8..self.rows, 0..width);
            return;
        }
        self.scalar(block, 0..self.rows, 0..width);
    }

    /// `out[j][r] = src[r][first + j]` for `r` in `rows` and `j` in `outs`.
    fn scalar(
        &self,
        block: &mut [MaybeUninit<f32>],
        rows: std::ops::Range<usize>,
        outs: std::ops::Range<usize>,
    ) {
        for j in outs {
            let column = self.src[self.first + j..].iter().step_by(self.cols);
            let out = &mut block[j * self.rows..(j + 1) * self.rows];
            for (d, &v) in out[rows.clone()].iter_mut().zip(column.skip(rows.start)) {
                d.write(v);
            }
        }
    }

    /// The 8 x 8 tiles of source rows `0..rows8` and output rows `0..width8`.
    ///
    /// # Safety
    /// AVX must be available; `rows8 <= rows` and `width8 <= block.len() / rows`, both
    /// multiples of 8, and `first + width8 <= cols` (true for the blocks of [`transpose`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn tiles_avx(&self, block: &mut [MaybeUninit<f32>], rows8: usize, width8: usize) {
        use std::arch::x86_64::*;
        let (rows, cols) = (self.rows, self.cols);
        assert!(rows8 <= rows && width8 * rows <= block.len() && self.first + width8 <= cols);
        let src = self.src.as_ptr();
        let dst = block.as_mut_ptr().cast::<f32>();
        for r0 in (0..rows8).step_by(8) {
            for j0 in (0..width8).step_by(8) {
                // SAFETY: rows `r0..r0 + 8` of the source hold columns `first + j0..+ 8`
                // (`r0 + 8 <= rows`, `first + j0 + 8 <= cols`), and output rows `j0..j0 + 8`
                // of the block hold positions `r0..r0 + 8` (`j0 + 8 <= width8`), by the
                // assertion above.
                unsafe {
                    let at = |i: usize| src.add((r0 + i) * cols + self.first + j0);
                    let r = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| _mm256_loadu_ps(at(i)));
                    // Pairs of rows interleaved, then pairs of those (low and high halves of
                    // each 128-bit lane), then the lanes of rows i and i + 4 combined.
                    let zero = _mm256_setzero_ps();
                    let (mut t, mut s, mut out) = ([zero; 8], [zero; 8], [zero; 8]);
                    for i in 0..4 {
                        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
                    }
                    for (i, (a, b)) in [(0, 2), (1, 3), (4, 6), (5, 7)].into_iter().enumerate() {
                        s[2 * i] = _mm256_shuffle_ps::<0x44>(t[a], t[b]);
                        s[2 * i + 1] = _mm256_shuffle_ps::<0xEE>(t[a], t[b]);
                    }
                    for i in 0..4 {
                        out[i] = _mm256_permute2f128_ps::<0x20>(s[i], s[i + 4]);
                        out[i + 4] = _mm256_permute2f128_ps::<0x31>(s[i], s[i + 4]);
                    }
                    for (i, v) in out.into_iter().enumerate() {
                        _mm256_storeu_ps(dst.add((j0 + i) * rows + r0), v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_value() -> candle_core::Result<()> {
        let shapes = [
            (0, 5),
            (5, 0),
            (1, 1),
            (3, 17),
            (8, 8),
            (9, 23),
            (16, 40),
            (33, 100),
            (784, 512),
        ];
        for (rows, cols) in shapes {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose(&src, rows, cols)?;
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], src[r * cols + c], "({rows}, {cols})");
                }
            }
        }
        assert!(transpose(&[1.0; 5], 2, 3).is_err());
        Ok(())
    }
}
