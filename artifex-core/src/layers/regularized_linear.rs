use candle_core::{DType, Tensor};

use super::Dropout;
use crate::{module, BatchStat, Mode, ModulePath, Param, Result};

/// `x / sqrt(sum(x^2) + eps)` (flax's `_l2_normalize`).
fn l2_normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.broadcast_div(&(x.sqr()?.sum_all()? + eps)?.sqrt()?)?)
}

/// The seed's `RegularizedLinear`: `y = x @ weight + bias`, then dropout (when
/// `dropout_rate > 0`), with an L2 penalty and optional spectral normalization.
///
/// State: `weight (in, out)` (lecun_normal), `bias (out,)` (zeros, drawn without a key as the
/// seed's `jnp.zeros`), `dropout` (a [`Dropout`], only when `dropout_rate > 0`), and with
/// `spectral_norm` a [`BatchStat`] `u (out,)`: the persistent power-iteration vector.
///
/// Spectral normalization, done as SN-GAN (Miyato et al. 2018) instead of the seed's full SVD
/// per call: each training-mode call runs one power iteration on the detached weight,
/// `v = normalize(W u)`, `u <- normalize(W^T v)` (stored), and divides the weight by
/// `sigma = v^T W u`, differentiable in `W` with `u`, `v` held constant. Eval mode uses the
/// stored `u` without updating it: `v = normalize(W u)`, `sigma = v^T W u`. Across calls
/// `sigma` converges to the largest singular value; `u` is saved in checkpoints, so a resumed
/// run continues the iteration.
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
    #[init(if dropout_rate > 0.0 { Some(Dropout::new(dropout_rate, rngs)?) } else { None })]
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
        let weight = self.effective_weight(training)?;
        let y = super::over_rows(x, self.out_features, |x2| {
            Ok(x2.matmul(&weight)?.broadcast_add(&self.bias)?)
        })?;
        match &self.dropout {
            Some(dropout) => dropout.forward_t(&y, Some(training)),
            None => Ok(y),
        }
    }

    /// `weight_decay * sum(weight^2)` as a scalar tensor (zero when `weight_decay` is 0).
    pub fn regularization_loss(&self) -> Result<Tensor> {
        if self.weight_decay == 0.0 {
            return Ok(Tensor::zeros(
                (),
                self.weight.dtype(),
                self.weight.device(),
            )?);
        }
        Ok((self.weight.sqr()?.sum_all()? * self.weight_decay)?)
    }

    /// The current spectral-norm estimate `sigma` from the stored `u` (no update); `None`
    /// without `spectral_norm`.
    pub fn sigma(&self) -> Result<Option<Tensor>> {
        match &self.u {
            Some(u) => Ok(Some(
                self.sigma_from(&u.value(), None)?.detach().reshape(())?,
            )),
            None => Ok(None),
        }
    }

    /// The weight used by the forward pass: `weight / sigma` with spectral normalization.
    fn effective_weight(&self, training: bool) -> Result<Tensor> {
        let Some(u_stat) = &self.u else {
            return Ok(self.weight.value().clone());
        };
        let u = u_stat.value();
        let sigma = if training {
            let w = self.weight.value().detach();
            let v = l2_normalize(&w.matmul(&u.unsqueeze(1)?)?, self.sn_epsilon)?;
            let u_new = l2_normalize(&w.t()?.matmul(&v)?, self.sn_epsilon)?.squeeze(1)?;
            u_stat.set(&u_new)?;
            self.sigma_from(&u_new, Some(&v))?
        } else {
            self.sigma_from(&u, None)?
        };
        Ok(self.weight.value().broadcast_div(&sigma)?)
    }

    /// `v^T W u` (a `(1, 1)` tensor, differentiable in `W`), with `v = normalize(W u)` unless
    /// given.
    fn sigma_from(&self, u: &Tensor, v: Option<&Tensor>) -> Result<Tensor> {
        let w = self.weight.value();
        let u = u.unsqueeze(1)?;
        let v = match v {
            Some(v) => v.clone(),
            None => l2_normalize(&w.detach().matmul(&u)?, self.sn_epsilon)?,
        };
        Ok(v.t()?.matmul(w)?.matmul(&u)?)
    }
}

impl crate::Regularizer for RegularizedLinear {
    fn regularization_loss(&self) -> Result<Tensor> {
        RegularizedLinear::regularization_loss(self)
    }
}
