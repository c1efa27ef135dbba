//! The fused CPU kernels (Linear + bias, BatchNorm, ReLU, Adam) against the plain candle-ops
//! path on random inputs: outputs,
//! gradients (input and every param) and running statistics, in train and eval mode; and one
//! whole CustomVAE training step. One test function, because the switch is process-wide.

use artifex_core::candle_core::Var;
use artifex_core::fast_paths;
use artifex_core::optim::{Adam, Optimizer};
use artifex_core::prelude::*;
use artifex_models::CustomVAE;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let d = max_diff(a, b);
    assert!(d <= tol, "{what}: max |fused - plain| = {d} > {tol}");
}

/// Output, d(sum(out * r))/d(x, params), and the state after, with the fast paths on or off.
fn batch_norm_run(
    fast: bool,
    train: bool,
    x: &Tensor,
    r: &Tensor,
    init: &[Tensor; 4],
) -> Vec<(String, Tensor)> {
    fast_paths::set_enabled(fast);
    let mut layer = BatchNorm::new(x.dim(1).unwrap(), &mut Rngs::new(0)).unwrap();
    layer.scale.as_ref().unwrap().set(&init[0]).unwrap();
    layer.bias.as_ref().unwrap().set(&init[1]).unwrap();
    // Non-trivial running statistics for eval mode.
    layer.mean.set(&init[2]).unwrap();
    layer.var.set(&init[3]).unwrap();
    if !train {
        layer.eval();
    }
    let xv = Var::from_tensor(x).unwrap();
    let y = layer.forward(xv.as_tensor()).unwrap();
    let y = activation::relu(&y).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![("y".to_string(), y.clone())];
    out.push(("dx".into(), grads.get(xv.as_tensor()).unwrap().clone()));
    for (name, p) in layer.named_params() {
        out.push((format!("d{name}"), grads.get(p.value()).unwrap().clone()));
    }
    out.push(("running_mean".into(), layer.mean.value()));
    out.push(("running_var".into(), layer.var.value()));
    fast_paths::set_enabled(true);
    out
}

/// (first loss, first gradients, state after three Adam steps).
type VaeRun = (f32, Vec<(String, Tensor)>, Vec<(String, Tensor)>);

fn vae_steps(fast: bool, x: &Tensor) -> VaeRun {
    fast_paths::set_enabled(fast);
    let model = CustomVAE::new(
        vec![28, 28, 1],
        20,
        vec![64, 32],
        vec![32, 64],
        &mut Rngs::new(3),
    )
    .unwrap();
    let mut opt = Adam::new(model.named_params(), 1e-3).unwrap();
    let out = GenerativeModel::forward(&model, x).unwrap();
    let loss = out.loss.to_scalar::<f32>().unwrap();
    let grads = out.loss.backward().unwrap();
    let first_grads = model
        .named_params()
        .into_iter()
        .map(|(k, p)| (k, grads.get(p.value()).unwrap().clone()))
        .collect();
    opt.step(&grads).unwrap();
    for _ in 0..2 {
        let out = GenerativeModel::forward(&model, x).unwrap();
        opt.backward_step(&out.loss).unwrap();
    }
    let state = model
        .state()
        .into_iter()
        .filter(|(_, v)| v.dtype() == DType::F32)
        .map(|(k, v)| (k, v.to_tensor().unwrap()))
        .collect();
    fast_paths::set_enabled(true);
    (loss, first_grads, state)
}

/// Linear: output and d(sum(out * r))/d(x, kernel, bias).
fn linear_run(fast: bool, x: &Tensor, r: &Tensor) -> Vec<Tensor> {
    fast_paths::set_enabled(fast);
    let layer = Linear::new(x.dim(1).unwrap(), r.dim(1).unwrap(), &mut Rngs::new(5)).unwrap();
    layer
        .bias
        .as_ref()
        .unwrap()
        .set(&Tensor::arange(0f32, r.dim(1).unwrap() as f32, &Device::Cpu).unwrap())
        .unwrap();
    let xv = Var::from_tensor(x).unwrap();
    let y = layer.forward(xv.as_tensor()).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![y, grads.get(xv.as_tensor()).unwrap().clone()];
    for (_, p) in layer.named_params() {
        out.push(grads.get(p.value()).unwrap().clone());
    }
    fast_paths::set_enabled(true);
    out
}

#[test]
fn fused_kernels_match_plain_ops() {
    let dev = Device::Cpu;
    for (rows, din, dout) in [(128, 96, 40), (3, 5, 7), (1, 1, 1)] {
        let x = Tensor::randn(0f32, 1.0, (rows, din), &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (rows, dout), &dev).unwrap();
        let fused = linear_run(true, &x, &r);
        let plain = linear_run(false, &x, &r);
        for (i, (a, b)) in fused.iter().zip(&plain).enumerate() {
            assert_close(
                a,
                b,
                1e-4 * (din as f32).sqrt(),
                &format!("linear {rows}x{din}x{dout} #{i}"),
            );
        }
    }
    for (rows, features) in [(128, 64), (7, 5), (1, 3)] {
        let x = (Tensor::randn(0f32, 2.0, (rows, features), &dev).unwrap() + 0.3).unwrap();
        let r = Tensor::randn(0f32, 1.0, (rows, features), &dev).unwrap();
        let init = [
            Tensor::rand(0.5f32, 1.5, features, &dev).unwrap(),
            Tensor::rand(-0.5f32, 0.5, features, &dev).unwrap(),
            Tensor::rand(-1f32, 1.0, features, &dev).unwrap(),
            Tensor::rand(0.5f32, 2.0, features, &dev).unwrap(),
        ];
        for train in [true, false] {
            let fused = batch_norm_run(true, train, &x, &r, &init);
            let plain = batch_norm_run(false, train, &x, &r, &init);
            for ((name, a), (_, b)) in fused.iter().zip(&plain) {
                let magnitude = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
                let tol = 1e-4 * magnitude.to_scalar::<f32>().unwrap().max(1.0);
                assert_close(
                    a,
                    b,
                    tol,
                    &format!("batch norm {rows}x{features} train={train} {name}"),
                );
            }
        }
    }
    let x = Tensor::rand(0f32, 1.0, (16, 28, 28, 1), &dev).unwrap();
    let (loss_fused, grads_fused, fused) = vae_steps(true, &x);
    let (loss_plain, grads_plain, plain) = vae_steps(false, &x);
    assert!((loss_fused - loss_plain).abs() <= 1e-5 * loss_plain.abs().max(1.0));
    for ((name, a), (_, b)) in grads_fused.iter().zip(&grads_plain) {
        let magnitude = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let tol = 1e-4 * magnitude.to_scalar::<f32>().unwrap().max(1e-3);
        assert_close(a, b, tol, &format!("CustomVAE gradient of {name}"));
    }
    // Adam divides by the gradient's magnitude, so a rounding-level difference in a
    // near-zero gradient can move a parameter by up to ~2 lr per step.
    assert_eq!(fused.len(), plain.len());
    for ((name, a), (_, b)) in fused.iter().zip(&plain) {
        assert_close(a, b, 6e-3, &format!("CustomVAE after 3 steps: {name}"));
    }
}
