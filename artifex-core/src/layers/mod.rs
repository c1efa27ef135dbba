//! The Flax NNX layer set, written with artifex's own `#[module]` macro.

mod attention;
mod batch_norm;
mod conv;
mod conv_transpose;
mod dot_product_attention;
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
pub use dot_product_attention::dot_product_attention;
pub use dropout::{Dropout, DropoutArgs, DropoutBuilder};
pub use embed::{Embed, EmbedArgs, EmbedBuilder};
pub use group_norm::{GroupNorm, GroupNormArgs, GroupNormBuilder};
pub use layer_norm::{LayerNorm, LayerNormArgs, LayerNormBuilder};
pub use linear::{Linear, LinearArgs, LinearBuilder};
pub use padding::Padding;
pub use regularized_linear::{RegularizedLinear, RegularizedLinearArgs, RegularizedLinearBuilder};
pub use rms_norm::{RMSNorm, RMSNormArgs, RMSNormBuilder};

pub(crate) use crate::ops::over_rows;
