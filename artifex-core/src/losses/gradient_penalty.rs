//! Gradient penalties of GAN critics: WGAN-GP (Gulrajani et al. 2017) and R1 (Mescheder et
//! al. 2018). Both are functions of `∇ₓ D(x)`, so training on them differentiates a gradient:
//! they need higher-order mode ([`crate::autodiff::enable_higher_order`] at the start of
//! `main`), and say so in their error otherwise.
//!
//! The critic is called once on the whole batch and `sum(D(x))` is differentiated, which
//! gives each sample's own gradient as long as samples do not interact inside the critic (no
//! batch normalization in training mode, no minibatch statistics).

use candle_core::{Tensor, Var};

use crate::{autodiff, Error, Result, RngStream};

/// Which gradient penalty, for [`gradient_penalty`] and the adversarial trainer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientPenalty {
    /// [`wgan_gp_penalty`]: `(‖∇ₓ D(x̂)‖₂ − 1)²` on random interpolates of real and fake.
    WganGp,
    /// [`r1_penalty`]: `‖∇ₓ D(x)‖₂²` on real samples.
    R1,
}

/// `eps·real + (1 − eps)·fake` per sample (`eps` of shape `(batch,)`), as a variable.
fn interpolate(real: &Tensor, fake: &Tensor, eps: &Tensor) -> Result<Tensor> {
    let n = real.dim(0)?;
    if eps.dims() != [n] {
        return Err(Error::Shape {
            module: "losses::wgan_gp_penalty_at (eps)".to_string(),
            expected: format!("[{n}] (one value per sample of real {:?})", real.dims()),
            got: eps.dims().to_vec(),
        });
    }
    let mut shape = vec![1; real.rank()];
    shape[0] = n;
    let eps = eps.to_dtype(real.dtype())?.reshape(shape)?;
    let (real, fake) = (real.detach(), fake.detach());
    let mixed = (eps.broadcast_mul(&real)? + (1.0 - eps)?.broadcast_mul(&fake)?)?;
    Ok(Var::from_tensor(&mixed)?.into_inner())
}

/// `∇ₓ sum(critic(x))` per sample, flattened to `(batch, features)`, with its graph.
fn input_gradients(critic: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> Result<Tensor> {
    let out = critic(x)?.sum_all()?;
    let g = autodiff::grad(&out, &[x])?;
    match g.into_iter().next() {
        Some(g) => Ok(g.flatten_from(1)?),
        None => Err(Error::config(
            "losses::gradient_penalty",
            "no input gradient",
        )),
    }
}

fn check_batch(what: &str, real: &Tensor, fake: Option<&Tensor>) -> Result<()> {
    if real.rank() < 2 || real.dim(0)? == 0 {
        return Err(Error::Shape {
            module: format!("losses::{what}"),
            expected: "[batch > 0, *features] (real samples)".to_string(),
            got: real.dims().to_vec(),
        });
    }
    if let Some(fake) = fake {
        if fake.dims() != real.dims() {
            return Err(Error::Shape {
                module: format!("losses::{what}"),
                expected: format!("{:?} (the shape of real) for fake", real.dims()),
                got: fake.dims().to_vec(),
            });
        }
    }
    Ok(())
}

/// WGAN-GP: `mean((‖∇ₓ D(x̂)‖₂ − 1)²)` over random interpolates `x̂ = ε·real + (1 − ε)·fake`,
/// one `ε ~ U(0, 1)` per sample drawn from `rng` (the model's own stream, so the run is
/// reproducible and resumable). Not weighted: the usual weight is 10. `real` and `fake` are
/// `(batch, *features)` of one shape; both are treated as constants (detached).
///
/// The result is differentiable with respect to the critic's parameters (a second
/// derivative): it needs higher-order mode ([`crate::autodiff`]).
pub fn wgan_gp_penalty(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    rng: &RngStream,
) -> Result<Tensor> {
    check_batch("wgan_gp_penalty", real, Some(fake))?;
    let n = real.dim(0)?;
    // Under data-parallel training each rank keeps its rows of the global batch's draw.
    let key = rng.next_key();
    let eps = crate::distributed::uniform_rows(&key, &[n], 0.0, 1.0, real.dtype(), real.device())?;
    wgan_gp_penalty_at(critic, real, fake, &eps)
}

/// [`wgan_gp_penalty`] with the interpolation coefficients `eps` `(batch,)` given (tests,
/// fixtures, custom sampling).
pub fn wgan_gp_penalty_at(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    eps: &Tensor,
) -> Result<Tensor> {
    check_batch("wgan_gp_penalty_at", real, Some(fake))?;
    let x = interpolate(real, fake, eps)?;
    let norm = input_gradients(critic, &x)?.sqr()?.sum(1)?.sqrt()?;
    Ok((norm - 1.0)?.sqr()?.mean_all()?)
}

/// R1: `mean(‖∇ₓ D(x)‖₂²)` over the real samples `(batch, *features)`.
///
/// Without the `γ/2` factor of Mescheder et al. (2018), whose regularizer is
/// `(γ/2)·E[‖∇D‖²]`: multiply by `γ/2` yourself (the adversarial trainer's weight is that
/// product; γ = 10 gives weight 5). Differentiable with respect to the critic's parameters; it
/// needs higher-order mode ([`crate::autodiff`]).
pub fn r1_penalty(critic: impl Fn(&Tensor) -> Result<Tensor>, real: &Tensor) -> Result<Tensor> {
    check_batch("r1_penalty", real, None)?;
    let x = Var::from_tensor(&real.detach())?.into_inner();
    Ok(input_gradients(critic, &x)?.sqr()?.sum(1)?.mean_all()?)
}

/// The penalty of `kind`: [`wgan_gp_penalty`] (which draws from `rng`) or [`r1_penalty`]
/// (which ignores `fake` and `rng`).
pub fn gradient_penalty(
    kind: GradientPenalty,
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    rng: &RngStream,
) -> Result<Tensor> {
    match kind {
        GradientPenalty::WganGp => wgan_gp_penalty(critic, real, fake, rng),
        GradientPenalty::R1 => r1_penalty(critic, real),
    }
}
