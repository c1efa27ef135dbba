//! # artifex-models
//!
//! The generative models of the seed document (`custom-architectures.md`), written with
//! artifex-core's macros. Where the seed's Python is wrong, the port is right and the
//! difference is documented on the type.

#![warn(missing_docs)]

mod custom_linear;
mod integration;
mod residual_network;
mod stack;
mod typed_vae;
mod vae;

pub use custom_linear::{CustomLinear, CustomLinearBuilder};
pub use integration::{GenerativeConfig, MyCustomGenerativeModel, MyCustomGenerativeModelBuilder};
pub use residual_network::{ResidualMlpBlock, ResidualNetwork, ResidualNetworkBuilder};
pub use stack::dense_stack;
pub use typed_vae::{
    Block, MnistImages, TypedDecoder, TypedEncoder, TypedVae, TypedVaeBuilder, TypedVaeOutput,
};
pub use vae::{CustomVAE, CustomVAEBuilder, VaeOutput};
