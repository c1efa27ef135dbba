//! Compile-time shapes, opt-in, on stable Rust.
//!
//! [`Tensor<S>`](Tensor) is a candle tensor whose shape is a type: a tuple of [`Const<N>`]
//! (known when compiling) and [`Dyn`] (known when running) axes, e.g. `Tensor<(Dyn,
//! Const<784>)>` ([`Rows<784>`](Rows)). Typed layers ([`Linear<I, O>`](Linear),
//! [`BatchNorm<F>`](BatchNorm), [`LayerNorm<F>`](LayerNorm), [`Dropout`], [`Conv2d`],
//! activations) implement [`Forward<S>`](Forward) only for the shapes they accept, so wiring
//! `Linear<784, 512>` into `Linear<256, 10>` fails `cargo build` with
//!
//! ```text
//! error[E0277]: cannot feed [*, 512] into a layer expecting [*, 256]
//! ```
//!
//! Every typed layer *is* its dynamic twin ([`crate::layers`]) plus a zero-sized type tag: it
//! draws the same parameters in the same order, has the same state paths, saves and loads
//! the same checkpoints, and runs the same code. Shapes are checked once where a candle
//! tensor becomes typed ([`Tensor::new`]); a `Dyn` feature axis is checked by the dynamic
//! layer, whose error names its path (`encoder.2 (Linear): expected input of shape [*, 256],
//! got [32, 128]`).
//!
//! ```
//! use artifex_core::prelude::*;
//! use artifex_core::typed::{self, BatchNorm, Build, Forward, Linear, Relu, Rows, Seq, Then};
//!
//! // A hidden block: a layer, then ReLU, at one index (as the seed's encoder lists).
//! type Block<L> = Then<L, Relu>;
//! type Encoder = Seq<(Block<Linear<784, 512>>, Block<BatchNorm<512>>, Block<Linear<512, 256>>)>;
//!
//! let encoder = Encoder::build(&mut Rngs::new(0))?;
//! let x = typed::Tensor::<Rows<784>>::new(Tensor::ones((32, 784), DType::F32, &Device::Cpu)?)?;
//! let h: typed::Tensor<Rows<256>> = encoder.forward(&x)?;
//! assert_eq!(h.dims(), &[32, 256]);
//! let paths: Vec<String> = encoder.state().into_iter().map(|(p, _)| p).collect();
//! assert_eq!(&paths[..4], ["0.kernel", "0.bias", "1.scale", "1.bias"]);
//! # Ok::<(), artifex_core::Error>(())
//! ```
//!
//! Where stable Rust cannot compute a size in a type (a strided convolution's output), the
//! axis becomes `Dyn`, or the caller declares it and a `const` assertion checks it
//! ([`Conv2d::forward_sized`], [`conv_output_size`]).

mod activation;
mod batch_norm;
mod check;
mod conv;
mod dim;
mod dropout;
mod forward;
mod layer_norm;
mod linear;
mod seq;
mod shape;
mod tensor;
mod then;
mod transparent;

pub use activation::{
    DynActivation, Gelu, GeluTanh, Identity, LogSoftmax, Relu, Sigmoid, Silu, Softmax, Softplus,
    Tanh,
};
pub use batch_norm::BatchNorm;
pub use check::{Channels, Features, SameChannels, SameFeatures, ShapeCheck};
pub use conv::{
    conv_output_size, Conv2d, ConvBackend, ConvSpec, Geometry, ImageShape, Same, SameStrided, Valid,
};
pub use dim::{Const, Dim, Dyn};
pub use dropout::Dropout;
pub use forward::{Build, Forward};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use seq::Seq;
pub use shape::{HasLast, Images, Rows, Shape};
pub use tensor::Tensor;
pub use then::Then;

#[cfg(test)]
mod tests;
