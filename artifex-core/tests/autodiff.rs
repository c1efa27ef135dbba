//! Second derivatives through every layer of the seed's discriminator (Linear,
//! RegularizedLinear with spectral norm, leaky_relu, Dropout in eval mode) against central
//! finite differences in f64, and higher-order mode giving the same numbers with the fused
//! kernels switched on as off.
//!
//! The checked quantity is a gradient penalty's core: `S(θ) = ‖∇ₓ sum(c ⊙ f(x; θ))‖²`, whose
//! gradient with respect to the parameters θ is a second derivative of `f`.

use artifex_core::autodiff;
use artifex_core::candle_core::Var;
use artifex_core::layers::{Conv, RegularizedLinear};
use artifex_core::prelude::*;
use artifex_core::{BatchStat, RngKey};

fn normal(seed: u64, shape: &[usize], scale: f64, dtype: DType) -> Result<Tensor> {
    Ok((RngKey::from_seed(seed).normal(shape, dtype, &Device::Cpu)? * scale)?)
}

/// `‖∇ₓ sum(c ⊙ f(x))‖²`, with the graph of the gradient kept.
fn input_grad_sq_norm(
    f: &dyn Fn(&Tensor) -> Result<Tensor>,
    x: &Tensor,
    c: &Tensor,
) -> Result<Tensor> {
    let x = Var::from_tensor(&x.detach())?;
    let out = (f(x.as_tensor())? * c)?.sum_all()?;
    let g = autodiff::grad(&out, &[x.as_tensor()])?;
    Ok(g[0].sqr()?.sum_all()?)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1())
        .expect("values")
}

/// Compares `d s / d p` from [`autodiff::grad`] with central differences (step 1e-5) for
/// every element of every parameter; returns how many elements were compared.
fn check_against_finite_differences(
    params: &[&Param],
    s: &dyn Fn() -> Result<Tensor>,
    what: &str,
) -> Result<usize> {
    let inputs: Vec<&Tensor> = params.iter().map(|p| p.value()).collect();
    let analytic = autodiff::grad(&s()?, &inputs)?;
    let h = 1e-5;
    let mut compared = 0;
    let mut largest = 0.0f64;
    for (k, (p, a)) in params.iter().zip(&analytic).enumerate() {
        let original = p.value().copy()?;
        let base = values(&original);
        for (i, got) in values(a).into_iter().enumerate() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                p.set(&Tensor::from_vec(v, original.shape(), &Device::Cpu)?)?;
                Ok(s()?.to_scalar::<f64>()?)
            };
            let fd = (at(h)? - at(-h)?) / (2.0 * h);
            assert!(
                (fd - got).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{what}: parameter {k} element {i}: autodiff {got}, finite differences {fd}"
            );
            largest = largest.max(got.abs());
            compared += 1;
        }
        p.set(&original)?;
    }
    assert!(largest > 1e-3, "{what}: all second derivatives ~0");
    Ok(compared)
}

fn linear_f64(din: usize, dout: usize, seed: u64) -> Result<Linear> {
    let layer = Linear::builder(din, dout)
        .dtype(DType::F64)
        .build(&mut Rngs::new(seed))?;
    let bias = layer.bias.as_ref().expect("bias");
    bias.set(&normal(seed + 100, &[dout], 0.3, DType::F64)?)?;
    Ok(layer)
}

/// A spectrally normalized RegularizedLinear with f64 weight, bias and power-iteration vector.
fn spectral_f64(din: usize, dout: usize, seed: u64) -> Result<RegularizedLinear> {
    let mut layer = RegularizedLinear::builder(din, dout)
        .spectral_norm(true)
        .build(&mut Rngs::new(seed))?;
    layer.weight = Param::new(&normal(seed + 1, &[din, dout], 0.5, DType::F64)?)?;
    layer.bias = Param::new(&normal(seed + 2, &[dout], 0.3, DType::F64)?)?;
    layer.u = Some(BatchStat::new(&normal(
        seed + 3,
        &[dout],
        1.0,
        DType::F64,
    )?)?);
    // Eval mode: sigma = |W u| from the stored u (a training-mode call also updates u, and its
    // gradient holds the power iteration's vectors constant, as SN-GAN does).
    layer.eval();
    Ok(layer)
}

#[test]
fn linear_second_derivatives_match_finite_differences() -> Result<()> {
    autodiff::enable_higher_order()?;
    let layer = linear_f64(5, 3, 0)?;
    let x = normal(1, &[4, 5], 1.0, DType::F64)?;
    let c = normal(2, &[4, 3], 1.0, DType::F64)?;
    let s = || input_grad_sq_norm(&|x| layer.forward(x), &x, &c);
    let params: Vec<&Param> = vec![&layer.kernel, layer.bias.as_ref().expect("bias")];
    let n = check_against_finite_differences(&params, &s, "Linear")?;
    assert_eq!(n, 5 * 3 + 3);
    Ok(())
}

#[test]
fn spectral_norm_second_derivatives_match_finite_differences() -> Result<()> {
    autodiff::enable_higher_order()?;
    let layer = spectral_f64(6, 4, 10)?;
    let x = normal(11, &[3, 6], 1.0, DType::F64)?;
    let c = normal(12, &[3, 4], 1.0, DType::F64)?;
    let s = || input_grad_sq_norm(&|x| layer.forward(x), &x, &c);
    // Only the weight: the bias has no effect on an input gradient (its derivative is 0).
    check_against_finite_differences(&[&layer.weight], &s, "RegularizedLinear (spectral)")?;
    Ok(())
}

#[test]
fn leaky_relu_and_eval_dropout_second_derivatives_match_finite_differences() -> Result<()> {
    autodiff::enable_higher_order()?;
    // The seed discriminator's pattern: layer, leaky_relu(0.2), (dropout), layer.
    let first = spectral_f64(5, 6, 20)?;
    let second = linear_f64(6, 2, 21)?;
    let mut dropout = Dropout::new(0.5, &mut Rngs::new(22))?;
    dropout.eval();
    let f = |x: &Tensor| -> Result<Tensor> {
        let h = activation::leaky_relu(&first.forward(x)?, 0.2)?;
        second.forward(&dropout.forward(&h)?)
    };
    let x = normal(23, &[4, 5], 1.0, DType::F64)?;
    let c = normal(24, &[4, 2], 1.0, DType::F64)?;
    let s = || input_grad_sq_norm(&f, &x, &c);
    check_against_finite_differences(
        &[&first.weight, &second.kernel],
        &s,
        "RegularizedLinear -> leaky_relu -> Dropout (eval) -> Linear",
    )?;
    // Eval-mode dropout is the identity, also for the second derivative.
    let without = |x: &Tensor| -> Result<Tensor> {
        second.forward(&activation::leaky_relu(&first.forward(x)?, 0.2)?)
    };
    let with_grads = autodiff::grad(&s()?, &[first.weight.value()])?;
    let without_grads = autodiff::grad(
        &input_grad_sq_norm(&without, &x, &c)?,
        &[first.weight.value()],
    )?;
    assert_eq!(values(&with_grads[0]), values(&without_grads[0]));
    Ok(())
}

/// A small f32 model with a layer for each fused kernel: Conv, BatchNorm (eval), Linear, relu.
struct Fused {
    conv: Conv,
    bn: BatchNorm,
    linear: Linear,
}

impl Fused {
    fn new() -> Result<Self> {
        let rngs = &mut Rngs::new(30);
        let mut bn = BatchNorm::new(3, rngs)?;
        bn.eval();
        Ok(Self {
            conv: Conv::new(2, 3, vec![3, 3], rngs)?,
            bn,
            linear: Linear::new(3 * 4 * 4, 2, rngs)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = activation::relu(&self.bn.forward(&self.conv.forward(x)?)?)?;
        self.linear.forward(&h.flatten_from(1)?)
    }

    fn params(&self) -> Vec<&Param> {
        vec![
            &self.conv.kernel,
            self.conv.bias.as_ref().expect("bias"),
            &self.linear.kernel,
        ]
    }
}

fn fused_model_second_derivatives(fast: bool) -> Result<Vec<Vec<f64>>> {
    artifex_core::fast_paths::set_enabled(fast);
    let model = Fused::new()?;
    let x = normal(31, &[2, 4, 4, 2], 1.0, DType::F32)?;
    let c = normal(32, &[2, 2], 1.0, DType::F32)?;
    let s = input_grad_sq_norm(&|x| model.forward(x), &x, &c)?;
    let inputs: Vec<&Tensor> = model.params().iter().map(|p| p.value()).collect();
    let grads = autodiff::grad(&s, &inputs)?;
    artifex_core::fast_paths::set_enabled(true);
    Ok(grads.iter().map(values).collect())
}

#[test]
fn higher_order_mode_gives_the_same_numbers_with_fused_kernels_on_and_off() -> Result<()> {
    autodiff::enable_higher_order()?;
    let on = fused_model_second_derivatives(true)?;
    let off = fused_model_second_derivatives(false)?;
    assert_eq!(on, off, "bitwise equal: the plain ops run in both cases");
    assert!(
        on.iter().flatten().any(|v| v.abs() > 1e-3),
        "non-trivial second derivatives"
    );
    Ok(())
}

#[test]
fn grad_refuses_non_variables_and_non_scalars() -> Result<()> {
    autodiff::enable_higher_order()?;
    let x = Var::new(&[1.0f64, 2.0], &Device::Cpu)?;
    let y = x.as_tensor().sqr()?;
    let err = autodiff::grad(&y, &[x.as_tensor()]).expect_err("vector output");
    assert!(err.to_string().contains("[2]"), "{err}");
    let plain = Tensor::new(&[1.0f64, 2.0], &Device::Cpu)?;
    let err = autodiff::grad(&y.sum_all()?, &[x.as_tensor(), &plain]).expect_err("constant");
    assert!(
        err.to_string().contains("input 1") && err.to_string().contains("Var::from_tensor"),
        "{err}"
    );
    // An input the output does not depend on gets zeros.
    let other = Var::new(&[5.0f64], &Device::Cpu)?;
    let g = autodiff::grad(&y.sum_all()?, &[other.as_tensor()])?;
    assert_eq!(values(&g[0]), vec![0.0]);
    Ok(())
}
