//! # artifex-models
//!
//! The generative models of the seed document (`custom-architectures.md`), written with
//! artifex-core's macros. Where the seed's Python is wrong, the port is right and the
//! difference is documented on the type.

#![warn(missing_docs)]

mod custom_linear;
mod dense_block;
mod gan;
mod integration;
mod residual_block;
mod residual_network;
mod stack;
mod unet;
mod vae;

pub use artifex_core::layers::{MultiHeadAttention, RegularizedLinear};

pub use custom_linear::{CustomLinear, CustomLinearBuilder};
pub use dense_block::{DenseBlock, DenseBlockBuilder, DenseLayer};
pub use gan::{
    CustomDiscriminator, CustomDiscriminatorBuilder, CustomGenerator, CustomGeneratorBuilder, Gan,
    GanBuilder,
};
pub use integration::{GenerativeConfig, MyCustomGenerativeModel, MyCustomGenerativeModelBuilder};
pub use residual_block::{ResidualBlock, ResidualBlockBuilder};
pub use residual_network::{ResidualMlpBlock, ResidualNetwork, ResidualNetworkBuilder};
pub use stack::dense_stack;
pub use unet::{UNetBlock, UNetDecoder, UNetDecoderBuilder, UNetEncoder, UNetEncoderBuilder};
pub use vae::{CustomVAE, CustomVAEBuilder, VaeOutput};
