//! # artifex-core
//!
//! Flax-NNX-style modules on candle: a named state tree, RNG streams reproducible from one
//! seed, train/eval switching that reaches every nested layer, and safetensors checkpoints.
//!
//! The seed document's `CustomLinear`, with the constructor written by `#[module]`:
//!
//! ```
//! use artifex_core::prelude::*;
//!
//! #[module]
//! pub struct CustomLinear {
//!     #[param(init = weight_init, shape = [in_features, out_features])]
//!     weight: Param,
//!     #[param(init = zeros, shape = [out_features], when = use_bias)]
//!     bias: Option<Param>,
//!     #[config] in_features: usize,
//!     #[config] out_features: usize,
//!     #[config(default = true)] use_bias: bool,
//!     #[config(default = init::lecun_normal())] weight_init: Init,
//! }
//!
//! impl CustomLinear {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         let y = x.matmul(&self.weight)?;
//!         Ok(match &self.bias { Some(b) => y.broadcast_add(b)?, None => y })
//!     }
//! }
//!
//! let layer = CustomLinear::new(784, 256, &mut Rngs::new(0))?;
//! let y = layer.forward(&Tensor::ones((32, 784), DType::F32, &Device::Cpu)?)?;
//! assert_eq!(y.dims(), &[32, 256]);
//! assert_eq!(layer.num_params(), 784 * 256 + 256);
//! let paths: Vec<String> = layer.state().into_iter().map(|(p, _)| p).collect();
//! assert_eq!(paths, ["weight", "bias"]);
//! # Ok::<(), artifex_core::Error>(())
//! ```
//!
//! ## Field attributes of `#[module]`
//! - `#[param(init = .., shape = [..], dtype = .., when = ..)]`: a [`Param`] drawn from the
//!   `params` stream (an `Option<Param>` with `when`). A bare initializer name that is not a
//!   config field names a function of [`init`].
//! - `#[batch_stat(init = .., shape = [..])]`: a non-trainable [`BatchStat`].
//! - `#[rng(stream = "dropout")]`: a [`RngStream`] forked from that stream (or `default`).
//! - `#[init(expr)]`: any field built by an expression (submodules); `rngs`, the configs and
//!   `?` are available.
//! - `#[new(args..)]`: a field built by its type's constructor with `rngs` last:
//!   `#[new(din, dout)] linear: Linear` is `#[init(Linear::new(din, dout, rngs)?)]`; with
//!   `when = cond` last, an optional submodule: `#[new(d, when = use_norm)] norm:
//!   Option<LayerNorm>` is `Some(LayerNorm::new(d, rngs)?)` when `use_norm`, else `None`.
//! - `#[config]`, `#[config(default = ..)]`, `#[config(computed = ..)]`: configuration, not
//!   state. Required configs are the arguments of `new` / `builder`, defaulted ones get
//!   builder setters, computed ones are derived from the others.
//! - `#[from_config]`: a submodule built by [`Configurable::from_config`] from the constructor
//!   argument of the same name, its config (`Residual::<Linear>::new(Linear::builder(4, 4), rngs)`).
//! - no attribute: [`Mode`] and [`ModulePath`] fields, filled automatically.
//! - on the struct, `#[check(condition, "message {config}")]` validates the configuration
//!   before anything is built and returns [`Error::Config`].
//!
//! Options: `#[module(serde)]` (the builder is a serializable config; implements
//! [`Configurable`]), `#[module(bound = "L: Layer")]` (where-clauses of a generic struct,
//! inferred otherwise), `#[module(crate = path)]` (a re-export of this crate). `#[layer]` on
//! the impl holding the forward method implements [`Layer`] and candle's `Module` / `ModuleT`
//! from it.
//!
//! `#[derive(Module)]` alone gives the state tree for structs with hand-written constructors:
//! every field not marked `#[config]` must implement [`Module`]. On an enum whose variants
//! each hold one module, `#[derive(Module)] #[artifex(transparent)]` makes a typed item of a
//! mixed list: the variant's module stands in the enum's place, adding no path segment.
//!
//! ```
//! use artifex_core::prelude::*;
//!
//! #[derive(Module)]
//! #[artifex(transparent)]
//! enum Item {
//!     Dense(Linear),
//!     Norm(BatchNorm),
//! }
//!
//! let rngs = &mut Rngs::new(0);
//! let items = vec![Item::Dense(Linear::new(4, 2, rngs)?), Item::Norm(BatchNorm::new(2, rngs)?)];
//! let paths: Vec<String> = items.state().into_iter().map(|(p, _)| p).collect();
//! assert_eq!(paths[..2], ["0.kernel", "0.bias"]);
//! assert_eq!(paths[2], "1.scale");
//! # Ok::<(), artifex_core::Error>(())
//! ```
//!
//! ## Noise from a module's own stream
//!
//! A `#[rng(stream = "sample")]` field is the module's own [`RngStream`], forked at
//! construction from that stream of the [`Rngs`] (or from `default`). Draw from it at call
//! time with `self.rngs.next_key()` and a method of [`RngKey`] (`normal`, `uniform`,
//! `bernoulli`): every call takes a new key and advances the stream's counter. Key and counter
//! are state (`rngs.key`, `rngs.count`), so checkpoints save them and a reloaded model draws
//! the noise the original would have drawn next.
//!
//! ```
//! use artifex_core::prelude::*;
//!
//! #[module]
//! pub struct NoisyLinear {
//!     #[new(din, dout)] // Linear::new(din, dout, rngs)?
//!     linear: Linear,
//!     #[rng(stream = "sample")]
//!     rngs: RngStream,
//!     #[config] din: usize,
//!     #[config] dout: usize,
//!     #[config(default = 0.1)] sigma: f64,
//! }
//!
//! impl NoisyLinear {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         let y = self.linear.forward(x)?;
//!         let noise = self.rngs.next_key().normal(y.dims(), y.dtype(), y.device())?;
//!         Ok((y + (noise * self.sigma)?)?)
//!     }
//! }
//!
//! let layer = NoisyLinear::new(4, 3, &mut Rngs::new(0))?;
//! let x = Tensor::ones((2, 4), DType::F32, &Device::Cpu)?;
//! let first = layer.forward(&x)?.to_vec2::<f32>()?;
//! assert_ne!(first, layer.forward(&x)?.to_vec2::<f32>()?, "a new key per call");
//! assert_eq!(layer.rngs.count(), 2);
//! // The same seed gives the same parameters and the same noise.
//! let twin = NoisyLinear::new(4, 3, &mut Rngs::new(0))?;
//! assert_eq!(twin.forward(&x)?.to_vec2::<f32>()?, first);
//! # Ok::<(), artifex_core::Error>(())
//! ```
//!
//! ## Cargo features
//!
//! All on by default; with `default-features = false` the crate is the layers-only core
//! (state tree, layers, losses, optimizers, `Trainer`, checkpoints, `DataLoader`):
//!
//! | feature | gives | pulls in |
//! | --- | --- | --- |
//! | `mnist` | `data::Mnist`, the IDX reader (`data::idx`) | `flate2` |
//! | `image` | `image_grid` (PNG grids) | `image` (PNG codec only) |
//! | `progress` | the `Trainer`'s progress bar on a terminal (plain lines without it) | `indicatif` |
//! | `torch` | `checkpoint::Adapter` for PyTorch `state_dict` files | `regex` |
//! | `plot` | `loss.png` of the trainers (`train::LossCurves`) | `plotters`, `dejavu`, `image` |
//! | `cuda`, `metal` (off) | candle's GPU backends | candle's |

#![warn(missing_docs)]

extern crate self as artifex_core;

mod abstract_state;
pub mod activation;
pub mod autodiff;
mod build_path;
pub mod checkpoint;
mod configurable;
mod construction;
mod containers;
pub mod data;
mod device;
pub mod distributed;
mod error;
mod error_chain;
pub mod fast_paths;
mod filter;
mod generative;
#[cfg(feature = "image")]
pub mod image_grid;
pub mod init;
mod kernels;
mod layer;
pub mod layers;
pub mod losses;
pub mod metrics;
mod module;
pub mod ops;
pub mod optim;
mod path;
mod rng;
pub mod spectral;
mod state;
mod summary;
pub mod train;
pub mod typed;

pub use artifex_macros::{layer, module, Module};
pub use candle_core;
pub use candle_nn;
pub use serde;

pub use abstract_state::{AbstractState, AbstractVar};
#[doc(hidden)]
pub use build_path::BuildPath;
pub use configurable::{dtype_serde, read_config, Configurable};
pub use construction::{check_shape, checked_product, stack_dims, Limits};
pub use device::device_from_name;
pub use error::{CheckpointError, DataError, Error, Result, TrainError};
pub use error_chain::ErrorChain;
pub use filter::Filter;
pub use generative::{GenerativeModel, ModelOutput};
pub use init::{Init, Initializer};
pub use layer::{boxed, into_candle_error, BoxedLayer, Layer};
pub use module::walk;
pub use module::{AutoField, Module, Regularizer};
pub use path::{ModulePath, StatePath};
pub use rng::{RngKey, RngStream, Rngs, KEY_WORDS};
pub use state::{BatchStat, Mode, NamedState, Param, StateKind, StateRef};
pub use summary::{Summary, SummaryRow};

/// Everything a layer author needs: `use artifex_core::prelude::*;`.
pub mod prelude {
    pub use crate::activation::{self, Activation};
    pub use crate::checkpoint::{Checkpointable, LoadOptions, LoadReport, SaveOptions};
    pub use crate::init::{self, Init};
    pub use crate::layers::{
        causal_mask, BatchNorm, Conv, ConvTranspose, Dropout, Embed, GroupNorm, LayerNorm, Linear,
        MultiHeadAttention, Padding, RMSNorm, RegularizedLinear,
    };
    pub use crate::{
        boxed, checked_product, layer, module, stack_dims, BatchStat, BoxedLayer, Configurable,
        Error, Filter, GenerativeModel, Layer, Mode, ModelOutput, Module, ModulePath, Param,
        Regularizer, Result, RngStream, Rngs, StateKind,
    };
    pub use candle_core::{DType, Device, Tensor, D};
}
