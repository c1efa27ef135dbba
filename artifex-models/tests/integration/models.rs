//! Every seed model: shapes, train/eval behaviour, checkpoint round trip, and one optimizer
//! step that lowers its loss on a fixed batch.

use crate::common;

use artifex_core::optim::{Adam, Optimizer};
use artifex_core::prelude::*;
use artifex_core::{Configurable, RngKey};
use artifex_models::*;
use common::{bits, state_bytes};

fn input(shape: &[usize], seed: u64) -> Tensor {
    RngKey::from_seed(seed)
        .uniform(shape, 0.0, 1.0, DType::F32, &Device::Cpu)
        .expect("input")
}

fn batch_stats<M: Module>(m: &M) -> Vec<Vec<u32>> {
    m.state()
        .into_iter()
        .filter(|(_, v)| v.kind() == StateKind::BatchStat)
        .map(|(_, v)| bits(&v.to_tensor().expect("tensor")))
        .collect()
}

/// The shared checks; `loss` must be deterministic for a given state.
fn check<M: Configurable>(
    name: &str,
    build: impl Fn(u64) -> M,
    loss: impl Fn(&M) -> Result<Tensor>,
) {
    check_with(name, true, build, loss)
}

/// `updates_stats`: whether `loss` runs through layers with batch statistics.
fn check_with<M: Configurable>(
    name: &str,
    updates_stats: bool,
    build: impl Fn(u64) -> M,
    loss: impl Fn(&M) -> Result<Tensor>,
) {
    let dir = std::env::temp_dir().join(format!("artifex-models-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    // Train mode updates batch statistics (if any); eval mode leaves them alone.
    let mut model = build(0);
    let stats0 = batch_stats(&model);
    loss(&model).expect("train-mode loss");
    if updates_stats && !stats0.is_empty() {
        assert_ne!(
            stats0,
            batch_stats(&model),
            "{name}: train mode updates batch stats"
        );
    }
    model.eval();
    let stats1 = batch_stats(&model);
    let eval_loss = loss(&model).expect("eval-mode loss");
    assert_eq!(
        stats1,
        batch_stats(&model),
        "{name}: eval mode keeps batch stats"
    );

    // Checkpoint round trip (with its config): bitwise state and eval outputs.
    let path = dir.join("model.safetensors");
    model.save_checkpoint(&path).expect("save");
    let mut reloaded = M::from_checkpoint(&path).expect("from_checkpoint");
    reloaded.eval();
    assert_eq!(
        state_bytes(&reloaded),
        state_bytes(&model),
        "{name}: state round trip"
    );
    assert_eq!(
        bits(&loss(&reloaded).expect("loss")),
        bits(&eval_loss),
        "{name}: same outputs"
    );

    // One optimizer step lowers the (train-mode) loss on the same batch.
    let model = build(1);
    let mut opt = Adam::new(model.named_params(), 1e-3).expect("adam");
    let before = loss(&model).expect("loss");
    opt.backward_step(&before).expect("step");
    let after = loss(&model).expect("loss");
    let (b, a) = (
        before.to_scalar::<f32>().expect("f32"),
        after.to_scalar::<f32>().expect("f32"),
    );
    assert!(a < b, "{name}: loss {b} -> {a} after one step");
    let _ = std::fs::remove_dir_all(dir);
}

fn mse_to(y: &Tensor, target: &Tensor) -> Result<Tensor> {
    artifex_core::losses::mse(y, target)
}

#[test]
fn custom_linear() {
    let x = input(&[8, 12], 1);
    let model = CustomLinear::new(12, 5, &mut Rngs::new(0)).expect("build");
    assert_eq!(model.forward(&x).expect("forward").dims(), &[8, 5]);
    let no_bias = CustomLinear::builder(12, 5)
        .use_bias(false)
        .build(&mut Rngs::new(0))
        .expect("build");
    assert_eq!(no_bias.state().len(), 1);
    let target = input(&[8, 5], 2);
    let models: Vec<CustomLinear> = (0..2)
        .map(|s| CustomLinear::new(12, 5, &mut Rngs::new(s)).expect("build"))
        .collect();
    let before = mse_to(&models[0].forward(&x).expect("f"), &target).expect("loss");
    let mut opt = Adam::new(models[0].named_params(), 1e-2).expect("adam");
    opt.backward_step(&before).expect("step");
    let after = mse_to(&models[0].forward(&x).expect("f"), &target).expect("loss");
    assert!(after.to_scalar::<f32>().expect("f") < before.to_scalar::<f32>().expect("f"));
}

#[test]
fn custom_vae() {
    let x = input(&[16, 28, 28, 1], 3);
    let build = |seed| {
        CustomVAE::new(
            vec![28, 28, 1],
            8,
            vec![64, 32],
            vec![32, 64],
            &mut Rngs::new(seed),
        )
        .expect("build")
    };
    let out = build(0).forward(&x).expect("forward");
    assert_eq!(out.reconstruction.dims(), &[16, 28, 28, 1]);
    assert_eq!(
        (out.mean.dims(), out.logvar.dims(), out.latent.dims()),
        (&[16, 8][..], &[16, 8][..], &[16, 8][..])
    );
    let samples = build(0).sample(5, &mut Rngs::new(1)).expect("sample");
    assert_eq!(samples.dims(), &[5, 28, 28, 1]);
    let no_bn = CustomVAE::builder(vec![28, 28, 1], 8, vec![64], vec![64])
        .use_batch_norm(false)
        .build(&mut Rngs::new(0))
        .expect("build");
    assert!(no_bn
        .state()
        .iter()
        .all(|(_, v)| v.kind() != StateKind::BatchStat));
    // Deterministic objective: decode the mean (no sampling noise) + KL.
    check("custom_vae", build, |m| {
        let (mean, logvar) = m.encode(&x)?;
        let recon = m.decode(&mean)?;
        Ok((mse_to(&recon, &x)? + artifex_core::losses::gaussian_kl(&mean, &logvar)?)?)
    });
    let err = CustomVAE::new(vec![28, 28, 1], 8, vec![], vec![32], &mut Rngs::new(0))
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("encoder_layers and decoder_layers need at least one width"),
        "{err}"
    );
}

#[test]
fn my_custom_generative_model() {
    let x = input(&[4, 28, 28, 1], 4);
    let model = MyCustomGenerativeModel::new(GenerativeConfig::default(), &mut Rngs::new(0))
        .expect("build");
    let out = GenerativeModel::forward(&model, &x).expect("forward");
    assert_eq!(
        out.tensor("reconstruction").expect("recon").dims(),
        &[4, 28, 28, 1]
    );
    assert_eq!(out.tensor("latent").expect("latent").dims(), &[4, 20]);
    let metrics = out.scalar_metrics().expect("metrics");
    assert!(["loss", "reconstruction_loss", "kl_loss"]
        .iter()
        .all(|k| metrics[*k].is_finite()));
    let err = model.sample(2, &mut Rngs::empty()).unwrap_err().to_string();
    assert!(err.contains("no rng stream named `sample`"), "{err}");
    let small = GenerativeConfig {
        latent_dim: 4,
        input_shape: vec![28, 28, 1],
    };
    check(
        "my_custom_generative_model",
        |s| MyCustomGenerativeModel::new(small.clone(), &mut Rngs::new(s)).expect("build"),
        |m| {
            let (mean, logvar) = m.encoder.encode(&x)?;
            Ok((mse_to(&m.encoder.decode(&mean)?, &x)?
                + artifex_core::losses::gaussian_kl(&mean, &logvar)?)?)
        },
    );
}

#[test]
fn residual_block() {
    let x = input(&[2, 9, 7, 4], 5);
    let down = ResidualBlock::builder(4)
        .stride(2)
        .downsample(true)
        .build(&mut Rngs::new(0))
        .expect("build");
    assert_eq!(down.forward(&x).expect("forward").dims(), &[2, 5, 4, 4]);
    let err = ResidualBlock::builder(4)
        .stride(2)
        .build(&mut Rngs::new(0))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("set downsample = true"), "{err}");
    let target = input(&[2, 9, 7, 4], 6);
    check(
        "residual_block",
        |s| ResidualBlock::new(4, &mut Rngs::new(s)).expect("build"),
        |m| mse_to(&m.forward(&x)?, &target),
    );
}

#[test]
fn residual_network() {
    let x = input(&[6, 10], 7);
    let net = ResidualNetwork::new(10, 16, 3, &mut Rngs::new(0)).expect("build");
    assert_eq!(net.forward(&x).expect("forward").dims(), &[6, 10]);
    assert!(net.state().iter().any(|(p, _)| p == "blocks.2.3.scale"));
    let target = input(&[6, 10], 8);
    check(
        "residual_network",
        |s| ResidualNetwork::new(10, 16, 2, &mut Rngs::new(s)).expect("build"),
        |m| mse_to(&m.forward(&x)?, &target),
    );
}

#[test]
fn unet_encoder_and_decoder() {
    let x = input(&[2, 16, 16, 3], 9);
    let encoder = UNetEncoder::new(vec![3, 8, 16], &mut Rngs::new(0)).expect("build");
    let (encoded, skips) = encoder.forward(&x).expect("encode");
    assert_eq!(encoded.dims(), &[2, 4, 4, 16]);
    assert_eq!(
        skips.iter().map(|s| s.dims()[3]).collect::<Vec<_>>(),
        [3, 8]
    );
    let decoder = UNetDecoder::new(vec![16, 8, 4], vec![3, 8], &mut Rngs::new(1)).expect("build");
    let decoded = decoder.forward(&encoded, &skips).expect("decode");
    // 4x4x16 -> 8x8x8 (+8 skip) -> 16x16x4 (+3 skip).
    assert_eq!(decoded.dims(), &[2, 16, 16, 7]);
    let target = input(&[2, 4, 4, 16], 10);
    check(
        "unet_encoder",
        |s| UNetEncoder::new(vec![3, 8, 16], &mut Rngs::new(s)).expect("build"),
        |m| mse_to(&m.forward(&x)?.0, &target),
    );
    let target = input(&[2, 16, 16, 7], 11);
    check(
        "unet_decoder",
        |s| UNetDecoder::new(vec![16, 8, 4], vec![3, 8], &mut Rngs::new(s)).expect("build"),
        |m| mse_to(&m.forward(&encoded, &skips)?, &target),
    );
}

#[test]
fn dense_block() {
    let x = input(&[2, 6, 5, 4], 12);
    let block = DenseBlock::new(4, 3, 3, &mut Rngs::new(0)).expect("build");
    assert_eq!(
        block.forward(&x).expect("forward").dims(),
        &[2, 6, 5, 4 + 3 * 3]
    );
    let target = input(&[2, 6, 5, 13], 13);
    check(
        "dense_block",
        |s| DenseBlock::new(4, 3, 3, &mut Rngs::new(s)).expect("build"),
        |m| mse_to(&m.forward(&x)?, &target),
    );
}

#[test]
fn gan_pair() {
    let real = input(&[8, 4, 4, 1], 14).affine(2.0, -1.0).expect("real");
    let gan = Gan::new(
        6,
        vec![4, 4, 1],
        vec![8, 12, 16],
        vec![16, 8],
        &mut Rngs::new(0),
    )
    .expect("build");
    assert!(gan.generator.attention.is_some());
    assert!(
        gan.state()
            .iter()
            .any(|(p, _)| p == "discriminator.layers.0.u"),
        "spectral norm vector is state"
    );
    let fake = gan.sample(3, &mut Rngs::new(1)).expect("sample");
    assert_eq!(fake.dims(), &[3, 4, 4, 1]);
    assert_eq!(gan.discriminator.forward(&fake).expect("d").dims(), &[3, 1]);
    let out = GenerativeModel::forward(&gan, &real).expect("forward");
    assert!(out.scalar_metrics().expect("m").contains_key("d_loss"));
    // The discriminator's objective, deterministic: fixed fake batch.
    let fixed_fake = gan.sample(8, &mut Rngs::new(2)).expect("fake").detach();
    check_with(
        "gan_discriminator",
        false,
        |s| {
            Gan::builder(6, vec![4, 4, 1], vec![8, 12, 16], vec![16, 8])
                .spectral_norm(false)
                .build(&mut Rngs::new(s))
                .expect("build")
        },
        |m| {
            artifex_core::losses::discriminator_loss(
                m.loss,
                &m.discriminator.forward(&real)?,
                &m.discriminator.forward(&fixed_fake)?,
            )
        },
    );
    let z = input(&[8, 6], 15);
    // Without spectral norm: its power iteration moves sigma on every train-mode call.
    check(
        "gan_generator",
        |s| {
            Gan::builder(6, vec![4, 4, 1], vec![8, 12, 16], vec![16, 8])
                .spectral_norm(false)
                .build(&mut Rngs::new(s))
                .expect("build")
        },
        |m| {
            artifex_core::losses::generator_loss(
                m.loss,
                &m.discriminator.forward(&m.generator.forward(&z)?)?,
            )
        },
    );
    assert_eq!(
        gan.generator_params().len() + gan.discriminator_params().len(),
        gan.named_params().len()
    );
}
