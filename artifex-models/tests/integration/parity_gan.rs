//! The seed's GAN pair, ported, loads Flax NNX state with no renaming and matches its outputs.

use crate::common;

use artifex_core::checkpoint::LoadOptions;
use artifex_core::prelude::*;
use artifex_models::{CustomDiscriminator, CustomGenerator};
use common::fixture::{assert_close, Fixture};

fn models(fx: &Fixture) -> (CustomGenerator, CustomDiscriminator) {
    let rngs = &mut Rngs::new(0);
    let mut generator =
        CustomGenerator::new(6, vec![4, 4, 1], vec![8, 12, 16], rngs).expect("generator");
    let mut discriminator = CustomDiscriminator::builder(vec![4, 4, 1], vec![16, 8])
        .spectral_norm(false)
        .build(rngs)
        .expect("discriminator");
    for (prefix, report) in [
        (
            "state.generator.",
            generator.load_safetensors_with(
                &fx.path,
                &LoadOptions::nnx().with_prefix("state.generator."),
            ),
        ),
        (
            "state.discriminator.",
            discriminator.load_safetensors_with(
                &fx.path,
                &LoadOptions::nnx().with_prefix("state.discriminator."),
            ),
        ),
    ] {
        let report = report.unwrap_or_else(|e| panic!("{prefix}: {e}"));
        assert!(report.is_clean(), "{prefix}: {report}");
    }
    (generator, discriminator)
}

#[test]
fn generator_and_discriminator_match_nnx_in_eval_and_train_mode() -> Result<()> {
    let fx = Fixture::open("gan");
    let (mut generator, mut discriminator) = models(&fx);
    generator.eval();
    discriminator.eval();
    let fake = generator.forward(fx.get("input"))?;
    assert_close(&fake, fx.get("gen_eval"), 1e-5, "generator (eval)");
    assert_close(
        &discriminator.forward(fx.get("gen_eval"))?,
        fx.get("disc_eval"),
        1e-5,
        "discriminator",
    );

    let (generator, _) = models(&fx);
    assert_close(
        &generator.forward(fx.get("input"))?,
        fx.get("gen_train"),
        1e-5,
        "generator (train)",
    );
    for (path, var) in generator.state() {
        if var.kind() == StateKind::BatchStat {
            assert_close(
                &var.to_tensor()?,
                fx.get(&format!("after_train.generator.{path}")),
                1e-5,
                &path,
            );
        }
    }
    Ok(())
}
