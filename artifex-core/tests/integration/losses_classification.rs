//! `losses::cross_entropy`, `nll` and `accuracy` against optax 0.2.8
//! (`tests/fixtures/optax/classification.safetensors`, written by
//! `python/make_classification_fixtures.py`).
//!
//! The references are optax's values computed in float64 on each case's logits (for f32 cases
//! too: XLA's own f32 exp/log are off by up to 1.2e-6, see the script). Tolerance:
//! `|ours - optax| <= tol * max(1, |optax|)`, i.e. absolute for values below 1 and relative
//! above (the extreme cases reach losses of ~200, where one f32 ulp is 1.5e-5); `tol` is 1e-6
//! for our f32 computation and 1e-12 for f64.

use std::collections::HashMap;

use artifex_core::activation;
use artifex_core::candle_core::{DType, Device, Tensor, Var};
use artifex_core::losses::{self, CrossEntropy, Reduction};

const CASES: [&str; 5] = [
    "basic_f32",
    "basic_f64",
    "extreme_f32",
    "extreme_f64",
    "rank3_f32",
];

fn fixtures() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/optax/classification.safetensors"
    );
    artifex_core::candle_core::safetensors::load(path, &Device::Cpu).expect("fixture file")
}

fn get<'a>(f: &'a HashMap<String, Tensor>, case: &str, key: &str) -> &'a Tensor {
    f.get(&format!("{case}.{key}"))
        .unwrap_or_else(|| panic!("fixture has no {case}.{key}"))
}

/// The tolerance for results computed in `t`'s dtype.
fn tolerance(t: &Tensor) -> f64 {
    if t.dtype() == DType::F64 {
        1e-12
    } else {
        1e-6
    }
}

/// Largest `|a - b| / max(1, |b|)`; panics on shape mismatch or when it exceeds `tol`.
fn assert_close(what: &str, ours: &Tensor, expected: &Tensor, tol: f64) -> f64 {
    assert_eq!(ours.dims(), expected.dims(), "{what}: shape");
    let a: Vec<f64> = ours
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1())
        .expect("ours to host");
    let b: Vec<f64> = expected
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1())
        .expect("expected to host");
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| {
            assert!(x.is_finite(), "{what}: {x} is not finite");
            (x - y).abs() / y.abs().max(1.0)
        })
        .fold(0.0f64, f64::max);
    assert!(
        worst <= tol,
        "{what}: deviation {worst:e} > {tol:e}\n ours  {a:?}\n optax {b:?}"
    );
    worst
}

fn options(smooth: bool) -> CrossEntropy {
    let alpha = if smooth { 0.1 } else { 0.0 };
    CrossEntropy::default().label_smoothing(alpha)
}

#[test]
fn cross_entropy_matches_optax_per_example_and_mean() {
    let f = fixtures();
    for case in CASES {
        let (logits, labels) = (get(&f, case, "logits"), get(&f, case, "labels"));
        let tol = tolerance(logits);
        for (prefix, smooth) in [("", false), ("smooth.", true)] {
            let per_example = options(smooth).reduction(Reduction::None);
            let ours = losses::cross_entropy_with(logits, labels, &per_example).expect("loss");
            assert_eq!(
                ours.dtype(),
                logits.dtype(),
                "{case}: computed in the logits' dtype"
            );
            let worst = assert_close(
                &format!("{case} {prefix}loss"),
                &ours,
                get(&f, case, &format!("{prefix}loss")),
                tol,
            );
            let mean = losses::cross_entropy_with(logits, labels, &options(smooth)).expect("mean");
            let worst_mean = assert_close(
                &format!("{case} {prefix}mean"),
                &mean,
                get(&f, case, &format!("{prefix}mean")),
                tol,
            );
            println!("{case:12} {prefix:8} per-example {worst:.1e}  mean {worst_mean:.1e}");
        }
    }
}

#[test]
fn cross_entropy_gradient_matches_optax() {
    let f = fixtures();
    for case in CASES {
        let (logits, labels) = (get(&f, case, "logits"), get(&f, case, "labels"));
        for (prefix, smooth) in [("", false), ("smooth.", true)] {
            let var = Var::from_tensor(logits).expect("var");
            let loss = losses::cross_entropy_with(var.as_tensor(), labels, &options(smooth))
                .expect("loss");
            let grads = loss.backward().expect("backward");
            let grad = grads.get(var.as_tensor()).expect("gradient of the logits");
            let worst = assert_close(
                &format!("{case} {prefix}grad"),
                grad,
                get(&f, case, &format!("{prefix}grad")),
                tolerance(logits),
            );
            println!("{case:12} {prefix:8} gradient {worst:.1e}");
        }
    }
}

#[test]
fn accuracy_and_nll_match_optax() {
    let f = fixtures();
    for case in CASES {
        let (logits, labels) = (get(&f, case, "logits"), get(&f, case, "labels"));
        let accuracy = losses::accuracy(logits, labels).expect("accuracy");
        assert_close(
            &format!("{case} accuracy"),
            &accuracy,
            get(&f, case, "accuracy"),
            0.0,
        );
        // nll of the log-softmax is the plain cross-entropy.
        let log_probs = activation::log_softmax(logits, -1).expect("log_softmax");
        let nll = losses::nll_with(&log_probs, labels, Reduction::None).expect("nll");
        assert_close(
            &format!("{case} nll"),
            &nll,
            get(&f, case, "loss"),
            tolerance(logits),
        );
    }
}

#[test]
fn extreme_logits_stay_finite_where_a_naive_softmax_does_not() {
    let f = fixtures();
    let (logits, labels) = (
        get(&f, "extreme_f32", "logits"),
        get(&f, "extreme_f32", "labels"),
    );
    // The naive formula log(softmax(x)) underflows: the label's probability is exp(-200).
    let exp = logits.exp().unwrap();
    let naive = exp
        .broadcast_div(&exp.sum_keepdim(1).unwrap())
        .and_then(|p| p.log())
        .unwrap();
    let row0: Vec<f32> = naive.get(0).unwrap().to_vec1().unwrap();
    assert!(row0.iter().any(|v| !v.is_finite()), "{row0:?}");
    let per_example: Vec<f32> = losses::cross_entropy_with(
        logits,
        labels,
        &CrossEntropy::default().reduction(Reduction::None),
    )
    .unwrap()
    .to_vec1()
    .unwrap();
    assert!((per_example[0] - 200.0).abs() < 1e-3, "{per_example:?}");
    assert!(
        (per_example[1] - 5f32.ln()).abs() < 1e-6,
        "equal logits: ln 5"
    );
}
