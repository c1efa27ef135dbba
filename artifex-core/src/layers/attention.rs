use candle_core::{Device, Tensor};

use super::{dot_product_attention, Dropout, Linear};
use crate::{module, ModulePath, Result};

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
/// Between the projections it calls [`dot_product_attention`], which a layer of another
/// layout (cross-attention, grouped heads) can call the same way.
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
    #[new(hidden_size, hidden_size)]
    pub q_proj: Linear,
    /// Key projection.
    #[new(hidden_size, hidden_size)]
    pub k_proj: Linear,
    /// Value projection.
    #[new(hidden_size, hidden_size)]
    pub v_proj: Linear,
    /// Output projection.
    #[new(hidden_size, hidden_size)]
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
            let expected = format!("[batch, seq, {}]", self.hidden_size);
            return Err(self.path.shape_error("MultiHeadAttention", expected, dims));
        }
        let heads = |t: Tensor| t.reshape((dims[0], dims[1], self.num_heads, self.head_dim));
        let q = heads(self.q_proj.forward(x)?)?;
        let k = heads(self.k_proj.forward(x)?)?;
        let v = heads(self.v_proj.forward(x)?)?;
        let (context, weights) =
            dot_product_attention(&q, &k, &v, mask, self.dropout.as_ref(), train)
                .map_err(|e| e.in_module(self.path.describe("MultiHeadAttention")))?;
        Ok((self.out_proj.forward(&context.reshape(dims)?)?, weights))
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
