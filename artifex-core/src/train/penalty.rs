//! The gradient penalty of the [`AdversarialTrainer`](super::AdversarialTrainer): what a model
//! must offer for it ([`PenalizedCritic`]) and the term added to the discriminator's loss.

use candle_core::Tensor;

use crate::losses::{gradient_penalty, GradientPenalty};
use crate::{Result, RngStream};

/// A two-player model whose critic (discriminator) the adversarial trainer can penalize with
/// [`AdversarialTrainer::gradient_penalty`](super::AdversarialTrainer::gradient_penalty).
pub trait PenalizedCritic {
    /// The critic's output on samples `x (batch, *sample_shape)`, e.g. logits `(batch, 1)`.
    fn critic(&self, x: &Tensor) -> Result<Tensor>;
    /// `n` generated samples for the interpolates of WGAN-GP (treated as constants).
    fn fake_samples(&self, n: usize) -> Result<Tensor>;
    /// The stream that the interpolation coefficients are drawn from (the model's own, so
    /// they are saved in checkpoints and a resumed run draws what a straight run would).
    fn penalty_rng(&self) -> &RngStream;
}

/// A penalty of kind `kind`, times `weight`, added to the discriminator's loss.
pub(super) struct Penalty<M> {
    pub kind: GradientPenalty,
    pub weight: f64,
    /// `kind`'s unweighted value for the model and a real batch (a function pointer fixed
    /// where `M: PenalizedCritic` is known, so the trainer needs no such bound elsewhere).
    pub compute: fn(&M, GradientPenalty, &Tensor) -> Result<Tensor>,
}

/// The unweighted penalty of `kind` for `model` on `real`: WGAN-GP draws as many fake
/// samples as real ones, R1 looks at `real` only.
pub(super) fn penalty_of<M: PenalizedCritic>(
    model: &M,
    kind: GradientPenalty,
    real: &Tensor,
) -> Result<Tensor> {
    let fake = match kind {
        GradientPenalty::WganGp => model.fake_samples(real.dim(0)?)?.detach(),
        GradientPenalty::R1 => real.clone(),
    };
    gradient_penalty(kind, |x| model.critic(x), real, &fake, model.penalty_rng())
}

/// The metric name of the unweighted penalty of `kind`.
pub(super) fn metric_name(kind: GradientPenalty) -> &'static str {
    match kind {
        GradientPenalty::WganGp => "gp",
        GradientPenalty::R1 => "r1",
    }
}
