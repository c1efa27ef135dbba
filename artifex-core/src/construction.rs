//! How constructors create state variables: drawn from the rngs (the default), zero-filled
//! for a load that overwrites every value, or recorded as shapes only (abstract state).
//!
//! Why a construction mode carried by [`Rngs`](crate::Rngs) rather than a generated shape
//! function per module: `#[init(expr)]` fields are arbitrary expressions (`dense_stack(..)`,
//! iterator chains, `if .. { Some(..) }`, boxed trait objects), which a macro cannot turn into
//! shape code. Every variable, however, is created through [`Param::from_init`],
//! [`Param::zeros`], [`BatchStat::from_init`] or [`Rngs::fork`](crate::Rngs::fork), all of
//! which see the rngs. So the ordinary constructor runs unchanged, and in shape-only mode each
//! of those calls records the declared shape and dtype and returns a one-element placeholder.
//! That is sound because the placeholder module never leaves this crate: [`AbstractState`]
//! reads the recorded shapes off it and drops it. candle has no meta device, so the
//! placeholders are real scalar tensors (4-8 bytes each), bounded in number by the limits.
//!
//! [`Param::from_init`]: crate::Param::from_init
//! [`Param::zeros`]: crate::Param::zeros
//! [`BatchStat::from_init`]: crate::BatchStat::from_init
//! [`AbstractState`]: crate::AbstractState

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, TensorId, Var};

use crate::{CheckpointError, Error, Result};

/// The byte size of a tensor of `shape` and `dtype`, or a configuration error naming
/// `module` and `field` when the product of the sizes (or the bytes) overflows `usize`.
///
/// `#[module]` calls it for every `#[param]` / `#[batch_stat]` before creating the variable.
///
/// ```
/// use artifex_core::{check_shape, candle_core::DType};
/// assert_eq!(check_shape("Linear", "kernel", &[3, 4], DType::F32).unwrap(), 48);
/// let err = check_shape("Linear", "kernel", &[usize::MAX, 2], DType::F32).unwrap_err();
/// assert!(err.to_string().contains("Linear: invalid configuration: `kernel`"));
/// ```
pub fn check_shape(module: &str, field: &str, shape: &[usize], dtype: DType) -> Result<usize> {
    shape
        .iter()
        .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::config(
                module,
                format!(
                    "`{field}` of shape {shape:?} ({}) has more elements than fit in memory \
                     addresses (the product of its sizes overflows)",
                    dtype.as_str()
                ),
            )
        })
}

/// `(in, out)` of each layer of a stack whose layers have `widths` outputs and whose first
/// layer takes `input` features: `(input, widths[0]), (widths[0], widths[1]), ...`, the
/// `zip([input] + widths[:-1], widths)` of an MLP written in Python.
///
/// ```
/// use artifex_core::stack_dims;
/// let dims: Vec<(usize, usize)> = stack_dims(784, &[512, 256]).collect();
/// assert_eq!(dims, [(784, 512), (512, 256)]);
/// assert_eq!(stack_dims(784, &[]).count(), 0);
/// ```
pub fn stack_dims(input: usize, widths: &[usize]) -> impl Iterator<Item = (usize, usize)> + '_ {
    std::iter::once(input)
        .chain(widths.iter().copied())
        .zip(widths.iter().copied())
}

/// The product of `dims` (a config such as `input_shape`), or a configuration error naming
/// `module` and `field` when it overflows `usize`.
///
/// ```
/// use artifex_core::checked_product;
/// assert_eq!(checked_product("CustomVAE", "input_shape", &[28, 28, 1]).unwrap(), 784);
/// assert!(checked_product("CustomVAE", "input_shape", &[1 << 40, 1 << 40]).is_err());
/// ```
pub fn checked_product(module: &str, field: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::config(
                module,
                format!("`{field}` {dims:?}: the product of the sizes overflows usize"),
            )
        })
}

/// What a limited abstract build may describe: at most `vars` variables and `bytes` bytes.
///
/// [`Limits::any_size`] for inspection; [`Limits::checkpoint`] when
/// the abstract state is built from a checkpoint's config, so that a config describing more
/// than the file holds is refused as soon as it does, whatever it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The file the limits come from, named in the error (`None`: no limit).
    source: Option<String>,
    /// Most variables (params, batch stats, rng keys and counters).
    vars: usize,
    /// Most bytes of all variables together.
    bytes: usize,
}

impl Limits {
    /// Any size up to `usize` overflow, and at most 2^24 variables: no model anyone builds
    /// has more, and the cap keeps a hostile config (`num_layers: 10^18`) from looping.
    pub fn any_size() -> Self {
        Self {
            source: None,
            vars: 1 << 24,
            bytes: usize::MAX,
        }
    }

    /// The state a checkpoint file `path` can fill: its number of entries and its size.
    pub fn checkpoint(path: impl Into<String>, entries: usize, bytes: usize) -> Self {
        Self {
            source: Some(path.into()),
            vars: entries,
            bytes,
        }
    }
}

/// Shapes recorded by a shape-only build, and the running totals checked against its limits.
#[derive(Debug)]
pub(crate) struct ShapeRecorder {
    limits: Limits,
    shapes: HashMap<TensorId, (Vec<usize>, DType)>,
    vars: usize,
    bytes: usize,
}

impl ShapeRecorder {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            shapes: HashMap::new(),
            vars: 0,
            bytes: 0,
        }
    }

    /// Counts `vars` more variables of `bytes` bytes (already overflow-checked), refusing
    /// them when they go past the limits.
    fn count(&mut self, vars: usize, bytes: usize, what: &dyn Fn() -> String) -> Result<()> {
        let total_vars = self.vars.saturating_add(vars);
        let total_bytes = self.bytes.checked_add(bytes);
        let over =
            total_vars > self.limits.vars || total_bytes.is_none_or(|b| b > self.limits.bytes);
        if over {
            return Err(match &self.limits.source {
                Some(path) => CheckpointError::ConfigExceedsFile {
                    path: path.clone(),
                    reason: format!(
                        "{} would bring the model to {} variables and {} bytes, but the file \
                         holds {} entries in {} bytes",
                        what(),
                        total_vars,
                        total_bytes
                            .map_or_else(|| "more than usize::MAX".into(), |b| b.to_string()),
                        self.limits.vars,
                        self.limits.bytes
                    ),
                }
                .into(),
                None => Error::config(
                    "abstract state",
                    format!(
                        "{}: the model would have more than {} variables or more bytes than \
                         fit in usize",
                        what(),
                        self.limits.vars
                    ),
                ),
            });
        }
        self.vars = total_vars;
        self.bytes = total_bytes.unwrap_or(usize::MAX);
        Ok(())
    }

    /// The declared shape and dtype of a placeholder variable.
    pub(crate) fn shape_of(&self, id: TensorId) -> Option<&(Vec<usize>, DType)> {
        self.shapes.get(&id)
    }
}

/// How constructors create variables; carried by [`Rngs`](crate::Rngs).
#[derive(Clone, Debug, Default)]
pub(crate) enum Construction {
    /// Draw every value from its initializer (the ordinary build).
    #[default]
    Draw,
    /// Zero-filled variables (calloc'd, untouched pages), for a strict load that overwrites
    /// every value: no random numbers drawn and thrown away. Keys are still taken from the
    /// streams, so stream counters advance exactly as in an ordinary build.
    Zeroed,
    /// Placeholders whose declared shapes are recorded (see the module docs).
    ShapeOnly(Arc<Mutex<ShapeRecorder>>),
}

impl Construction {
    /// A placeholder variable standing for one of `shape` and `dtype`, recorded; `None` when
    /// not in shape-only mode.
    pub(crate) fn placeholder(
        &self,
        what: &str,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Option<Var>> {
        let Construction::ShapeOnly(recorder) = self else {
            return Ok(None);
        };
        let bytes = check_shape(what, "value", shape, dtype)?;
        let var = Var::zeros((), dtype, &Device::Cpu)?;
        let mut rec = recorder.lock().unwrap_or_else(|e| e.into_inner());
        rec.count(1, bytes, &|| {
            format!("a {what} of shape {shape:?} ({})", dtype.as_str())
        })?;
        rec.shapes
            .insert(var.as_tensor().id(), (shape.to_vec(), dtype));
        Ok(Some(var))
    }

    /// Counts a forked rng stream of `bytes` (a key of 8 `u32` and an `i64` counter) in
    /// shape-only mode.
    pub(crate) fn count_stream(&self, bytes: usize) -> Result<()> {
        if let Construction::ShapeOnly(recorder) = self {
            let mut rec = recorder.lock().unwrap_or_else(|e| e.into_inner());
            rec.count(2, bytes, &|| "an rng stream".to_string())?;
        }
        Ok(())
    }
}
