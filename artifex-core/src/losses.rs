//! Losses of the seed document and of Artifex: reconstruction, KL, the beta-VAE loss.
//! GAN objectives come with the GAN model. Classification: [`cross_entropy`] (optionally
//! label-smoothed, [`cross_entropy_with`]), [`nll`] and [`accuracy`]. Gradient penalties of
//! GAN critics: [`wgan_gp_penalty`] and [`r1_penalty`] (they need
//! [`crate::autodiff::enable_higher_order`]).

mod classification;
mod gradient_penalty;

use std::collections::BTreeMap;

pub use classification::{
    accuracy, cross_entropy, cross_entropy_with, nll, nll_with, CrossEntropy, Reduction,
};
pub use gradient_penalty::{
    gradient_penalty, r1_penalty, wgan_gp_penalty, wgan_gp_penalty_at, GradientPenalty,
};

use candle_core::Tensor;

use crate::{Error, Result};

fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::Shape {
            module: what.to_string(),
            expected: format!("{:?} (the first argument's shape)", a.dims()),
            got: b.dims().to_vec(),
        });
    }
    Ok(())
}

/// Mean squared error over every element.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mse", pred, target)?;
    if crate::kernels::applies(pred) && crate::kernels::applies(target) {
        return Ok(crate::kernels::mse::mse(pred, target)?);
    }
    Ok((pred - target)?.sqr()?.mean_all()?)
}

/// Mean absolute error over every element.
pub fn mae(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mae", pred, target)?;
    Ok((pred - target)?.abs()?.mean_all()?)
}

/// Binary cross-entropy on logits, averaged: `max(x, 0) - x z + log(1 + exp(-|x|))`
/// (never overflows, whatever the logits).
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    same_shape("binary_cross_entropy_with_logits", logits, targets)?;
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let loss = ((logits.relu()? - (logits * targets)?)? + softplus_neg_abs)?;
    Ok(loss.mean_all()?)
}

/// Binary cross-entropy on probabilities (clamped to `[eps, 1 - eps]`), averaged.
pub fn binary_cross_entropy(probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    same_shape("binary_cross_entropy", probs, targets)?;
    let eps = 1e-7;
    let p = probs.clamp(eps, 1.0 - eps)?;
    let pos = (targets * p.log()?)?;
    let neg = ((1.0 - targets)? * (1.0 - &p)?.log()?)?;
    Ok((pos + neg)?.neg()?.mean_all()?)
}

/// KL divergence of `N(mean, exp(logvar))` to `N(0, I)`, averaged over every element as the
/// seed does: `-0.5 * mean(1 + logvar - mean² - exp(logvar))`.
pub fn gaussian_kl(mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    same_shape("gaussian_kl", mean, logvar)?;
    let inner = (((logvar + 1.0)? - mean.sqr()?)? - logvar.exp()?)?;
    Ok((inner.mean_all()? * -0.5)?)
}

/// The seed's `custom_vae_loss`: `mse(data, reconstruction) + beta * kl`, with the metrics
/// `loss`, `reconstruction_loss`, `kl_loss` and `beta`.
pub fn custom_vae_loss(
    data: &Tensor,
    reconstruction: &Tensor,
    mean: &Tensor,
    logvar: &Tensor,
    beta: f64,
) -> Result<(Tensor, BTreeMap<String, Tensor>)> {
    let recon = mse(reconstruction, data)?;
    let kl = gaussian_kl(mean, logvar)?;
    let total = (&recon + (&kl * beta)?)?;
    let beta_t = Tensor::new(beta as f32, data.device())?;
    let metrics = BTreeMap::from([
        ("loss".to_string(), total.clone()),
        ("reconstruction_loss".to_string(), recon),
        ("kl_loss".to_string(), kl),
        ("beta".to_string(), beta_t),
    ]);
    Ok((total, metrics))
}

/// The adversarial objectives of [`discriminator_loss`] and [`generator_loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanLoss {
    /// The original GAN loss with the non-saturating generator objective (logits, stable).
    NonSaturating,
    /// Hinge loss (SAGAN / SN-GAN).
    Hinge,
    /// Least squares (LSGAN) with targets 1 for real, 0 for fake.
    LeastSquares,
    /// Wasserstein critic loss (use with a Lipschitz critic, e.g. spectral normalization).
    Wasserstein,
}

fn softplus(x: &Tensor) -> Result<Tensor> {
    crate::activation::softplus(x)
}

/// The discriminator's loss for logits on real and on generated samples.
pub fn discriminator_loss(kind: GanLoss, real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    Ok(match kind {
        GanLoss::NonSaturating => {
            (softplus(&real.neg()?)?.mean_all()? + softplus(fake)?.mean_all()?)?
        }
        GanLoss::Hinge => {
            ((1.0 - real)?.relu()?.mean_all()? + (fake + 1.0)?.relu()?.mean_all()?)?
        }
        GanLoss::LeastSquares => {
            (((real - 1.0)?.sqr()?.mean_all()? + fake.sqr()?.mean_all()?)? * 0.5)?
        }
        GanLoss::Wasserstein => (fake.mean_all()? - real.mean_all()?)?,
    })
}

/// The generator's loss for the discriminator's logits on generated samples.
pub fn generator_loss(kind: GanLoss, fake: &Tensor) -> Result<Tensor> {
    Ok(match kind {
        GanLoss::NonSaturating => softplus(&fake.neg()?)?.mean_all()?,
        GanLoss::Hinge | GanLoss::Wasserstein => fake.mean_all()?.neg()?,
        GanLoss::LeastSquares => ((fake - 1.0)?.sqr()?.mean_all()? * 0.5)?,
    })
}

/// `weight * sum(p²)` over `params` (e.g. `model.named_params()`), a scalar tensor.
pub fn l2_penalty(params: &[(String, crate::Param)], weight: f64) -> Result<Tensor> {
    penalty(params, weight, |p| Ok(p.sqr()?.sum_all()?))
}

/// Weight decay of one tensor: `factor * sum(t²)`, a scalar tensor; a constant zero (no
/// gradient, nothing computed) when `factor` is 0.
///
/// ```
/// use artifex_core::candle_core::{Device, Tensor};
/// let w = Tensor::new(&[1f32, 2.0], &Device::Cpu)?;
/// let l = artifex_core::losses::weight_decay(&w, 0.5)?;
/// assert_eq!(l.to_scalar::<f32>()?, 2.5);
/// # Ok::<(), artifex_core::Error>(())
/// ```
pub fn weight_decay(t: &Tensor, factor: f64) -> Result<Tensor> {
    if factor == 0.0 {
        return Ok(Tensor::zeros((), t.dtype(), t.device())?);
    }
    Ok((t.sqr()?.sum_all()? * factor)?)
}

/// `weight * sum(|p|)` over `params`, a scalar tensor.
pub fn l1_penalty(params: &[(String, crate::Param)], weight: f64) -> Result<Tensor> {
    penalty(params, weight, |p| Ok(p.abs()?.sum_all()?))
}

fn penalty(
    params: &[(String, crate::Param)],
    weight: f64,
    term: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (_, first) = params
        .first()
        .ok_or_else(|| Error::config("penalty", "no parameters to regularize"))?;
    let mut total = Tensor::zeros((), first.dtype(), first.device())?;
    for (_, p) in params {
        total = (total + term(p.value())?)?;
    }
    Ok((total * weight)?)
}
