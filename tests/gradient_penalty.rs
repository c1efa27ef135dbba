//! WGAN-GP and R1 penalties of the seed's CustomDiscriminator against Flax NNX
//! (`python/make_gradient_penalty_fixtures.py`): values and gradients w.r.t. every
//! discriminator parameter, with and without spectral normalization; the penalty in the
//! adversarial trainer.

#[path = "../artifex-core/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use artifex_core::autodiff;
use artifex_core::checkpoint::LoadOptions;
use artifex_core::losses::{self, GanLoss, GradientPenalty};
use artifex_core::optim::Adam;
use artifex_core::prelude::*;
use artifex_core::train::{AdversarialTrainer, Scalars, TrainerConfig};
use artifex_core::RngKey;
use artifex_models::{CustomDiscriminator, Gan};
use common::fixture::assert_close;

fn fixture(name: &str) -> (PathBuf, HashMap<String, Tensor>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/fixtures/gradient_penalty/{name}.safetensors"
    ));
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture loads");
    (path, tensors)
}

fn discriminator(path: &PathBuf, spectral_norm: bool) -> CustomDiscriminator {
    let mut d = CustomDiscriminator::builder(vec![4, 4, 1], vec![16, 8])
        .spectral_norm(spectral_norm)
        .build(&mut Rngs::new(0))
        .expect("discriminator");
    let report = d
        .load_safetensors_with(path, &LoadOptions::nnx().with_prefix("state."))
        .expect("strict load of the NNX state");
    assert!(report.is_clean(), "{report}");
    // Eval mode: spectral norm uses the stored u (the top singular vector, see the script).
    d.eval();
    d
}

/// Checks `penalty` (a scalar tensor) and its gradient w.r.t. every parameter of `d` against
/// `name` and `grad.name.*`.
fn check(
    d: &CustomDiscriminator,
    fx: &HashMap<String, Tensor>,
    name: &str,
    penalty: &Tensor,
    case: &str,
) {
    assert_close(
        &penalty.reshape(1).expect("reshape"),
        &fx[name],
        1e-5,
        &format!("{case}: {name}"),
    );
    let params = d.named_params();
    let inputs: Vec<&Tensor> = params.iter().map(|(_, p)| p.value()).collect();
    let grads = autodiff::grad(penalty, &inputs).expect("gradient of the penalty");
    assert_eq!(
        params.len(),
        6,
        "{case}: three layers, kernel/weight and bias each"
    );
    for ((path, _), g) in params.iter().zip(&grads) {
        let key = format!("grad.{name}.{path}");
        let want = fx
            .get(&key)
            .unwrap_or_else(|| panic!("{case}: fixture lacks {key}"));
        assert_close(g, want, 1e-5, &format!("{case}: {key}"));
    }
}

#[test]
fn penalties_and_their_parameter_gradients_match_flax_nnx() -> Result<()> {
    autodiff::enable_higher_order()?;
    for (case, sn) in [("plain", false), ("spectral", true)] {
        let (path, fx) = fixture(case);
        let d = discriminator(&path, sn);
        let critic = |x: &Tensor| d.forward(x);
        let gp = losses::wgan_gp_penalty_at(critic, &fx["real"], &fx["fake"], &fx["eps"])?;
        check(&d, &fx, "wgan_gp", &gp, case);
        let r1 = losses::r1_penalty(critic, &fx["real"])?;
        check(&d, &fx, "r1", &r1, case);
    }
    Ok(())
}

#[test]
fn wgan_gp_draws_its_interpolation_from_the_stream() -> Result<()> {
    autodiff::enable_higher_order()?;
    let (path, fx) = fixture("plain");
    let d = discriminator(&path, false);
    let critic = |x: &Tensor| d.forward(x);
    let stream = RngStream::new(RngKey::from_seed(7));
    let gp = losses::wgan_gp_penalty(critic, &fx["real"], &fx["fake"], &stream)?;
    assert_eq!(stream.count(), 1, "one draw per call");
    // The same draw, given explicitly.
    let eps = RngKey::from_seed(7)
        .fold_in(0)
        .uniform(&[5], 0.0, 1.0, DType::F32, &Device::Cpu)?;
    let want = losses::wgan_gp_penalty_at(critic, &fx["real"], &fx["fake"], &eps)?;
    assert_eq!(gp.to_scalar::<f32>()?, want.to_scalar::<f32>()?);
    let again = losses::wgan_gp_penalty(critic, &fx["real"], &fx["fake"], &stream)?;
    assert_ne!(gp.to_scalar::<f32>()?, again.to_scalar::<f32>()?);
    let via_kind = losses::gradient_penalty(
        GradientPenalty::R1,
        critic,
        &fx["real"],
        &fx["fake"],
        &stream,
    )?;
    assert_close(&via_kind.reshape(1)?, &fx["r1"], 1e-5, "r1 via kind");
    Ok(())
}

#[test]
fn bad_shapes_name_both_shapes() -> Result<()> {
    autodiff::enable_higher_order()?;
    let (path, fx) = fixture("plain");
    let d = discriminator(&path, false);
    let critic = |x: &Tensor| d.forward(x);
    let short = fx["fake"].narrow(0, 0, 3)?;
    let err = losses::wgan_gp_penalty_at(critic, &fx["real"], &short, &fx["eps"])
        .expect_err("mismatched batches")
        .to_string();
    assert!(
        err.contains("[5, 4, 4, 1]") && err.contains("[3, 4, 4, 1]"),
        "{err}"
    );
    let eps = fx["eps"].narrow(0, 0, 2)?;
    let err = losses::wgan_gp_penalty_at(critic, &fx["real"], &fx["fake"], &eps)
        .expect_err("eps per sample")
        .to_string();
    assert!(err.contains("[5]") && err.contains("[2]"), "{err}");
    Ok(())
}

fn small_gan(seed: u64) -> Result<Gan> {
    Gan::builder(4, vec![2, 2, 1], vec![8, 8], vec![8])
        .use_attention(false)
        .spectral_norm(false)
        .loss(GanLoss::Wasserstein)
        .build(&mut Rngs::new(seed))
}

fn trainer_step(weight: f64, out: &str) -> Result<(Scalars, Vec<Tensor>)> {
    let gan = small_gan(3)?;
    let d_opt = Adam::new(gan.discriminator_params(), 1e-2)?;
    let g_opt = Adam::new(gan.generator_params(), 1e-2)?;
    let dir = std::env::temp_dir().join(format!("artifex-gp-{out}-{}", std::process::id()));
    let mut trainer = AdversarialTrainer::new(
        gan,
        d_opt,
        g_opt,
        TrainerConfig::new(1, &dir).overwrite(true),
        |m: &Gan, real: &Tensor| m.discriminator_loss(real),
        |m: &Gan, n| m.generator_loss(n),
    )
    .gradient_penalty(GradientPenalty::WganGp, weight);
    let real = RngKey::from_seed(11).uniform(&[6, 2, 2, 1], -1.0, 1.0, DType::F32, &Device::Cpu)?;
    let metrics = trainer.train_step(&[real])?;
    let d = trainer
        .model()
        .discriminator_params()
        .iter()
        .map(|(_, p)| p.value().copy())
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((metrics, d))
}

#[test]
fn the_trainer_adds_the_weighted_penalty_to_the_discriminator_loss() -> Result<()> {
    autodiff::enable_higher_order()?;
    let (with, d_with) = trainer_step(10.0, "w10")?;
    let (without, d_without) = trainer_step(0.0, "w0")?;
    let gp = with["gp"];
    assert!(gp.is_finite() && gp > 0.0, "{with:?}");
    assert_eq!(gp, without["gp"], "same draws, same critic before the step");
    // d_loss is the total objective: the adversarial part plus 10 gp.
    let adversarial = without["d_loss"];
    assert!(
        (with["d_loss"] - (adversarial + 10.0 * gp)).abs() < 1e-4 * (1.0 + with["d_loss"].abs()),
        "{with:?} vs {without:?}"
    );
    let moved = d_with.iter().zip(&d_without).any(|(a, b)| {
        (a - b)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .unwrap_or(0.0)
            > 0.0
    });
    assert!(moved, "the penalty's gradient changes the critic's update");
    Ok(())
}

#[test]
fn generator_every_skips_generator_updates() -> Result<()> {
    autodiff::enable_higher_order()?;
    let gan = small_gan(4)?;
    let d_opt = Adam::new(gan.discriminator_params(), 1e-2)?;
    let g_opt = Adam::new(gan.generator_params(), 1e-2)?;
    let dir = std::env::temp_dir().join(format!("artifex-gp-every-{}", std::process::id()));
    let mut trainer = AdversarialTrainer::new(
        gan,
        d_opt,
        g_opt,
        TrainerConfig::new(4, &dir).overwrite(true),
        |m: &Gan, real: &Tensor| m.discriminator_loss(real),
        |m: &Gan, n| m.generator_loss(n),
    )
    .generator_every(2);
    let real = RngKey::from_seed(12).uniform(&[6, 2, 2, 1], -1.0, 1.0, DType::F32, &Device::Cpu)?;
    let first = trainer.train_step(std::slice::from_ref(&real))?;
    let second = trainer.train_step(&[real])?;
    assert!(
        !first.contains_key("g_loss") && first.contains_key("d_loss"),
        "{first:?}"
    );
    assert!(second.contains_key("g_loss"), "{second:?}");
    Ok(())
}

#[path = "../examples/custom_gan.rs"]
#[allow(dead_code)] // `run` (the non-saturating run) is tests/examples.rs's
mod custom_gan;

#[test]
fn custom_gan_example_trains_with_wgan_gp() -> Result<()> {
    autodiff::enable_higher_order()?;
    let out = std::env::temp_dir().join(format!("artifex-gp-example-{}", std::process::id()));
    let sizes = custom_gan::GanSizes {
        latent_dim: 8,
        generator_dims: vec![16, 32, 64],
        discriminator_dims: vec![32, 16],
    };
    let metrics = custom_gan::run_with(5, sizes, &out, custom_gan::Objective::WganGp, 10.0)?;
    // Step 5 updates the generator (every 5th step); the critic's penalty is logged.
    assert!(
        metrics["gp"].is_finite() && metrics["g_loss"].is_finite(),
        "{metrics:?}"
    );
    assert!(out.join("samples.png").is_file());
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

#[test]
fn a_penalized_run_stopped_and_resumed_matches_a_straight_run_bitwise() -> Result<()> {
    use artifex_core::data::{DataLoader, TensorDataset};
    autodiff::enable_higher_order()?;
    let run = |dir: &std::path::Path, steps: u64, resume: bool| -> Result<_> {
        let gan = small_gan(5)?;
        let d_opt = Adam::new(gan.discriminator_params(), 1e-2)?;
        let g_opt = Adam::new(gan.generator_params(), 1e-2)?;
        let config = TrainerConfig::new(steps, dir).checkpoint_every(6);
        let mut trainer = AdversarialTrainer::new(
            gan,
            d_opt,
            g_opt,
            config,
            |m: &Gan, real: &Tensor| m.discriminator_loss(real),
            |m: &Gan, n| m.generator_loss(n),
        )
        .gradient_penalty(GradientPenalty::WganGp, 10.0)
        .generator_every(2);
        let images =
            RngKey::from_seed(13).uniform(&[24, 2, 2, 1], -1.0, 1.0, DType::F32, &Device::Cpu)?;
        let mut data = DataLoader::new(TensorDataset::new(vec![images])?, 6)?
            .with_shuffle(Rngs::new(3).fork("data")?);
        if resume {
            assert_eq!(trainer.resume(&mut data)?, Some(6));
        }
        trainer.fit(&mut data, None)?;
        Ok(common::state_bytes(trainer.model()))
    };
    let straight = run(&common::fresh_dir("gp-straight"), 12, false)?;
    let dir = common::fresh_dir("gp-resumed");
    run(&dir, 6, false)?;
    assert_eq!(run(&dir, 12, true)?, straight);
    Ok(())
}
