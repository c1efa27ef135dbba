//! Scaled dot-product attention over heads, as a function (Flax's `nnx.dot_product_attention`):
//! what an attention layer computes between its projections.

use candle_core::{DType, Tensor, D};

use super::Dropout;
use crate::{Error, Result};

/// The name errors of [`dot_product_attention`] carry; a layer calling it renames them with
/// [`Error::in_module`].
const NAME: &str = "dot_product_attention";

/// The value masked scores get before the softmax (`where(mask, scores, -1e9)`); the most
/// negative finite value for `f16` (where -1e9 would be `-inf`).
fn mask_fill(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        _ => -1e9,
    }
}

/// Attention of `query` over `key` / `value`, heads split by the caller, as Flax's
/// `nnx.dot_product_attention`: `query (batch, q_len, heads, head_dim)`, `key` and `value`
/// `(batch, kv_len, heads, head_dim)`; returns the context `(batch, q_len, heads, head_dim)`
/// (reshape it to `(batch, q_len, heads * head_dim)` for an output projection) and the
/// attention weights `(batch, heads, q_len, kv_len)` before dropout.
///
/// Scores are `q k^T / sqrt(head_dim)`. An optional boolean `mask` (nonzero = attend) of shape
/// `(batch, q_len, kv_len)`, `(1, q_len, kv_len)` or `(q_len, kv_len)` is shared by the heads
/// and applied as `where(mask, scores, -1e9)`, so a fully masked row gets uniform weights, never
/// NaN. `dropout` (when given) drops attention weights in its mode, or in `train`'s when that
/// is `Some`.
///
/// Errors: [`Error::Shape`] when `query`, `key`, `value` are not rank 4 or do not agree,
/// [`Error::Input`] for a mask of another shape; both name `dot_product_attention` (a layer
/// renames them to itself with [`Error::in_module`]).
///
/// ```
/// use artifex_core::{layers::{causal_mask, dot_product_attention}, candle_core::{DType, Device, Tensor}};
/// let q = Tensor::ones((2, 5, 4, 8), DType::F32, &Device::Cpu)?; // 4 heads of width 8
/// let mask = causal_mask(2, 5, &Device::Cpu)?;
/// let (context, weights) = dot_product_attention(&q, &q, &q, Some(&mask), None, None)?;
/// assert_eq!(context.dims(), &[2, 5, 4, 8]);
/// assert_eq!(weights.dims(), &[2, 4, 5, 5]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn dot_product_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Option<&Tensor>,
    dropout: Option<&Dropout>,
    train: Option<bool>,
) -> Result<(Tensor, Tensor)> {
    let (b, q_len, h, d) = heads_of(query, "query", None)?;
    let (_, kv_len, ..) = heads_of(key, "key", Some((b, h, d)))?;
    if value.dims() != key.dims() {
        return Err(shape(
            "value",
            format!("[{b}, {kv_len}, {h}, {d}] (the key's shape)"),
            value.dims(),
        ));
    }
    let split = |t: &Tensor| t.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split(query)?, split(key)?, split(value)?);
    let kt = k.transpose(2, 3)?.contiguous()?;
    let mut scores = (q.matmul(&kt)? / (d as f64).sqrt())?;
    if let Some(mask) = mask {
        let keep = expand_mask(mask, (b, h, q_len, kv_len), scores.device())?;
        let fill = Tensor::full(mask_fill(scores.dtype()), scores.shape(), scores.device())?
            .to_dtype(scores.dtype())?;
        scores = keep.where_cond(&scores, &fill)?;
    }
    let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
    let dropped = match dropout {
        Some(dropout) => dropout.forward_t(&weights, train)?,
        None => weights.clone(),
    };
    Ok((dropped.matmul(&v)?.transpose(1, 2)?, weights))
}

/// `(batch, len, heads, head_dim)` of a rank-4 operand that agrees with the query's
/// `(batch, heads, head_dim)` when given.
fn heads_of(
    t: &Tensor,
    what: &str,
    query: Option<(usize, usize, usize)>,
) -> Result<(usize, usize, usize, usize)> {
    let dims = t.dims();
    let expected = match query {
        Some((b, h, d)) => format!("[{b}, len, {h}, {d}]"),
        None => "[batch, len, heads, head_dim]".to_string(),
    };
    match *dims {
        [b, len, h, d] if query.is_none_or(|q| q == (b, h, d)) => Ok((b, len, h, d)),
        _ => Err(shape(what, expected, dims)),
    }
}

fn shape(what: &str, expected: String, got: &[usize]) -> Error {
    Error::Shape {
        module: format!("{NAME} ({what})"),
        expected,
        got: got.to_vec(),
    }
}

/// The mask as `u8` `(batch, heads, q_len, kv_len)` on `device`; nonzero entries are kept.
fn expand_mask(
    mask: &Tensor,
    (b, h, q, k): (usize, usize, usize, usize),
    device: &candle_core::Device,
) -> Result<Tensor> {
    let m = mask.dims();
    let ok = match m.len() {
        2 => m == [q, k],
        3 => (m[0] == b || m[0] == 1) && m[1..] == [q, k],
        _ => false,
    };
    if !ok {
        return Err(Error::Input {
            module: NAME.to_string(),
            message: format!(
                "the mask must have shape [{b}, {q}, {k}], [1, {q}, {k}] or [{q}, {k}], got {m:?}"
            ),
        });
    }
    let keep = mask.to_device(device)?.ne(0.0)?;
    let keep = if m.len() == 2 {
        keep.unsqueeze(0)?.unsqueeze(0)?
    } else {
        keep.unsqueeze(1)?
    };
    Ok(keep.broadcast_as((b, h, q, k))?.contiguous()?)
}
