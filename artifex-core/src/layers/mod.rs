//! The Flax NNX layer set, written with artifex's own `#[module]` macro.

mod attention;
mod batch_norm;
mod conv;
mod conv_transpose;
mod dropout;
mod embed;
mod group_norm;
mod layer_norm;
mod linear;
mod padding;
mod regularized_linear;
mod rms_norm;
mod spatial;

pub use attention::{
    causal_mask, MultiHeadAttention, MultiHeadAttentionArgs, MultiHeadAttentionBuilder,
};
pub use batch_norm::{BatchNorm, BatchNormArgs, BatchNormBuilder};
pub use conv::{Conv, ConvArgs, ConvBuilder};
pub use conv_transpose::{ConvTranspose, ConvTransposeArgs, ConvTransposeBuilder};
pub use dropout::{Dropout, DropoutArgs, DropoutBuilder};
pub use embed::{Embed, EmbedArgs, EmbedBuilder};
pub use group_norm::{GroupNorm, GroupNormArgs, GroupNormBuilder};
pub use layer_norm::{LayerNorm, LayerNormArgs, LayerNormBuilder};
pub use linear::{Linear, LinearArgs, LinearBuilder};
pub use padding::Padding;
pub use regularized_linear::{RegularizedLinear, RegularizedLinearArgs, RegularizedLinearBuilder};
pub use rms_norm::{RMSNorm, RMSNormArgs, RMSNormBuilder};

/// Applies `f` to `x` flattened to `(rows, features)` and restores the leading dimensions,
/// with `out_features` as the new last dimension.
pub(crate) fn over_rows(
    x: &candle_core::Tensor,
    out_features: usize,
    f: impl FnOnce(&candle_core::Tensor) -> crate::Result<candle_core::Tensor>,
) -> crate::Result<candle_core::Tensor> {
    let dims = x.dims();
    if dims.len() == 2 {
        return f(x);
    }
    let features = dims[dims.len() - 1];
    let rows = x.elem_count() / features.max(1);
    let y = f(&x.reshape((rows, features))?)?;
    let mut out = dims[..dims.len() - 1].to_vec();
    out.push(out_features);
    Ok(y.reshape(out)?)
}
