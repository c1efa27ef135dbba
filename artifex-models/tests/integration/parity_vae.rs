//! The seed's CustomVAE, ported, loads Flax NNX state with no renaming and matches its outputs.

use crate::common;

use artifex_core::prelude::*;
use artifex_models::CustomVAE;
use common::fixture::{assert_close, Fixture};

fn vae_from(fx: &Fixture) -> CustomVAE {
    let mut vae = CustomVAE::new(
        fx.usizes("input_shape"),
        fx.usize("latent_dim"),
        fx.usizes("encoder_layers"),
        fx.usizes("decoder_layers"),
        &mut Rngs::new(0),
    )
    .expect("build");
    let report = fx.load_state(&mut vae);
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.loaded.len(),
        30,
        "every NNX Param and BatchStat loaded"
    );
    vae
}

#[test]
fn eval_mode_matches_nnx() -> Result<()> {
    let fx = Fixture::open("custom_vae");
    let mut vae = vae_from(&fx);
    vae.eval();
    let (mean, logvar) = vae.encode(fx.get("input"))?;
    assert_close(&mean, fx.get("enc_eval.mean"), 1e-5, "encode mean (eval)");
    assert_close(
        &logvar,
        fx.get("enc_eval.logvar"),
        1e-5,
        "encode logvar (eval)",
    );
    assert_close(
        &vae.decode(fx.get("z"))?,
        fx.get("dec_eval"),
        1e-5,
        "decode (eval)",
    );
    Ok(())
}

#[test]
fn train_mode_with_batch_norm_matches_nnx_including_running_stats() -> Result<()> {
    let fx = Fixture::open("custom_vae");
    let vae = vae_from(&fx);
    let (mean, logvar) = vae.encode(fx.get("input"))?;
    assert_close(&mean, fx.get("enc_train.mean"), 1e-5, "encode mean (train)");
    assert_close(
        &logvar,
        fx.get("enc_train.logvar"),
        1e-5,
        "encode logvar (train)",
    );
    for (path, var) in vae.state() {
        if var.kind() == StateKind::BatchStat {
            assert_close(
                &var.to_tensor()?,
                fx.get(&format!("after_train.{path}")),
                1e-5,
                &path,
            );
        }
    }
    let vae = vae_from(&fx);
    assert_close(
        &vae.decode(fx.get("z"))?,
        fx.get("dec_train"),
        1e-5,
        "decode (train)",
    );
    for (path, var) in vae.state() {
        if var.kind() == StateKind::BatchStat {
            assert_close(
                &var.to_tensor()?,
                fx.get(&format!("after_train_dec.{path}")),
                1e-5,
                &path,
            );
        }
    }
    Ok(())
}
