//! Activation functions with `jax.nn`'s definitions (what `nnx.relu`, `nnx.gelu`, ... are), and
//! a serializable [`Activation`] to keep one in a model config.
//!
//! Every function is differentiable with candle's autograd, and the gradients at the kinks
//! follow jax: `relu'(0) = 0`, `leaky_relu'(0) = 1`, `elu'(0) = alpha`.
//!
//! Exactness notes:
//! - [`gelu`] is the exact, erf-based GELU (`jax.nn.gelu(x, approximate=False)`). **NNX's
//!   `nnx.gelu` defaults to the tanh approximation**, which is [`gelu_tanh`] here; use
//!   `Activation::GeluTanh` to port a model that calls `nnx.gelu(x)` without arguments.
//!   It is computed as `0.5 x (1 + erf(x / sqrt 2))`, so for `x < -5` the result is within
//!   ~1e-7 absolutely of jax's `x erfc(-x / sqrt 2) / 2`, not relatively. Both GELUs are
//!   composed from `erf` / `tanh` so that their gradients are exact (candle's fused
//!   `gelu_erf` / `gelu` backward formulas use 6-digit constants).
//! - [`elu`] uses `expm1` (written as `2 tanh(x/2) / (1 - tanh(x/2))`), so small negative
//!   inputs keep their relative precision, as jax's `expm1` does.
//! - [`softplus`] is `max(x, 0) + log1p(exp(-|x|))` with an accurate `log1p`: no overflow for
//!   large `x`, and `softplus(x) ~ exp(x)` keeps full relative precision for very negative `x`.
//! - [`softmax`] and [`log_softmax`] subtract the maximum first (candle_nn's composed ops,
//!   which have gradients; candle's fused `softmax_last_dim` has none).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `max(x, 0)`, with gradient 0 at 0 as jax.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if crate::kernels::applies(x) {
        return Ok(crate::kernels::relu::relu(x)?);
    }
    Ok(x.gt(0.0)?.where_cond(x, &x.zeros_like()?)?)
}

/// `x` where `x >= 0`, else `slope * x` (NNX default slope: 0.01).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.ge(0.0)?.where_cond(x, &(x * slope)?)?)
}

/// `x` where `x > 0`, else `alpha * expm1(x)` (NNX default alpha: 1).
pub fn elu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    let positive = x.gt(0.0)?;
    let zeros = x.zeros_like()?;
    let negative_part = positive.where_cond(&zeros, x)?;
    let neg = (expm1_nonpositive(&negative_part)? * alpha)?;
    Ok(positive.where_cond(x, &neg)?)
}

/// Exact GELU, `x * Phi(x)` with the normal CDF via erf (`jax.nn.gelu(approximate=False)`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    // Composed from `erf` rather than candle's fused `gelu_erf`, whose backward uses 6-digit
    // constants; autograd through erf is exact.
    let cdf = ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)?;
    Ok(((x * 0.5)? * cdf)?)
}

/// The tanh approximation of GELU (`jax.nn.gelu` / `nnx.gelu` default):
/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    // Composed (not candle's fused `gelu`, whose backward uses 6-digit constants).
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let inner = ((x + (x.powf(3.0)? * 0.044715)?)? * c)?;
    Ok(((x * 0.5)? * (inner.tanh()? + 1.0)?)?)
}

/// `x * sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    Ok(x.silu()?)
}

/// Alias of [`silu`].
pub fn swish(x: &Tensor) -> Result<Tensor> {
    silu(x)
}

/// `1 / (1 + exp(-x))`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if crate::kernels::applies(x) {
        return Ok(crate::kernels::sigmoid::sigmoid(x)?);
    }
    Ok(candle_nn::ops::sigmoid(x)?)
}

/// Hyperbolic tangent.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    Ok(x.tanh()?)
}

/// `log(1 + exp(x))` computed as `max(x, 0) + log1p(exp(-|x|))` (`jax.nn.softplus`).
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let positive = x.gt(0.0)?;
    let zeros = x.zeros_like()?;
    // |x| written with `where` so that the gradient at 0 is sigmoid(0) = 0.5, as in jax.
    let abs = positive.where_cond(x, &x.neg()?)?;
    let linear = positive.where_cond(x, &zeros)?;
    Ok((linear + log1p_unit(&abs.neg()?.exp()?)?)?)
}

/// Softmax along `axis` (negative counts from the end), max-subtracted.
pub fn softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    let axis = resolve_axis("softmax", x, axis)?;
    Ok(candle_nn::ops::softmax(x, axis)?)
}

/// Log-softmax along `axis`: `x - max - log(sum(exp(x - max)))`.
pub fn log_softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    let axis = resolve_axis("log_softmax", x, axis)?;
    Ok(candle_nn::ops::log_softmax(x, axis)?)
}

/// `expm1(x)` for `x <= 0`, as `2t / (1 - t)` with `t = tanh(x / 2)`: no cancellation near 0.
fn expm1_nonpositive(x: &Tensor) -> Result<Tensor> {
    let t = (x * 0.5)?.tanh()?;
    Ok(((&t * 2.0)? / t.affine(-1.0, 1.0)?)?)
}

/// `log(1 + y)` for `y` in `[0, 1]`: the Taylor series below 0.1 (error < y^10 / 10), the
/// plain logarithm above, where it loses no precision.
fn log1p_unit(y: &Tensor) -> Result<Tensor> {
    let small = y.lt(0.1)?;
    // Horner form of y - y^2/2 + y^3/3 - ... - y^10/10, evaluated on min(y, 0.1).
    let ys = small.where_cond(y, &y.zeros_like()?)?;
    let mut acc = (ys.zeros_like()? - 0.1)?;
    for k in (1..=9).rev() {
        let sign = if k % 2 == 1 { 1.0 } else { -1.0 };
        acc = ((&ys * &acc)? + sign / k as f64)?;
    }
    let series = (&ys * acc)?;
    let plain = (y + 1.0)?.log()?;
    Ok(small.where_cond(&series, &plain)?)
}

fn resolve_axis(op: &str, x: &Tensor, axis: isize) -> Result<usize> {
    let rank = x.rank() as isize;
    let resolved = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&resolved) {
        return Err(Error::Shape {
            module: op.to_string(),
            expected: format!("a tensor with an axis {axis}"),
            got: x.dims().to_vec(),
        });
    }
    Ok(resolved as usize)
}

/// An activation function as configuration data: serializes as `"relu"`,
/// `{"leaky_relu": {"slope": 0.2}}`, `{"softmax": {"axis": -1}}`, ...
///
/// ```
/// use artifex_core::activation::Activation;
/// let act: Activation = serde_json::from_str(r#"{"leaky_relu": {"slope": 0.2}}"#).unwrap();
/// assert_eq!(act, Activation::LeakyRelu { slope: 0.2 });
/// assert_eq!(serde_json::to_string(&Activation::GeluTanh).unwrap(), r#""gelu_tanh""#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The input unchanged.
    Identity,
    /// [`relu`].
    Relu,
    /// [`leaky_relu`].
    LeakyRelu {
        /// Slope for negative inputs (default 0.01).
        #[serde(default = "default_slope")]
        slope: f64,
    },
    /// [`elu`].
    Elu {
        /// Scale of the negative part (default 1).
        #[serde(default = "default_alpha")]
        alpha: f64,
    },
    /// Exact [`gelu`] (not NNX's default approximation: see [`Activation::GeluTanh`]).
    Gelu,
    /// [`gelu_tanh`], what `nnx.gelu(x)` computes by default.
    GeluTanh,
    /// [`silu`] (also accepted as `"swish"`).
    #[serde(alias = "swish")]
    Silu,
    /// [`sigmoid`].
    Sigmoid,
    /// [`tanh`].
    Tanh,
    /// [`softplus`].
    Softplus,
    /// [`softmax`].
    Softmax {
        /// Axis (default -1).
        #[serde(default = "default_axis")]
        axis: isize,
    },
    /// [`log_softmax`].
    LogSoftmax {
        /// Axis (default -1).
        #[serde(default = "default_axis")]
        axis: isize,
    },
}

fn default_slope() -> f64 {
    0.01
}

fn default_alpha() -> f64 {
    1.0
}

fn default_axis() -> isize {
    -1
}

impl Activation {
    /// Applies the activation.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match *self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => relu(x),
            Activation::LeakyRelu { slope } => leaky_relu(x, slope),
            Activation::Elu { alpha } => elu(x, alpha),
            Activation::Gelu => gelu(x),
            Activation::GeluTanh => gelu_tanh(x),
            Activation::Silu => silu(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => tanh(x),
            Activation::Softplus => softplus(x),
            Activation::Softmax { axis } => softmax(x, axis),
            Activation::LogSoftmax { axis } => log_softmax(x, axis),
        }
    }

    /// [`Activation::LeakyRelu`] with NNX's default slope 0.01.
    pub fn leaky_relu() -> Self {
        Activation::LeakyRelu {
            slope: default_slope(),
        }
    }

    /// [`Activation::Softmax`] over the last axis.
    pub fn softmax() -> Self {
        Activation::Softmax { axis: -1 }
    }
}

impl candle_nn::Module for Activation {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(xs).map_err(crate::error::to_candle)
    }
}
