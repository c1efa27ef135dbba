use candle_core::{DType, Tensor};

use super::Dropout;
use crate::{losses, module, ops, spectral, BatchStat, Mode, ModulePath, Param, Result};

/// The seed's `RegularizedLinear`: `y = x @ weight + bias`, then dropout (when
/// `dropout_rate > 0`), with an L2 penalty and optional spectral normalization.
///
/// State: `weight (in, out)` (lecun_normal), `bias (out,)` (zeros, drawn without a key as the
/// seed's `jnp.zeros`), `dropout` (a [`Dropout`], only when `dropout_rate > 0`), and with
/// `spectral_norm` a [`BatchStat`] `u (out,)`: the persistent power-iteration vector.
///
/// Composed of the core's parts: the product is [`ops::linear`](crate::ops::linear) (what
/// [`Linear`](super::Linear) computes; the fields keep the seed's names `weight` and `bias`,
/// so checkpoints match the seed's NNX state), the output dropout a [`Dropout`], and the
/// spectral normalization [`spectral::normalize`](crate::spectral::normalize), done as SN-GAN
/// (Miyato et al. 2018) instead of the seed's full SVD per call: each training-mode call runs
/// one power iteration on the detached weight, `v = normalize(W u)`, `u <- normalize(W^T v)`
/// (stored), and divides the weight by `sigma = v^T W u`, differentiable in `W` with `u`, `v`
/// held constant. Eval mode uses the stored `u` without updating it. Across calls `sigma`
/// converges to the largest singular value; `u` is saved in checkpoints, so a resumed run
/// continues the iteration.
///
/// ```
/// use artifex_core::{layers::RegularizedLinear, Rngs, candle_core::{DType, Device, Tensor}};
/// let layer = RegularizedLinear::builder(784, 256)
///     .dropout_rate(0.1)
///     .weight_decay(1e-4)
///     .spectral_norm(true)
///     .build(&mut Rngs::new(0))?;
/// let y = layer.forward(&Tensor::ones((32, 784), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[32, 256]);
/// assert_eq!(layer.regularization_loss()?.dims(), &[] as &[usize]);
/// # Ok::<(), artifex_core::Error>(())
/// ```
#[module(serde)]
#[derive(Debug)]
#[check(in_features > 0 && out_features > 0, "in_features and out_features must be positive, got {in_features} and {out_features}")]
#[check((0.0..=1.0).contains(&dropout_rate), "dropout_rate must be in [0, 1], got {dropout_rate}")]
#[check(weight_decay >= 0.0, "weight_decay must be non-negative, got {weight_decay}")]
#[check(sn_epsilon > 0.0, "sn_epsilon must be positive, got {sn_epsilon}")]
pub struct RegularizedLinear {
    /// `(in_features, out_features)`, lecun_normal.
    #[param(init = lecun_normal, shape = [in_features, out_features])]
    pub weight: Param,
    /// `(out_features,)`, zeros.
    #[init(Param::zeros(&[out_features], DType::F32, rngs)?)]
    pub bias: Param,
    /// Output dropout; `None` when `dropout_rate` is 0.
    #[init(Dropout::optional(dropout_rate, rngs)?)]
    pub dropout: Option<Dropout>,
    /// Power-iteration vector `(out_features,)`, present with `spectral_norm`.
    #[batch_stat(init = crate::init::normal(1.0), shape = [out_features], when = spectral_norm)]
    pub u: Option<BatchStat>,
    /// Input features.
    #[config]
    pub in_features: usize,
    /// Output features.
    #[config]
    pub out_features: usize,
    /// Output dropout rate.
    #[config(default = 0.0)]
    pub dropout_rate: f64,
    /// L2 penalty factor of [`regularization_loss`](Self::regularization_loss).
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Divide the weight by its estimated largest singular value.
    #[config(default = false)]
    pub spectral_norm: bool,
    /// Epsilon of the power iteration's normalizations.
    #[config(default = 1e-12)]
    pub sn_epsilon: f64,
    mode: Mode,
    path: ModulePath,
}

#[crate::layer]
impl RegularizedLinear {
    /// `x (..., in_features) -> (..., out_features)` in the module's mode.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }

    /// As [`forward`](Self::forward); `train` overrides the mode for this call (`Some(false)`
    /// is the seed's `deterministic=True`: no dropout, no power-iteration update).
    pub fn forward_t(&self, x: &Tensor, train: Option<bool>) -> Result<Tensor> {
        self.path
            .expect_features("RegularizedLinear", x, 1, self.in_features)?;
        let training = self.mode.resolve(train);
        let weight = spectral::normalize(&self.weight, self.u.as_ref(), training, self.sn_epsilon)?;
        let y = ops::linear(x, &weight, Some(&self.bias))?;
        match &self.dropout {
            Some(dropout) => dropout.forward_t(&y, Some(training)),
            None => Ok(y),
        }
    }

    /// `weight_decay * sum(weight^2)` as a scalar tensor (zero when `weight_decay` is 0).
    pub fn regularization_loss(&self) -> Result<Tensor> {
        losses::weight_decay(&self.weight, self.weight_decay)
    }

    /// The current spectral-norm estimate `sigma` from the stored `u` (no update); `None`
    /// without `spectral_norm`.
    pub fn sigma(&self) -> Result<Option<Tensor>> {
        self.u
            .as_ref()
            .map(|u| {
                Ok(spectral::sigma(&self.weight, &u.value(), self.sn_epsilon)?
                    .detach()
                    .reshape(())?)
            })
            .transpose()
    }
}

impl crate::Regularizer for RegularizedLinear {
    fn regularization_loss(&self) -> Result<Tensor> {
        RegularizedLinear::regularization_loss(self)
    }
}
