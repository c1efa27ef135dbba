//! Compile-time shapes: the typed CustomVAE is its dynamic twin (parameters, outputs, a
//! training step, checkpoints, bit for bit), and typed convolutions chain by channels.

use crate::common;

use artifex_core::optim::{Adam, Optimizer};
use artifex_core::prelude::*;
use artifex_core::typed::{
    self, Build, Const, Conv2d, ConvBackend, ConvSpec, Dyn, Forward, Images, Relu, Same, Seq, Then,
    Valid,
};
use artifex_models::{CustomVAE, TypedVae};
use common::{batch, bits, state_bytes};

fn dynamic_vae(seed: u64) -> Result<CustomVAE> {
    CustomVAE::new(
        vec![28, 28, 1],
        20,
        vec![512, 256, 128],
        vec![128, 256, 512],
        &mut Rngs::new(seed),
    )
}

fn images(n: usize) -> Result<Tensor> {
    Ok(batch(n, 784).reshape((n, 28, 28, 1))?)
}

fn paths<M: Module>(m: &M) -> Vec<String> {
    m.state().into_iter().map(|(p, _)| p).collect()
}

#[test]
fn typed_vae_has_the_dynamic_state_bit_for_bit() -> Result<()> {
    let typed = TypedVae::new(&mut Rngs::new(7))?;
    let dynamic = dynamic_vae(7)?;
    assert_eq!(paths(&typed), paths(&dynamic));
    assert!(paths(&typed).contains(&"encoder.1.mean".to_string()));
    assert_eq!(state_bytes(&typed), state_bytes(&dynamic));
    assert_eq!(typed.num_params(), dynamic.num_params());
    Ok(())
}

#[test]
fn typed_encoder_matches_the_dynamic_one_bitwise() -> Result<()> {
    let mut typed = TypedVae::new(&mut Rngs::new(1))?;
    let mut dynamic = dynamic_vae(1)?;
    let x = images(16)?;
    let typed_x: typed::Tensor<(Dyn, Const<784>)> = typed::Tensor::new(x.flatten_from(1)?)?;
    for training in [true, false] {
        if training {
            typed.train();
            dynamic.train();
        } else {
            typed.eval();
            dynamic.eval();
        }
        let (mean, logvar) = typed.encode(&typed_x)?;
        let (dmean, dlogvar) = dynamic.encode(&x)?;
        assert_eq!(bits(&mean), bits(&dmean), "mean, training {training}");
        assert_eq!(bits(&logvar), bits(&dlogvar), "logvar, training {training}");
        // The running statistics moved identically.
        assert_eq!(state_bytes(&typed), state_bytes(&dynamic));
    }
    // The whole forward pass, reparameterization noise included.
    let out = typed.forward(&typed::Tensor::new(x.clone())?)?;
    let dout = dynamic.forward(&x)?;
    assert_eq!(bits(&out.latent), bits(&dout.latent));
    assert_eq!(bits(&out.reconstruction), bits(&dout.reconstruction));
    assert_eq!(out.reconstruction.dims(), &[16, 28, 28, 1]);
    Ok(())
}

/// The seed's loss on the encoder+decoder, one Adam step: same loss, same updated state.
#[test]
fn one_adam_step_trains_both_identically() -> Result<()> {
    let mut typed = TypedVae::new(&mut Rngs::new(3))?;
    let mut dynamic = dynamic_vae(3)?;
    typed.train();
    dynamic.train();
    let x = images(16)?;
    let mut typed_opt = Adam::new(typed.named_params(), 1e-3)?;
    let mut dynamic_opt = Adam::new(dynamic.named_params(), 1e-3)?;

    let loss = GenerativeModel::forward(&typed, &x)?.loss;
    let dloss = GenerativeModel::forward(&dynamic, &x)?.loss;
    assert_eq!(bits(&loss), bits(&dloss));
    typed_opt.step(&loss.backward()?)?;
    dynamic_opt.step(&dloss.backward()?)?;
    assert_eq!(state_bytes(&typed), state_bytes(&dynamic));

    let fresh = TypedVae::new(&mut Rngs::new(3))?;
    let kernel = |m: &TypedVae| bits(&m.mean_layer.as_dynamic().kernel);
    assert_ne!(
        kernel(&typed),
        kernel(&fresh),
        "the step moved the parameters"
    );
    assert_eq!(typed_opt.step_count(), 1);
    Ok(())
}

#[test]
fn checkpoints_load_into_the_twin_both_ways() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("artifex-typed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::config("test", e.to_string()))?;

    let mut typed = TypedVae::new(&mut Rngs::new(11))?;
    typed.train();
    typed.encode(&typed::Tensor::new(batch(8, 784))?)?; // move the running statistics
    typed.save_safetensors(dir.join("typed.safetensors"))?;
    let mut dynamic = dynamic_vae(12)?;
    let report = dynamic.load_safetensors(dir.join("typed.safetensors"))?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(state_bytes(&dynamic), state_bytes(&typed));

    let mut other = dynamic_vae(13)?;
    other.train();
    other.encode(&images(8)?)?;
    other.save_safetensors(dir.join("dynamic.safetensors"))?;
    let report = typed.load_safetensors(dir.join("dynamic.safetensors"))?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(state_bytes(&typed), state_bytes(&other));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn typed_inputs_are_checked_at_the_boundary() -> Result<()> {
    let vae = TypedVae::new(&mut Rngs::new(0))?;
    let err = GenerativeModel::forward(&vae, &batch(4, 784)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "typed tensor: expected input of shape [*, 28, 28, 1], got [4, 784]"
    );
    Ok(())
}

/// A channels-last convolution on candle's conv2d (stride 1 SAME or VALID), standing in for
/// the dynamic `layers::Conv` of the `layers` branch.
#[module]
#[derive(Debug)]
struct TestConv {
    #[param(init = lecun_normal, shape = [kernel, kernel, cin, cout])]
    kernel_param: Param,
    #[param(init = zeros, shape = [cout])]
    bias: Param,
    #[config]
    cin: usize,
    #[config]
    cout: usize,
    #[config]
    kernel: usize,
    #[config]
    stride: usize,
    #[config]
    same: bool,
}

impl ConvBackend for TestConv {
    fn build_conv(spec: &ConvSpec, rngs: &mut Rngs) -> Result<Self> {
        TestConv::new(
            spec.in_channels,
            spec.out_channels,
            spec.kernel,
            spec.stride,
            spec.same,
            rngs,
        )
    }

    fn channels(&self) -> (usize, usize) {
        (self.cin, self.cout)
    }

    fn forward_nhwc(&self, x: &Tensor) -> Result<Tensor> {
        let pad = if self.same { self.kernel / 2 } else { 0 };
        let w = self.kernel_param.permute((3, 2, 0, 1))?.contiguous()?;
        let y = x
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .conv2d(&w, pad, self.stride, 1, 1)?;
        Ok(y.permute((0, 2, 3, 1))?.broadcast_add(&self.bias)?)
    }
}

type Conv<const CI: usize, const CO: usize, G> = Conv2d<CI, CO, 3, G, TestConv>;

#[test]
fn typed_convolutions_chain_by_channels() -> Result<()> {
    let net = Seq::<(
        Then<Conv<1, 8, Same>, Relu>,
        typed::BatchNorm<8>,
        Conv<8, 4, Valid<2>>,
    )>::build(&mut Rngs::new(0))?;
    assert_eq!(
        paths(&net),
        [
            "0.kernel_param",
            "0.bias",
            "1.scale",
            "1.bias",
            "1.mean",
            "1.var",
            "2.kernel_param",
            "2.bias"
        ]
    );
    let x: typed::Tensor<Images<28, 28, 1>> = typed::Tensor::new(images(2)?)?;
    // SAME, stride 1 keeps 28 x 28 in the type; VALID stride 2 makes the axes `Dyn`.
    let h: typed::Tensor<(Dyn, Const<28>, Const<28>, Const<8>)> = net.layers.0.forward(&x)?;
    let y: typed::Tensor<(Dyn, Dyn, Dyn, Const<4>)> = net.forward(&x)?;
    assert_eq!(h.dims(), &[2, 28, 28, 8]);
    assert_eq!(y.dims(), &[2, 13, 13, 4]);
    // ... or the caller declares them, and a const assertion checks the declaration.
    let sized: typed::Tensor<(Dyn, Const<13>, Const<13>, Const<4>)> =
        net.layers.2.forward_sized(&net.layers.1.forward(&h)?)?;
    assert_eq!(bits(&sized), bits(&y));
    Ok(())
}

/// A backend whose geometry disagrees with the type is caught at its output, not trusted.
#[test]
fn conv_backend_output_is_checked_against_the_type() -> Result<()> {
    let valid = TestConv::new(1, 4, 3, 1, false, &mut Rngs::new(0))?;
    let conv = Conv::<1, 4, Same>::from_dynamic(valid)?;
    let x: typed::Tensor<Images<28, 28, 1>> = typed::Tensor::new(images(2)?)?;
    let err = conv.forward(&x).unwrap_err().to_string();
    assert_eq!(
        err,
        "typed Conv2d<1, 4, 3> (output of its ConvBackend): expected input of shape [*, 28, 28, 4], got [2, 26, 26, 4]"
    );
    let err = Conv::<2, 4, Same>::from_dynamic(TestConv::new(1, 4, 3, 1, true, &mut Rngs::new(0))?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("maps 1 channels to 4"), "{err}");
    Ok(())
}
