//! Activations against f64 formulas written out here (values and gradients), jax's kink
//! gradients, numerical stability, and the serde form of `Activation`.

use artifex_core::activation::{self, Activation};
use artifex_core::prelude::*;

/// erf by composite Simpson integration of `2/sqrt(pi) exp(-t^2)` (independent of candle's).
fn erf(x: f64) -> f64 {
    let n = 4000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

type Reference = fn(f64) -> f64;

fn references() -> Vec<(&'static str, Activation, Reference)> {
    vec![
        ("relu", Activation::Relu, |x| x.max(0.0)),
        ("leaky_relu", Activation::LeakyRelu { slope: 0.2 }, |x| {
            if x >= 0.0 {
                x
            } else {
                0.2 * x
            }
        }),
        ("elu", Activation::Elu { alpha: 1.5 }, |x| {
            if x > 0.0 {
                x
            } else {
                1.5 * x.exp_m1()
            }
        }),
        ("gelu", Activation::Gelu, |x| {
            0.5 * x * (1.0 + erf(x / 2f64.sqrt()))
        }),
        ("gelu_tanh", Activation::GeluTanh, |x| {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }),
        ("silu", Activation::Silu, |x| x * sigmoid(x)),
        ("sigmoid", Activation::Sigmoid, sigmoid),
        ("tanh", Activation::Tanh, f64::tanh),
        ("softplus", Activation::Softplus, |x| {
            x.max(0.0) + (-x.abs()).exp().ln_1p()
        }),
    ]
}

fn inputs() -> Vec<f64> {
    let mut v = vec![
        -30.0, -12.0, -5.0, -3.0, -1.0, -0.5, -1e-2, -1e-3, -1e-5, 1e-5, 1e-3, 1e-2, 0.5, 1.0, 2.5,
        5.0, 12.0, 30.0,
    ];
    v.extend((0..40).map(|i| -4.0 + 0.2 * i as f64 + 0.013));
    v
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("host")
}

fn check(what: &str, got: &[f64], want: &[f64], xs: &[f64], rtol: f64, atol: f64) {
    for ((g, w), x) in got.iter().zip(want).zip(xs) {
        assert!(
            g.is_finite() && (g - w).abs() <= atol + rtol * w.abs(),
            "{what} at x = {x}: got {g}, want {w}"
        );
    }
}

#[test]
fn values_match_f64_formulas_in_f32() -> Result<()> {
    let xs = inputs();
    let x = Tensor::new(
        xs.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        &Device::Cpu,
    )?;
    for (name, act, reference) in references() {
        let got = host(&act.apply(&x)?);
        // Reference at the f32-rounded inputs.
        let want: Vec<f64> = xs.iter().map(|&v| reference(v as f32 as f64)).collect();
        // The exact GELU is 0.5 x (1 + erf): absolute, not relative, accuracy in the far
        // negative tail (documented).
        let atol = if name == "gelu" { 5e-7 } else { 1e-7 };
        check(name, &got, &want, &xs, 2e-6, atol);
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_f64() -> Result<()> {
    let xs: Vec<f64> = inputs().into_iter().filter(|x| x.abs() > 1e-4).collect();
    for (name, act, reference) in references() {
        let var = candle_core::Var::new(xs.as_slice(), &Device::Cpu)?;
        let y = act.apply(var.as_tensor())?;
        let grads = y.sum_all()?.backward()?;
        let got = host(grads.get(var.as_tensor()).expect("grad"));
        let h = 1e-6;
        let want: Vec<f64> = xs
            .iter()
            .map(|&x| (reference(x + h) - reference(x - h)) / (2.0 * h))
            .collect();
        check(&format!("d{name}"), &got, &want, &xs, 1e-6, 1e-8);
    }
    Ok(())
}

#[test]
fn kink_gradients_follow_jax() -> Result<()> {
    let grad_at_zero = |act: Activation| -> Result<f64> {
        let var = candle_core::Var::new(&[0f64], &Device::Cpu)?;
        let grads = act.apply(var.as_tensor())?.sum_all()?.backward()?;
        Ok(host(grads.get(var.as_tensor()).expect("grad"))[0])
    };
    assert_eq!(grad_at_zero(Activation::Relu)?, 0.0);
    assert_eq!(grad_at_zero(Activation::LeakyRelu { slope: 0.1 })?, 1.0);
    assert_eq!(grad_at_zero(Activation::Elu { alpha: 2.0 })?, 2.0);
    assert_eq!(grad_at_zero(Activation::Softplus)?, 0.5);
    Ok(())
}

#[test]
fn softplus_and_elu_are_precise_at_the_extremes() -> Result<()> {
    let x = Tensor::new(&[-80f32, -30.0, 80.0, 1e30, -1e30], &Device::Cpu)?;
    let y = host(&activation::softplus(&x)?);
    let want = [(-80f64).exp(), (-30f64).exp(), 80.0, 1e30, 0.0];
    check(
        "softplus",
        &y,
        &want,
        &[-80.0, -30.0, 80.0, 1e30, -1e30],
        1e-6,
        0.0,
    );
    let x64 = Tensor::new(&[-700f64, -40.0], &Device::Cpu)?;
    let y = host(&activation::softplus(&x64)?);
    check(
        "softplus f64",
        &y,
        &[(-700f64).exp(), (-40f64).exp()],
        &[-700.0, -40.0],
        1e-12,
        0.0,
    );
    // Gradients stay finite far out.
    let var = candle_core::Var::new(&[-1e4f32, 1e4], &Device::Cpu)?;
    let g = activation::softplus(var.as_tensor())?
        .sum_all()?
        .backward()?;
    assert_eq!(host(g.get(var.as_tensor()).expect("grad")), [0.0, 1.0]);
    // expm1 keeps relative precision for tiny negative inputs.
    let small = [-1e-4f32, -1e-6, -3e-8];
    let y = host(&activation::elu(&Tensor::new(&small, &Device::Cpu)?, 1.0)?);
    let want: Vec<f64> = small.iter().map(|&v| (v as f64).exp_m1()).collect();
    check("elu", &y, &want, &[-1e-4, -1e-6, -3e-8], 1e-6, 0.0);
    Ok(())
}

#[test]
fn softmax_and_log_softmax_are_stable_along_any_axis() -> Result<()> {
    let rows = [[1000f32, 999.0, -1000.0], [0.5, -0.25, 3.0]];
    let x = Tensor::new(&rows, &Device::Cpu)?;
    for axis in [-1isize, 1] {
        let p = host(&activation::softmax(&x, axis)?);
        let lp = host(&activation::log_softmax(&x, axis)?);
        for (r, row) in rows.iter().enumerate() {
            let m = row.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            for (c, &v) in row.iter().enumerate() {
                let want_lp = v as f64 - lse;
                let i = r * 3 + c;
                assert!(
                    (lp[i] - want_lp).abs() <= 1e-5 * want_lp.abs().max(1.0),
                    "{lp:?}"
                );
                assert!((p[i] - want_lp.exp()).abs() <= 1e-6, "{p:?}");
            }
        }
    }
    // Axis 0 normalizes columns.
    let p0 = activation::softmax(&x, 0)?.sum(0)?;
    assert!(host(&p0).iter().all(|s| (s - 1.0).abs() < 1e-6));
    let err = activation::softmax(&x, 2).unwrap_err().to_string();
    assert!(err.contains("softmax") && err.contains("[2, 3]"), "{err}");
    assert!(activation::log_softmax(&x, -3).is_err());
    Ok(())
}

#[test]
fn activation_serializes_in_snake_case_and_applies() -> Result<()> {
    let all = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu { slope: 0.2 },
        Activation::Elu { alpha: 0.5 },
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softplus,
        Activation::Softmax { axis: 0 },
        Activation::LogSoftmax { axis: -1 },
    ];
    for act in all {
        let json = serde_json::to_string(&act).expect("serialize");
        let back: Activation = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, act, "{json}");
    }
    assert_eq!(
        serde_json::to_string(&Activation::Relu).expect("json"),
        r#""relu""#
    );
    assert_eq!(
        serde_json::to_string(&Activation::LeakyRelu { slope: 0.2 }).expect("json"),
        r#"{"leaky_relu":{"slope":0.2}}"#
    );
    let parse = |s: &str| serde_json::from_str::<Activation>(s).expect("parse");
    assert_eq!(parse(r#""swish""#), Activation::Silu);
    assert_eq!(parse(r#"{"leaky_relu":{}}"#), Activation::leaky_relu());
    assert_eq!(parse(r#"{"elu":{}}"#), Activation::Elu { alpha: 1.0 });
    assert_eq!(parse(r#"{"softmax":{}}"#), Activation::softmax());
    assert!(serde_json::from_str::<Activation>(r#""mish""#).is_err());

    let x = Tensor::new(&[[-1f32, 0.5, 2.0]], &Device::Cpu)?;
    assert_eq!(host(&Activation::Identity.apply(&x)?), host(&x));
    assert_eq!(
        host(&Activation::Softmax { axis: -1 }.apply(&x)?),
        host(&activation::softmax(&x, -1)?)
    );
    assert_eq!(host(&Activation::Tanh.apply(&x)?), host(&x.tanh()?));
    use candle_core::Module as _;
    assert_eq!(host(&Activation::Relu.forward(&x)?), [0.0, 0.5, 2.0]);
    Ok(())
}
