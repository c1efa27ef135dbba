//! Tests of the optimizers against hand-computed optax updates, and of their state.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};

use super::*;
use crate::Param;

fn param(v: &[f64], dtype: DType) -> Param {
    let t = Tensor::new(v, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    Param::new(&t).unwrap()
}

fn values(p: &Param) -> Vec<f64> {
    p.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn grads(p: &Param, g: &[f64]) -> GradStore {
    let mut store = GradStore::default();
    let t = Tensor::new(g, &Device::Cpu)
        .unwrap()
        .to_dtype(p.dtype())
        .unwrap();
    store.insert(p.value(), t);
    store
}

/// optax.adam / adamw on plain f64 numbers: returns the parameters after each step.
fn reference_adam(p0: &[f64], gs: &[&[f64]], lr: f64, wd: f64) -> Vec<Vec<f64>> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut p = p0.to_vec();
    let mut mu = vec![0.0; p.len()];
    let mut nu = vec![0.0; p.len()];
    let mut out = Vec::new();
    for (step, g) in gs.iter().enumerate() {
        let t = (step + 1) as i32;
        for i in 0..p.len() {
            mu[i] = (1.0 - b1) * g[i] + b1 * mu[i];
            nu[i] = (1.0 - b2) * g[i] * g[i] + b2 * nu[i];
            let mu_hat = mu[i] / (1.0 - b1.powi(t));
            let nu_hat = nu[i] / (1.0 - b2.powi(t));
            let u = mu_hat / ((nu_hat + 0.0).sqrt() + eps) + wd * p[i];
            p[i] -= lr * u;
        }
        out.push(p.clone());
    }
    out
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

const P0: [f64; 3] = [1.0, -2.0, 0.5];
const G1: [f64; 3] = [0.1, -0.3, 2.0];
const G2: [f64; 3] = [-0.2, 0.05, 1.0];

#[test]
fn adam_matches_optax_two_steps() {
    let want = reference_adam(&P0, &[&G1, &G2], 0.1, 0.0);
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
        let p = param(&P0, dtype);
        let mut opt = Adam::new(vec![("w".into(), p.clone())], 0.1).unwrap();
        opt.step(&grads(&p, &G1)).unwrap();
        assert_close(&values(&p), &want[0], tol);
        opt.step(&grads(&p, &G2)).unwrap();
        assert_close(&values(&p), &want[1], tol);
        assert_eq!(opt.step_count(), 2);
    }
}

#[test]
fn adamw_decoupled_weight_decay() {
    let wd = 0.05;
    let want = reference_adam(&P0, &[&G1, &G2], 0.1, wd);
    let p = param(&P0, DType::F64);
    let mut opt = AdamW::new(vec![("w".into(), p.clone())], 0.1, wd).unwrap();
    opt.step(&grads(&p, &G1)).unwrap();
    opt.step(&grads(&p, &G2)).unwrap();
    assert_close(&values(&p), &want[1], 1e-12);
    // a zero gradient leaves only the decay: p * (1 - lr * wd)
    let q = param(&[2.0, -4.0], DType::F64);
    let mut opt = AdamW::new(vec![("q".into(), q.clone())], 0.1, wd).unwrap();
    opt.step(&grads(&q, &[0.0, 0.0])).unwrap();
    assert_close(&values(&q), &[2.0 * 0.995, -4.0 * 0.995], 1e-12);
}

#[test]
fn sgd_momentum_nesterov_and_weight_decay() {
    let run = |config: SgdConfig, gs: &[f64]| {
        let p = param(&[1.0], DType::F64);
        let mut opt = Sgd::with_config(vec![("p".into(), p.clone())], 0.1, config).unwrap();
        for g in gs {
            opt.step(&grads(&p, &[*g])).unwrap();
        }
        values(&p)[0]
    };
    let momentum = |nesterov| SgdConfig {
        momentum: 0.9,
        nesterov,
        weight_decay: 0.0,
    };
    assert!((run(SgdConfig::default(), &[1.0, 1.0]) - 0.8).abs() < 1e-12);
    // traces 1, 1.9: p = 1 - 0.1 - 0.19
    assert!((run(momentum(false), &[1.0, 1.0]) - 0.71).abs() < 1e-12);
    // updates 1 + 0.9 * 1, 1 + 0.9 * 1.9
    assert!((run(momentum(true), &[1.0, 1.0]) - 0.539).abs() < 1e-12);
    let decay = SgdConfig {
        weight_decay: 0.1,
        ..SgdConfig::default()
    };
    assert!((run(decay, &[0.0]) - 0.99).abs() < 1e-12);
}

/// `sum((w - target)^2)` with real autograd.
fn quadratic(w: &Param) -> Tensor {
    let target = Tensor::new(&[3f32, -1.0, 0.5, 2.0], &Device::Cpu).unwrap();
    (w.value() - target)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
}

fn optimizers(p: &Param) -> Vec<Box<dyn Optimizer>> {
    let params = || vec![("w".to_string(), p.clone())];
    let momentum = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    };
    vec![
        Box::new(Sgd::new(params(), 0.05).unwrap()),
        Box::new(Sgd::with_config(params(), 0.02, momentum).unwrap()),
        Box::new(Adam::new(params(), 0.1).unwrap()),
        Box::new(AdamW::new(params(), 0.1, 1e-4).unwrap()),
    ]
}

#[test]
fn quadratic_loss_goes_down() {
    for i in 0..4 {
        let p = param(&[0.0; 4], DType::F32);
        let mut opt = optimizers(&p).remove(i);
        let first: f32 = quadratic(&p).to_scalar().unwrap();
        for _ in 0..100 {
            opt.backward_step(&quadratic(&p)).unwrap();
        }
        let last: f32 = quadratic(&p).to_scalar().unwrap();
        assert!(last < first * 0.01, "optimizer {i}: {first} -> {last}");
    }
}

#[test]
fn params_without_gradient_are_skipped() {
    let (a, b) = (param(&[1.0], DType::F32), param(&[1.0], DType::F32));
    let params = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    let mut opt = Adam::new(params, 0.1).unwrap();
    opt.step(&grads(&a, &[1.0])).unwrap();
    assert!(values(&a)[0] < 1.0);
    assert_eq!(values(&b), [1.0]);
    assert_eq!(opt.step_count(), 1);
}

#[test]
fn rejects_bad_configs_and_duplicate_paths() {
    let p = param(&[1.0], DType::F32);
    let twice = vec![("w".to_string(), p.clone()), ("w".to_string(), p.clone())];
    assert!(Adam::new(twice, 0.1).is_err());
    let one = || vec![("w".to_string(), p.clone())];
    let bad_beta = AdamConfig {
        beta1: 1.0,
        ..AdamConfig::default()
    };
    assert!(Adam::with_config(one(), 0.1, bad_beta).is_err());
    assert!(AdamW::new(one(), 0.1, -1.0).is_err());
    assert!(Sgd::new(one(), f64::NAN).is_err());
    let bad_schedule = Schedule::WarmupCosine {
        peak: 1.0,
        warmup_steps: 10,
        decay_steps: 5,
        end: 0.0,
    };
    assert!(Sgd::new(one(), bad_schedule).is_err());
}

fn schedule() -> Schedule {
    Schedule::WarmupCosine {
        peak: 0.1,
        warmup_steps: 2,
        decay_steps: 8,
        end: 0.01,
    }
}

fn bits(p: &Param) -> Vec<u32> {
    let v: Vec<f32> = p.to_vec1().unwrap();
    v.into_iter().map(f32::to_bits).collect()
}

#[test]
fn save_load_continue_is_bitwise_identical() {
    let dir = std::env::temp_dir().join(format!("artifex-optim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let make = |p: &Param, i: usize| -> Box<dyn Optimizer> {
        let params = vec![("layer.w".to_string(), p.clone())];
        let momentum = SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.01,
        };
        match i {
            0 => Box::new(Adam::new(params, schedule()).unwrap()),
            1 => Box::new(AdamW::new(params, schedule(), 0.1).unwrap()),
            _ => Box::new(Sgd::with_config(params, schedule(), momentum).unwrap()),
        }
    };
    for i in 0..3 {
        // uninterrupted: 6 steps
        let p = param(&[0.0; 4], DType::F32);
        let mut opt = make(&p, i);
        for _ in 0..6 {
            opt.backward_step(&quadratic(&p)).unwrap();
        }
        let reference = bits(&p);

        // 3 steps, save model + optimizer in one file, restart from scratch, 3 more
        let p = param(&[0.0; 4], DType::F32);
        let mut opt = make(&p, i);
        for _ in 0..3 {
            opt.backward_step(&quadratic(&p)).unwrap();
        }
        let path = dir.join(format!("ckpt-{i}.safetensors"));
        let mut entries = vec![("layer.w".to_string(), p.value().detach())];
        entries.extend(opt.state_tensors().unwrap());
        save_tensors(&path, &entries).unwrap();

        let p2 = param(&[9.0; 4], DType::F32);
        let mut opt2 = make(&p2, i);
        let loaded = load_tensors(&path).unwrap();
        p2.set(&loaded["layer.w"]).unwrap();
        opt2.load_state(&loaded).unwrap();
        assert_eq!(opt2.step_count(), 3);
        assert_eq!(opt2.learning_rate(), opt.learning_rate());
        for _ in 0..3 {
            opt2.backward_step(&quadratic(&p2)).unwrap();
        }
        assert_eq!(bits(&p2), reference, "optimizer {i}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn state_keys_and_load_errors() {
    let p = param(&[1.0, 2.0], DType::F32);
    let mut opt = Adam::new(vec![("enc.w".into(), p.clone())], 0.1).unwrap();
    opt.step(&grads(&p, &[1.0, 1.0])).unwrap();
    let state: HashMap<String, Tensor> = opt.state_tensors().unwrap().into_iter().collect();
    let mut keys: Vec<&str> = state.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["opt.adam.mu.enc.w", "opt.adam.nu.enc.w", "opt.step"]);
    assert_eq!(state["opt.step"].dtype(), DType::I64);

    let fresh = || Adam::new(vec![("enc.w".into(), p.clone())], 0.1).unwrap();
    // model entries beside the optimizer's are ignored
    let mut with_model = state.clone();
    with_model.insert("enc.w".into(), p.value().clone());
    fresh().load_state(&with_model).unwrap();

    let mut broken = state.clone();
    broken.remove("opt.adam.nu.enc.w");
    broken.insert(
        "opt.adam.mu.enc.w".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    broken.insert(
        "opt.adam.mu.dec.w".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    );
    let mut target = fresh();
    match target.load_state(&broken).unwrap_err() {
        crate::Error::OptimizerState {
            missing,
            mismatched,
            unexpected,
            ..
        } => {
            assert_eq!(missing, ["opt.adam.nu.enc.w"]);
            assert_eq!(mismatched.len(), 1);
            assert!(mismatched[0].starts_with("opt.adam.mu.enc.w"));
            assert_eq!(unexpected, ["opt.adam.mu.dec.w"]);
        }
        e => panic!("{e}"),
    }
    assert_eq!(target.step_count(), 0, "a failed load changes nothing");

    // Sgd state cannot be loaded into Adam, nor a float step counter
    let sgd = Sgd::new(vec![("enc.w".into(), p.clone())], 0.1).unwrap();
    let sgd_state: HashMap<String, Tensor> = sgd.state_tensors().unwrap().into_iter().collect();
    assert!(fresh().load_state(&sgd_state).is_err());
    let mut float_step = state.clone();
    float_step.insert("opt.step".into(), Tensor::new(1f32, &Device::Cpu).unwrap());
    let err = fresh().load_state(&float_step).unwrap_err();
    assert!(err.to_string().contains("opt.step"), "{err}");
}

#[test]
fn state_file_round_trip_and_missing_file() {
    let p = param(&[1.0], DType::F32);
    let mut opt = Sgd::with_config(
        vec![("w".into(), p.clone())],
        0.1,
        SgdConfig {
            momentum: 0.5,
            ..SgdConfig::default()
        },
    )
    .unwrap();
    opt.step(&grads(&p, &[2.0])).unwrap();
    let path = std::env::temp_dir().join(format!("artifex-opt-{}.safetensors", std::process::id()));
    save_state_file(&opt, &path).unwrap();
    let mut again =
        Sgd::with_config(vec![("w".into(), p.clone())], 0.1, opt.config().clone()).unwrap();
    load_state_file(&mut again, &path).unwrap();
    assert_eq!(again.step_count(), 1);
    std::fs::remove_file(&path).unwrap();
    assert!(load_state_file(&mut again, &path).is_err());
}

/// A gradient that still carries a graph (as backward can produce) must not be kept alive by
/// the optimizer state: that was a memory leak of one graph per step.
#[test]
fn optimizer_state_never_keeps_a_graph() {
    let w = param(&[1.0, -2.0, 0.5], DType::F32);
    let x = param(&[0.3, 0.1, -0.7], DType::F32);
    let tracked_grad = (x.value() * 2.0).unwrap();
    assert!(tracked_grad.track_op());
    for mut opt in [
        Box::new(Adam::new(vec![("w".into(), w.clone())], 0.1).unwrap()) as Box<dyn Optimizer>,
        Box::new(
            Sgd::with_config(
                vec![("w".into(), w.clone())],
                0.1,
                SgdConfig {
                    momentum: 0.9,
                    ..SgdConfig::default()
                },
            )
            .unwrap(),
        ),
    ] {
        let mut store = GradStore::default();
        store.insert(w.value(), tracked_grad.clone());
        opt.step(&store).unwrap();
        for (key, t) in opt.state_tensors().unwrap() {
            assert!(!t.track_op(), "{key} keeps a backward graph");
        }
    }
}

/// The fused update writes the moments in place: clones, saved state and loaded state must
/// each own their storage, or a later step would change them behind the caller's back.
#[test]
fn in_place_moments_are_never_shared() {
    let p = param(&[1.0, -2.0, 3.0], DType::F32);
    let mut opt = Adam::new(vec![("w".into(), p.clone())], 0.1).unwrap();
    opt.step(&grads(&p, &[0.5, -1.0, 2.0])).unwrap();
    let snapshot = |o: &dyn Optimizer| -> Vec<(String, Vec<f32>)> {
        o.state_tensors()
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k != STEP_KEY)
            .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    };
    let saved = opt.state_tensors().unwrap();
    let before = snapshot(&opt);
    let clone = opt.clone();
    let mut loaded = Adam::new(vec![("w".into(), param(&[0.0; 3], DType::F32))], 0.1).unwrap();
    let given: HashMap<String, Tensor> = saved.iter().cloned().collect();
    loaded.load_state(&given).unwrap();
    opt.step(&grads(&p, &[1.0, 1.0, 1.0])).unwrap();
    assert_ne!(snapshot(&opt), before, "the step moved the moments");
    assert_eq!(snapshot(&clone), before, "a clone keeps its own moments");
    assert_eq!(
        snapshot(&loaded),
        before,
        "a loaded optimizer owns its moments"
    );
    let saved_now: Vec<(String, Vec<f32>)> = saved
        .into_iter()
        .filter(|(k, _)| k != STEP_KEY)
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    assert_eq!(saved_now, before, "saved state tensors are snapshots");
}
