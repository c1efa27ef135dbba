//! Direct-loop f64 references for the convolution layers: NHWC inputs, HWIO kernels. 1-D
//! cases are run as 2-D with a height of 1.
#![allow(dead_code)]

use artifex_core::prelude::*;

/// A dense f64 array with its shape (row-major).
#[derive(Clone, Debug)]
pub struct Arr {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

impl Arr {
    pub fn zeros(dims: &[usize]) -> Self {
        Arr {
            dims: dims.to_vec(),
            data: vec![0.0; dims.iter().product()],
        }
    }

    pub fn from_tensor(t: &Tensor) -> Self {
        Arr {
            dims: t.dims().to_vec(),
            data: t
                .to_dtype(DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .expect("tensor to host"),
        }
    }

    /// The same data seen with a height-1 axis inserted at `axis`.
    pub fn with_unit_axis(&self, axis: usize) -> Self {
        let mut dims = self.dims.clone();
        dims.insert(axis, 1);
        Arr {
            dims,
            data: self.data.clone(),
        }
    }

    fn idx4(&self, a: usize, b: usize, c: usize, d: usize) -> usize {
        ((a * self.dims[1] + b) * self.dims[2] + c) * self.dims[3] + d
    }
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

pub fn tensor(dims: &[usize], seed: u64) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(values(n, seed), dims, &Device::Cpu).expect("tensor")
}

/// Geometry of one spatial axis.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    pub stride: usize,
    pub dilation: usize,
    pub lo: usize,
    pub hi: usize,
}

/// XLA's SAME padding of a forward convolution (written out independently of the crate).
pub fn same_pads(n: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let k_eff = (k - 1) * d + 1;
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k_eff).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// `jax.lax._conv_transpose_padding` for SAME and VALID, on the dilated kernel size.
pub fn transpose_pads(k_eff: usize, s: usize, same: bool) -> (usize, usize) {
    let (pad_len, lo) = if same {
        let pad_len = k_eff + s - 2;
        let lo = if s > k_eff - 1 {
            k_eff - 1
        } else {
            pad_len.div_ceil(2)
        };
        (pad_len, lo)
    } else {
        (k_eff + s - 2 + k_eff.saturating_sub(s), k_eff - 1)
    };
    (lo, pad_len - lo)
}

/// Forward convolution: x (B, H, W, C), w (KH, KW, C/G, O).
pub fn conv2d(x: &Arr, w: &Arr, ax: [Axis; 2], groups: usize) -> Arr {
    let (b, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    let (kh, kw, cg, o) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    assert_eq!(cg * groups, c);
    let og = o / groups;
    let out =
        |n: usize, k: usize, a: Axis| (n + a.lo + a.hi - ((k - 1) * a.dilation + 1)) / a.stride + 1;
    let (oh, ow) = (out(h, kh, ax[0]), out(wd, kw, ax[1]));
    let mut y = Arr::zeros(&[b, oh, ow, o]);
    for n in 0..b {
        for i in 0..oh {
            for j in 0..ow {
                for oc in 0..o {
                    let g = oc / og;
                    let mut acc = 0.0;
                    for p in 0..kh {
                        let hi =
                            (i * ax[0].stride + p * ax[0].dilation) as isize - ax[0].lo as isize;
                        if hi < 0 || hi >= h as isize {
                            continue;
                        }
                        for q in 0..kw {
                            let wi = (j * ax[1].stride + q * ax[1].dilation) as isize
                                - ax[1].lo as isize;
                            if wi < 0 || wi >= wd as isize {
                                continue;
                            }
                            for ci in 0..cg {
                                acc += x.data[x.idx4(n, hi as usize, wi as usize, g * cg + ci)]
                                    * w.data[w.idx4(p, q, ci, oc)];
                            }
                        }
                    }
                    let at = y.idx4(n, i, j, oc);
                    y.data[at] = acc;
                }
            }
        }
    }
    y
}

/// Gradients of `sum(conv2d(x, w) * r)` with respect to x and w (the adjoint loops).
pub fn conv2d_grads(x: &Arr, w: &Arr, r: &Arr, ax: [Axis; 2], groups: usize) -> (Arr, Arr) {
    let (b, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    let (kh, kw, cg, o) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    let (oh, ow) = (r.dims[1], r.dims[2]);
    let og = o / groups;
    let mut gx = Arr::zeros(&x.dims);
    let mut gw = Arr::zeros(&w.dims);
    let _ = c;
    for n in 0..b {
        for i in 0..oh {
            for j in 0..ow {
                for oc in 0..o {
                    let g = oc / og;
                    let rv = r.data[r.idx4(n, i, j, oc)];
                    for p in 0..kh {
                        let hi =
                            (i * ax[0].stride + p * ax[0].dilation) as isize - ax[0].lo as isize;
                        if hi < 0 || hi >= h as isize {
                            continue;
                        }
                        for q in 0..kw {
                            let wi = (j * ax[1].stride + q * ax[1].dilation) as isize
                                - ax[1].lo as isize;
                            if wi < 0 || wi >= wd as isize {
                                continue;
                            }
                            for ci in 0..cg {
                                let xi = x.idx4(n, hi as usize, wi as usize, g * cg + ci);
                                let wi2 = w.idx4(p, q, ci, oc);
                                gx.data[xi] += rv * w.data[wi2];
                                gw.data[wi2] += rv * x.data[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw)
}

/// Transposed convolution as a scatter: input pixel `i` and kernel tap `k` add
/// `x[i] * w[k]` to output `i * stride + lo - k * dilation`. x (B, H, W, I), w (KH, KW, I, O).
pub fn conv_transpose2d(x: &Arr, w: &Arr, ax: [Axis; 2]) -> Arr {
    let (b, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    let (kh, kw, ci_k, o) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    assert_eq!(ci_k, c);
    let out =
        |n: usize, k: usize, a: Axis| (n - 1) * a.stride + 1 + a.lo + a.hi - (k - 1) * a.dilation;
    let (oh, ow) = (out(h, kh, ax[0]), out(wd, kw, ax[1]));
    let mut y = Arr::zeros(&[b, oh, ow, o]);
    for n in 0..b {
        for i in 0..h {
            for j in 0..wd {
                for p in 0..kh {
                    let yi = (i * ax[0].stride + ax[0].lo) as isize - (p * ax[0].dilation) as isize;
                    if yi < 0 || yi >= oh as isize {
                        continue;
                    }
                    for q in 0..kw {
                        let yj =
                            (j * ax[1].stride + ax[1].lo) as isize - (q * ax[1].dilation) as isize;
                        if yj < 0 || yj >= ow as isize {
                            continue;
                        }
                        for ci in 0..c {
                            let xv = x.data[x.idx4(n, i, j, ci)];
                            for oc in 0..o {
                                let at = y.idx4(n, yi as usize, yj as usize, oc);
                                y.data[at] += xv * w.data[w.idx4(p, q, ci, oc)];
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// Gradients of `sum(conv_transpose2d(x, w) * r)` with respect to x and w.
pub fn conv_transpose2d_grads(x: &Arr, w: &Arr, r: &Arr, ax: [Axis; 2]) -> (Arr, Arr) {
    let (b, h, wd, c) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    let (kh, kw, _, o) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
    let (oh, ow) = (r.dims[1], r.dims[2]);
    let mut gx = Arr::zeros(&x.dims);
    let mut gw = Arr::zeros(&w.dims);
    for n in 0..b {
        for i in 0..h {
            for j in 0..wd {
                for p in 0..kh {
                    let yi = (i * ax[0].stride + ax[0].lo) as isize - (p * ax[0].dilation) as isize;
                    if yi < 0 || yi >= oh as isize {
                        continue;
                    }
                    for q in 0..kw {
                        let yj =
                            (j * ax[1].stride + ax[1].lo) as isize - (q * ax[1].dilation) as isize;
                        if yj < 0 || yj >= ow as isize {
                            continue;
                        }
                        for ci in 0..c {
                            let xi = x.idx4(n, i, j, ci);
                            for oc in 0..o {
                                let rv = r.data[r.idx4(n, yi as usize, yj as usize, oc)];
                                let wi = w.idx4(p, q, ci, oc);
                                gx.data[xi] += rv * w.data[wi];
                                gw.data[wi] += rv * x.data[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw)
}

/// Asserts `|a - b| <= atol + rtol * |b|` elementwise, with the worst entry in the message.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f64);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: entry {i} is {g}");
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 0.0,
        "{what}: entry {i}: got {}, want {}",
        got[i],
        want[i]
    );
}
