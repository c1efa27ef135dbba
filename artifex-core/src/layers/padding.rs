use serde::{Deserialize, Serialize};

/// Padding of [`Conv`](super::Conv) and [`ConvTranspose`](super::ConvTranspose), as NNX's
/// `padding` argument (`'SAME'`, `'VALID'`, `'CAUSAL'`, `[(lo, hi), ...]`).
///
/// For [`Conv`](super::Conv) (XLA's rules, per spatial axis with dilated kernel
/// `k = (kernel - 1) * dilation + 1`):
/// - `Same`: output `ceil(in / stride)`; total pad `max((out - 1) * stride + k - in, 0)`,
///   `lo = total / 2`, `hi = total - lo` (the odd pixel goes at the end).
/// - `Valid`: no padding; output `(in - k) / stride + 1`.
/// - `Causal` (1-D only): `k - 1` zeros on the left, none on the right.
/// - `Explicit`: `(lo, hi)` zeros per spatial axis (one pair is used for every axis).
///
/// For [`ConvTranspose`](super::ConvTranspose), `Same` and `Valid` follow
/// `jax.lax.conv_transpose` (outputs `in * stride` and `in * stride + max(k - stride, 0)`),
/// and `Explicit` pairs pad the stride-dilated input directly (jax's convention, not
/// PyTorch's `padding`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Output size `ceil(in / stride)` (NNX's default).
    Same,
    /// No padding.
    Valid,
    /// Left padding only, for 1-D sequence models: output `ceil(in / stride)`, no look-ahead.
    Causal,
    /// `(lo, hi)` zeros per spatial axis; a single pair applies to every axis.
    Explicit(Vec<(usize, usize)>),
}

impl Padding {
    /// The same `(p, p)` on every axis (NNX's `padding=p`).
    pub fn symmetric(p: usize) -> Self {
        Padding::Explicit(vec![(p, p)])
    }

    /// True when this padding can be used with `spatial` axes (explicit pairs: one or one per
    /// axis; causal: 1-D only).
    pub fn fits(&self, spatial: usize) -> bool {
        match self {
            Padding::Explicit(pairs) => pairs.len() == 1 || pairs.len() == spatial,
            Padding::Causal => spatial == 1,
            Padding::Same | Padding::Valid => true,
        }
    }

    fn pair(pairs: &[(usize, usize)], axis: usize) -> (usize, usize) {
        pairs
            .get(axis)
            .or_else(|| pairs.first())
            .copied()
            .unwrap_or((0, 0))
    }

    /// `(lo, hi)` of a forward convolution along each axis.
    pub(crate) fn conv_pads(
        &self,
        input: &[usize],
        kernel: &[usize],
        strides: &[usize],
    ) -> Vec<(usize, usize)> {
        (0..input.len())
            .map(|i| {
                let (n, k, s) = (input[i], kernel[i], strides[i]);
                match self {
                    Padding::Same => {
                        let out = n.div_ceil(s);
                        let total = ((out.saturating_sub(1)) * s + k).saturating_sub(n);
                        (total / 2, total - total / 2)
                    }
                    Padding::Valid => (0, 0),
                    Padding::Causal => (k - 1, 0),
                    Padding::Explicit(pairs) => Self::pair(pairs, i),
                }
            })
            .collect()
    }

    /// `(lo, hi)` of the stride-1 convolution over the stride-dilated input that computes a
    /// transposed convolution (`jax.lax._conv_transpose_padding`).
    pub(crate) fn transpose_pads(
        &self,
        kernel: &[usize],
        strides: &[usize],
    ) -> Vec<(usize, usize)> {
        (0..kernel.len())
            .map(|i| {
                let (k, s) = (kernel[i], strides[i]);
                match self {
                    Padding::Same => {
                        let pad_len = k + s - 2;
                        let lo = if s > k - 1 {
                            k - 1
                        } else {
                            pad_len.div_ceil(2)
                        };
                        (lo, pad_len - lo)
                    }
                    // Causal is refused at construction; treat it as VALID defensively.
                    Padding::Valid | Padding::Causal => {
                        let pad_len = k + s - 2 + k.saturating_sub(s);
                        (k - 1, pad_len - (k - 1))
                    }
                    Padding::Explicit(pairs) => Self::pair(pairs, i),
                }
            })
            .collect()
    }
}
