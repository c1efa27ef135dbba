use candle_core::{DType, Device, Tensor, D};

use super::{Dropout, Linear};
use crate::{module, ModulePath, Result};

/// The value masked scores get before the softmax, as the seed's `jnp.where(mask, scores,
/// -1e9)`; the most negative finite value for `f16` (where -1e9 would be `-inf`).
fn mask_fill(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        _ => -1e9,
    }
}

/// Multi-head self-attention as the seed's `MultiHeadAttention` writes it (not
/// `nnx.MultiHeadAttention`, whose kernels are `(in, heads, head_dim)`).
///
/// Four [`Linear`] submodules `q_proj`, `k_proj`, `v_proj`, `out_proj` (`hidden -> hidden`,
/// with bias, drawn in that order), scores `q k^T / sqrt(head_dim)`, an optional boolean mask
/// `(batch, q, k)` (or `(q, k)` for every example) applied as `where(mask, scores, -1e9)`, a
/// softmax over the keys, dropout on the attention weights (the `dropout` submodule, present
/// only when `dropout_rate > 0`), and the output projection.
///
/// A fully masked row gets uniform weights over its keys (every score is -1e9), never NaN.
///
/// ```
/// use artifex_core::{layers::{causal_mask, MultiHeadAttention}, Rngs, candle_core::{DType, Device, Tensor}};
/// let attn = MultiHeadAttention::builder(64, 8).dropout_rate(0.1).build(&mut Rngs::new(0))?;
/// let x = Tensor::ones((2, 10, 64), DType::F32, &Device::Cpu)?;
/// let y = attn.forward(&x, Some(&causal_mask(2, 10, &Device::Cpu)?))?;
/// assert_eq!(y.dims(), &[2, 10, 64]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[module(serde)]
#[derive(Debug)]
#[check(hidden_size > 0, "hidden_size must be positive, got {hidden_size}")]
#[check(num_heads > 0, "num_heads must be positive, got {num_heads}")]
#[check(hidden_size % num_heads == 0, "hidden_size {hidden_size} must be divisible by num_heads {num_heads}")]
#[check((0.0..=1.0).contains(&dropout_rate), "dropout_rate must be in [0, 1], got {dropout_rate}")]
pub struct MultiHeadAttention {
    /// Query projection.
    #[init(Linear::new(hidden_size, hidden_size, rngs)?)]
    pub q_proj: Linear,
    /// Key projection.
    #[init(Linear::new(hidden_size, hidden_size, rngs)?)]
    pub k_proj: Linear,
    /// Value projection.
    #[init(Linear::new(hidden_size, hidden_size, rngs)?)]
    pub v_proj: Linear,
    /// Output projection.
    #[init(Linear::new(hidden_size, hidden_size, rngs)?)]
    pub out_proj: Linear,
    /// Dropout on the attention weights; `None` when `dropout_rate` is 0.
    #[init(Dropout::optional(dropout_rate, rngs)?)]
    pub dropout: Option<Dropout>,
    /// Model width (the last axis of the input).
    #[config]
    pub hidden_size: usize,
    /// Number of heads; must divide `hidden_size`.
    #[config]
    pub num_heads: usize,
    /// Attention-weight dropout rate.
    #[config(default = 0.0)]
    pub dropout_rate: f64,
    /// `hidden_size / num_heads`.
    #[config(computed = hidden_size.checked_div(num_heads).unwrap_or(0))]
    pub head_dim: usize,
    path: ModulePath,
}

#[crate::layer]
impl MultiHeadAttention {
    /// `x (batch, seq, hidden) -> (batch, seq, hidden)`, dropout in the module's mode.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_t(x, mask, None)
    }

    /// As [`forward`](Self::forward); `train` overrides the dropout's mode for this call
    /// (`Some(false)` is the seed's `deterministic=True`).
    #[forward(mask = None)]
    pub fn forward_t(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        train: Option<bool>,
    ) -> Result<Tensor> {
        Ok(self.forward_with_weights(x, mask, train)?.0)
    }

    /// The output and the attention weights `(batch, heads, q, k)` (before dropout).
    pub fn forward_with_weights(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        train: Option<bool>,
    ) -> Result<(Tensor, Tensor)> {
        let dims = x.dims();
        if dims.len() != 3 || dims[2] != self.hidden_size {
            return Err(self.path.shape_error(
                "MultiHeadAttention",
                format!("[batch, seq, {}]", self.hidden_size),
                dims,
            ));
        }
        let (b, s) = (dims[0], dims[1]);
        let (h, d) = (self.num_heads, self.head_dim);
        let heads = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, h, d))?.transpose(1, 2)?.contiguous()?)
        };
        let q = heads(self.q_proj.forward(x)?)?;
        let k = heads(self.k_proj.forward(x)?)?;
        let v = heads(self.v_proj.forward(x)?)?;

        let kt = k.transpose(2, 3)?.contiguous()?;
        let mut scores = (q.matmul(&kt)? / (d as f64).sqrt())?;
        if let Some(mask) = mask {
            let keep = self.expand_mask(mask, b, s)?;
            let fill = Tensor::full(mask_fill(scores.dtype()), scores.shape(), scores.device())?
                .to_dtype(scores.dtype())?;
            scores = keep.where_cond(&scores, &fill)?;
        }
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let dropped = match &self.dropout {
            Some(dropout) => dropout.forward_t(&weights, train)?,
            None => weights.clone(),
        };
        let context = dropped
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, s, self.hidden_size))?;
        Ok((self.out_proj.forward(&context)?, weights))
    }

    /// The mask as `u8` `(batch, heads, seq, seq)`; nonzero entries are kept.
    fn expand_mask(&self, mask: &Tensor, b: usize, s: usize) -> Result<Tensor> {
        let m = mask.dims();
        let ok = match m.len() {
            2 => m == [s, s],
            3 => (m[0] == b || m[0] == 1) && m[1..] == [s, s],
            _ => false,
        };
        if !ok {
            return Err(self.path.input_error(
                "MultiHeadAttention",
                format!("the mask must have shape [{b}, {s}, {s}], [1, {s}, {s}] or [{s}, {s}], got {m:?}"),
            ));
        }
        let keep = mask.to_device(self.q_proj.kernel.device())?.ne(0.0)?;
        let keep = if m.len() == 2 {
            keep.unsqueeze(0)?.unsqueeze(0)?
        } else {
            keep.unsqueeze(1)?
        };
        Ok(keep.broadcast_as((b, self.num_heads, s, s))?.contiguous()?)
    }
}

/// A causal (lower-triangular, diagonal included) boolean mask `(batch, len, len)` as `u8`:
/// position `i` may attend to `j <= i`.
pub fn causal_mask(batch: usize, len: usize, device: &Device) -> Result<Tensor> {
    let row: Vec<u8> = (0..len * len)
        .map(|i| u8::from(i % len <= i / len))
        .collect();
    let one = Tensor::from_vec(row, (1, len, len), device)?;
    Ok(one.broadcast_as((batch, len, len))?.contiguous()?)
}
