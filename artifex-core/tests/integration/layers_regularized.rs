//! The seed's RegularizedLinear: spectral normalization by persistent power iteration
//! (convergence to the largest singular value from a Jacobi eigen-solve of W^T W), its
//! gradient, the L2 penalty, state and errors.

use crate::naive;

use artifex_core::init::Initializer;
use artifex_core::prelude::*;
use naive::{assert_close, Arr};

/// Eigenvalues of the symmetric `n x n` matrix `a` by cyclic Jacobi rotations.
fn jacobi_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-28 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let eig: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    assert!((eig.iter().sum::<f64>() - trace).abs() < 1e-9 * trace.abs().max(1.0));
    eig
}

/// Largest singular value of a row-major `rows x cols` matrix.
fn sigma_max(w: &[f64], rows: usize, cols: usize) -> f64 {
    let mut wtw = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in 0..cols {
            wtw[i * cols + j] = (0..rows).map(|r| w[r * cols + i] * w[r * cols + j]).sum();
        }
    }
    jacobi_eigenvalues(wtw, cols)
        .into_iter()
        .fold(0.0, f64::max)
        .sqrt()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .and_then(|t| t.to_scalar::<f64>())
        .expect("scalar")
}

#[test]
fn jacobi_reference_is_right_on_a_known_matrix() {
    // [[3, 0], [4, 5]] has singular values sqrt(45) and sqrt(5).
    let s = sigma_max(&[3.0, 0.0, 4.0, 5.0], 2, 2);
    assert!((s - 45f64.sqrt()).abs() < 1e-12, "{s}");
}

#[test]
fn sigma_converges_to_the_largest_singular_value() -> Result<()> {
    for (din, dout, seed) in [(16, 8, 0u64), (6, 11, 1), (32, 32, 2)] {
        let mut layer = RegularizedLinear::builder(din, dout)
            .spectral_norm(true)
            .build(&mut Rngs::new(seed))?;
        let want = sigma_max(&Arr::from_tensor(&layer.weight).data, din, dout);
        let x = naive::tensor(&[4, din], seed);
        for _ in 0..300 {
            layer.forward(&x)?;
        }
        let got = scalar(&layer.sigma()?.expect("sigma"));
        assert!(
            ((got - want) / want).abs() < 1e-3,
            "{din}x{dout}: sigma {got}, largest singular value {want}"
        );
        // The normalized weight has spectral norm 1: read it back through the layer.
        layer.eval();
        let eye = Tensor::eye(din, DType::F32, &Device::Cpu)?;
        let w_sn = Arr::from_tensor(&layer.forward(&eye)?).data;
        let s = sigma_max(&w_sn, din, dout);
        assert!((s - 1.0).abs() < 1e-3, "normalized spectral norm {s}");
    }
    Ok(())
}

#[test]
fn u_updates_in_training_only_and_is_a_batch_stat() -> Result<()> {
    let mut layer = RegularizedLinear::builder(5, 4)
        .spectral_norm(true)
        .dropout_rate(0.2)
        .build(&mut Rngs::new(3))?;
    let kinds: Vec<(String, StateKind)> = layer
        .state()
        .into_iter()
        .map(|(p, v)| (p, v.kind()))
        .collect();
    let expect = [
        ("weight", StateKind::Param),
        ("bias", StateKind::Param),
        ("dropout.rngs.count", StateKind::RngCount),
        ("dropout.rngs.key", StateKind::RngKey),
        ("u", StateKind::BatchStat),
    ];
    let expect: Vec<(String, StateKind)> =
        expect.iter().map(|(p, k)| (p.to_string(), *k)).collect();
    assert_eq!(kinds, expect);
    assert_eq!(layer.num_params(), 5 * 4 + 4);

    let u = |l: &RegularizedLinear| Arr::from_tensor(&l.u.as_ref().expect("u").value()).data;
    let x = naive::tensor(&[3, 5], 4);
    let u0 = u(&layer);
    layer.forward_t(&x, Some(false))?;
    assert_eq!(u(&layer), u0, "no update with train = false");
    layer.forward(&x)?;
    let u1 = u(&layer);
    assert_ne!(u1, u0);
    assert!(
        (u1.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-5,
        "u is normalized"
    );
    layer.eval();
    let a = Arr::from_tensor(&layer.forward(&x)?).data;
    let b = Arr::from_tensor(&layer.forward(&x)?).data;
    assert_eq!(u(&layer), u1, "eval uses the stored u");
    assert_eq!(a, b, "eval is deterministic (no dropout)");
    Ok(())
}

#[test]
fn spectral_norm_gradient_holds_u_and_v_constant() -> Result<()> {
    let mut layer = RegularizedLinear::builder(4, 3)
        .spectral_norm(true)
        .build(&mut Rngs::new(5))?;
    layer.forward(&naive::tensor(&[2, 4], 1))?;
    layer.eval();
    let x = naive::tensor(&[5, 4], 6);
    let y = layer.forward(&x)?;
    let r = naive::tensor(&[5, 3], 7);
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let got = Arr::from_tensor(grads.get(&layer.weight).expect("grad")).data;

    // Host: sigma = v^T W u, v = normalize(W u); dL/dW = G / sigma - <G, W> / sigma^2 v u^T.
    let w = Arr::from_tensor(&layer.weight).data;
    let u = Arr::from_tensor(&layer.u.as_ref().expect("u").value()).data;
    let (xa, ra) = (Arr::from_tensor(&x).data, Arr::from_tensor(&r).data);
    let wu: Vec<f64> = (0..4)
        .map(|i| (0..3).map(|j| w[i * 3 + j] * u[j]).sum())
        .collect();
    let norm = (wu.iter().map(|v| v * v).sum::<f64>() + 1e-12).sqrt();
    let v: Vec<f64> = wu.iter().map(|x| x / norm).collect();
    let sigma: f64 = (0..4).map(|i| v[i] * wu[i]).sum();
    let g: Vec<f64> = (0..12)
        .map(|k| (0..5).map(|n| xa[n * 4 + k / 3] * ra[n * 3 + k % 3]).sum())
        .collect();
    let gw: f64 = g.iter().zip(&w).map(|(a, b)| a * b).sum();
    let want: Vec<f64> = (0..12)
        .map(|k| g[k] / sigma - gw / (sigma * sigma) * v[k / 3] * u[k % 3])
        .collect();
    assert_close("spectral-norm weight gradient", &got, &want, 1e-4, 1e-6);
    Ok(())
}

#[test]
fn regularization_loss_is_weight_decay_times_squared_norm() -> Result<()> {
    let layer = RegularizedLinear::builder(7, 3)
        .weight_decay(1e-2)
        .build(&mut Rngs::new(6))?;
    let w = Arr::from_tensor(&layer.weight).data;
    let want = 1e-2 * w.iter().map(|v| v * v).sum::<f64>();
    let loss = layer.regularization_loss()?;
    assert_eq!(loss.dims(), &[] as &[usize]);
    assert!((scalar(&loss) - want).abs() < 1e-6 * want);
    let grads = loss.backward()?;
    let g = Arr::from_tensor(grads.get(&layer.weight).expect("grad")).data;
    assert_close(
        "penalty gradient",
        &g,
        &w.iter().map(|v| 2e-2 * v).collect::<Vec<_>>(),
        1e-5,
        1e-9,
    );
    let plain = RegularizedLinear::new(7, 3, &mut Rngs::new(6))?;
    assert_eq!(scalar(&plain.regularization_loss()?), 0.0);
    Ok(())
}

#[test]
fn draws_follow_the_seed_and_dropout_is_optional() -> Result<()> {
    let layer = RegularizedLinear::builder(6, 4)
        .spectral_norm(true)
        .build(&mut Rngs::new(8))?;
    let rngs = &mut Rngs::new(8);
    let w = init::lecun_normal().init(rngs.params()?, &[6, 4], DType::F32, &Device::Cpu)?;
    let u = init::normal(1.0).init(rngs.params()?, &[4], DType::F32, &Device::Cpu)?;
    assert_eq!(
        Arr::from_tensor(&layer.weight).data,
        Arr::from_tensor(&w).data
    );
    assert_eq!(
        Arr::from_tensor(&layer.u.as_ref().expect("u").value()).data,
        Arr::from_tensor(&u).data
    );
    assert!(Arr::from_tensor(&layer.bias).data.iter().all(|&b| b == 0.0));
    assert!(layer.dropout.is_none());
    let paths: Vec<String> = RegularizedLinear::new(6, 4, &mut Rngs::new(0))?
        .state()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(paths, ["weight", "bias"]);

    // Without spectral norm the layer is x @ W + b.
    let plain = RegularizedLinear::new(6, 4, &mut Rngs::new(0))?;
    let x = naive::tensor(&[2, 3, 6], 1);
    let want = x.broadcast_matmul(&plain.weight)?;
    assert_eq!(
        Arr::from_tensor(&plain.forward(&x)?).data,
        Arr::from_tensor(&want).data
    );

    // Dropout in training mode only.
    let mut drop = RegularizedLinear::builder(6, 4)
        .dropout_rate(0.5)
        .build(&mut Rngs::new(0))?;
    let x = naive::tensor(&[8, 6], 2);
    let train = Arr::from_tensor(&drop.forward(&x)?).data;
    drop.eval();
    let eval = Arr::from_tensor(&drop.forward(&x)?).data;
    assert_ne!(train, eval);
    assert_eq!(eval, Arr::from_tensor(&x.matmul(&drop.weight)?).data);
    Ok(())
}

#[derive(Module)]
struct Head {
    reg: RegularizedLinear,
}

#[test]
fn config_and_shape_errors() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let err = |r: Result<RegularizedLinear>| r.map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        err(RegularizedLinear::builder(3, 2)
            .dropout_rate(1.5)
            .build(rngs)),
        "RegularizedLinear: invalid configuration: dropout_rate must be in [0, 1], got 1.5"
    );
    assert!(err(RegularizedLinear::builder(3, 2)
        .weight_decay(-1.0)
        .build(rngs))
    .contains("weight_decay"));
    assert!(err(RegularizedLinear::new(0, 2, rngs)).contains("positive"));
    let mut head = Head {
        reg: RegularizedLinear::new(3, 2, rngs)?,
    };
    head.eval();
    let e = head
        .reg
        .forward(&naive::tensor(&[4, 5], 0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "reg (RegularizedLinear): expected input of shape [*, 3], got [4, 5]"
    );
    Ok(())
}
