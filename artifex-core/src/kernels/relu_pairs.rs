//! Tests of the fused layer + activation ops (`Linear` and `BatchNorm` with
//! `forward_activated(.., Relu)`, `Linear` with sigmoid): the same values and gradients as
//! the layer followed by the activation's op, and the plain ops' to float rounding.

use candle_core::{Device, Tensor, Var};

use crate::activation::Activation;
use crate::layers::{BatchNorm, Linear};
use crate::{Layer, Rngs};

/// `rows x cols` deterministic values in about [-2, 2], about a third of them negative
/// after a layer.
fn input(rows: usize, cols: usize, mul: usize) -> candle_core::Result<Var> {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * mul % 1009) as f32 - 404.0) / 252.0)
        .collect();
    Var::from_vec(v, (rows, cols), &Device::Cpu)
}

/// Output values and the gradients of `sum(out * w)` (a fixed weighting) with respect to
/// each of `wrt`, flattened.
fn run(out: &Tensor, wrt: &[&Tensor]) -> crate::Result<Vec<Vec<f32>>> {
    let w: Vec<f32> = (0..out.elem_count())
        .map(|i| (i % 7) as f32 - 3.0)
        .collect();
    let w = Tensor::from_vec(w, out.shape(), out.device())?;
    let grads = (out * w)?.sum_all()?.backward()?;
    let mut all = vec![out.flatten_all()?.to_vec1()?];
    for t in wrt {
        let g = grads.get(t).expect("a gradient for every input");
        all.push(g.flatten_all()?.to_vec1()?);
    }
    Ok(all)
}

fn close(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len(), "{what} [{i}]");
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u - v).abs() <= 1e-5 * (1.0 + v.abs()),
                "{what} [{i}]: {u} vs {v}"
            );
        }
    }
}

/// The plain ops' ReLU (`where(x > 0, x, 0)`, as `activation::relu` without kernels).
fn plain_relu(x: &Tensor) -> crate::Result<Tensor> {
    Ok(x.gt(0.0)?.where_cond(x, &x.zeros_like()?)?)
}

/// BatchNorm in training mode with plain ops: batch mean and biased variance
/// `E[x²] - E[x]²`.
fn plain_batch_norm(x: &Tensor, scale: &Tensor, bias: &Tensor, eps: f64) -> crate::Result<Tensor> {
    let mean = x.mean_keepdim(0)?;
    let var = (x.sqr()?.mean_keepdim(0)? - mean.sqr()?)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    let y = x.broadcast_sub(&mean)?.broadcast_mul(&inv)?;
    Ok(y.broadcast_mul(scale)?.broadcast_add(bias)?)
}

#[test]
fn linear_and_batch_norm_with_relu_match_the_separate_ops() -> crate::Result<()> {
    let mut masked = [(false, false); 2];
    for (rows, features, out) in [(7, 13, 5), (1, 3, 2), (50, 33, 70)] {
        let linear = Linear::new(features, out, &mut Rngs::new(3))?;
        let bn = BatchNorm::new(out, &mut Rngs::new(4))?;
        let x = input(rows, features, 7919)?;
        let h = input(rows, out, 104_729)?;
        let (kernel, bias) = (linear.kernel.value(), linear.bias.as_ref().expect("bias"));
        let (scale, shift) = (
            bn.scale.as_ref().expect("scale"),
            bn.bias.as_ref().expect("bias"),
        );
        let lin_wrt = [x.as_tensor(), kernel, bias.value()];
        let bn_wrt = [h.as_tensor(), scale.value(), shift.value()];
        let relu = Activation::Relu;
        let fused_lin = run(&linear.forward_activated(&x, &relu)?, &lin_wrt)?;
        let apart_lin = run(&relu.apply(&Layer::forward(&linear, &x)?)?, &lin_wrt)?;
        let plain_lin = x.matmul(kernel)?.broadcast_add(bias.value())?;
        let plain_lin = run(&plain_relu(&plain_lin)?, &lin_wrt)?;
        let fused_bn = run(&bn.forward_activated(&h, &relu)?, &bn_wrt)?;
        let apart_bn = run(&relu.apply(&Layer::forward(&bn, &h)?)?, &bn_wrt)?;
        let plain_bn = plain_batch_norm(&h, scale.value(), shift.value(), bn.epsilon)?;
        let plain_bn = run(&plain_relu(&plain_bn)?, &bn_wrt)?;
        let shape = format!("({rows}, {features}) -> {out}");
        // Fused pair against the fused layer and the ReLU kernel: the same operations.
        assert!(fused_lin == apart_lin, "Linear + ReLU {shape}");
        assert!(fused_bn == apart_bn, "BatchNorm + ReLU {shape}");
        // Against the plain ops.
        close(
            &fused_lin,
            &plain_lin,
            &format!("Linear + ReLU vs plain {shape}"),
        );
        close(
            &fused_bn,
            &plain_bn,
            &format!("BatchNorm + ReLU vs plain {shape}"),
        );
        let on = [fused_lin, fused_bn];
        for (seen, out) in masked.iter_mut().zip(&on) {
            seen.0 |= out[0].contains(&0.0);
            seen.1 |= out[0].iter().any(|&v| v > 0.0);
        }
    }
    // The ReLU zeroed some values and kept others, so the mask was exercised.
    assert_eq!(masked, [(true, true); 2]);
    Ok(())
}

/// Linear + sigmoid (the VAE's output layer) as one op: the same bits as the Linear op and
/// the sigmoid op apart, values and gradients, over more than one gemm block; and candle-nn's
/// formula on plain ops to float rounding.
#[test]
fn linear_with_sigmoid_matches_the_separate_ops() -> crate::Result<()> {
    for (rows, features, out) in [(7, 13, 5), (130, 200, 200)] {
        let linear = Linear::new(features, out, &mut Rngs::new(5))?;
        let x = input(rows, features, 7919)?;
        let (kernel, bias) = (linear.kernel.value(), linear.bias.as_ref().expect("bias"));
        let wrt = [x.as_tensor(), kernel, bias.value()];
        let sigmoid = Activation::Sigmoid;
        let fused = run(&linear.forward_activated(&x, &sigmoid)?, &wrt)?;
        let apart = run(&sigmoid.apply(&Layer::forward(&linear, &x)?)?, &wrt)?;
        let pre = x.matmul(kernel)?.broadcast_add(bias.value())?;
        let plain = run(&candle_nn::ops::sigmoid(&pre)?, &wrt)?;
        let shape = format!("({rows}, {features}) -> {out}");
        assert!(fused == apart, "Linear + sigmoid {shape}");
        close(
            &fused,
            &plain,
            &format!("Linear + sigmoid vs plain {shape}"),
        );
    }
    Ok(())
}

#[test]
fn other_activations_and_eval_mode_take_the_separate_ops() -> crate::Result<()> {
    let linear = Linear::new(4, 3, &mut Rngs::new(1))?;
    let mut bn = BatchNorm::new(3, &mut Rngs::new(2))?;
    let x = input(5, 4, 31)?;
    let tanh = Activation::Tanh;
    let a = linear.forward_activated(&x, &tanh)?;
    let b = tanh.apply(&Layer::forward(&linear, &x)?)?;
    assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    crate::Module::eval(&mut bn);
    let h = input(5, 3, 17)?;
    let a = bn.forward_activated(&h, &Activation::Relu)?;
    let b = Activation::Relu.apply(&Layer::forward(&bn, &h)?)?;
    assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    Ok(())
}
