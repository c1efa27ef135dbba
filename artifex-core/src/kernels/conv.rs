//! Channels-last (NHWC) convolutions as one custom op on direct `gemm` calls: im2col with patch
//! rows contiguous in channels, products with the HWIO kernel read as a `(KH·KW·I, O)`
//! matrix, the bias written first and the product accumulated onto it. The backward
//! recomputes the patches for the kernel gradient (`patches^T @ grad`), gets the patch
//! gradients from `grad @ kernel^T` and scatters them back image by image (col2im).
//!
//! Input dilation (zeros between input pixels) is part of the geometry. A transposed
//! convolution (a stride-1 convolution over the stride-dilated input) runs in the sub-pixel
//! form: it is the input gradient of the strided convolution with the flipped kernel
//! ([`Conv2dGeometry::subpixel`]), so its forward is a product and a col2im scatter, and no
//! product multiplies the dilation's zeros; the dilated im2col remains for paddings beyond the
//! dilated kernel.
//!
//! Work is cut into blocks of patch rows (about 256 KB of patches, copied and multiplied while
//! they are in the core's cache, in per-thread buffers, so no patch matrix is ever whole);
//! the kernel gradient accumulates the blocks in a fixed number of runs of consecutive blocks,
//! one partial per run, and sums the partials element-wise in run order over the pool; the
//! scatter runs one task per image. Block sizes and runs depend on the shapes only, so the
//! results do not depend on the number of threads.

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::gemm::{matmul_serial, matmuls, MatRef, Product};
use super::{cpu_f32, pool, with_f32};
use crate::autodiff::route_param_grad as route;

/// Patch values per task (rows of patches x patch length): 256 KB of patches stay in the
/// core's cache between the im2col copy and the product that reads them.
const TASK_PATCH_VALUES: usize = 1 << 16;

/// Runs of consecutive row blocks in the kernel gradient, each with its own partial sum: a
/// constant, so the summation order (and the bits) never depend on the number of threads.
const KERNEL_GRAD_GROUPS: usize = 8;

/// Values per task when the kernel gradient's partials are summed.
const SUM_CHUNK: usize = 1 << 14;

thread_local! {
    /// Per-thread patch buffers (the pool's threads live for the process), so steps do not
    /// allocate and page-fault them again.
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's patch buffer, resized to `len` (contents unspecified: `f`
/// writes before it reads).
fn with_patch_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PATCHES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        // Not reentrant in practice; a fresh buffer keeps it correct if it ever were.
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// One spatial axis of a convolution: output `p`, tap `t` reads the (input-dilated, padded)
/// position `p * stride + t * dilation - pad_lo`, which is input pixel `q / input_dilation`
/// when `q` is a multiple of `input_dilation` inside the input, else a zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Axis {
    /// Input pixels.
    pub input: usize,
    /// Kernel taps.
    pub kernel: usize,
    /// Output stride.
    pub stride: usize,
    /// Kernel dilation.
    pub dilation: usize,
    /// Input dilation (`s - 1` zeros between input pixels for a transposed convolution).
    pub input_dilation: usize,
    /// Zeros before the first input pixel.
    pub pad_lo: usize,
    /// Output pixels.
    pub output: usize,
}

impl Axis {
    /// The axis with `(lo, hi)` zero padding; `None` when the padded input is shorter than the
    /// dilated kernel, when a size, stride or dilation is zero, or when a size overflows.
    pub fn new(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        input_dilation: usize,
        (lo, hi): (usize, usize),
    ) -> Option<Self> {
        if input == 0 || kernel == 0 || stride == 0 || dilation == 0 || input_dilation == 0 {
            return None;
        }
        let span = (input - 1)
            .checked_mul(input_dilation)?
            .checked_add(1)?
            .checked_add(lo)?
            .checked_add(hi)?;
        let k_eff = (kernel - 1).checked_mul(dilation)?.checked_add(1)?;
        let output = span.checked_sub(k_eff)? / stride + 1;
        Some(Self {
            input,
            kernel,
            stride,
            dilation,
            input_dilation,
            pad_lo: lo,
            output,
        })
    }

    /// An axis of length 1 with a 1-tap kernel (the height of a 1-D convolution).
    pub fn unit() -> Self {
        Self {
            input: 1,
            kernel: 1,
            stride: 1,
            dilation: 1,
            input_dilation: 1,
            pad_lo: 0,
            output: 1,
        }
    }

    /// For every `(output, tap)` (tap fastest), the input pixel read, or `None` for a zero.
    fn taps(&self) -> Vec<Option<usize>> {
        let mut out = Vec::with_capacity(self.output * self.kernel);
        for p in 0..self.output {
            for t in 0..self.kernel {
                let q = (p * self.stride + t * self.dilation).checked_sub(self.pad_lo);
                out.push(q.and_then(|q| {
                    let i = q / self.input_dilation;
                    (q % self.input_dilation == 0 && i < self.input).then_some(i)
                }));
            }
        }
        out
    }

    /// For a transposed axis (stride 1 over the input dilated by `s`), the axis of the
    /// strided convolution whose input gradient it is: input and output swapped, stride `s`,
    /// taps reversed (`pad_lo' = (kernel - 1) * dilation - pad_lo`); output `o` of `self`
    /// gets input pixel `i` through tap `t` exactly when `o = i * s - t * dilation + pad_lo`.
    /// `None` when the stride is not 1 or `pad_lo'` would be negative.
    fn subpixel(&self) -> Option<Self> {
        if self.stride != 1 {
            return None;
        }
        Some(Self {
            input: self.output,
            kernel: self.kernel,
            stride: self.input_dilation,
            dilation: self.dilation,
            input_dilation: 1,
            pad_lo: ((self.kernel - 1) * self.dilation).checked_sub(self.pad_lo)?,
            output: self.input,
        })
    }

    /// True when the axis maps every output straight to the same input pixel.
    fn is_identity(&self) -> bool {
        self.kernel == 1
            && self.stride == 1
            && self.input_dilation == 1
            && self.pad_lo == 0
            && self.output == self.input
    }
}

/// A 2-D channels-last convolution: input `(batch, H, W, cin)`, kernel `(KH, KW, cin, cout)`,
/// output `(batch, OH, OW, cout)`. A 1-D one has `h = Axis::unit()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conv2dGeometry {
    /// Images.
    pub batch: usize,
    /// Height axis.
    pub h: Axis,
    /// Width axis.
    pub w: Axis,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
}

impl Conv2dGeometry {
    /// Output pixels of all images (the rows of the products).
    fn rows(&self) -> usize {
        self.batch * self.h.output * self.w.output
    }

    /// Length of a patch row (`KH·KW·cin`, the inner dimension of the products).
    fn patch(&self) -> usize {
        self.h.kernel * self.w.kernel * self.cin
    }

    fn input_len(&self) -> usize {
        self.batch * self.h.input * self.w.input * self.cin
    }

    /// True when the patches are the input itself (1x1 kernel, stride 1, no padding).
    fn patches_are_input(&self) -> bool {
        self.h.is_identity() && self.w.is_identity()
    }

    /// For a transposed convolution (input dilation > 1), the strided convolution whose input
    /// gradient (col2im) it is, with `cin` and `cout` swapped: then no product multiplies the
    /// dilation's zeros (`stride²` less work than the dilated im2col).
    fn subpixel(&self) -> Option<Self> {
        if self.h.input_dilation == 1 && self.w.input_dilation == 1 {
            return None;
        }
        Some(Self {
            batch: self.batch,
            h: self.h.subpixel()?,
            w: self.w.subpixel()?,
            cin: self.cout,
            cout: self.cin,
        })
    }

    /// The kernel `(KH, KW, a, b)` flipped in both spatial axes with its last two axes
    /// swapped: `(KH, KW, b, a)`, the kernel of [`Self::subpixel`] (and back).
    fn flip_swap(&self, kernel: &[f32], a: usize, b: usize) -> Vec<f32> {
        let (kh, kw) = (self.h.kernel, self.w.kernel);
        let mut out = vec![0f32; kernel.len()];
        for ty in 0..kh {
            for tx in 0..kw {
                let src = &kernel[((kh - 1 - ty) * kw + (kw - 1 - tx)) * a * b..][..a * b];
                let dst = &mut out[(ty * kw + tx) * a * b..][..a * b];
                for i in 0..a {
                    for j in 0..b {
                        dst[j * a + i] = src[i * b + j];
                    }
                }
            }
        }
        out
    }

    /// `(batch, OH, OW, cout)`.
    pub fn output_shape(&self) -> Shape {
        Shape::from((self.batch, self.h.output, self.w.output, self.cout))
    }

    /// Patch rows per task: a multiple of 16 (gemm's micro-kernel height) holding about
    /// [`TASK_PATCH_VALUES`]; fixed by the shapes alone, so results do not depend on threads.
    fn task_rows(&self) -> usize {
        (TASK_PATCH_VALUES / self.patch().max(1)).next_multiple_of(16)
    }

    /// Writes the patch rows `first..first + dst.len() / patch` of `x` into `dst` (zeros
    /// where a tap falls outside the input), given the axes' [`Axis::taps`].
    fn fill_patches(
        &self,
        x: &[f32],
        first: usize,
        dst: &mut [f32],
        taps: &[Vec<Option<usize>>; 2],
    ) {
        let (kh, kw, cin) = (self.h.kernel, self.w.kernel, self.cin);
        let (oh, ow) = (self.h.output, self.w.output);
        let (ih, iw) = (self.h.input, self.w.input);
        for (i, row) in dst.chunks_exact_mut(self.patch()).enumerate() {
            let r = first + i;
            let (b, oy, ox) = (r / (oh * ow), (r / ow) % oh, r % ow);
            let image = b * ih * iw;
            for (ty, seg) in row.chunks_exact_mut(kw * cin).enumerate() {
                let Some(iy) = taps[0][oy * kh + ty] else {
                    seg.fill(0.0);
                    continue;
                };
                for (tx, px) in seg.chunks_exact_mut(cin).enumerate() {
                    match taps[1][ox * kw + tx] {
                        Some(ix) => {
                            let start = (image + iy * iw + ix) * cin;
                            px.copy_from_slice(&x[start..start + cin]);
                        }
                        None => px.fill(0.0),
                    }
                }
            }
        }
    }

    /// Adds the patch gradients `rows` (the image's patch rows from `first` on) into that
    /// image's input gradient `dst (H·W·cin)`, each entry to the pixel it was read from.
    fn scatter_image(
        &self,
        first: usize,
        rows: &[f32],
        dst: &mut [f32],
        taps: &[Vec<Option<usize>>; 2],
    ) {
        let (kh, kw, cin) = (self.h.kernel, self.w.kernel, self.cin);
        let (ow, iw) = (self.w.output, self.w.input);
        for (i, row) in rows.chunks_exact(self.patch()).enumerate() {
            let (oy, ox) = ((first + i) / ow, (first + i) % ow);
            for (ty, seg) in row.chunks_exact(kw * cin).enumerate() {
                let Some(iy) = taps[0][oy * kh + ty] else {
                    continue;
                };
                for (tx, px) in seg.chunks_exact(cin).enumerate() {
                    if let Some(ix) = taps[1][ox * kw + tx] {
                        let start = (iy * iw + ix) * cin;
                        for (d, g) in dst[start..start + cin].iter_mut().zip(px) {
                            *d += g;
                        }
                    }
                }
            }
        }
    }

    fn check(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> candle_core::Result<()> {
        let bias_ok = bias.is_none_or(|b| b.len() == self.cout);
        // An empty kernel would make the row chunks below zero-sized.
        let empty = self.cout == 0 || self.patch() == 0;
        if empty
            || x.len() != self.input_len()
            || kernel.len() != self.patch() * self.cout
            || !bias_ok
        {
            candle_core::bail!(
                "artifex-conv: input of {} values, kernel of {}, bias of {:?} do not fit {self:?}",
                x.len(),
                kernel.len(),
                bias.map(<[f32]>::len)
            );
        }
        Ok(())
    }

    /// `patches(x) @ kernel + bias`, `(rows, cout)` row-major: per block of rows, the patches
    /// are copied and multiplied while they are in cache.
    fn forward(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
    ) -> candle_core::Result<Vec<f32>> {
        self.check(x, kernel, bias)?;
        if let Some(sub) = self.subpixel() {
            let flipped = self.flip_swap(kernel, self.cin, self.cout);
            return sub.input_grad(&flipped, x, bias);
        }
        let (rows, patch, cout) = (self.rows(), self.patch(), self.cout);
        let mut y = match bias {
            Some(b) => b.repeat(rows),
            None => vec![0f32; rows * cout],
        };
        let k = MatRef::row_major(kernel, patch, cout);
        if self.patches_are_input() {
            matmuls(vec![Product {
                dst: &mut y,
                accumulate: true,
                a: MatRef::row_major(x, rows, patch),
                b: k,
            }])?;
            return Ok(y);
        }
        let taps = [self.h.taps(), self.w.taps()];
        let block = self.task_rows();
        let tasks: Vec<(usize, &mut [f32])> = y.chunks_mut(block * cout).enumerate().collect();
        pool::try_for_each_task(tasks, |(i, dst)| {
            let n = dst.len() / cout;
            with_patch_buffer(n * patch, |cols| {
                self.fill_patches(x, i * block, cols, &taps);
                matmul_serial(dst, true, MatRef::row_major(cols, n, patch), k)
            })
        })?;
        Ok(y)
    }

    /// `(dx, dkernel, dbias)` for the output gradient `g (rows, cout)`; `dx` only when
    /// `needs_dx`, `dbias` only when `needs_db`.
    fn backward(
        &self,
        x: &[f32],
        kernel: &[f32],
        g: &[f32],
        needs_dx: bool,
        needs_db: bool,
    ) -> candle_core::Result<Grads> {
        self.check(x, kernel, None)?;
        let (rows, cout) = (self.rows(), self.cout);
        if g.len() != rows * cout {
            candle_core::bail!(
                "artifex-conv: gradient of {} values for output {:?}",
                g.len(),
                self.output_shape()
            );
        }
        let (dk, dx) = match self.subpixel() {
            Some(sub) => {
                // The transposed convolution is `sub`'s input gradient of `x`: its kernel
                // gradient pairs `patches(g)` with `x`, its input gradient is `sub` on `g`.
                let dk = sub.kernel_grad(g, x)?;
                let dk = sub.flip_swap(&dk, self.cout, self.cin);
                let dx = match needs_dx {
                    true => {
                        Some(sub.forward(g, &self.flip_swap(kernel, self.cin, self.cout), None)?)
                    }
                    false => None,
                };
                (dk, dx)
            }
            None => {
                let dk = self.kernel_grad(x, g)?;
                let dx = match needs_dx {
                    true => Some(self.input_grad(kernel, g, None)?),
                    false => None,
                };
                (dk, dx)
            }
        };
        let db = needs_db.then(|| {
            let mut db = vec![0f32; cout];
            for row in g.chunks_exact(cout.max(1)) {
                for (s, v) in db.iter_mut().zip(row) {
                    *s += v;
                }
            }
            db
        });
        Ok(Grads { dx, dk, db })
    }

    /// `patches(x)^T @ g`: the blocks of rows in [`KERNEL_GRAD_GROUPS`] runs of consecutive
    /// blocks, each run accumulated in order into its own partial (patches copied while in
    /// cache), then the partials summed element-wise in run order over the pool.
    fn kernel_grad(&self, x: &[f32], g: &[f32]) -> candle_core::Result<Vec<f32>> {
        let (rows, patch, cout) = (self.rows(), self.patch(), self.cout);
        let size = patch * cout;
        let mut dk = vec![0f32; size];
        let block = self.task_rows();
        let blocks = rows.div_ceil(block);
        let per_group = blocks.div_ceil(KERNEL_GRAD_GROUPS).max(1);
        let groups = blocks.div_ceil(per_group);
        let mut partials = vec![0f32; groups.saturating_sub(1) * size];
        // Run 0 writes into `dk` itself, the others into their partial.
        let mut tasks: Vec<(usize, &mut [f32])> = vec![(0, &mut dk[..])];
        tasks.extend(
            partials
                .chunks_mut(size)
                .enumerate()
                .map(|(i, p)| (i + 1, p)),
        );
        let taps = (!self.patches_are_input()).then(|| [self.h.taps(), self.w.taps()]);
        pool::try_for_each_task(tasks, |(group, dst)| {
            let first_block = group * per_group;
            for (j, b) in (first_block..blocks.min(first_block + per_group)).enumerate() {
                let first = b * block;
                let n = block.min(rows - first);
                let gb = MatRef::row_major(&g[first * cout..(first + n) * cout], n, cout);
                match &taps {
                    None => {
                        let xb = &x[first * patch..(first + n) * patch];
                        matmul_serial(dst, j > 0, MatRef::row_major(xb, n, patch).t(), gb)?;
                    }
                    Some(taps) => with_patch_buffer(n * patch, |cols| {
                        self.fill_patches(x, first, cols, taps);
                        matmul_serial(dst, j > 0, MatRef::row_major(cols, n, patch).t(), gb)
                    })?,
                }
            }
            Ok(())
        })?;
        if groups > 1 {
            // Each value sums the same partials in the same order, whatever the chunk size.
            let tasks: Vec<&mut [f32]> = dk.chunks_mut(SUM_CHUNK).collect();
            pool::for_each_task(tasks.into_iter().enumerate().collect(), |(c, d)| {
                let start = c * SUM_CHUNK;
                for part in partials.chunks_exact(size) {
                    for (d, p) in d.iter_mut().zip(&part[start..]) {
                        *d += p;
                    }
                }
            });
        }
        Ok(dk)
    }

    /// The input gradient: `g @ kernel^T` gives the patch gradients, scattered back image by
    /// image (one task per image, so no two tasks add into the same pixel); onto `init`
    /// (one value per input channel, repeated over the pixels) when given, else onto zeros.
    fn input_grad(
        &self,
        kernel: &[f32],
        g: &[f32],
        init: Option<&[f32]>,
    ) -> candle_core::Result<Vec<f32>> {
        let (rows, patch, cout) = (self.rows(), self.patch(), self.cout);
        if g.len() != rows * cout || init.is_some_and(|b| b.len() != self.cin) {
            candle_core::bail!(
                "artifex-conv: {} values of output gradient, {:?} of init, for {self:?}",
                g.len(),
                init.map(<[f32]>::len)
            );
        }
        let kt = MatRef::row_major(kernel, patch, cout).t();
        let mut dx = match init {
            Some(b) => b.repeat(self.input_len() / self.cin.max(1)),
            None => vec![0f32; self.input_len()],
        };
        if self.patches_are_input() {
            matmuls(vec![Product {
                dst: &mut dx,
                accumulate: init.is_some(),
                a: MatRef::row_major(g, rows, cout),
                b: kt,
            }])?;
            return Ok(dx);
        }
        let image_in = self.h.input * self.w.input * self.cin;
        let image_rows = self.h.output * self.w.output;
        if image_in == 0 || image_rows == 0 {
            return Ok(dx);
        }
        let taps = [self.h.taps(), self.w.taps()];
        let tasks: Vec<(usize, &mut [f32])> = dx.chunks_mut(image_in).enumerate().collect();
        let block = self.task_rows();
        pool::try_for_each_task(tasks, |(b, dst)| {
            let gi = &g[b * image_rows * cout..(b + 1) * image_rows * cout];
            // The image's rows in blocks, in order (the scatter order of the whole image).
            for (j, gb) in gi.chunks(block * cout).enumerate() {
                let n = gb.len() / cout;
                with_patch_buffer(n * patch, |dcols| {
                    matmul_serial(dcols, false, MatRef::row_major(gb, n, cout), kt)?;
                    self.scatter_image(j * block, dcols, dst, &taps);
                    Ok::<(), candle_core::Error>(())
                })?;
            }
            Ok(())
        })?;
        Ok(dx)
    }
}

/// Gradients of one backward pass.
struct Grads {
    dx: Option<Vec<f32>>,
    dk: Vec<f32>,
    db: Option<Vec<f32>>,
}

/// The op, with or without bias (a [`CustomOp3`] or a [`CustomOp2`]).
struct ConvOp {
    geometry: Conv2dGeometry,
}

impl ConvOp {
    fn run(
        &self,
        x: (&CpuStorage, &Layout),
        kernel: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let bias = bias.map(|(s, l)| cpu_f32(s, l));
        let (Some(xs), Some(ks), None | Some(Some(_))) =
            (cpu_f32(x.0, x.1), cpu_f32(kernel.0, kernel.1), bias)
        else {
            candle_core::bail!("artifex-conv: expected contiguous f32 operands");
        };
        let y = self.geometry.forward(xs, ks, bias.flatten())?;
        Ok((CpuStorage::F32(y), self.geometry.output_shape()))
    }

    fn grads(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        bias: Option<&Tensor>,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        crate::autodiff::refuse_fused_backward("artifex-conv", "Conv / ConvTranspose")?;
        let needs_db = bias.is_some_and(Tensor::track_op);
        let grads = with_f32(x, |xs| {
            with_f32(kernel, |ks| {
                with_f32(grad, |g| {
                    self.geometry.backward(xs, ks, g, x.track_op(), needs_db)
                })
            })
        })?;
        let dev = x.device();
        let dx = match grads.dx {
            Some(v) => Some(Tensor::from_vec(v, x.shape(), dev)?),
            None => None,
        };
        let dk = route(kernel, Tensor::from_vec(grads.dk, kernel.shape(), dev)?)?;
        let db = match (grads.db, bias) {
            (Some(v), Some(bias)) => route(bias, Tensor::from_vec(v, self.geometry.cout, dev)?)?,
            _ => None,
        };
        Ok((dx, dk, db))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "artifex-conv-bias"
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
        self.run((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dk, db) = self.grads(x, kernel, Some(bias), grad)?;
        Ok((dx, dk, db))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "artifex-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dk, _) = self.grads(x, kernel, None, grad)?;
        Ok((dx, dk))
    }
}

/// The convolution `(batch, OH, OW, cout)` of `x` (`batch·H·W·cin` values) with the HWIO
/// `kernel` (`KH·KW·cin·cout` values) plus `bias`; only where [`super::applies`] holds for
/// every operand. Shapes are checked against `geometry` (a mismatch is an error).
fn conv2d(
    x: &Tensor,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    geometry: Conv2dGeometry,
) -> candle_core::Result<Tensor> {
    let op = ConvOp { geometry };
    match bias {
        Some(b) => x.apply_op3(kernel, b, op),
        None => x.apply_op2(kernel, op),
    }
}

/// A channels-last convolution of `x (*batch, spatial..., cin)` with the `kernel
/// (k..., cin, cout)` on the GEMM kernel, given one [`Axis`] per spatial axis (1 or 2):
/// `(*batch, spatial'..., cout)`, or `None` where the kernel does not apply (an operand not
/// contiguous f32 on the CPU, fast paths off, shapes that do not match the axes).
pub(crate) fn conv_channels_last(
    x: &Tensor,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    mut axes: Vec<Axis>,
    cout: usize,
) -> candle_core::Result<Option<Tensor>> {
    let operands_apply = super::applies(x) && super::applies(kernel);
    if !operands_apply || !bias.is_none_or(super::applies) {
        return Ok(None);
    }
    let dims = x.dims();
    let n = axes.len();
    if !matches!(n, 1 | 2) || dims.len() < n + 1 {
        return Ok(None);
    }
    let lead = dims.len() - 1 - n;
    if axes
        .iter()
        .enumerate()
        .any(|(i, a)| a.input != dims[lead + i])
    {
        return Ok(None);
    }
    let mut out: Vec<usize> = dims[..lead].to_vec();
    out.extend(axes.iter().map(|a| a.output));
    out.push(cout);
    let w = axes.pop();
    let (Some(w), h) = (w, axes.pop().unwrap_or_else(Axis::unit)) else {
        return Ok(None);
    };
    let geometry = Conv2dGeometry {
        batch: dims[..lead].iter().product(),
        h,
        w,
        cin: dims[dims.len() - 1],
        cout,
    };
    Ok(Some(conv2d(x, kernel, bias, geometry)?.reshape(out)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution in f64 for one geometry.
    fn direct(geo: &Conv2dGeometry, x: &[f32], k: &[f32]) -> Vec<f32> {
        let (th, tw) = (geo.h.taps(), geo.w.taps());
        let (cin, cout) = (geo.cin, geo.cout);
        let mut y = vec![0f32; geo.rows() * cout];
        for b in 0..geo.batch {
            for oy in 0..geo.h.output {
                for ox in 0..geo.w.output {
                    for co in 0..cout {
                        let mut s = 0f64;
                        for ty in 0..geo.h.kernel {
                            for tx in 0..geo.w.kernel {
                                let (Some(iy), Some(ix)) =
                                    (th[oy * geo.h.kernel + ty], tw[ox * geo.w.kernel + tx])
                                else {
                                    continue;
                                };
                                for ci in 0..cin {
                                    let xi = ((b * geo.h.input + iy) * geo.w.input + ix) * cin + ci;
                                    let ki = ((ty * geo.w.kernel + tx) * cin + ci) * cout + co;
                                    s += x[xi] as f64 * k[ki] as f64;
                                }
                            }
                        }
                        let r = (b * geo.h.output + oy) * geo.w.output + ox;
                        y[r * cout + co] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, mul: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * mul % 61) as f32 - 30.0) / 15.0)
            .collect()
    }

    #[test]
    fn forward_matches_a_direct_loop() -> candle_core::Result<()> {
        // (input, kernel, stride, dilation, input dilation, pads) for H and W.
        let cases = [
            ((7, 3, 2, 1, 1, (1, 1)), (5, 2, 1, 2, 1, (0, 3))),
            ((1, 1, 1, 1, 1, (0, 0)), (9, 4, 3, 1, 1, (2, 0))),
            ((4, 3, 1, 1, 2, (2, 2)), (3, 3, 1, 1, 2, (2, 3))),
            ((5, 1, 1, 1, 1, (0, 0)), (5, 1, 1, 1, 1, (0, 0))),
            // Transposed with a pad beyond the dilated kernel: the dilated im2col, not the
            // sub-pixel form (which the two cases above with input dilation 2 take).
            ((5, 2, 1, 1, 2, (2, 0)), (4, 3, 1, 2, 3, (1, 1))),
        ];
        for (hh, ww) in cases {
            let axis = |(n, k, s, d, a, p)| Axis::new(n, k, s, d, a, p).expect("fits");
            let geo = Conv2dGeometry {
                batch: 2,
                h: axis(hh),
                w: axis(ww),
                cin: 3,
                cout: 5,
            };
            let x = values(geo.input_len(), 7);
            let k = values(geo.patch() * geo.cout, 11);
            let y = geo.forward(&x, &k, None)?;
            let fits = |(_, k, s, d, _, (lo, _)): (usize, usize, usize, usize, usize, _)| {
                s == 1 && lo <= (k - 1) * d
            };
            let sub = (hh.4 > 1 || ww.4 > 1) && fits(hh) && fits(ww);
            assert_eq!(geo.subpixel().is_some(), sub, "{geo:?}");
            let want = direct(&geo, &x, &k);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{geo:?}: {a} vs {b}"
                );
            }
        }
        Ok(())
    }

    /// The layers' entry point takes the kernel for contiguous f32 CPU tensors (and only while
    /// the fast paths are on), with `(*batch, spatial..., channels)` shapes around it.
    #[test]
    fn channels_last_entry_applies_to_cpu_f32() -> candle_core::Result<()> {
        let dev = candle_core::Device::Cpu;
        let axis = |n| Axis::new(n, 3, 2, 1, 1, (1, 1)).expect("fits");
        let geo = Conv2dGeometry {
            batch: 6,
            h: axis(5),
            w: axis(4),
            cin: 2,
            cout: 3,
        };
        let (xs, ks) = (values(geo.input_len(), 5), values(geo.patch() * 3, 13));
        let x = Tensor::from_slice(&xs, (2, 3, 5, 4, 2), &dev)?;
        let k = Tensor::from_slice(&ks, (3, 3, 2, 3), &dev)?;
        let b = Tensor::new(&[1f32, -2.0, 0.5], &dev)?;
        let axes = vec![axis(5), axis(4)];
        let Some(y) = conv_channels_last(&x, &k, Some(&b), axes.clone(), 3)? else {
            panic!("the kernel did not apply to contiguous f32 CPU tensors");
        };
        assert_eq!(y.dims(), &[2, 3, 3, 2, 3]);
        let want = direct(&geo, &xs, &ks);
        let got: Vec<f32> = y.flatten_all()?.to_vec1()?;
        for (i, (a, w)) in got.iter().zip(&want).enumerate() {
            let w = w + [1.0, -2.0, 0.5][i % 3];
            assert!((a - w).abs() <= 1e-4 * (1.0 + w.abs()), "{a} vs {w}");
        }
        // Not for other dtypes, or a channel count that does not match the axes' input.
        let x64 = x.to_dtype(candle_core::DType::F64)?;
        assert!(conv_channels_last(&x64, &k, None, axes.clone(), 3)?.is_none());
        let short = x.narrow(3, 0, 3)?.contiguous()?;
        assert!(conv_channels_last(&short, &k, None, axes, 3)?.is_none());
        Ok(())
    }

    #[test]
    fn axis_refuses_windows_that_do_not_fit() {
        assert!(Axis::new(2, 3, 1, 1, 1, (0, 0)).is_none());
        assert!(Axis::new(2, 2, 1, 2, 1, (0, 0)).is_none());
        assert_eq!(Axis::new(2, 3, 1, 1, 1, (1, 0)).map(|a| a.output), Some(1));
        assert!(Axis::new(0, 1, 1, 1, 1, (0, 0)).is_none());
    }

    #[test]
    fn mismatched_buffers_are_errors() {
        let geo = Conv2dGeometry {
            batch: 1,
            h: Axis::unit(),
            w: Axis::new(4, 3, 1, 1, 1, (1, 1)).expect("fits"),
            cin: 2,
            cout: 3,
        };
        let x = vec![0f32; 8];
        assert!(geo.forward(&x, &[0.0; 18], None).is_ok());
        assert!(geo.forward(&x, &[0.0; 17], None).is_err());
        assert!(geo.forward(&x[..7], &[0.0; 18], None).is_err());
        assert!(geo.forward(&x, &[0.0; 18], Some(&[0.0; 2])).is_err());
        assert!(geo
            .backward(&x, &[0.0; 18], &[0.0; 11], true, true)
            .is_err());
    }
}
