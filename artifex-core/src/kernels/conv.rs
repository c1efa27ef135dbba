//! Channels-last (NHWC) convolutions as one custom op on direct `gemm` calls: im2col with patch
//! rows contiguous in channels, one product with the HWIO kernel read as a `(KH·KW·I, O)`
//! matrix, the bias written first and the product accumulated onto it. The backward
//! recomputes the patches for the kernel gradient (`patches^T @ grad`), gets the patch
//! gradients from `grad @ kernel^T` and scatters them back image by image (col2im).
//!
//! Input dilation (zeros between input pixels) is part of the geometry, so a transposed
//! convolution (a stride-1 convolution over the stride-dilated input) runs on the same op.
//!
//! Work is cut into fixed blocks (rows of patches, whole images for the scatter, rows of the
//! products as in [`super::gemm`]), so the results do not depend on the number of threads.

use std::borrow::Cow;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::gemm::{matmuls, MatRef, Product};
use super::{cpu_f32, pool, with_f32};

/// Patch rows per im2col task.
const PATCH_BLOCK_ROWS: usize = 64;

/// Scratch buffers kept between calls (the patch matrices and their gradients, tens of MB
/// at image sizes): fresh allocations of that size are page-faulted in on every step.
static SCRATCH: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// Most buffers kept in [`SCRATCH`].
const SCRATCH_KEEP: usize = 2;

/// A buffer of `len` values with unspecified contents (the caller writes every one).
fn take_scratch(len: usize) -> Vec<f32> {
    let kept = SCRATCH.lock().ok().and_then(|mut s| s.pop());
    let mut v = kept.unwrap_or_default();
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    v
}

/// Returns a buffer of [`take_scratch`] for reuse.
fn give_back(v: Vec<f32>) {
    if let Ok(mut s) = SCRATCH.lock() {
        if s.len() < SCRATCH_KEEP {
            s.push(v);
        }
    }
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
    /// dilated kernel, or when a size, stride or dilation is zero.
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
        let span = (input - 1) * input_dilation + 1 + lo + hi;
        let k_eff = (kernel - 1) * dilation + 1;
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

    /// `(batch, OH, OW, cout)`.
    pub fn output_shape(&self) -> Shape {
        Shape::from((self.batch, self.h.output, self.w.output, self.cout))
    }

    /// The im2col matrix `(rows, KH·KW·cin)` of `x`, borrowed when it is `x` itself.
    fn patches<'a>(&self, x: &'a [f32]) -> Cow<'a, [f32]> {
        if self.patches_are_input() {
            return Cow::Borrowed(x);
        }
        let (taps_h, taps_w) = (self.h.taps(), self.w.taps());
        let (kh, kw, cin) = (self.h.kernel, self.w.kernel, self.cin);
        let (oh, ow) = (self.h.output, self.w.output);
        let (ih, iw) = (self.h.input, self.w.input);
        let patch = self.patch();
        // Every entry is written below (zeros where a tap falls outside the input).
        let mut cols = take_scratch(self.rows() * patch);
        let tasks: Vec<(usize, &mut [f32])> = cols
            .chunks_mut(PATCH_BLOCK_ROWS * patch)
            .enumerate()
            .collect();
        pool::for_each_task(tasks, |(block, dst)| {
            for (i, row) in dst.chunks_exact_mut(patch).enumerate() {
                let r = block * PATCH_BLOCK_ROWS + i;
                let (b, oy, ox) = (r / (oh * ow), (r / ow) % oh, r % ow);
                let image = b * ih * iw;
                for (ty, seg) in row.chunks_exact_mut(kw * cin).enumerate() {
                    let Some(iy) = taps_h[oy * kh + ty] else {
                        seg.fill(0.0);
                        continue;
                    };
                    for (tx, px) in seg.chunks_exact_mut(cin).enumerate() {
                        match taps_w[ox * kw + tx] {
                            Some(ix) => {
                                let start = (image + iy * iw + ix) * cin;
                                px.copy_from_slice(&x[start..start + cin]);
                            }
                            None => px.fill(0.0),
                        }
                    }
                }
            }
        });
        Cow::Owned(cols)
    }

    /// The input gradient from the patch gradients `dcols (rows, KH·KW·cin)`: each patch entry
    /// is added to the input pixel it was read from (one task per image, in a fixed order).
    fn scatter_patches(&self, dcols: Vec<f32>) -> Vec<f32> {
        if self.patches_are_input() {
            return dcols;
        }
        let dx = self.scatter(&dcols);
        give_back(dcols);
        dx
    }

    /// [`Self::scatter_patches`] into a new buffer.
    fn scatter(&self, dcols: &[f32]) -> Vec<f32> {
        let (taps_h, taps_w) = (self.h.taps(), self.w.taps());
        let (kh, kw, cin) = (self.h.kernel, self.w.kernel, self.cin);
        let (oh, ow) = (self.h.output, self.w.output);
        let iw = self.w.input;
        let patch = self.patch();
        let image_in = self.h.input * iw * cin;
        let image_rows = oh * ow;
        let mut dx = vec![0f32; self.input_len()];
        if image_in == 0 {
            return dx;
        }
        let tasks: Vec<(usize, &mut [f32])> = dx.chunks_mut(image_in).enumerate().collect();
        pool::for_each_task(tasks, |(b, dst)| {
            let rows = &dcols[b * image_rows * patch..(b + 1) * image_rows * patch];
            for (r, row) in rows.chunks_exact(patch).enumerate() {
                let (oy, ox) = (r / ow, r % ow);
                for (ty, seg) in row.chunks_exact(kw * cin).enumerate() {
                    let Some(iy) = taps_h[oy * kh + ty] else {
                        continue;
                    };
                    for (tx, px) in seg.chunks_exact(cin).enumerate() {
                        if let Some(ix) = taps_w[ox * kw + tx] {
                            let start = (iy * iw + ix) * cin;
                            for (d, g) in dst[start..start + cin].iter_mut().zip(px) {
                                *d += g;
                            }
                        }
                    }
                }
            }
        });
        dx
    }

    fn check(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> candle_core::Result<()> {
        let bias_ok = bias.is_none_or(|b| b.len() == self.cout);
        if x.len() != self.input_len() || kernel.len() != self.patch() * self.cout || !bias_ok {
            candle_core::bail!(
                "artifex-conv: input of {} values, kernel of {}, bias of {:?} do not fit {self:?}",
                x.len(),
                kernel.len(),
                bias.map(<[f32]>::len)
            );
        }
        Ok(())
    }

    /// `patches(x) @ kernel + bias`, `(rows, cout)` row-major.
    fn forward(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
    ) -> candle_core::Result<Vec<f32>> {
        self.check(x, kernel, bias)?;
        let (rows, patch, cout) = (self.rows(), self.patch(), self.cout);
        let mut y = match bias {
            Some(b) => b.repeat(rows),
            None => vec![0f32; rows * cout],
        };
        let cols = self.patches(x);
        let done = matmuls(vec![Product {
            dst: &mut y,
            accumulate: true,
            a: MatRef::row_major(&cols, rows, patch),
            b: MatRef::row_major(kernel, patch, cout),
        }]);
        if let Cow::Owned(v) = cols {
            give_back(v);
        }
        done?;
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
        let (rows, patch, cout) = (self.rows(), self.patch(), self.cout);
        if g.len() != rows * cout {
            candle_core::bail!(
                "artifex-conv: gradient of {} values for output {:?}",
                g.len(),
                self.output_shape()
            );
        }
        let gm = MatRef::row_major(g, rows, cout);
        let mut dk = vec![0f32; patch * cout];
        {
            // The patches live only for this product, so they and their gradients are never
            // held at once.
            let cols = self.patches(x);
            let done = matmuls(vec![Product {
                dst: &mut dk,
                accumulate: false,
                a: MatRef::row_major(&cols, rows, patch).t(),
                b: gm,
            }]);
            if let Cow::Owned(v) = cols {
                give_back(v);
            }
            done?;
        }
        let dx = if needs_dx {
            // Overwritten by the product (`accumulate: false`).
            let mut dcols = take_scratch(rows * patch);
            let done = matmuls(vec![Product {
                dst: &mut dcols,
                accumulate: false,
                a: gm,
                b: MatRef::row_major(kernel, patch, cout).t(),
            }]);
            if let Err(e) = done {
                give_back(dcols);
                return Err(e);
            }
            Some(self.scatter_patches(dcols))
        } else {
            None
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
    ) -> candle_core::Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
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
        let dk = Tensor::from_vec(grads.dk, kernel.shape(), dev)?;
        let db = match grads.db {
            Some(v) => Some(Tensor::from_vec(v, self.geometry.cout, dev)?),
            None => None,
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
        Ok((dx, Some(dk), db))
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
        Ok((dx, Some(dk)))
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
