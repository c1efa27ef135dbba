use candle_core::Tensor;

use crate::{module, Mode, ModulePath, Result, RngStream};

/// Zeroes entries with probability `rate` in training mode and scales the rest by
/// `1 / (1 - rate)`; identity in eval mode (NNX `nnx.Dropout`).
///
/// Holds its own stream forked from the `dropout` stream (or `default`) at construction; the
/// stream's counter is state (`rngs.count`), so a resumed run draws the same masks.
#[module(serde)]
#[derive(Debug)]
#[check((0.0..=1.0).contains(&rate), "dropout rate must be in [0, 1], got {rate}")]
pub struct Dropout {
    /// The mask stream.
    #[rng(stream = "dropout")]
    pub rngs: RngStream,
    /// Probability of zeroing an entry.
    #[config]
    pub rate: f64,
    mode: Mode,
    path: ModulePath,
}

#[crate::layer]
impl Dropout {
    /// Applies dropout in the module's mode.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }

    /// Applies dropout; `train` overrides the module's mode for this call (NNX `deterministic`).
    pub fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        if !self.mode.resolve(train) || self.rate == 0.0 {
            return Ok(x.clone());
        }
        if self.rate >= 1.0 {
            return Ok(x.zeros_like()?);
        }
        let keep = 1.0 - self.rate;
        let mask = self
            .rngs
            .next_key()
            .bernoulli(x.dims(), keep, x.dtype(), x.device())?;
        Ok(((x / keep)? * mask)?)
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }
}

impl Dropout {
    /// A `Dropout` of `rate` when `rate > 0`, else `None` (no layer and no state): the
    /// `nnx.Dropout(rate) if rate > 0 else None` of layers whose dropout is optional.
    ///
    /// ```
    /// use artifex_core::{layers::Dropout, Rngs};
    /// let rngs = &mut Rngs::new(0);
    /// assert!(Dropout::optional(0.0, rngs)?.is_none());
    /// assert!(Dropout::optional(0.1, rngs)?.is_some());
    /// # Ok::<(), artifex_core::Error>(())
    /// ```
    pub fn optional(rate: f64, rngs: &mut crate::Rngs) -> Result<Option<Self>> {
        if rate > 0.0 {
            Ok(Some(Self::new(rate, rngs)?))
        } else {
            Ok(None)
        }
    }
}
