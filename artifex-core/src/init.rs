//! Initializers with Flax NNX's definitions (`nnx.initializers`).
//!
//! Bare names in `#[param(init = lecun_normal, ..)]` resolve to the functions of this module.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::rng::host_tensor;
use crate::{Error, Result, RngKey};

/// Anything that can produce an initial value from a key, a shape, a dtype and a device.
pub trait Initializer {
    /// Draws a tensor of `shape`.
    fn init(&self, key: RngKey, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor>;

    /// False for initializers that ignore their key (zeros, ones, constant).
    fn is_random(&self) -> bool {
        true
    }
}

/// Which fan [`Init::VarianceScaling`] divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    /// Input fan: `shape[-2] * receptive field`.
    FanIn,
    /// Output fan: `shape[-1] * receptive field`.
    FanOut,
    /// Mean of both.
    FanAvg,
}

/// The distribution [`Init::VarianceScaling`] draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Normal truncated at two standard deviations, rescaled to keep the variance.
    TruncatedNormal,
    /// Plain normal.
    Normal,
    /// Uniform in `[-limit, limit)`.
    Uniform,
}

/// The NNX initializer set, as a serializable value (so it can live in a model config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Init {
    /// Every entry `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// `stddev * N(0, 1)`.
    Normal {
        /// Standard deviation.
        stddev: f64,
    },
    /// Uniform in `[0, scale)` (NNX's `uniform`).
    Uniform {
        /// Upper bound.
        scale: f64,
    },
    /// `stddev * N(0, 1)` truncated to `[lower, upper]` (in units of the standard deviation).
    TruncatedNormal {
        /// Standard deviation.
        stddev: f64,
        /// Lower bound before scaling.
        lower: f64,
        /// Upper bound before scaling.
        upper: f64,
    },
    /// `variance = scale / fan`, drawn from `distribution` (`jax.nn.initializers.variance_scaling`).
    ///
    /// The fans are computed as jax does: `in_size = shape[in_axis]`, `out_size =
    /// shape[out_axis]`, `receptive = prod(shape) / in_size / out_size`, `fan_in = in_size *
    /// receptive`, `fan_out = out_size * receptive` (negative axes count from the end).
    VarianceScaling {
        /// Variance multiplier.
        scale: f64,
        /// Which fan to divide by.
        mode: FanMode,
        /// Distribution.
        distribution: Distribution,
        /// The input axis of the fans (jax default `-2`).
        #[serde(default = "default_in_axis")]
        in_axis: isize,
        /// The output axis of the fans (jax default `-1`).
        #[serde(default = "default_out_axis")]
        out_axis: isize,
    },
    /// A (semi-)orthogonal matrix over the last axis times `scale`.
    Orthogonal {
        /// Multiplier.
        scale: f64,
    },
    /// A conv kernel `(spatial..., in, out)` that is zero except at the spatial center, which
    /// holds an orthogonal `(in, out)` matrix times `scale` (`jax.nn.initializers.delta_orthogonal`;
    /// needs `in <= out` and rank 3 to 5).
    DeltaOrthogonal {
        /// Multiplier.
        scale: f64,
    },
}

fn default_in_axis() -> isize {
    -2
}

fn default_out_axis() -> isize {
    -1
}

/// All zeros.
pub fn zeros() -> Init {
    constant(0.0)
}
/// All ones.
pub fn ones() -> Init {
    constant(1.0)
}
/// NNX's name for [`zeros`].
pub fn zeros_init() -> Init {
    zeros()
}
/// NNX's name for [`ones`].
pub fn ones_init() -> Init {
    ones()
}
/// Every entry `value`.
pub fn constant(value: f64) -> Init {
    Init::Constant { value }
}
/// `stddev * N(0, 1)`.
pub fn normal(stddev: f64) -> Init {
    Init::Normal { stddev }
}
/// Uniform in `[0, scale)`.
pub fn uniform(scale: f64) -> Init {
    Init::Uniform { scale }
}
/// `stddev * N(0, 1)` truncated at ±2 standard deviations.
pub fn truncated_normal(stddev: f64) -> Init {
    Init::TruncatedNormal {
        stddev,
        lower: -2.0,
        upper: 2.0,
    }
}
/// Variance scaling (the family behind lecun, glorot and he), fans over axes -2 (in) and -1 (out).
pub fn variance_scaling(scale: f64, mode: FanMode, distribution: Distribution) -> Init {
    variance_scaling_axes(scale, mode, distribution, -2, -1)
}
/// Variance scaling with the fans taken over `in_axis` and `out_axis` (negative from the end).
pub fn variance_scaling_axes(
    scale: f64,
    mode: FanMode,
    distribution: Distribution,
    in_axis: isize,
    out_axis: isize,
) -> Init {
    Init::VarianceScaling {
        scale,
        mode,
        distribution,
        in_axis,
        out_axis,
    }
}
/// NNX `Embed`'s default: `variance_scaling(1, fan_in, normal, out_axis=0)`. On an
/// `(num_embeddings, features)` table both axes of the fans are axis 0, so `fan_in = features`
/// and the entries have standard deviation `1 / sqrt(features)`.
pub fn default_embed_init() -> Init {
    variance_scaling_axes(1.0, FanMode::FanIn, Distribution::Normal, -2, 0)
}
/// NNX's default kernel init: `variance_scaling(1, fan_in, truncated_normal)`.
pub fn lecun_normal() -> Init {
    variance_scaling(1.0, FanMode::FanIn, Distribution::TruncatedNormal)
}
/// `variance_scaling(1, fan_in, uniform)`.
pub fn lecun_uniform() -> Init {
    variance_scaling(1.0, FanMode::FanIn, Distribution::Uniform)
}
/// `variance_scaling(1, fan_avg, truncated_normal)`.
pub fn glorot_normal() -> Init {
    variance_scaling(1.0, FanMode::FanAvg, Distribution::TruncatedNormal)
}
/// `variance_scaling(1, fan_avg, uniform)`.
pub fn glorot_uniform() -> Init {
    variance_scaling(1.0, FanMode::FanAvg, Distribution::Uniform)
}
/// Alias of [`glorot_normal`].
pub fn xavier_normal() -> Init {
    glorot_normal()
}
/// Alias of [`glorot_uniform`].
pub fn xavier_uniform() -> Init {
    glorot_uniform()
}
/// `variance_scaling(2, fan_in, truncated_normal)`.
pub fn he_normal() -> Init {
    variance_scaling(2.0, FanMode::FanIn, Distribution::TruncatedNormal)
}
/// `variance_scaling(2, fan_in, uniform)`.
pub fn he_uniform() -> Init {
    variance_scaling(2.0, FanMode::FanIn, Distribution::Uniform)
}
/// Alias of [`he_normal`].
pub fn kaiming_normal() -> Init {
    he_normal()
}
/// Alias of [`he_uniform`].
pub fn kaiming_uniform() -> Init {
    he_uniform()
}
/// Orthogonal matrices (rows or columns orthonormal) times `scale`.
pub fn orthogonal(scale: f64) -> Init {
    Init::Orthogonal { scale }
}
/// Delta-orthogonal conv kernels (see [`Init::DeltaOrthogonal`]).
pub fn delta_orthogonal(scale: f64) -> Init {
    Init::DeltaOrthogonal { scale }
}

/// `(fan_in, fan_out)` of a kernel shape, as jax computes them (in axis -2, out axis -1, the
/// rest is the receptive field).
pub fn fans(shape: &[usize]) -> Result<(f64, f64)> {
    if shape.len() < 2 {
        return Err(Error::config(
            "variance_scaling",
            format!("needs a shape of rank >= 2 to compute fans, got {shape:?}"),
        ));
    }
    let n = shape.len();
    let receptive: usize = shape[..n - 2].iter().product();
    let fan_in = (shape[n - 2] * receptive) as f64;
    let fan_out = (shape[n - 1] * receptive) as f64;
    Ok((fan_in, fan_out))
}

/// `(fan_in, fan_out)` with explicit axes, as jax's `_compute_fans(shape, in_axis, out_axis)`.
pub fn fans_with_axes(shape: &[usize], in_axis: isize, out_axis: isize) -> Result<(f64, f64)> {
    let axis = |a: isize| -> Result<usize> {
        let n = shape.len() as isize;
        let i = if a < 0 { a + n } else { a };
        if shape.len() < 2 || !(0..n).contains(&i) {
            return Err(Error::config(
                "variance_scaling",
                format!("axis {a} is out of range for a shape {shape:?} (rank >= 2 needed)"),
            ));
        }
        Ok(i as usize)
    };
    let in_size = shape[axis(in_axis)?] as f64;
    let out_size = shape[axis(out_axis)?] as f64;
    let total: f64 = shape.iter().map(|&d| d as f64).product();
    if in_size == 0.0 || out_size == 0.0 {
        return Err(Error::config(
            "variance_scaling",
            format!("fan of shape {shape:?} is zero"),
        ));
    }
    let receptive = total / in_size / out_size;
    Ok((in_size * receptive, out_size * receptive))
}

impl Initializer for Init {
    fn init(&self, key: RngKey, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = match *self {
            Init::Constant { value } => {
                return Ok((Tensor::ones(shape, dtype, device)? * value)?);
            }
            Init::Normal { stddev } => scale(key.normal_vec(n), stddev),
            Init::Uniform { scale: s } => key.uniform_vec(n, 0.0, s),
            Init::TruncatedNormal {
                stddev,
                lower,
                upper,
            } => scale(key.truncated_normal_vec(n, lower, upper), stddev),
            Init::VarianceScaling {
                scale: s,
                mode,
                distribution,
                in_axis,
                out_axis,
            } => {
                let (fan_in, fan_out) = if (in_axis, out_axis) == (-2, -1) {
                    fans(shape)?
                } else {
                    fans_with_axes(shape, in_axis, out_axis)?
                };
                let fan = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                if fan <= 0.0 {
                    return Err(Error::config(
                        "variance_scaling",
                        format!("fan of shape {shape:?} is zero"),
                    ));
                }
                let variance = s / fan;
                match distribution {
                    // Standard deviation of a unit normal truncated to [-2, 2].
                    Distribution::TruncatedNormal => scale(
                        key.truncated_normal_vec(n, -2.0, 2.0),
                        variance.sqrt() / 0.879_625_661_034_239_8,
                    ),
                    Distribution::Normal => scale(key.normal_vec(n), variance.sqrt()),
                    Distribution::Uniform => {
                        let limit = (3.0 * variance).sqrt();
                        key.uniform_vec(n, -limit, limit)
                    }
                }
            }
            Init::Orthogonal { scale: s } => orthogonal_values(key, shape, s)?,
            Init::DeltaOrthogonal { scale: s } => delta_orthogonal_values(key, shape, s)?,
        };
        host_tensor(values, shape, dtype, device)
    }

    fn is_random(&self) -> bool {
        !matches!(self, Init::Constant { .. })
    }
}

fn scale(mut values: Vec<f64>, factor: f64) -> Vec<f64> {
    values.iter_mut().for_each(|v| *v *= factor);
    values
}

/// Orthonormalizes a normal matrix with modified Gram-Schmidt (rows when they are fewer than
/// columns, else columns), as `jax.nn.initializers.orthogonal` does with a QR decomposition.
fn orthogonal_values(key: RngKey, shape: &[usize], s: f64) -> Result<Vec<f64>> {
    if shape.len() < 2 {
        return Err(Error::config(
            "orthogonal",
            format!("needs a shape of rank >= 2, got {shape:?}"),
        ));
    }
    let cols = shape[shape.len() - 1];
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let (m, k) = if rows < cols {
        (cols, rows)
    } else {
        (rows, cols)
    };
    // k vectors of length m, orthonormalized.
    let raw = key.normal_vec(m * k);
    let mut vecs: Vec<Vec<f64>> = raw.chunks(m).map(|c| c.to_vec()).collect();
    for i in 0..k {
        let (done, rest) = vecs.split_at_mut(i);
        let current = &mut rest[0];
        for prev in done.iter() {
            let dot: f64 = current.iter().zip(prev).map(|(a, b)| a * b).sum();
            current
                .iter_mut()
                .zip(prev)
                .for_each(|(a, b)| *a -= dot * b);
        }
        let norm = vecs[i].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        vecs[i].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = s * if rows < cols { vecs[r][c] } else { vecs[c][r] };
        }
    }
    Ok(out)
}

/// Zeros everywhere but the spatial center, which holds an orthogonal `(in, out)` matrix.
fn delta_orthogonal_values(key: RngKey, shape: &[usize], s: f64) -> Result<Vec<f64>> {
    let rank = shape.len();
    if !(3..=5).contains(&rank) {
        return Err(Error::config(
            "delta_orthogonal",
            format!("needs a conv kernel of rank 3 to 5, got {shape:?}"),
        ));
    }
    let (cin, cout) = (shape[rank - 2], shape[rank - 1]);
    if shape.contains(&0) {
        return Err(Error::config(
            "delta_orthogonal",
            format!("needs non-empty axes, got {shape:?}"),
        ));
    }
    if cin > cout {
        return Err(Error::config(
            "delta_orthogonal",
            format!("needs in <= out features, got {cin} > {cout} in {shape:?}"),
        ));
    }
    let ortho = orthogonal_values(key, &[cin, cout], s)?;
    let mut out = vec![0.0; shape.iter().product()];
    // Row-major offset of the center tap ((k - 1) // 2 on each spatial axis, as jax).
    let mut center = 0;
    for &k in &shape[..rank - 2] {
        center = center * k + k.saturating_sub(1) / 2;
    }
    let start = center * cin * cout;
    out[start..start + cin * cout].copy_from_slice(&ortho);
    Ok(out)
}
