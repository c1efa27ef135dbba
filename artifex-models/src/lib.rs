//! # artifex-models
//!
//! The generative models of the seed document (`custom-architectures.md`), written with
//! artifex-core's macros. Where the seed's Python is wrong, the port is right and the
//! difference is documented on the type.
//!
//! ```
//! use artifex_core::prelude::*;
//! use artifex_models::CustomVAE;
//!
//! let mut rngs = Rngs::new(0);
//! let vae = CustomVAE::builder(vec![28, 28, 1], 20, vec![512, 256, 128], vec![128, 256, 512])
//!     .use_batch_norm(true)
//!     .build(&mut rngs)?;
//! let x = Tensor::ones((32, 28, 28, 1), DType::F32, &Device::Cpu)?;
//! let out = vae.forward(&x)?;
//! assert_eq!(out.reconstruction.dims(), &[32, 28, 28, 1]);
//! assert_eq!(out.latent.dims(), &[32, 20]);
//! let samples = vae.sample(4, &mut Rngs::new(1))?;
//! assert_eq!(samples.dims(), &[4, 28, 28, 1]);
//! # Ok::<(), artifex_core::Error>(())
//! ```

#![warn(missing_docs)]

mod custom_linear;
mod dense_block;
mod gan;
mod integration;
mod mnist_classifier;
mod mnist_fid;
mod registry;
mod residual_block;
mod residual_network;
mod stack;
mod typed_vae;
mod unet;
mod vae;

pub use artifex_core::layers::{MultiHeadAttention, RegularizedLinear};

pub use custom_linear::{CustomLinear, CustomLinearBuilder};
pub use dense_block::{DenseBlock, DenseBlockBuilder, DenseLayer};
pub use gan::{
    CustomDiscriminator, CustomDiscriminatorBuilder, CustomGenerator, CustomGeneratorBuilder, Gan,
    GanBuilder, GeneratorLayer,
};
pub use integration::{GenerativeConfig, MyCustomGenerativeModel, MyCustomGenerativeModelBuilder};
pub use mnist_classifier::{
    MnistClassifier, MnistClassifierBuilder, RandomShift, RandomShiftBuilder,
};
pub use mnist_fid::{MnistFid, MnistFidReport, SHIPPED_WEIGHTS};
pub use registry::{abstract_state_from_json, MODEL_TYPES};
pub use residual_block::{ResidualBlock, ResidualBlockBuilder};
pub use residual_network::{ResidualMlpBlock, ResidualNetwork, ResidualNetworkBuilder};
pub use stack::dense_stack;
pub use typed_vae::{
    Block, MnistImages, TypedDecoder, TypedEncoder, TypedVae, TypedVaeBuilder, TypedVaeOutput,
};
pub use unet::{
    decoder_in_channels, UNetBlock, UNetDecoder, UNetDecoderBuilder, UNetEncoder,
    UNetEncoderBuilder,
};
pub use vae::{CustomVAE, CustomVAEBuilder, VaeOutput};
