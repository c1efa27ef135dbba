//! GroupNorm and RMSNorm against f64 loops, gradients against finite differences, errors.

use crate::naive;

use artifex_core::prelude::*;
use naive::{assert_close, Arr};

fn f64_tensor(dims: &[usize], seed: u64) -> Tensor {
    naive::tensor(dims, seed)
        .to_dtype(DType::F64)
        .expect("f64")
        .affine(1.5, 0.3)
        .expect("affine")
}

/// Backprop of `sum(f(x) * r)` against central differences, in f64.
fn check_gradient(f: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor, seed: u64) -> Result<()> {
    let var = candle_core::Var::from_tensor(x)?;
    let y = f(var.as_tensor())?;
    let r = f64_tensor(y.dims(), seed);
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let got = Arr::from_tensor(grads.get(var.as_tensor()).expect("grad")).data;
    let base = Arr::from_tensor(x).data;
    let h = 1e-6;
    let mut want = Vec::with_capacity(base.len());
    for i in 0..base.len() {
        let at = |d: f64| -> Result<f64> {
            let mut v = base.clone();
            v[i] += d;
            let xt = Tensor::from_vec(v, x.dims(), &Device::Cpu)?;
            Ok((f(&xt)? * &r)?.sum_all()?.to_scalar::<f64>()?)
        };
        want.push((at(h)? - at(-h)?) / (2.0 * h));
    }
    assert_close("gradient", &got, &want, 1e-5, 1e-7);
    Ok(())
}

/// GroupNorm reference: statistics per (example, group) over every non-batch position.
fn group_norm_ref(x: &Arr, groups: usize, eps: f64, scale: &[f64], bias: &[f64]) -> Vec<f64> {
    let c = *x.dims.last().expect("rank");
    let b = x.dims[0];
    let per_example = x.data.len() / b;
    let gs = c / groups;
    let mut out = vec![0.0; x.data.len()];
    for n in 0..b {
        for g in 0..groups {
            let idx: Vec<usize> = (0..per_example)
                .map(|i| n * per_example + i)
                .filter(|i| (i % c) / gs == g)
                .collect();
            let mean = idx.iter().map(|&i| x.data[i]).sum::<f64>() / idx.len() as f64;
            let var =
                idx.iter().map(|&i| (x.data[i] - mean).powi(2)).sum::<f64>() / idx.len() as f64;
            for &i in &idx {
                out[i] = (x.data[i] - mean) / (var + eps).sqrt() * scale[i % c] + bias[i % c];
            }
        }
    }
    out
}

#[test]
fn group_norm_matches_reference_for_every_rank() -> Result<()> {
    for (dims, groups) in [
        (vec![2, 4, 5, 6], 3),
        (vec![3, 8], 4),
        (vec![2, 7, 4], 1),
        (vec![2, 3, 6], 6),
    ] {
        let c = *dims.last().expect("rank");
        let gn = GroupNorm::builder(c)
            .num_groups(groups)
            .scale_init(init::normal(1.0))
            .bias_init(init::normal(1.0))
            .build(&mut Rngs::new(3))?;
        let x = naive::tensor(&dims, 5);
        let y = gn.forward(&x)?;
        assert_eq!(y.dims(), dims.as_slice());
        let scale = Arr::from_tensor(gn.scale.as_ref().expect("scale")).data;
        let bias = Arr::from_tensor(gn.bias.as_ref().expect("bias")).data;
        let want = group_norm_ref(&Arr::from_tensor(&x), groups, 1e-6, &scale, &bias);
        assert_close("group norm", &Arr::from_tensor(&y).data, &want, 1e-5, 1e-5);
    }
    Ok(())
}

#[test]
fn group_norm_gradients_match_finite_differences() -> Result<()> {
    let gn = GroupNorm::builder(6)
        .num_groups(2)
        .dtype(DType::F64)
        .scale_init(init::normal(1.0))
        .build(&mut Rngs::new(1))?;
    check_gradient(|x| gn.forward(x), &f64_tensor(&[2, 3, 6], 9), 10)
}

#[test]
fn group_norm_defaults_and_errors() -> Result<()> {
    let rngs = &mut Rngs::new(0);
    let gn = GroupNorm::new(64, rngs)?;
    assert_eq!((gn.num_groups, gn.epsilon), (32, 1e-6));
    let paths: Vec<String> = gn.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["scale", "bias"]);
    let e = GroupNorm::new(8, rngs).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        e,
        "GroupNorm: invalid configuration: num_groups 32 must divide num_features 8"
    );
    assert!(GroupNorm::builder(8).num_groups(0).build(rngs).is_err());
    assert!(GroupNorm::builder(0).num_groups(1).build(rngs).is_err());
    let gn = GroupNorm::builder(6).num_groups(3).build(rngs)?;
    let e = gn.forward(&naive::tensor(&[6], 0)).unwrap_err().to_string();
    assert_eq!(e, "GroupNorm: expected input of shape [*, 6], got [6]");
    assert!(gn.forward(&naive::tensor(&[2, 4, 5], 0)).is_err());
    Ok(())
}

#[test]
fn rms_norm_matches_reference_and_gradients() -> Result<()> {
    let rms = RMSNorm::builder(5)
        .scale_init(init::normal(1.0))
        .build(&mut Rngs::new(2))?;
    let x = naive::tensor(&[3, 2, 5], 4);
    let y = rms.forward(&x)?;
    let xa = Arr::from_tensor(&x);
    let scale = Arr::from_tensor(rms.scale.as_ref().expect("scale")).data;
    let want: Vec<f64> = xa
        .data
        .chunks(5)
        .flat_map(|row| {
            let ms = row.iter().map(|v| v * v).sum::<f64>() / 5.0;
            let scale = scale.clone();
            row.iter()
                .enumerate()
                .map(move |(i, v)| v / (ms + 1e-6).sqrt() * scale[i])
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close("rms norm", &Arr::from_tensor(&y).data, &want, 1e-5, 1e-6);

    let rms64 = RMSNorm::builder(4)
        .dtype(DType::F64)
        .scale_init(init::normal(1.0))
        .build(&mut Rngs::new(2))?;
    check_gradient(|x| rms64.forward(x), &f64_tensor(&[3, 4], 3), 4)?;

    let paths: Vec<String> = rms.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["scale"]);
    let bare = RMSNorm::builder(4)
        .use_scale(false)
        .build(&mut Rngs::new(0))?;
    assert!(bare.state().is_empty());
    assert_eq!(bare.epsilon, 1e-6);
    let e = rms
        .forward(&naive::tensor(&[2, 4], 0))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "RMSNorm: expected input of shape [*, 5], got [2, 4]");
    assert!(RMSNorm::new(0, &mut Rngs::new(0)).is_err());
    Ok(())
}
